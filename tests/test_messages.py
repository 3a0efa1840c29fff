"""Rich-dialect messages: JSON form, parsing and rejection of malformed payloads."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from game_chat.protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from game_chat.protocol.messages import (
    CLIENT_TYPES,
    MAX_JSON_DEPTH,
    MAX_JSON_INT,
    SERVER_TYPES,
    Ack,
    AwayChanged,
    ChatMessage,
    ErrorReply,
    FetchHistory,
    Goodbye,
    Hello,
    HistoryPage,
    LineSettled,
    MemberData,
    Mute,
    NickChanged,
    Notice,
    Ping,
    Pong,
    PrivateMessage,
    RoomJoined,
    RoomList,
    RoomModeChanged,
    RoomOpChanged,
    SendChat,
    SetMemberData,
    TopicChanged,
    UserJoined,
    UserLeft,
    UserList,
    UserParted,
    Welcome,
    Who,
    WhoReply,
    _shape,
    encode_json,
    encode_message,
    is_hello,
    message_dict,
    page_messages,
    parse_client_message,
    parse_server_message,
)
from game_chat.protocol.plain import render_plain


@pytest.mark.parametrize(
    "message",
    [
        Welcome("alice", "srv", 1, {"max_text_chars": 1000}, ("alice", "bob")),
        ChatMessage(7, "bob", "hi ✓", 1700000000.25),
        Ack("c-1", 7, 1700000000.25),
        Ack(None, 8, 1.0),
        UserLeft("bob", "quit", 2.0),
        ErrorReply(ErrorCode.NICK_TAKEN, "taken", False),
        Goodbye("server shutting down"),
    ],
)
def test_server_messages_round_trip(message: object) -> None:
    assert parse_server_message(encode_message(message)) == message


@pytest.mark.parametrize(
    "message", [Hello("alice"), Hello("bob", 1, "pw"), SendChat("hi", "id1"), Ping(3)]
)
def test_client_messages_round_trip(message: object) -> None:
    assert parse_client_message(encode_message(message)) == message


def test_wire_form_is_compact_json_with_type() -> None:
    payload = encode_message(ChatMessage(1, "a", "hi", 1.5))
    assert payload == b'{"type":"chat","id":1,"nick":"a","text":"hi","ts":1.5,"room":"#lobby"}'
    assert b"action" not in payload and b"history" not in payload  # false flags stay off


def test_optional_fields_take_defaults() -> None:
    assert parse_client_message(b'{"type":"hello","nick":"a"}') == Hello("a", 1, None)
    assert parse_client_message(b'{"type":"chat","text":"x"}') == SendChat("x", None)


def test_unknown_keys_are_ignored() -> None:
    assert parse_client_message(b'{"type":"chat","text":"x","extra":1}') == SendChat("x")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff", ErrorCode.BAD_UTF8),
        (b"{not json", ErrorCode.BAD_JSON),
        (b"[1, 2]", ErrorCode.BAD_JSON),
        (b'{"type":"warp"}', ErrorCode.BAD_MESSAGE),
        (b'{"no_type":1}', ErrorCode.BAD_MESSAGE),
        (b'{"type":"chat"}', ErrorCode.BAD_MESSAGE),
        (b'{"type":"chat","text":5}', ErrorCode.BAD_MESSAGE),
        (b'{"type":"hello","nick":"a","version":true}', ErrorCode.BAD_MESSAGE),
        (b'{"type":"chat","text":"x","id":[1]}', ErrorCode.BAD_MESSAGE),
        (b'{"type":"chat","text":"x","id":"' + b"i" * 65 + b'"}', ErrorCode.BAD_MESSAGE),
    ],
)
def test_malformed_payloads_are_remote_errors(payload: bytes, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_client_message(payload)
    assert info.value.code == code
    assert not info.value.fatal


def test_encoding_a_non_message_is_our_mistake() -> None:
    with pytest.raises(LocalProtocolError):
        encode_message({"type": "chat"})


def test_is_hello() -> None:
    assert is_hello(json.dumps({"type": "hello", "nick": "a"}).encode())
    assert is_hello(b' {"type":"hello"}')
    assert not is_hello(b'{"type":"chat","text":"x"}')
    assert not is_hello(b"hello")
    assert not is_hello(b"{oops")


def test_plain_rendering() -> None:
    assert render_plain(ChatMessage(1, "bob", "hi", 0)) == "bob: hi"
    assert render_plain(Ack("x", 1, 0)) == "Message was Sent!"
    assert render_plain(UserLeft("bob", "quit", 0)) == "* bob left (quit)"
    assert render_plain(ErrorReply("nick_taken", "taken")) == "ERROR nick_taken: taken"


# --- every message type, every field --------------------------------------------------------

#: A valid payload of every client type with every field it has (docs/PROTOCOL.md 4.2).
CLIENT_SAMPLES: dict[str, dict[str, Any]] = {
    "hello": {
        "nick": "alice",
        "version": 1,
        "password": "pw",
        "session": "S" * 24,
        "store": "0123456789abcdef",
        "resume": {"#lobby": 3, "#team": None},
    },
    "chat": {"text": "hi", "id": "c1", "retry": True, "room": "#lobby", "action": True},
    "msg": {"to": "bob", "text": "psst", "id": 7, "retry": True, "action": True},
    "join": {"room": "#team"},
    "part": {"room": "#team", "reason": "brb"},
    "rooms": {},
    "topic": {"room": "#team", "topic": "push B"},
    "who": {"room": "#team"},
    "away": {"reason": "lunch"},
    "history": {"room": "#lobby", "before": 3, "limit": 1, "after": 1},
    "nick": {"nick": "Alicia"},
    "users": {},
    "help": {},
    "oper": {"password": "pw"},
    "kick": {"nick": "bob", "reason": "spam"},
    "ban": {"target": "mallory", "minutes": 2.5, "reason": "rude"},
    "unban": {"target": "mallory"},
    "mute": {"nick": "bob", "minutes": 5},
    "unmute": {"nick": "bob"},
    "room_mode": {"room": "#den", "mode": "+b", "arg": "bob"},
    "set_data": {"room": "#lobby", "data": {"ready": True, "team": "red"}},
    "ping": {"token": 1},
    "pong": {"token": "t1"},
    "bye": {"reason": "dinner"},
}
#: The client fields that may be null (docs/PROTOCOL.md 4.2: "or null", client ids).
NULLABLE = {
    ("hello", "password"),
    ("hello", "session"),
    ("hello", "store"),
    ("hello", "resume"),
    ("chat", "id"),
    ("chat", "room"),
    ("msg", "id"),
    ("who", "room"),
    ("history", "before"),
    ("history", "after"),
    ("ban", "minutes"),
    ("mute", "minutes"),
    ("room_mode", "arg"),
    ("ping", "token"),
    ("pong", "token"),
}


def payload_of(kind: str, **fields: Any) -> bytes:
    """A payload as a client may send it: lone surrogates travel as escapes."""
    return json.dumps({"type": kind, **fields}).encode()


def refusal(payload: bytes, parse: Any = parse_client_message) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        parse(payload)
    assert not info.value.fatal
    return info.value


def test_every_client_type_has_a_sample_and_it_parses_field_by_field() -> None:
    assert set(CLIENT_SAMPLES) == set(CLIENT_TYPES)
    for kind, fields in CLIENT_SAMPLES.items():
        message = parse_client_message(payload_of(kind, **fields))
        assert type(message) is CLIENT_TYPES[kind]
        assert {f.name for f in dataclasses.fields(message)} == set(fields), kind
        for name, value in fields.items():
            assert getattr(message, name) == value, (kind, name)


@pytest.mark.parametrize(
    ("kind", "name"),
    [(kind, name) for kind, fields in CLIENT_SAMPLES.items() for name in fields],
)
def test_null_is_accepted_exactly_where_the_protocol_allows_it(kind: str, name: str) -> None:
    payload = payload_of(kind, **{**CLIENT_SAMPLES[kind], name: None})
    if (kind, name) in NULLABLE:
        assert getattr(parse_client_message(payload), name) is None
    else:
        error = refusal(payload)
        assert error.code == ErrorCode.BAD_MESSAGE
        assert error.message.startswith(f"field {name!r} of {kind!r} must be "), error.message


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (kind, f.name)
        for kind, cls in CLIENT_TYPES.items()
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ],
)
def test_a_missing_required_field_is_a_bad_message(kind: str, name: str) -> None:
    fields = dict(CLIENT_SAMPLES[kind])
    del fields[name]
    error = refusal(payload_of(kind, **fields))
    assert (error.code, error.message) == (
        ErrorCode.BAD_MESSAGE,
        f"{kind!r} message lacks the field {name!r}",
    )


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (kind, name)
        for kind, fields in CLIENT_SAMPLES.items()
        for name, value in fields.items()
        if isinstance(value, str)
    ],
)
def test_a_lone_surrogate_in_any_string_field_is_a_bad_message(kind: str, name: str) -> None:
    for bad in ("\ud800", "a\udfffb", "\udbff"):
        error = refusal(payload_of(kind, **{**CLIENT_SAMPLES[kind], name: bad}))
        assert error.code == ErrorCode.BAD_MESSAGE
        assert error.message == f"field {name!r} of {kind!r} is not valid Unicode"
    # A surrogate pair is a character like any other.
    message = parse_client_message(payload_of(kind, **{**CLIENT_SAMPLES[kind], name: "😀"}))
    assert getattr(message, name) == "😀"


@pytest.mark.parametrize(
    "payload",
    [
        payload_of("hello", nick="a", resume={"#\ud800": 1}),
        payload_of("hello", nick="a", resume={"#lobby": ["\udc00"]}),
        payload_of("set_data", room="#lobby", data={"team": "\ud800"}),
        payload_of("set_data", room="#lobby", data={"\ud800": 1}),
        payload_of("chat", text="x", id="\udfff"),
        payload_of("ping", token="\ud800"),
    ],
)
def test_lone_surrogates_inside_objects_and_client_ids_are_bad_messages(payload: bytes) -> None:
    assert refusal(payload).code == ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        # true and false are not integers, integers not booleans, floats not integers
        (payload_of("hello", nick="a", version=True), "an integer"),
        (payload_of("hello", nick="a", version=1.0), "an integer"),
        (payload_of("history", room="#a", limit=2.0), "an integer"),
        (payload_of("history", room="#a", before=False), "an integer or null"),
        (payload_of("history", room="#a", after="1"), "an integer or null"),
        (payload_of("chat", text="x", retry=1), "true or false"),
        (payload_of("chat", text="x", action=0), "true or false"),
        (payload_of("chat", text="x", action="true"), "true or false"),
        # floats are not strings, numbers are not booleans
        (payload_of("chat", text=1.5), "a string"),
        (payload_of("chat", text=7), "a string"),
        (payload_of("join", room=["#a"]), "a string"),
        (payload_of("join", room={"#a": 1}), "a string"),
        (payload_of("ban", target="x", minutes=True), "a number or null"),
        (payload_of("ban", target="x", minutes="5"), "a number or null"),
        (payload_of("set_data", room="#a", data=[1]), "an object"),
        (payload_of("hello", nick="a", resume=[]), "an object or null"),
        # client ids: a string of at most 64 characters, an integer or null
        (payload_of("chat", text="x", id=1.5), "a string of at most 64 characters"),
        (payload_of("chat", text="x", id=True), "a string of at most 64 characters"),
        (payload_of("ping", token=[1]), "a string of at most 64 characters"),
        (payload_of("pong", token={}), "a string of at most 64 characters"),
    ],
)
def test_types_are_checked_strictly(payload: bytes, what: str) -> None:
    error = refusal(payload)
    assert error.code == ErrorCode.BAD_MESSAGE
    assert f"must be {what}" in error.message, error.message


def test_numbers_accept_integers_and_fractions() -> None:
    assert parse_client_message(payload_of("mute", nick="b", minutes=5)) == Mute("b", 5)
    assert parse_client_message(payload_of("mute", nick="b", minutes=0.5)) == Mute("b", 0.5)
    assert parse_client_message(payload_of("who", room=None)) == Who(None)


def test_client_ids_up_to_64_characters() -> None:
    assert parse_client_message(payload_of("chat", text="x", id="i" * 64)).id == "i" * 64
    assert parse_client_message(payload_of("ping", token=-5)) == Ping(-5)
    error = refusal(payload_of("ping", token="t" * 65))
    assert error.message == "field 'token' of 'ping' is longer than 64 characters"


def test_a_null_or_non_string_type_is_a_bad_message() -> None:
    for kind in (None, 1, True, ["chat"], "CHAT", "\ud800"):
        error = refusal(json.dumps({"type": kind, "text": "x"}).encode())
        assert error.code == ErrorCode.BAD_MESSAGE
    long_type = refusal(payload_of("w" * 100)).message
    assert long_type == "unknown message type '" + "w" * 36 + "..."  # cut short


def test_unknown_keys_are_ignored_whatever_they_hold() -> None:
    extra = {"x": None, "y": [1, {"z": "\ud800"}], "nick": 5, "ts": "now", "\udc00": 1.5}
    assert parse_client_message(payload_of("chat", text="x", **extra)) == SendChat("x")
    assert parse_client_message(payload_of("users", **extra)).TYPE == "users"


def test_field_types_come_from_each_class_not_from_the_field_name() -> None:
    # "room" may be null in a chat and a who, never in a join; "id" of a server chat line is
    # an integer, of a client chat a client id.
    assert parse_client_message(payload_of("chat", text="x", room=None)).room is None
    assert refusal(payload_of("join", room=None)).code == ErrorCode.BAD_MESSAGE
    assert refusal(payload_of("part", room=None)).code == ErrorCode.BAD_MESSAGE
    assert parse_client_message(payload_of("chat", text="x", id="c1")).id == "c1"
    line = {"id": "c1", "nick": "a", "text": "x", "ts": 1.0}
    assert refusal(payload_of("chat", **line), parse_server_message).code == "bad_message"
    # "password" may be null in a hello, not in an oper
    assert parse_client_message(payload_of("hello", nick="a", password=None)).password is None
    assert refusal(payload_of("oper", password=None)).code == ErrorCode.BAD_MESSAGE


def test_annotations_without_a_json_shape_are_refused_at_import() -> None:
    # The module builds every class's shapes when it is imported: an annotation it cannot
    # check stops it there, never in the middle of a connection.
    for hint in (list[int], set[str], str | int, dict[int, str], tuple[str, int], bytes):
        with pytest.raises(LocalProtocolError):
            _shape(hint)
    assert _shape(typing.Optional[int]).what == "an integer or null"  # noqa: UP045


# --- decoding limits: depth, integer range, finite numbers -----------------------------------


def nested_lists(levels: int) -> bytes:
    """A ping whose object holds ``levels`` levels in all (the object itself is one)."""
    inner = levels - 1
    return b'{"type":"ping","x":' + b"[" * inner + b"]" * inner + b"}"


def nested_objects(levels: int) -> bytes:
    inner = levels - 1
    return b'{"type":"ping","x":' + b'{"a":' * inner + b"1" + b"}" * inner + b"}"


def test_sixteen_levels_are_fine_and_seventeen_too_deep() -> None:
    assert MAX_JSON_DEPTH == 16
    for nested in (nested_lists, nested_objects):
        assert parse_client_message(nested(MAX_JSON_DEPTH)) == Ping()
        error = refusal(nested(MAX_JSON_DEPTH + 1))
        assert error.code == ErrorCode.BAD_JSON
        assert "nested too deeply" in error.message


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 4000 + b"]" * 4000,
        b'{"a":' * 1300 + b"1" + b"}" * 1300,
        b"[" * 900 + b"]" * 900,  # within Python's recursion limit: parsed, then refused
        b'{"type":"chat","text":"x","id":' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"type":"chat","text":"x","id":' + b"[" * 3000,  # and not even valid JSON
        b"{" * 5000,
    ],
)
def test_deep_payloads_are_bad_json_never_a_recursion_error(payload: bytes) -> None:
    for parse in (parse_client_message, parse_server_message):
        error = refusal(payload, parse)
        assert error.code == ErrorCode.BAD_JSON
    assert not is_hello(payload)
    assert not is_hello(b'{"type":"hello","nick":"a","x":' + payload + b"}")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type":"history","room":"#lobby","before":9223372036854775808}',
        b'{"type":"history","room":"#lobby","after":-9223372036854775808}',
        b'{"type":"chat","text":"x","id":99999999999999999999}',
        b'{"type":"hello","nick":"a","resume":{"#lobby":9223372036854775808}}',
        b'{"type":"users","unknown":[1,{"deep":[18446744073709551616]}]}',
        b'{"type":"ping","token":' + b"9" * 6000 + b"}",  # beyond Python's 4300 digits too
        b'{"type":"ping","token":-' + b"9" * 6000 + b"}",
    ],
)
def test_integers_beyond_64_bits_anywhere_are_bad_messages(payload: bytes) -> None:
    error = refusal(payload)
    assert (error.code, error.message) == (
        ErrorCode.BAD_MESSAGE,
        "integers must be within -(2**63-1) and 2**63-1",
    )


def test_integers_up_to_2_63_minus_1_are_fine() -> None:
    assert MAX_JSON_INT == 2**63 - 1
    page = payload_of("history", room="#a", before=MAX_JSON_INT, after=-MAX_JSON_INT)
    assert parse_client_message(page) == FetchHistory("#a", MAX_JSON_INT, 100, -MAX_JSON_INT)
    assert parse_client_message(payload_of("ping", token=-MAX_JSON_INT)) == Ping(-MAX_JSON_INT)


@pytest.mark.parametrize(
    "number", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1E999"]
)
@pytest.mark.parametrize(
    "template",
    [
        b'{"type":"ban","target":"x","minutes":%s}',
        b'{"type":"chat","text":"x","unknown":[%s]}',
        b'{"type":"hello","nick":"a","version":%s}',
        b"%s",
    ],
)
def test_non_finite_numbers_are_not_json(number: bytes, template: bytes) -> None:
    payload = template % number
    error = refusal(payload)
    assert error.code == ErrorCode.BAD_JSON
    assert not is_hello(payload)


def test_large_finite_numbers_are_numbers() -> None:
    ban = parse_client_message(b'{"type":"ban","target":"x","minutes":1e308}')
    assert ban.minutes == 1e308  # type: ignore[union-attr]


def test_dialect_detection_is_total() -> None:
    # A hello with an integer out of range is a faulty hello: rich, answered bad_message.
    faulty = b'{"type":"hello","nick":"a","version":99999999999999999999}'
    assert is_hello(faulty)
    assert refusal(faulty).code == ErrorCode.BAD_MESSAGE
    assert not is_hello(b'{"type":"hello","nick":"a","version":NaN}')
    assert not is_hello(b'{"type":"hello","nick":"a"')
    assert not is_hello(b'{"type":"hello","nick":"\xff"}')
    assert not is_hello(b'["hello"]')
    assert not is_hello(nested_objects(MAX_JSON_DEPTH + 1).replace(b"ping", b"hello"))
    assert is_hello(nested_objects(MAX_JSON_DEPTH).replace(b"ping", b"hello"))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


ALL_TYPES = sorted({*CLIENT_TYPES, *SERVER_TYPES})
ALL_FIELDS = sorted(
    {
        f.name
        for cls in (*CLIENT_TYPES.values(), *SERVER_TYPES.values())
        for f in dataclasses.fields(cls)
    }
)


@given(
    kind=st.sampled_from(ALL_TYPES),
    fields=st.dictionaries(st.sampled_from(ALL_FIELDS), json_values),
    extra=st.dictionaries(st.text(max_size=4), json_values, max_size=2),
)
def test_any_json_object_parses_or_is_refused_with_a_protocol_error(
    kind: str, fields: dict[str, Any], extra: dict[str, Any]
) -> None:
    payload = json.dumps({**extra, **fields, "type": kind}).encode()
    for parse in (parse_client_message, parse_server_message):
        try:
            message = parse(payload)
        except RemoteProtocolError as exc:
            assert exc.code in (ErrorCode.BAD_JSON, ErrorCode.BAD_MESSAGE)
            continue
        # Whatever parses encodes again, to the same message.
        assert parse(encode_message(message)) == message
    is_hello(payload)


@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_any_bytes_parse_or_are_refused_with_a_protocol_error(payload: bytes) -> None:
    for parse in (parse_client_message, parse_server_message):
        try:
            parse(payload)
        except RemoteProtocolError:
            pass
    is_hello(payload)
    is_hello(b"{" + payload)


# --- server messages: JSON form and plain rendering ------------------------------------------

MEMBER = {"nick": "bob", "away": "lunch", "oper": True, "muted": True}
#: One instance of every server message class.
SERVER_SAMPLES = [
    Welcome("alice", "srv", 1, {"max_text_chars": 1000}, ("alice", "bob"), "S" * 24, "f" * 16),
    ChatMessage(7, "bob", "hi", 1.5, "#team", action=True, history=True),
    PrivateMessage(8, "bob", "alice", "psst", 2.0, action=True),
    Ack("c1", 7, 1.5, unsaved=True),
    UserJoined("bob", 1.0, "#team"),
    UserLeft("bob", "quit", 1.0),
    UserParted("#team", "bob", "brb", 1.0),
    RoomJoined("#team", "push B", (MEMBER,), {"after": 1, "before": 22}),
    RoomList(({"room": "#lobby", "members": 3, "topic": "hi"},)),
    TopicChanged("#team", "push B", "bob", 1.0),
    WhoReply(None, (MEMBER,)),
    AwayChanged("bob", "lunch", 1.0),
    HistoryPage("#lobby", (message_dict(ChatMessage(2, "a", "hi", 1.0, history=True)),), True, 1),
    Notice("bob is away: lunch"),
    NickChanged("guest-1", "bob", 1.0),
    UserList(("alice", "bob")),
    Ping(1),
    Pong("t1"),
    Goodbye("server shutting down"),
    ErrorReply(ErrorCode.TEXT_TOO_LONG, "too long", False, "m7"),
    MemberData("#lobby", "bob", {"ready": True}, 1.0),
    LineSettled("#lobby", "node1:7", 42),
    RoomOpChanged("#team", "bob", True, "alice", 1.0),
    RoomModeChanged("#team", "+m", "alice", 1.0),
    RoomModeChanged("#team", "+b", "alice", 1.0, "bob!*@*"),
    UserParted("#team", "bob", "be nice", 1.0, by="alice"),
    ChatMessage(0, "bob", "said while the store was away", 1.0, pending=True, origin="n:3"),
]


def test_every_server_class_has_a_sample() -> None:
    assert {type(m) for m in SERVER_SAMPLES} == set(SERVER_TYPES.values())


@pytest.mark.parametrize("message", SERVER_SAMPLES, ids=lambda m: type(m).__name__)
def test_every_server_message_round_trips(message: object) -> None:
    assert parse_server_message(encode_message(message)) == message


@pytest.mark.parametrize("message", SERVER_SAMPLES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("current_room", [None, "#lobby", "#team", ""])
def test_every_server_message_has_a_plain_rendering(message: object, current_room: str) -> None:
    line = render_plain(message, current_room)  # type: ignore[arg-type]
    if isinstance(message, MemberData | Ping | LineSettled):
        # Member data is not shown to plain clients, they are never pinged, and a line
        # shown pending is a plain line like any other (its settlement changes nothing).
        assert line is None
    else:
        assert isinstance(line, str) and line
        line.encode("utf-8")


def test_plain_renderings_of_every_kind() -> None:
    assert render_plain(SERVER_SAMPLES[0]) == "* Welcome to srv, alice. Here: bob"
    assert render_plain(RoomJoined("#t", "", (MEMBER,))) == (
        "* You are in #t. Here: @bob (away: lunch) (muted)"
    )
    assert render_plain(WhoReply(None, ())) == "* Users in the server: "
    assert render_plain(SERVER_SAMPLES[12]) == ("* 1 older messages of #lobby:\n[history] a: hi")
    assert render_plain(UserJoined("bob", 1.0, "#team"), "#lobby") == "[#team] * bob joined #team"
    assert render_plain(Ping(1)) is None
    assert render_plain(MemberData("#lobby", "bob", {}, 1.0), "#lobby") is None
    with pytest.raises(LocalProtocolError):
        render_plain(SendChat("x"))  # type: ignore[arg-type]


def test_flags_and_empty_optional_fields_stay_off_the_wire() -> None:
    assert message_dict(Ack("c", 1, 1.0)) == {"type": "ack", "id": "c", "msg_id": 1, "ts": 1.0}
    assert message_dict(Ack(None, 1, 1.0, unsaved=True))["unsaved"] is True
    assert "after" not in message_dict(HistoryPage("#a", (), False))
    assert message_dict(HistoryPage("#a", (), False, 0))["after"] == 0
    assert "gap" not in message_dict(RoomJoined("#a", "", ()))
    hello = message_dict(Hello("a"))
    assert hello == {"type": "hello", "nick": "a", "version": 1, "password": None}
    assert message_dict(Notice("x")) == {"type": "notice", "text": "x", "room": None}
    assert message_dict(ErrorReply("c", "m"))["id"] is None  # always present


def test_chat_objects_of_a_history_page_carry_history_and_action_only_when_true() -> None:
    # What the server puts in HistoryPage.messages (state.history_page): a replayed line.
    plain = message_dict(ChatMessage(2, "a", "hi", 1.5, "#lobby", False, True))
    assert plain == {
        "type": "chat", "id": 2, "nick": "a", "text": "hi", "ts": 1.5, "room": "#lobby",
        "history": True,
    }  # fmt: skip
    action = message_dict(ChatMessage(3, "a", "waves", 1.5, "#lobby", True, True))
    assert action["action"] is True and action["history"] is True
    page = HistoryPage("#lobby", (plain, action), False)
    assert parse_server_message(encode_message(page)) == page
    assert page_messages(page) == [
        ChatMessage(2, "a", "hi", 1.5, "#lobby", False, True),
        ChatMessage(3, "a", "waves", 1.5, "#lobby", True, True),
    ]


def test_page_messages_skips_lines_that_are_not_chat_lines() -> None:
    good = {"id": 2, "nick": "a", "text": "hi", "ts": 1.5}
    page = HistoryPage(
        "#lobby",
        (good, {**good, "id": "2"}, {**good, "nick": None}, {"x": 1}, {**good, "ts": True}),
        False,
    )
    assert page_messages(page) == [ChatMessage(2, "a", "hi", 1.5, "#lobby")]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type":"users","users":["a",1]}',
        b'{"type":"users","users":["a",null]}',
        b'{"type":"users","users":"ab"}',
        b'{"type":"users","users":["\\ud800"]}',
        b'{"type":"welcome","nick":"a","server":"s","version":1,"limits":{"x":"1"},"users":[]}',
        b'{"type":"welcome","nick":"a","server":"s","version":1,"limits":{"x":true},"users":[]}',
        b'{"type":"welcome","nick":"a","server":"s","version":1,"limits":{},"users":[],'
        b'"session":null}',
        b'{"type":"joined","room":"#a","topic":"","members":[1]}',
        b'{"type":"joined","room":"#a","topic":"","members":[],"gap":{"after":1.5}}',
        b'{"type":"rooms","rooms":["#a"]}',
        b'{"type":"history","room":"#a","messages":[[]],"more":false}',
        b'{"type":"history","room":"#a","messages":[],"more":0}',
        b'{"type":"chat","id":1,"nick":"a","text":"x","ts":true}',
        b'{"type":"ack","id":1.5,"msg_id":1,"ts":1}',
        b'{"type":"error","code":"x","message":"y","fatal":null}',
    ],
)
def test_server_messages_are_checked_as_strictly(payload: bytes) -> None:
    assert refusal(payload, parse_server_message).code == ErrorCode.BAD_MESSAGE


def test_user_lists_are_tuples_of_strings() -> None:
    assert parse_server_message(b'{"type":"users","users":["a","b"]}') == UserList(("a", "b"))
    assert parse_server_message(b'{"type":"users"}') == UserList(())
    assert encode_json({"a": (1, 2)}) == b'{"a":[1,2]}'


def test_set_member_data_keeps_its_object_for_the_server_to_check() -> None:
    message = parse_client_message(payload_of("set_data", room="#a", data={"k": [1, {"x": 2}]}))
    assert message == SetMemberData("#a", {"k": [1, {"x": 2}]})
