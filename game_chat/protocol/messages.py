"""Typed messages of the rich dialect: frozen dataclasses and their JSON form.

Every rich payload is a UTF-8 JSON object whose ``type`` names the message; the other keys are
the dataclass fields with the same names. :func:`encode_message` turns a message into payload
bytes; :func:`parse_client_message` and :func:`parse_server_message` turn payload bytes back
into messages, raising :class:`RemoteProtocolError` for anything malformed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .text import decode_utf8

PROTOCOL_VERSION = 1

#: A client-chosen message id: echoed back in the ack, never interpreted.
ClientId = str | int | None


# --- client to server -----------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """First frame of a rich client: who it wants to be."""

    TYPE: ClassVar[str] = "hello"
    nick: str
    version: int = PROTOCOL_VERSION
    password: str | None = None
    #: The ``session`` of an earlier welcome: takes that member over from a connection that
    #: has not noticed it is dead (its nick, rooms and state stay as they were).
    session: str | None = None
    #: The ``store`` of that earlier welcome: the ids in ``resume`` are from that store.
    store: str | None = None
    #: Room -> the last message id the client has of it (None: nothing yet). The member is
    #: put in these rooms (instead of the lobby) and gets every line after that id.
    resume: dict[str, Any] | None = None


@dataclass(frozen=True)
class SendChat:
    """A chat line from a client; ``id`` is the client's own and comes back in the ack."""

    TYPE: ClassVar[str] = "chat"
    text: str
    id: ClientId = None
    #: True when the client sends this line again because the connection dropped before the
    #: ack; the server then delivers it only if it has not already (same nick, id and text).
    retry: bool = False
    #: The room it goes to (None: the sender's current room, the one it joined last).
    room: str | None = None
    #: An action ("/me waves"): shown as "* nick waves".
    action: bool = False


@dataclass(frozen=True)
class SendPrivate:
    """A private message to one user; acknowledged like a chat line."""

    TYPE: ClassVar[str] = "msg"
    to: str
    text: str
    id: ClientId = None
    retry: bool = False
    action: bool = False


@dataclass(frozen=True)
class JoinRoom:
    """Join a room (created on first join); the answer is a RoomJoined, then its history."""

    TYPE: ClassVar[str] = "join"
    room: str


@dataclass(frozen=True)
class PartRoom:
    TYPE: ClassVar[str] = "part"
    room: str
    reason: str = ""


@dataclass(frozen=True)
class ListRooms:
    TYPE: ClassVar[str] = "rooms"


@dataclass(frozen=True)
class SetTopic:
    TYPE: ClassVar[str] = "topic"
    room: str
    topic: str


@dataclass(frozen=True)
class Who:
    """Who is in ``room`` (None: everyone on the server), with away and operator marks."""

    TYPE: ClassVar[str] = "who"
    room: str | None = None


@dataclass(frozen=True)
class SetAway:
    """Mark yourself away with a reason; an empty reason means you are back."""

    TYPE: ClassVar[str] = "away"
    reason: str = ""


@dataclass(frozen=True)
class FetchHistory:
    """Older messages of a room: up to ``limit`` with ids below ``before`` (None: the newest)."""

    TYPE: ClassVar[str] = "history"
    room: str
    before: int | None = None
    limit: int = 100
    #: Only lines with ids above this one, the oldest of them first (for filling a gap).
    after: int | None = None


@dataclass(frozen=True)
class Oper:
    """Become an operator with the server's operator password."""

    TYPE: ClassVar[str] = "oper"
    password: str


@dataclass(frozen=True)
class Kick:
    TYPE: ClassVar[str] = "kick"
    nick: str
    reason: str = ""


@dataclass(frozen=True)
class Ban:
    """Ban a nick (and the address it is connected from) or an address; ``minutes`` None: for
    good."""

    TYPE: ClassVar[str] = "ban"
    target: str
    minutes: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Unban:
    TYPE: ClassVar[str] = "unban"
    target: str


@dataclass(frozen=True)
class Mute:
    TYPE: ClassVar[str] = "mute"
    nick: str
    minutes: float | None = None


@dataclass(frozen=True)
class Unmute:
    TYPE: ClassVar[str] = "unmute"
    nick: str


@dataclass(frozen=True)
class Help:
    TYPE: ClassVar[str] = "help"


