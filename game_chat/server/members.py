"""The values the chat state is made of: members, rooms, dialects and how a message becomes a
frame for one of them. No locks here; :class:`~game_chat.server.state.ChatState` owns them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..irc.render import broadcast as irc_broadcast
from ..irc.render import is_irc
from ..protocol.commands import LOBBY
from ..protocol.errors import ErrorCode, RemoteProtocolError
from ..protocol.framing import SELECT_HEADER_SIZE, encode_frame
from ..protocol.messages import ServerMessage, TopicChanged, encode_message
from ..protocol.names import nick_key, validate_nick
from ..protocol.plain import render_plain, render_select
from .stream import RoomStream, Variant

MAX_ROOM_CHARS = 32
MAX_TOPIC_CHARS = 300


class Mailbox(Protocol):
    """Where a member's outgoing frames go; nothing here blocks (server/outbox.py)."""

    def put(self, frame: bytes) -> None: ...

    def put_held(self, frame: bytes) -> bool:
        """put, waking nobody; True: the caller must call write_through."""
        ...

    def write_through(self) -> None: ...

    def follow(self, wanted: dict[RoomStream, Variant]) -> None:
        """Take room lines from exactly these streams from now on (server/stream.py)."""
        ...

    def peer_closed(self) -> bool:
        """The peer has closed its side of the connection (the reader may not know yet)."""
        ...


class Dialect:
    RICH = "rich"
    PLAIN = "plain"
    #: The select-chatroom tutorial's clients: 10-byte headers, username + message frames.
    SELECT = "select"
    #: IRC clients (--irc-port): "irc" and a letter per capability (irc/render.py).
    IRC = "irc"


def encode_for(message: ServerMessage, dialect: str, current_room: str | None = None) -> bytes:
    """The bytes (headers included) that carry ``message`` in ``dialect``; b"" for an event
    the dialect does not show (member data, pings to plain clients, acks in the select
    dialect)."""
    if dialect == Dialect.RICH:
        return encode_frame(encode_message(message))
    if dialect == Dialect.SELECT:
        return b"".join(
            encode_frame(name.encode(), SELECT_HEADER_SIZE)
            + encode_frame(text.encode("utf-8"), SELECT_HEADER_SIZE)
            for name, text in render_select(message, current_room)
        )
    if is_irc(dialect):
        return irc_broadcast(message, dialect)
    line = render_plain(message, current_room)
    return b"" if line is None else encode_frame(line.encode("utf-8"))


def encode_variant(message: ServerMessage, variant: Variant, room: str) -> bytes:
    """``message`` (of ``room``) as members who see the room as ``variant`` get it."""
    dialect, here = variant
    return encode_for(message, dialect, room if here else "")


def validate_room(name: str) -> str:
    """``#name`` with 1-32 characters after the #, nickname rules; RemoteProtocolError if not."""
    if not name.startswith("#"):
        raise RemoteProtocolError(ErrorCode.BAD_ROOM, "room names start with #, e.g. #team")
    try:
        return "#" + validate_nick(name[1:], MAX_ROOM_CHARS)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(
            ErrorCode.BAD_ROOM, exc.message.replace("nickname", "room name")
        ) from None


@dataclass(eq=False)
class Room:
    name: str
    topic: str = ""
    #: Who set the topic and when (Unix time); "" and 0.0: not known (or no topic).
    topic_by: str = ""
    topic_ts: float = 0.0
    members: dict[str, Member] = field(default_factory=dict)  # nick key -> member, join order
    #: Nick keys of the room's operators: whoever made it (joined it empty), and whoever an
    #: operator of it made one. Not the lobby's (the server's operators run it). Server
    #: operators may act in every room without being listed here.
    ops: set[str] = field(default_factory=set)
    #: Room modes (PROTOCOL.md 4.6): "m" moderated, "n" no lines from outside (on by
    #: default), "s" secret, "t" only room operators set the topic.
    modes: set[str] = field(default_factory=lambda: {"n"})
    #: Nick keys of the members a room operator gave a voice (they talk in a moderated room).
    voiced: set[str] = field(default_factory=set)
    #: Ban masks (``nick!user@host``, ``*`` and ``?``, case-insensitive) -> (who set it, when).
    bans: dict[str, tuple[str, float]] = field(default_factory=dict)
    created: float = 0.0  # Unix time
    #: The room's lines, taken by its members' mailboxes (server/stream.py).
    stream: RoomStream = field(init=False)

    def __post_init__(self) -> None:
        self.stream = RoomStream(self.name, encode_variant)

    def set_topic(self, changed: TopicChanged) -> None:
        """The topic, and who set it when, as ``changed`` says (here or on another node)."""
        self.topic, self.topic_by, self.topic_ts = changed.topic, changed.nick, changed.ts


@dataclass(eq=False)
class Member:
    """A registered user. Identity is the object itself: a connection that takes the member
    over (hello ``session``) gets a new object, the old one's ``successor``."""

    nick: str
    dialect: str
    mailbox: Mailbox
    address: str = ""
    rooms: dict[str, Room] = field(default_factory=dict)  # room key -> room, join order
    current_room: str = LOBBY  # where a plain client's lines go
    away: str = ""
    oper: bool = False
    muted_until: float | None = None  # Unix time; math.inf until unmuted
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # room key -> member data
    #: Digest of the session token of the last welcome (b"": none, e.g. a plain member).
    session_key: bytes = b""
    #: Ends this member's connection (set by the session); called outside the state lock.
    disconnect: Callable[[str], None] = lambda reason: None
    #: The member that took this one over (hello ``session``), if one did.
    successor: Member | None = None
    #: Renders every message for this member itself (IRC members: numerics name the nick,
    #: acks become echoes); None: ``encode_for`` its dialect. Broadcasts bypass it.
    render: Callable[[ServerMessage], bytes] | None = None
    #: IRC members: (user, real name) as their USER gave them (WHO, WHOIS).
    ident: tuple[str, str] | None = None

    @property
    def current(self) -> Member:
        """This member, or whoever took it over last: where its answers go now."""
        member = self
        while member.successor is not None:
            member = member.successor
        return member

    def encode(self, message: ServerMessage) -> bytes:
        """The bytes of ``message`` for this member (b"": its dialect does not show it)."""
        if self.render is not None:
            return self.render(message)
        return encode_for(message, self.dialect, self.current_room)

    def send(self, message: ServerMessage) -> None:
        frame = self.encode(message)
        if frame:
            self.mailbox.put(frame)

    def info(self, now: float, room: Room | None = None) -> dict[str, Any]:
        muted = self.muted_until is not None and self.muted_until > now
        info = {"nick": self.nick, "away": self.away, "oper": self.oper, "muted": muted}
        if room is not None and nick_key(self.nick) in room.ops:
            info["op"] = True  # only room operators carry it: most frames stay as they were
        if room is not None and nick_key(self.nick) in room.voiced:
            info["voice"] = True  # (likewise)
        data = self.data.get(nick_key(room.name)) if room is not None else None
        if data:  # only members who set some carry it: most frames stay as they were
            info["data"] = data
        return info


@dataclass(frozen=True)
class Access:
    """Who may connect and who may become an operator."""

    password: str | None = None  # server password (plain or hash)
    oper_password: str | None = None  # operator password (plain or hash)
