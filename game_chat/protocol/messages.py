"""Typed messages of the rich dialect: frozen dataclasses and their JSON form.

Every rich payload is a UTF-8 JSON object whose ``type`` names the message; the other keys are
the dataclass fields with the same names. :func:`encode_message` turns a message into payload
bytes; :func:`parse_client_message` and :func:`parse_server_message` turn payload bytes back
into messages, raising :class:`RemoteProtocolError` for anything malformed, and nothing else,
whatever the bytes.

Decoding checks the whole payload before it looks at any field:

- nesting: at most :data:`MAX_JSON_DEPTH` (16) levels of arrays and objects, the payload's
  own object being the first; deeper is ``bad_json`` ("nested too deeply"), however deep;
- numbers: ``NaN``, ``Infinity``, ``-Infinity`` and numbers beyond a double (``1e400``),
  which Python's json would take, are ``bad_json``;
- integers: every integer anywhere in the payload (unknown keys included) must lie within
  -(2**63-1) .. 2**63-1 (:data:`MAX_JSON_INT`), otherwise ``bad_message``.

Then each field is checked against its own class's annotation (no table by field name):
``str``, ``int`` (``true`` is no integer, ``1.0`` neither), ``float`` (a number: an integer
will do, a boolean not), ``bool``, ``X | None``, :data:`ClientId` (a string of at most 64
characters, an integer or null), ``dict[str, X]`` (a JSON object; with ``Any`` its contents
are checked by whoever uses it) and ``tuple[X, ...]`` (a JSON array, held as a tuple). A
string with a lone surrogate (``"\ud800"``) anywhere in a field, object keys included, is
refused; unknown keys are ignored whatever they hold. Every field of every message class has
such a shape, or this module does not import.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .records import quick_init
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
class SetRoomMode:
    """A room operator changes one of the room's modes (PROTOCOL.md 4.6): ``mode`` is a sign
    and a letter (``+m``); ``arg`` is the nick of ``o``/``v`` or the mask of ``b``."""

    TYPE: ClassVar[str] = "room_mode"
    room: str
    mode: str
    arg: str | None = None


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


@quick_init
@dataclass(frozen=True)
class ChatMessage:
    """A chat line as the server delivers it: stamped with sender, server id and time.

    ``history`` marks lines replayed from the room's history (on join or by FetchHistory).
    ``pending`` (a cluster node whose store is unreachable): the line is shown to the members
    of its server before it is stored, with id 0; ``origin`` names it until a LineSettled (or
    the same line, stored, with the same ``origin``) gives its id. See PROTOCOL.md 4.2.
    """

    TYPE: ClassVar[str] = "chat"
    id: int
    nick: str
    text: str
    ts: float
    room: str = "#lobby"
    action: bool = False
    history: bool = False
    pending: bool = False
    origin: str | None = None
    #: A notice (IRC's NOTICE): a line not to be answered automatically (bots never reply
    #: to one); shown like any line. Left out when false.
    notice: bool = False


@quick_init
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
    notice: bool = False  # as ChatMessage's


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
    #: Who set the topic and when (Unix time); left out when there is no topic, or its
    #: setter is not known here (a topic set on another node of a cluster before this
    #: node made the room).
    topic_by: str | None = None
    topic_ts: float | None = None
    #: The room is secret (+s, PROTOCOL.md 4.6: hidden from those outside); left out if not.
    secret: bool = False


@dataclass(frozen=True)
class UserParted:
    """Someone (maybe you) left a room but not the server; ``by``: the room operator who
    removed them (a kick from the room), None when they left."""

    TYPE: ClassVar[str] = "part"
    room: str
    nick: str
    reason: str
    ts: float
    by: str | None = None


@dataclass(frozen=True)
class RoomOpChanged:
    """``by`` made ``nick`` an operator of ``room`` (``op``), or took it away."""

    TYPE: ClassVar[str] = "room_op"
    room: str
    nick: str
    op: bool
    by: str
    ts: float


@dataclass(frozen=True)
class RoomModeChanged:
    """``by`` changed a mode of ``room``: ``mode`` is a sign and a letter (``+m``, ``-t``,
    ``+b``, ``+v``); ``arg`` the mask (``b``) or nick (``v``) it applies to."""

    TYPE: ClassVar[str] = "room_mode"
    room: str
    mode: str
    by: str
    ts: float
    arg: str | None = None


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


@quick_init
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
class LineSettled:
    """A line shown ``pending`` (see ChatMessage) is stored now under ``id``; id 0: it could
    not be stored and is in no history (show it as not sent)."""

    TYPE: ClassVar[str] = "settled"
    room: str
    origin: str
    id: int


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
    Unmute, Help, SetMemberData, SetRoomMode,
)  # fmt: skip
_SERVER_CLASSES = (
    Welcome, ChatMessage, PrivateMessage, Ack, UserJoined, UserLeft, UserParted, RoomJoined,
    RoomList, TopicChanged, WhoReply, AwayChanged, HistoryPage, Notice, NickChanged, UserList,
    Ping, Pong, Goodbye, ErrorReply, MemberData, LineSettled, RoomOpChanged, RoomModeChanged,
)  # fmt: skip

ClientMessage = (
    Hello | SendChat | SendPrivate | ChangeNick | Ping | Pong | Goodbye | ListUsers | JoinRoom
    | PartRoom | ListRooms | SetTopic | Who | SetAway | FetchHistory | Oper | Kick | Ban | Unban
    | Mute | Unmute | Help | SetMemberData | SetRoomMode
)  # fmt: skip
ServerMessage = (
    Welcome | ChatMessage | PrivateMessage | Ack | UserJoined | UserLeft | UserParted
    | RoomJoined | RoomList | TopicChanged | WhoReply | AwayChanged | HistoryPage | Notice
    | NickChanged | UserList | Ping | Pong | Goodbye | ErrorReply | MemberData | LineSettled
    | RoomOpChanged | RoomModeChanged
)  # fmt: skip

CLIENT_TYPES: dict[str, type] = {cls.TYPE: cls for cls in _CLIENT_CLASSES}
SERVER_TYPES: dict[str, type] = {cls.TYPE: cls for cls in _SERVER_CLASSES}

#: Flags written only when true (a reader takes their absence as false).
_OMITTED_WHEN_FALSE = frozenset(
    {"retry", "action", "history", "unsaved", "pending", "secret", "notice"}
)
#: Optional fields written only when they hold something.
_OMITTED_WHEN_NONE = frozenset(
    {"after", "gap", "session", "store", "resume", "origin", "by", "arg", "topic_by", "topic_ts"}
)
#: Longest string a client id (``id``, ``token``: any field of type ClientId) may be.
MAX_ID_CHARS = 64


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


# --- decoding: JSON as this protocol knows it ----------------------------------------------

#: How deeply arrays and objects may nest in a payload. The payload's own object is level 1,
#: so ``{"a":[{}]}`` has 3 levels; no message needs more than 4.
MAX_JSON_DEPTH = 16
#: Every integer anywhere in a payload lies within -MAX_JSON_INT..MAX_JSON_INT (signed 64 bits,
#: SQLite's integers).
MAX_JSON_INT = 2**63 - 1
_INT_DIGITS = len(str(MAX_JSON_INT))  # 19: a longer JSON integer is out of range anyway
_OUT_OF_RANGE = MAX_JSON_INT + 1


class _NotFinite(ValueError):
    """NaN, Infinity or a number beyond a double: Python's json takes them, JSON does not."""


