"""What the chat's server messages look like to an IRC client (docs/IRC.md).

Two kinds of rendering:

- :func:`broadcast` renders what goes to many members at once (a line, a join, a part, a nick
  change...): the same bytes for every IRC member with the same capabilities, so the chat
  state encodes them once per variant, as it does for its other dialects. The variant is in
  the member's dialect string (:func:`dialect_for`): ``irc`` plus a letter per capability that
  changes those bytes.
- :class:`Renderer` renders everything for one member, numerics included (they name the
  member's nick), and keeps what one member's rendering needs (its lines waiting for an ack,
  to echo them with ``echo-message``).

Every member is shown as ``nick!u@game_chat``: the chat has no user names or hosts to give
(addresses stay private), and one mask for everyone keeps a client's view of itself and of
the others the same.
"""

from __future__ import annotations

import datetime
import itertools
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..protocol.messages import (
    Ack,
    AwayChanged,
    ChatMessage,
    ErrorReply,
    Goodbye,
    NickChanged,
    Notice,
    Ping,
    Pong,
    PrivateMessage,
    RoomJoined,
    RoomList,
    RoomModeChanged,
    RoomOpChanged,
    ServerMessage,
    TopicChanged,
    UserJoined,
    UserLeft,
    UserList,
    UserParted,
    WhoReply,
)
from .lines import MAX_LINE_BYTES, format_line, split_utf8

#: The server's name in IRC prefixes when the chat's own name (``--name``) is not a host name.
SERVER = "game_chat"
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")
#: The user and host part of every member's mask.
USER, HOST = "u", "game_chat"
#: Capabilities offered in CAP LS (docs/IRC.md).
CAPABILITIES = ("away-notify", "batch", "draft/chathistory", "echo-message", "message-tags",
                "multi-prefix", "server-time", "userhost-in-names")  # fmt: skip
#: The dialect letters of the capabilities that change broadcast bytes.
_FLAGS = {"away-notify": "a", "message-tags": "g", "server-time": "t"}
DIALECT_PREFIX = "irc"


def server_name(name: str) -> str:
    """The chat's name as IRC's server name: itself when it is a host name, else game_chat."""
    return name if _HOST_NAME.fullmatch(name) else SERVER


def _no_nick() -> str:
    return "*"


def mask(nick: str) -> str:
    return f"{nick}!{USER}@{HOST}"


def dialect_for(caps: Iterable[str]) -> str:
    """The dialect string of an IRC member with ``caps`` (see the module doc)."""
    return DIALECT_PREFIX + "".join(sorted(_FLAGS[c] for c in caps if c in _FLAGS))


def is_irc(dialect: str) -> bool:
    return dialect.startswith(DIALECT_PREFIX)


def server_time(ts: float) -> str:
    """IRCv3 ``time`` tag value: UTC, milliseconds, ``Z``."""
    moment = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def broadcast(message: ServerMessage, dialect: str) -> bytes:
    """The bytes of a message that goes to many members (b"": IRC clients are not shown it,
    or it is one only :class:`Renderer` renders)."""
    flags = dialect[len(DIALECT_PREFIX) :]
    tags = {"time": server_time(message.ts)} if "t" in flags and hasattr(message, "ts") else {}
    if isinstance(message, ChatMessage | PrivateMessage):
        if message.history and "t" not in flags:
            return b""  # a replay whose times the client could not show: live lines only
        if "g" in flags and message.id:
            tags["msgid"] = str(message.id)
        target = message.room if isinstance(message, ChatMessage) else message.to
        return said(message.nick, target, message.text, message.action, tags, _command(message))
    line: tuple[str, ...] | None = None
    prefix = None
    if isinstance(message, UserJoined):
        prefix, line = mask(message.nick), ("JOIN", message.room)
    elif isinstance(message, UserParted) and message.by:  # removed by a room operator
        prefix, line = mask(message.by), ("KICK", message.room, message.nick, message.reason)
    elif isinstance(message, UserParted):
        prefix = mask(message.nick)
        line = ("PART", message.room, message.reason) if message.reason else ("PART", message.room)
    elif isinstance(message, RoomOpChanged):
        prefix = mask(message.by)
        line = ("MODE", message.room, "+o" if message.op else "-o", message.nick)
    elif isinstance(message, RoomModeChanged):
        prefix = mask(message.by)
        line = ("MODE", message.room, message.mode)
        if message.arg:
            line += (message.arg,)
    elif isinstance(message, UserLeft):
        prefix, line = mask(message.nick), ("QUIT", message.reason or "Quit")
    elif isinstance(message, NickChanged):
        prefix, line = mask(message.old), ("NICK", message.new)
    elif isinstance(message, TopicChanged):
        prefix, line = mask(message.nick), ("TOPIC", message.room, message.topic)
    elif isinstance(message, AwayChanged):
        if "a" not in flags:
            return b""
        prefix = mask(message.nick)
        line = ("AWAY", message.reason) if message.reason else ("AWAY",)
    elif isinstance(message, Notice) and message.room:
        prefix, line = SERVER, ("NOTICE", message.room, message.text)
    elif isinstance(message, Goodbye):  # (the server shuts down: to every member at once)
        return format_line("ERROR", f"Closing link: {message.reason or 'goodbye'}", trailing=True)
    if line is None:
        return b""
    # A reason, a topic or a text goes after ":" (a MODE's nick does not).
    text = line[0] != "MODE" and (len(line) > 2 or line[0] in ("QUIT", "AWAY"))
    return format_line(*line, prefix=prefix, tags=tags or None, trailing=text)