@dataclass(frozen=True)
class SetMemberData:
    """Set your own small key-value pairs in a room (ready, team, character...), as Steam
    lobbies have: merged into what you set before; a null value removes the key. Everyone in
    the room gets a MemberData with the result."""

    TYPE: ClassVar[str] = "set_data"
    room: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ChangeNick:
    """Ask to be known under another nickname."""

    TYPE: ClassVar[str] = "nick"
    nick: str


@dataclass(frozen=True)
class Ping:
    """Keepalive request, either direction; answered by a Pong with the same token."""

    TYPE: ClassVar[str] = "ping"
    token: ClientId = None


@dataclass(frozen=True)
class Pong:
    TYPE: ClassVar[str] = "pong"
    token: ClientId = None


@dataclass(frozen=True)
class Goodbye:
    """Clean end of a session, either direction (the server sends it when shutting down)."""

    TYPE: ClassVar[str] = "bye"
    reason: str = ""


@dataclass(frozen=True)
class ListUsers:
    """Ask for the user list; answered by :class:`UserList`."""

    TYPE: ClassVar[str] = "users"


# --- server to client -----------------------------------------------------------------------


@dataclass(frozen=True)
class Welcome:
    """Answer to a good hello: the nick granted, the server, its limits and who is here
    (``users``: everyone on the server). The lobby's RoomJoined follows."""

    TYPE: ClassVar[str] = "welcome"
    nick: str
    server: str
    version: int
    limits: dict[str, int]
    users: tuple[str, ...]
    #: A secret that lets the next connection take this member over (hello ``session``).
    session: str = ""
    #: Names the history store: message ids compare only between welcomes with one store.
    store: str = ""


@dataclass(frozen=True)
class ChatMessage:
    """A chat line as the server delivers it: stamped with sender, server id and time.

    ``history`` marks lines replayed from the room's history (on join or by FetchHistory).
    """

    TYPE: ClassVar[str] = "chat"
    id: int
    nick: str
    text: str
    ts: float
    room: str = "#lobby"
    action: bool = False
    history: bool = False


@dataclass(frozen=True)
class PrivateMessage:
    """A private message; the recipient gets it, the sender gets an Ack."""

    TYPE: ClassVar[str] = "msg"
    id: int
    nick: str
    to: str
    text: str
    ts: float
    action: bool = False
    history: bool = False


@dataclass(frozen=True)
class RoomJoined:
    """You are in ``room`` now: its topic and members (dicts: nick, away, oper, muted)."""

    TYPE: ClassVar[str] = "joined"
    room: str
    topic: str
    members: tuple[dict[str, Any], ...]
    #: After a resume: ``{"after": A, "before": B}`` when the lines with A < id < B were too
    #: many to replay (fetch them with a history request); left out otherwise.
    gap: dict[str, int] | None = None


@dataclass(frozen=True)
class UserParted:
    """Someone (maybe you) left a room but not the server."""

    TYPE: ClassVar[str] = "part"
    room: str
    nick: str
    reason: str
    ts: float


@dataclass(frozen=True)
class RoomList:
    """Every room: dicts with room, members (a count) and topic."""

    TYPE: ClassVar[str] = "rooms"
    rooms: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class TopicChanged:
    TYPE: ClassVar[str] = "topic"
    room: str
    topic: str
    nick: str
    ts: float


@dataclass(frozen=True)
class WhoReply:
    """Members of ``room`` (None: the whole server), as dicts: nick, away, oper, muted."""

    TYPE: ClassVar[str] = "who"
    room: str | None
    members: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class AwayChanged:
    """``nick`` went away (``reason``) or came back (``reason`` empty)."""

    TYPE: ClassVar[str] = "away"
    nick: str
    reason: str
    ts: float


@dataclass(frozen=True)
class HistoryPage:
    """Older lines of a room, oldest first (ChatMessage dicts); ``more`` if older ones exist."""

    TYPE: ClassVar[str] = "history"
    room: str
    messages: tuple[dict[str, Any], ...]
    more: bool
    #: The request's ``after``, echoed (left out when it had none).
    after: int | None = None


@dataclass(frozen=True)
class MemberData:
    """``nick``'s key-value pairs in ``room`` now (all of them, after a change)."""

    TYPE: ClassVar[str] = "data"
    room: str
    nick: str
    data: dict[str, Any]
    ts: float


@dataclass(frozen=True)
class Notice:
    """Something the server says in words: operator actions, help, replies to commands."""

    TYPE: ClassVar[str] = "notice"
    text: str
    room: str | None = None