def _parse_int(digits: str) -> int:
    # int() of thousands of digits is slow (and refused past 4300): their value is not needed.
    if len(digits) - digits.startswith("-") > _INT_DIGITS:
        return _OUT_OF_RANGE
    return int(digits)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise _NotFinite(text)
    return value


def _parse_constant(name: str) -> float:
    raise _NotFinite(name)  # NaN, Infinity, -Infinity


_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
)


def _too_deep() -> RemoteProtocolError:
    return RemoteProtocolError(
        ErrorCode.BAD_JSON, f"payload is nested too deeply (more than {MAX_JSON_DEPTH} levels)"
    )


def _load(payload: bytes) -> tuple[Any, bool]:
    """A payload's JSON value, and whether every integer in it is within range.

    Raises RemoteProtocolError ``bad_utf8`` or ``bad_json`` (not valid JSON, NaN or Infinity,
    nested deeper than MAX_JSON_DEPTH); never anything else, whatever the payload."""
    text = decode_utf8(payload)
    try:
        data = _DECODER.decode(text)
    except RecursionError:  # thousands of levels: Python's parser gives up before we look
        raise _too_deep() from None
    except _NotFinite:
        raise RemoteProtocolError(
            ErrorCode.BAD_JSON, "numbers must be finite (no NaN or Infinity)"
        ) from None
    except ValueError:
        raise RemoteProtocolError(ErrorCode.BAD_JSON, "payload is not valid JSON") from None
    return data, _checked_tree(data)


