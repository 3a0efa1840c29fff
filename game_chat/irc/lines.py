"""IRC lines, sans-I/O: bytes from a peer into messages, messages into bytes (RFC 1459/2812,
with IRCv3 message tags).

A line is ``[@tags ][:prefix ]COMMAND[ params...][ :trailing]`` ending in CR LF (a bare LF is
accepted, as every daemon does). Limits, as IRC daemons have them: the part after the tags is
at most :data:`MAX_LINE_BYTES` (512) bytes with its CR LF; the tags at most
:data:`MAX_TAG_BYTES` (8,191) bytes with their ``@`` and the space after them. A longer line
is a peer's mistake (:class:`LineTooLong`, numeric 417 ERR_INPUTTOOLONG; a client's tags may
take :data:`MAX_CLIENT_TAG_BYTES`): the decoder drops it
up to its end and goes on with the next. Nothing here touches a socket; the decoder is tested
by feeding bytes one at a time and at every split point.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..protocol.errors import ChatError

#: Longest line without its tags, CR LF included (RFC 1459 2.3).
MAX_LINE_BYTES = 512
#: Longest tag section, its "@" and the space after it included (IRCv3 message-tags).
MAX_TAG_BYTES = 8191
#: Longest tag section a client may send: 4,094 bytes of tags, its "@" and space included.
MAX_CLIENT_TAG_BYTES = 4096
#: Most parameters a message has (RFC 2812 2.3.1: 14 middle ones and a trailing one).
MAX_PARAMS = 15

_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_TAG_ESCAPED = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}


class IrcLineError(ChatError):
    """A line that is not IRC (the peer's mistake)."""


class LineTooLong(IrcLineError):
    """A line over the limits (ERR_INPUTTOOLONG); the rest of it is skipped."""


@dataclass(frozen=True)
class IrcMessage:
    """One IRC message: ``command`` upper-cased (numerics stay three digits)."""

    command: str
    params: tuple[str, ...] = ()
    prefix: str | None = None
    tags: tuple[tuple[str, str], ...] = field(default=())
    #: False: the line was not UTF-8 (read as Latin-1; a UTF8ONLY server refuses it).
    utf8: bool = True

    def tag(self, name: str) -> str | None:
        return next((v for k, v in self.tags if k == name), None)


def parse_line(line: bytes) -> IrcMessage:
    """The message of one line (without its CR LF); IrcLineError if it is not one.

    Bytes that are not UTF-8 are read as Latin-1, as IRC clients of old send them, and the
    message says so (``utf8`` False)."""
    utf8 = True
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text, utf8 = line.decode("latin-1"), False
    tags: tuple[tuple[str, str], ...] = ()
    if text.startswith("@"):
        raw, _, text = text[1:].partition(" ")
        tags = tuple(_parse_tag(item) for item in raw.split(";") if item)
    text = text.lstrip(" ")
    prefix = None
    if text.startswith(":"):
        prefix, _, text = text[1:].partition(" ")
        text = text.lstrip(" ")
    if not text:
        raise IrcLineError("no command")
    head, sep, trailing = text.partition(" :")
    words = [word for word in head.split(" ") if word]  # spaces only: a tab is a character
    if not words:
        raise IrcLineError("no command")
    command, params = words[0], words[1:]
    if sep:
        params.append(trailing)
    if not (command.isascii() and (command.isalpha() or (len(command) == 3 and command.isdigit()))):
        raise IrcLineError(f"not a command: {command[:20]!r}")
    if len(params) > MAX_PARAMS:  # the rest joins the last one, as RFC 2812 reads it
        params = [*params[: MAX_PARAMS - 1], " ".join(params[MAX_PARAMS - 1 :])]
    return IrcMessage(command.upper(), tuple(params), prefix, tags, utf8)


def _parse_tag(item: str) -> tuple[str, str]:
    name, _, value = item.partition("=")
    out, chars = [], iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_TAG_ESCAPES.get(nxt, nxt))
        else:
            out.append(ch)
    return name, "".join(out)


def format_line(
    command: str,
    *params: str,
    prefix: str | None = None,
    tags: dict[str, str] | None = None,
    trailing: bool = False,
) -> bytes:
    """One line, CR LF included. The last parameter goes after ``:`` when it must (empty,
    has a space, or starts with ``:``) or ``trailing`` says so (text: as daemons write it).
    Another parameter that could not stand in the middle (a peer's word echoed in a numeric,
    say ``JOIN :x y``) is made one: spaces become ``_``, a leading ``:`` goes, empty is ``*``."""
    parts = []
    if tags:
        parts.append(
            "@" + ";".join(k if v == "" else f"{k}={_escape_tag(v)}" for k, v in tags.items())
        )
    if prefix:
        parts.append(":" + prefix)
    parts.append(command)
    for n, param in enumerate(params):
        last = n == len(params) - 1
        if last and (trailing or not param or " " in param or param.startswith(":")):
            parts.append(":" + param)
        else:
            parts.append(_middle(param))
    return (" ".join(parts) + "\r\n").encode("utf-8", "replace")  # (text is cleaned before)


def _middle(param: str) -> str:
    param = param.replace(" ", "_").lstrip(":")
    return param or "*"


def _escape_tag(value: str) -> str:
    return "".join(_TAG_ESCAPED.get(ch, ch) for ch in value)


def split_utf8(text: str, limit: int) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` UTF-8 bytes, at character boundaries
    (at the last space when there is one in the second half: words stay whole)."""
    pieces = []
    data = text.encode("utf-8")
    while len(data) > limit:
        cut = limit
        while cut > 0 and (data[cut] & 0xC0) == 0x80:  # not inside a character
            cut -= 1
        space = data.rfind(b" ", limit // 2, cut)
        if space > 0:
            cut = space
        pieces.append(data[:cut].decode("utf-8"))
        data = data[cut:].lstrip(b" ") if space > 0 else data[cut:]
    pieces.append(data.decode("utf-8"))
    return pieces


class LineDecoder:
    """Bytes in, lines out (without CR LF; empty lines skipped). Bounded: at most one line's
    limit is buffered; a longer line raises LineTooLong once and is skipped to its end."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skipping = False  # inside a line that was too long
        self.closed = False

    def receive_data(self, data: bytes) -> None:
        if not data:
            self.closed = True
        self._buffer += data

    @property
    def room(self) -> int:
        """How many bytes to read next (the socket's recv size)."""
        return 65536

    def frames(self) -> Iterator[bytes | None]:
        """The whole lines received so far, None in the place of each line over the limits
        (the connection's reader loop reads lines as it reads frames)."""
        while True:
            try:
                yield from self.lines()
                return
            except LineTooLong:
                yield None

    def lines(self) -> Iterator[bytes]:
        """The whole lines received so far; LineTooLong for each line over the limits."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_LINE_BYTES + MAX_TAG_BYTES:
                    del buffer[:]
                    if not self._skipping:
                        self._skipping = True
                        raise LineTooLong("line too long")
                return
            line = bytes(buffer[:end]).rstrip(b"\r")
            del buffer[: end + 1]
            if self._skipping:
                self._skipping = False
                continue
            if _too_long(line):
                raise LineTooLong("line too long")
            if line.strip(b" "):
                yield line


def _too_long(line: bytes) -> bool:
    if line.startswith(b"@"):
        space = line.find(b" ")
        tags_len = len(line) if space < 0 else space + 1
        if tags_len > MAX_CLIENT_TAG_BYTES:
            return True
        line = line[tags_len:]
    return len(line) + 2 > MAX_LINE_BYTES