@dataclass(frozen=True)
class Ack:
    """The sender's receipt for its chat line ``id`` (the rich form of "Message was Sent!")."""

    TYPE: ClassVar[str] = "ack"
    id: ClientId
    msg_id: int
    ts: float
    #: The line was delivered but could not be stored (the history store is failing): it
    #: may be missing from the history after a restart.
    unsaved: bool = False


@dataclass(frozen=True)
class UserJoined:
    TYPE: ClassVar[str] = "join"
    nick: str
    ts: float
    room: str = "#lobby"


@dataclass(frozen=True)
class UserLeft:
    """Someone left the server (sent to those who share a room with them)."""

    TYPE: ClassVar[str] = "leave"
    nick: str
    reason: str
    ts: float


@dataclass(frozen=True)
class NickChanged:
    TYPE: ClassVar[str] = "nick_changed"
    old: str
    new: str
    ts: float


@dataclass(frozen=True)
class UserList:
    TYPE: ClassVar[str] = "users"
    users: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ErrorReply:
    """Something the peer did was refused; ``fatal`` means the server closes the connection."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    fatal: bool = False
    #: The client id of the chat message that was refused, when the error is about one.
    id: ClientId = None

    @classmethod
    def from_exception(cls, exc: RemoteProtocolError, client_id: ClientId = None) -> ErrorReply:
        return cls(exc.code, exc.message, exc.fatal, client_id)


_CLIENT_CLASSES = (
    Hello, SendChat, SendPrivate, ChangeNick, Ping, Pong, Goodbye, ListUsers, JoinRoom,
    PartRoom, ListRooms, SetTopic, Who, SetAway, FetchHistory, Oper, Kick, Ban, Unban, Mute,
    Unmute, Help, SetMemberData,
)  # fmt: skip
_SERVER_CLASSES = (
    Welcome, ChatMessage, PrivateMessage, Ack, UserJoined, UserLeft, UserParted, RoomJoined,
    RoomList, TopicChanged, WhoReply, AwayChanged, HistoryPage, Notice, NickChanged, UserList,
    Ping, Pong, Goodbye, ErrorReply, MemberData,
)  # fmt: skip

ClientMessage = (
    Hello | SendChat | SendPrivate | ChangeNick | Ping | Pong | Goodbye | ListUsers | JoinRoom
    | PartRoom | ListRooms | SetTopic | Who | SetAway | FetchHistory | Oper | Kick | Ban | Unban
    | Mute | Unmute | Help | SetMemberData
)  # fmt: skip
ServerMessage = (
    Welcome | ChatMessage | PrivateMessage | Ack | UserJoined | UserLeft | UserParted
    | RoomJoined | RoomList | TopicChanged | WhoReply | AwayChanged | HistoryPage | Notice
    | NickChanged | UserList | Ping | Pong | Goodbye | ErrorReply | MemberData
)  # fmt: skip

CLIENT_TYPES: dict[str, type] = {cls.TYPE: cls for cls in _CLIENT_CLASSES}
SERVER_TYPES: dict[str, type] = {cls.TYPE: cls for cls in _SERVER_CLASSES}

# Field name -> accepted JSON types. An int is accepted where a float is expected.
_ID_TYPES = (str, int, type(None))
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "nick": (str,),
    "text": (str,),
    "password": (str, type(None)),
    "version": (int,),
    "id": _ID_TYPES,
    "token": _ID_TYPES,
    "reason": (str,),
    "server": (str,),
    "limits": (dict,),
    "users": (list, tuple),
    "msg_id": (int,),
    "ts": (float, int),
    "old": (str,),
    "new": (str,),
    "code": (str,),
    "message": (str,),
    "fatal": (bool,),
    "retry": (bool,),
    "room": (str, type(None)),
    "action": (bool,),
    "history": (bool,),
    "to": (str,),
    "topic": (str,),
    "members": (list, tuple),
    "rooms": (list, tuple),
    "messages": (list, tuple),
    "more": (bool,),
    "target": (str,),
    "minutes": (int, float, type(None)),
    "before": (int, type(None)),
    "limit": (int,),
    "data": (dict,),
    "session": (str, type(None)),
    "store": (str, type(None)),
    "resume": (dict, type(None)),
    "after": (int, type(None)),
    "gap": (dict, type(None)),
    "unsaved": (bool,),
}
#: Flags written only when true (a reader takes their absence as false).
_OMITTED_WHEN_FALSE = frozenset({"retry", "action", "history", "unsaved"})
#: Optional fields written only when they hold something.
_OMITTED_WHEN_NONE = frozenset({"after", "gap", "session", "store", "resume"})
#: Fields that hold lists: made tuples (of str for "users", of objects for the others).
_LIST_FIELDS = frozenset({"users", "members", "rooms", "messages"})
_MAX_ID_CHARS = 64


def message_dict(message: Any) -> dict[str, Any]:
    """The JSON object of a message dataclass (``type`` first; false flags left out)."""
    if not dataclasses.is_dataclass(message) or not hasattr(message, "TYPE"):
        raise LocalProtocolError(f"not a protocol message: {message!r}")
    data: dict[str, Any] = {"type": message.TYPE}
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        if f.name in _OMITTED_WHEN_FALSE and value is False:
            continue  # rare flags stay off the wire unless set: every chat frame is smaller
        if f.name in _OMITTED_WHEN_NONE and value is None:
            continue
        data[f.name] = value
    return data


def encode_message(message: Any) -> bytes:
    """Return the JSON payload (UTF-8 bytes) of a message dataclass."""
    return encode_json(message_dict(message))


def encode_json(data: Any) -> bytes:
    """Compact JSON as the server writes it (non-ASCII characters unescaped), UTF-8."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def decode_json_object(payload: bytes) -> dict[str, Any]:
    """Parse a payload as a JSON object, or raise RemoteProtocolError."""
    text = decode_utf8(payload)
    try:
        data = json.loads(text)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.BAD_JSON, "payload is not valid JSON") from None
    if not isinstance(data, dict):
        raise RemoteProtocolError(ErrorCode.BAD_JSON, "payload must be a JSON object")
    return data