def _checked_tree(data: Any) -> bool:
    """Raise bad_json if ``data`` nests deeper than MAX_JSON_DEPTH; False if it holds an
    integer out of range. Iterative: a deep value cannot exhaust the stack here."""
    if type(data) is int:
        return -MAX_JSON_INT <= data <= MAX_JSON_INT
    in_range = True
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            items = value.values()
        elif isinstance(value, list):
            items = value
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        for item in items:
            if isinstance(item, dict | list):
                stack.append((item, depth + 1))
            elif type(item) is int and not -MAX_JSON_INT <= item <= MAX_JSON_INT:
                in_range = False
    return in_range


def decode_json_object(payload: bytes) -> dict[str, Any]:
    """Parse a payload as a JSON object, or raise RemoteProtocolError (and nothing else)."""
    data, in_range = _load(payload)
    if not isinstance(data, dict):
        raise RemoteProtocolError(ErrorCode.BAD_JSON, "payload must be a JSON object")
    if not in_range:
        raise RemoteProtocolError(
            ErrorCode.BAD_MESSAGE, "integers must be within -(2**63-1) and 2**63-1"
        )
    return data


# --- field types: what each annotation accepts ---------------------------------------------


class _Refused(Exception):
    """A value does not fit a field: ``reason`` completes "field 'x' of 'y' ..." (None: the
    value has the wrong type, and the message says what the field must be)."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Shape:
    """What one annotation accepts: ``what`` for error messages, ``convert`` returns the value
    as the message holds it (lists become tuples) or raises _Refused."""

    what: str
    convert: Callable[[Any], Any]


def _unicode(text: str) -> str:
    # JSON may carry lone surrogates ("\ud800") that no UTF-8 encoder accepts: refuse them.
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _Refused("is not valid Unicode") from None
    return text


def _string(value: Any) -> str:
    if type(value) is not str:
        raise _Refused
    return _unicode(value)


def _integer(value: Any) -> int:
    if type(value) is not int:  # not a bool, not 1.0
        raise _Refused
    return value


def _number(value: Any) -> float:
    if type(value) is not float and type(value) is not int:  # an int is a number, a bool not
        raise _Refused
    return value


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise _Refused
    return value


def _client_id(value: Any) -> ClientId:
    if value is None or type(value) is int:
        return value
    if type(value) is not str:
        raise _Refused
    if len(value) > MAX_ID_CHARS:
        raise _Refused(f"is longer than {MAX_ID_CHARS} characters")
    return _unicode(value)


def _any(value: Any) -> Any:
    """Any JSON value, unchecked but for lone surrogates in its strings (keys included)."""
    if isinstance(value, str):
        _unicode(value)
    elif isinstance(value, list):
        for item in value:
            _any(item)  # recursion is bounded: payloads nest at most MAX_JSON_DEPTH levels
    elif isinstance(value, dict):
        for key, item in value.items():
            _unicode(key)
            _any(item)
    return value


def _optional(inner: _Shape) -> _Shape:
    convert = inner.convert
    return _Shape(f"{inner.what} or null", lambda v: None if v is None else convert(v))


def _object_of(inner: _Shape, what: str) -> _Shape:
    convert = inner.convert

    def check(value: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise _Refused
        for key, item in value.items():
            _unicode(key)
            convert(item)  # objects are kept as they are: only checked
        return value

    return _Shape(what, check)


def _array_of(inner: _Shape, what: str) -> _Shape:
    convert = inner.convert

    def check(value: Any) -> tuple[Any, ...]:
        if type(value) is not list and type(value) is not tuple:
            raise _Refused
        return tuple(convert(item) for item in value)

    return _Shape(what, check)


_SCALARS: dict[Any, _Shape] = {
    str: _Shape("a string", _string),
    int: _Shape("an integer", _integer),
    float: _Shape("a number", _number),
    bool: _Shape("true or false", _boolean),
    Any: _Shape("a JSON value", _any),
}


def _shape(hint: Any) -> _Shape:
    """The shape of one field annotation; LocalProtocolError for one this codec cannot check
    (raised when this module is imported: every message's every field has a shape)."""
    if hint == ClientId:  # before other unions: a client id has a length limit
        what = f"a string of at most {MAX_ID_CHARS} characters, an integer or null"
        return _Shape(what, _client_id)
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return _optional(_shape(inner))
    if origin is dict and len(args) == 2 and args[0] is str:
        inner_shape = _shape(args[1])
        what = "an object" if args[1] is Any else f"an object of {_plural(inner_shape)}"
        return _object_of(inner_shape, what)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        inner_shape = _shape(args[0])
        return _array_of(inner_shape, f"an array of {_plural(inner_shape)}")
    raise LocalProtocolError(f"no JSON shape for the annotation {hint!r}")


def _plural(shape: _Shape) -> str:
    article, noun = shape.what.split(" ", 1)
    return {"true": "booleans", "a JSON": "values"}.get(article, noun + "s")


@dataclass(frozen=True)
class _Field:
    name: str
    shape: _Shape
    required: bool


def _fields_of(cls: type) -> tuple[_Field, ...]:
    """A message class's fields with their shapes, from its own annotations."""
    hints = typing.get_type_hints(cls)
    return tuple(
        _Field(
            f.name,
            _shape(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )


#: Message class -> its fields, each with what it accepts: built once, at import.
_FIELDS: dict[type, tuple[_Field, ...]] = {
    cls: _fields_of(cls) for cls in (*_CLIENT_CLASSES, *_SERVER_CLASSES)
}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _build(data: dict[str, Any], types: dict[str, type]) -> Any:
    """The message ``data`` describes, every field checked against its class's annotation;
    RemoteProtocolError (``bad_message``) and nothing else if it does not fit."""
    kind = data.get("type")
    cls = types.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"unknown message type {_shown(kind)}")
    kwargs = {}
    for f in _FIELDS[cls]:
        if f.name not in data:
            if f.required:
                raise RemoteProtocolError(
                    ErrorCode.BAD_MESSAGE, f"{kind!r} message lacks the field {f.name!r}"
                )
            continue
        try:
            kwargs[f.name] = f.shape.convert(data[f.name])
        except _Refused as exc:
            reason = exc.reason or f"must be {f.shape.what}"
            raise RemoteProtocolError(
                ErrorCode.BAD_MESSAGE, f"field {f.name!r} of {kind!r} {reason}"
            ) from None
    return cls(**kwargs)


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
        except RemoteProtocolError:
            continue
        if isinstance(message, ChatMessage):
            out.append(message)
    return out


def is_hello(payload: bytes) -> bool:
    """True if a first frame asks for the rich dialect (a JSON object of type "hello")."""
    if not payload.lstrip().startswith(b"{"):
        return False
    try:
        data, _ = _load(payload)  # a hello with an integer out of range is still a hello
    except RemoteProtocolError:  # not JSON as we know it (too deep, NaN...): a plain line
        return False
    return isinstance(data, dict) and data.get("type") == Hello.TYPE