def _command(message: ChatMessage | PrivateMessage) -> str:
    """The IRC command that carries a chat line."""
    return "NOTICE" if message.notice else "PRIVMSG"


def text_room(nick: str, command: str, target: str) -> int:
    """How many bytes of text ``command target :text`` from ``nick`` holds within 512 bytes,
    its sender's mask in front and CR LF included."""
    return MAX_LINE_BYTES - len(f":{mask(nick)} {command} {target} :\r\n".encode())


def said(
    nick: str,
    target: str,
    text: str,
    action: bool,
    tags: dict[str, str] | None = None,
    command: str = "PRIVMSG",
) -> bytes:
    """A PRIVMSG (or ``command``: a NOTICE) from ``nick``, split over as many lines as it
    takes to stay within 512 bytes (a framed client's line may be up to 1,000 characters;
    IRC daemons cut such lines, we split them)."""
    prefix = mask(nick)
    room = text_room(nick, command, target)
    if action:
        room -= len("\x01ACTION \x01")
    out = []
    for piece in split_utf8(text, max(16, room)):
        body = f"\x01ACTION {piece}\x01" if action else piece
        out.append(
            format_line(command, target, body, prefix=prefix, tags=tags or None, trailing=True)
        )
    return b"".join(out)


class Renderer:
    """Everything the chat sends one IRC member, as IRC lines (see the module doc).

    ``nick()`` is the member's nick now; ``caps`` its capabilities; ``dialect`` the string
    the state renders its broadcasts with."""

    def __init__(self, nick: Callable[[], str], caps: frozenset[str], server: str = SERVER) -> None:
        self._nick = nick
        self.server = server
        self.caps = caps
        self.dialect = dialect_for(caps)
        # client id -> (command, target, text, action)
        self._echo: dict[str, tuple[str, str, str, bool]] = {}
        self._echo_lock = threading.Lock()  # (acks are rendered by the committing thread)
        self._batch_refs = itertools.count(1)  # (next() on a count is atomic)

    def detach(self) -> None:
        """Forget the member's nick source (the session: see IrcSession.detach)."""
        self._nick = _no_nick

    # --- lines said, and their echo -----------------------------------------------------

    def expect_ack(
        self, client_id: str, command: str, target: str, text: str, action: bool
    ) -> None:
        """A line of ours goes to the chat under ``client_id``: with ``echo-message`` its ack
        comes back as the line itself (``command``: PRIVMSG or NOTICE, as it was sent)."""
        if "echo-message" in self.caps:
            with self._echo_lock:
                self._echo[client_id] = (command, target, text, action)

    def forget_ack(self, client_id: str) -> None:
        with self._echo_lock:
            self._echo.pop(client_id, None)

    # --- numerics -----------------------------------------------------------------------

    def numeric(self, code: str, *params: str) -> bytes:
        return format_line(code, self._nick() or "*", *params, prefix=self.server, trailing=True)

    def fail(self, command: str, code: str, *context: str) -> bytes:
        """An IRCv3 standard reply: ``FAIL <command> <code> [<context>...] :<description>``
        (the description is the last of ``context``)."""
        return format_line("FAIL", command, code, *context, prefix=self.server, trailing=True)

    def batch(
        self, kind: str, params: tuple[str, ...], lines: Iterable[Callable[[dict[str, str]], bytes]]
    ) -> bytes:
        """IRCv3 ``batch``: ``lines`` (each made from the tags it must carry) between ``BATCH
        +ref kind params`` and ``BATCH -ref``; without the capability, the lines alone."""
        if "batch" not in self.caps:
            return b"".join(make({}) for make in lines)
        ref = f"b{next(self._batch_refs)}"
        head = format_line("BATCH", f"+{ref}", kind, *params, prefix=self.server)
        body = [make({"batch": ref}) for make in lines]
        return head + b"".join(body) + format_line("BATCH", f"-{ref}", prefix=self.server)

    def history(self, target: str, lines: Iterable[ChatMessage]) -> bytes:
        """A ``chathistory`` batch of lines from a room's history (CHATHISTORY), each with
        its ``time`` and ``msgid`` as the member's capabilities allow."""

        def line(m: ChatMessage) -> Callable[[dict[str, str]], bytes]:
            def make(tags: dict[str, str]) -> bytes:
                if "server-time" in self.caps:
                    tags["time"] = server_time(m.ts)
                if "message-tags" in self.caps:
                    tags["msgid"] = str(m.id)
                return said(m.nick, m.room, m.text, m.action, tags, _command(m))

            return make

        return self.batch("chathistory", (target,), [line(m) for m in lines])

    def notice(self, text: str) -> bytes:
        return format_line("NOTICE", self._nick() or "*", text, prefix=self.server, trailing=True)

    def topic(self, view: RoomJoined) -> bytes:
        """RPL_TOPIC, and RPL_TOPICWHOTIME when the setter is known, of a room (b"": it has
        no topic)."""
        if not view.topic:
            return b""
        out = self.numeric("332", view.room, view.topic)
        if view.topic_by and view.topic_ts is not None:
            out += self.numeric("333", view.room, view.topic_by, str(int(view.topic_ts)))
        return out

    def prefixes(self, member: dict[str, Any]) -> str:
        """A member's channel prefixes: ``@`` (room or server operator), ``+`` (voice); only
        the highest without ``multi-prefix``."""
        shown = ("@" if member.get("op") or member.get("oper") else "") + (
            "+" if member.get("voice") else ""
        )
        return shown if "multi-prefix" in self.caps else shown[:1]

    def names(self, room: str, members: Iterable[dict[str, Any]], secret: bool = False) -> bytes:
        """RPL_NAMREPLY lines (as many as 512 bytes take) and RPL_ENDOFNAMES; ``secret``
        rooms (+s) are marked ``@`` instead of ``=``."""
        kind = "@" if secret else "="
        full = "userhost-in-names" in self.caps
        shown = [self.prefixes(m) + (mask(m["nick"]) if full else str(m["nick"])) for m in members]
        head = len(f":{self.server} 353 {self._nick()} = {room} :\r\n".encode())
        out, batch, size = [], [], head
        for name in shown:
            if batch and size + len(name.encode()) + 1 > MAX_LINE_BYTES:
                out.append(self.numeric("353", kind, room, " ".join(batch)))
                batch, size = [], head
            batch.append(name)
            size += len(name.encode()) + 1
        if batch:
            out.append(self.numeric("353", kind, room, " ".join(batch)))
        out.append(self.numeric("366", room, "End of /NAMES list"))
        return b"".join(out)

    # --- everything --------------------------------------------------------------------

    def render(self, message: ServerMessage) -> bytes:
        """The bytes of ``message`` for this member (b"": not shown)."""
        me = self._nick()
        if isinstance(message, Ack):
            with self._echo_lock:
                echo = self._echo.pop(str(message.id), None)
            if echo is None:
                return b""
            tags = {"time": server_time(message.ts)} if "server-time" in self.caps else {}
            if "message-tags" in self.caps:
                tags["msgid"] = str(message.msg_id)
            command, target, text, action = echo
            return said(me, target, text, action, tags, command)
        if isinstance(message, RoomJoined):
            out = [format_line("JOIN", message.room, prefix=mask(me)), self.topic(message)]
            out.append(self.names(message.room, message.members, secret=message.secret))
            return b"".join(out)
        if isinstance(message, RoomList):
            out = [self.numeric("321", "Channel", "Users Name")]
            for room in message.rooms:
                if not room["members"]:
                    continue  # an IRC channel with nobody in it does not exist
                out.append(self.numeric("322", room["room"], str(room["members"]), room["topic"]))
            out.append(self.numeric("323", "End of /LIST"))
            return b"".join(out)
        if isinstance(message, WhoReply):
            target = message.room or "*"
            out = []
            for m in message.members:
                flags = ("G" if m.get("away") else "H") + ("*" if m.get("oper") else "")
                if message.room and (m.get("op") or m.get("oper")):
                    flags += "@"
                channel = message.room or "*"
                nick = m["nick"]
                line = self.numeric(
                    "352", channel, USER, HOST, self.server, nick, flags, f"0 {nick}"
                )
                out.append(line)
            out.append(self.numeric("315", target, "End of /WHO list"))
            return b"".join(out)
        if isinstance(message, AwayChanged) and message.nick == me:
            if message.reason:
                return self.numeric("306", "You have been marked as being away")
            return self.numeric("305", "You are no longer marked as being away")
        if isinstance(message, Notice) and not message.room:
            return self.notice(message.text)
        if isinstance(message, Ping):
            return format_line("PING", str(message.token), prefix=self.server)
        if isinstance(message, Pong):
            return format_line(
                "PONG", self.server, str(message.token), prefix=self.server, trailing=True
            )
        if isinstance(message, ErrorReply):
            if message.fatal:
                return format_line("ERROR", f"Closing link: {message.message}", trailing=True)
            return self.notice(f"{message.code}: {message.message}")
        if isinstance(message, UserList):
            return self.notice("Users: " + ", ".join(message.users))
        return broadcast(message, self.dialect)