def _build(data: dict[str, Any], types: dict[str, type]) -> Any:
    kind = data.get("type")
    cls = types.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"unknown message type {kind!r}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RemoteProtocolError(
                    ErrorCode.BAD_MESSAGE, f"{kind!r} message lacks the field {f.name!r}"
                )
            continue
        value = data[f.name]
        accepted = _FIELD_TYPES[f.name]
        # bool is an int in Python: only the bool fields ("fatal", "retry") may be a bool.
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            raise RemoteProtocolError(
                ErrorCode.BAD_MESSAGE, f"field {f.name!r} of {kind!r} has the wrong type"
            )
        if f.name in ("id", "token") and isinstance(value, str) and len(value) > _MAX_ID_CHARS:
            raise RemoteProtocolError(
                ErrorCode.BAD_MESSAGE, f"{f.name!r} is longer than {_MAX_ID_CHARS} characters"
            )
        if f.name == "users":
            value = tuple(str(u) for u in value)
        elif f.name in _LIST_FIELDS:
            value = tuple(value)
        _require_encodable(value, kind, f.name)
        kwargs[f.name] = value
    return cls(**kwargs)


def _require_encodable(value: Any, kind: object, name: str) -> None:
    """JSON may carry lone surrogates ("\\ud800") that no UTF-8 encoder accepts: refuse them."""
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise RemoteProtocolError(
                    ErrorCode.BAD_MESSAGE, f"field {name!r} of {kind!r} is not valid Unicode"
                ) from None


def parse_client_message(payload: bytes) -> ClientMessage:
    """Parse a rich payload sent by a client; raises RemoteProtocolError if malformed."""
    return _build(decode_json_object(payload), CLIENT_TYPES)


def parse_server_message(payload: bytes) -> ServerMessage:
    """Parse a rich payload sent by a server; raises RemoteProtocolError if malformed."""
    return _build(decode_json_object(payload), SERVER_TYPES)


def page_messages(page: HistoryPage) -> list[ChatMessage]:
    """The well-formed chat lines of a history page (a server is not trusted blindly); their
    room is the page's unless they name one."""
    out = []
    for item in page.messages:
        if not isinstance(item, dict):
            continue
        try:
            message = _build({"room": page.room, **item, "type": ChatMessage.TYPE}, SERVER_TYPES)
        except (RemoteProtocolError, TypeError, ValueError):
            continue
        if isinstance(message, ChatMessage):
            out.append(message)
    return out


def is_hello(payload: bytes) -> bool:
    """True if a first frame asks for the rich dialect (a JSON object of type "hello")."""
    if not payload.lstrip().startswith(b"{"):
        return False
    try:
        return decode_json_object(payload).get("type") == Hello.TYPE
    except RemoteProtocolError:
        return False
