"""The frame codec: a 64-byte ASCII length header, then that many bytes of payload.

Sans-I/O: it turns bytes into frames and frames into bytes and never touches a socket, so
the server's reader threads, the client's receive thread and the tests all share it.

Writing: the header is the payload length in ASCII decimal digits, left-aligned and padded
with spaces to 64 bytes. Reading: the digits may be surrounded by spaces and NUL bytes;
anything else in the header is a :class:`RemoteProtocolError`. A zero-length frame is a
keepalive and is returned like any other (as ``b""``).

The clients of the other classic tutorial (the select-based chatroom) use the same framing
with a **10-byte** header. A server's decoder tells the two apart by the first bytes of a
connection (:func:`sniff_header_size`): a 64-byte header is one run of digits in padding up
to byte 64, a 10-byte one is digits and spaces in its 10 bytes, and the payload right after
it soon breaks the 64-byte pattern (docs/PROTOCOL.md 2.6).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from .errors import ConnectionLost, ErrorCode, LocalProtocolError, RemoteProtocolError

HEADER_SIZE: Final = 64
#: The header of the select-chatroom tutorial's frames.
SELECT_HEADER_SIZE: Final = 10
_HEADER_PADDING: Final = b" \x00"
_PADDING: Final = frozenset(_HEADER_PADDING)


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Returned by :meth:`FrameDecoder.next_frame` when more bytes are needed.
NEED_DATA: Final = _Sentinel("NEED_DATA")
#: Returned by :meth:`FrameDecoder.next_frame` once the peer closed cleanly between frames.
CLOSED: Final = _Sentinel("CLOSED")


def encode_frame(payload: bytes, header_size: int = HEADER_SIZE) -> bytes:
    """Return ``payload`` with its length header in front (64 bytes, or ``header_size``)."""
    if header_size == HEADER_SIZE:
        return b"%-64d" % len(payload) + payload
    return b"%-*d" % (header_size, len(payload)) + payload


def sniff_header_size(prefix: bytes) -> int | None:
    """The header size of a connection whose first bytes are ``prefix``: 64, 10
    (:data:`SELECT_HEADER_SIZE`), or None while the bytes so far fit both.

    10 only when the first 10 bytes are a 10-byte header (one run of 1 to 9 digits, spaces
    around it) and a byte other than padding follows before byte 64, which no 64-byte header
    has (its digits are one run, padding around it). Anything else is 64, where a malformed
    header gets the usual ``bad_header``."""
    head = prefix[:SELECT_HEADER_SIZE]
    core = head.strip(b" ")
    if core and not core.isdigit():  # bytes.isdigit: ASCII digits only
        return HEADER_SIZE
    if len(head) < SELECT_HEADER_SIZE:
        return None
    if not core or len(core) == SELECT_HEADER_SIZE:  # no length, or one over any limit
        return HEADER_SIZE
    if any(byte not in _PADDING for byte in prefix[SELECT_HEADER_SIZE:HEADER_SIZE]):
        return SELECT_HEADER_SIZE
    return HEADER_SIZE if len(prefix) >= HEADER_SIZE else None


def parse_header(header: bytes, max_payload: int) -> int:
    """Return the payload length a header (64 or 10 bytes) announces, or raise
    RemoteProtocolError."""
    digits = header.strip(_HEADER_PADDING)
    # bytes.isdigit() is ASCII-only, so signs, letters, inner spaces and non-ASCII all fail.
    if not digits.isdigit():
        shown = header.rstrip(_HEADER_PADDING)[:32]
        raise RemoteProtocolError(
            ErrorCode.BAD_HEADER,
            f"frame header must be a decimal length, got {shown!r}",
            fatal=True,
        )
    length = int(digits)
    if length > max_payload:
        raise RemoteProtocolError(
            ErrorCode.FRAME_TOO_LARGE,
            f"frame of {length} bytes is over the limit of {max_payload} bytes",
            fatal=True,
        )
    return length


class FrameDecoder:
    """Incremental decoder: feed chunks with :meth:`receive_data`, take frames out with
    :meth:`next_frame` (or iterate :meth:`frames`).

    It never holds more than ``HEADER_SIZE + max_payload`` bytes: :attr:`room` says how many
    more it accepts right now, and feeding more is a :class:`LocalProtocolError`. An oversize
    length is rejected as soon as its header is complete, before any payload is buffered.

    ``header_size`` is 64, 10, or None for a server's decoder that decides from the first
    bytes (:func:`sniff_header_size`); :attr:`header_size` says once it has.
    """

    def __init__(self, max_payload: int, header_size: int | None = HEADER_SIZE) -> None:
        if max_payload < 0:
            raise LocalProtocolError("max_payload must not be negative")
        self.max_payload = max_payload
        self.max_buffered = HEADER_SIZE + max_payload
        #: The size of every header of this stream; None until the first bytes decide.
        self.header_size = header_size
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes in _buf
        self._payload_len: int | None = None  # set once the current header is parsed
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buf) - self._pos

    @property
    def room(self) -> int:
        """How many bytes :meth:`receive_data` accepts right now (0 after EOF)."""
        return 0 if self._eof else self.max_buffered - self.buffered

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side (EOF)."""
        if self._eof:
            raise LocalProtocolError("receive_data() after EOF")
        if not data:
            self._eof = True
            return
        if len(data) > self.room:
            raise LocalProtocolError(
                f"fed {len(data)} bytes but only {self.room} fit; read at most .room bytes"
            )
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos > 4096 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        if self.header_size is None:
            self.header_size = sniff_header_size(bytes(self._buf[:HEADER_SIZE]))

    def next_frame(self) -> bytes | _Sentinel:
        """Return the next complete payload, :data:`NEED_DATA` or :data:`CLOSED`.

        Raises RemoteProtocolError for a bad header and ConnectionLost when the peer closed
        in the middle of a frame.
        """
        buf, pos = self._buf, self._pos
        if self._payload_len is None:
            size = self.header_size
            if size is None or len(buf) - pos < size:
                return self._short()
            self._payload_len = parse_header(bytes(buf[pos : pos + size]), self.max_payload)
            pos += size
            self._pos = pos
        end = pos + self._payload_len
        if len(buf) < end:
            return self._short()
        self._payload_len = None
        self._pos = end
        return bytes(buf[pos:end])

    def frames(self) -> Iterator[bytes]:
        """Yield every complete payload buffered now (stops at NEED_DATA or CLOSED).

        Errors are raised where they occur, after the good frames before them were yielded.
        """
        while True:
            frame = self.next_frame()
            if not isinstance(frame, bytes):
                return
            yield frame

    @property
    def closed(self) -> bool:
        """True once EOF was received and every frame before it was returned."""
        return self._eof and self.buffered == 0 and self._payload_len is None

    def _short(self) -> _Sentinel:
        if not self._eof:
            return NEED_DATA
        if self.buffered == 0 and self._payload_len is None:
            return CLOSED
        raise ConnectionLost(f"peer closed in the middle of a frame ({self.buffered} bytes left)")
