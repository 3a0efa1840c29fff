"""Arbitrary JSON in every field of every client message, over a real socket to a real server.

Each example is one frame from a registered rich member (an operator, so that the operator
requests get past ``not_operator``), followed by a ``ping``. The property: the frame gets its
documented answer or an ``error`` with a code of docs/PROTOCOL.md section 7 (not fatal), the
``pong`` comes (the connection stays open), every frame the server sends parses as a server
message, and the server logs no traceback. A plain member sits in the fuzzed rooms, so every
event is also rendered for the plain dialect.

One server for the whole module; its connections are reused (and made again after a ``bye``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import start_server
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from wire import WireClient

from game_chat.protocol.errors import RemoteProtocolError
from game_chat.protocol.limits import Limits
from game_chat.protocol.messages import (
    CLIENT_TYPES,
    MAX_JSON_DEPTH,
    ClientId,
    Goodbye,
    is_hello,
    parse_client_message,
    parse_server_message,
)
from game_chat.server import ChatServer

NICK = "fuzzer-op"
BYSTANDER = "bystander"
OPER_PASSWORD = "fz-oper-pw"
FUZZ_ROOM = "#fz"
SHARED_ROOMS = ("#lobby", FUZZ_ROOM)  # the fuzzer's and the bystander's
MAX_FRAME = 8192  # the server's default limit (a larger frame is a fatal frame_too_large)


def documented_error_codes() -> frozenset[str]:
    """The codes of the table in docs/PROTOCOL.md section 7."""
    doc = (Path(__file__).parent.parent / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = doc.split("\n## 7. Error codes", 1)[1].split("\n## 8.", 1)[0]
    return frozenset(re.findall(r"^\| `([a-z0-9_]+)` ", section, flags=re.MULTILINE))


ERROR_CODES = documented_error_codes()

#: The answer a well-formed request of each type gets when it succeeds (docs/PROTOCOL.md
#: 4.2); None: it may get no frame at all (an operator's topic for a room it is not in, a
#: kick or mute of a member in no room shared with the operator, a pong).
ANSWERS: dict[str, str | None] = {
    "hello": "welcome",  # never: we are registered (already_registered)
    "chat": "ack",
    "msg": "ack",
    "join": "joined",
    "part": "part",
    "rooms": "rooms",
    "topic": None,
    "who": "who",
    "away": "away",
    "history": "history",
    "nick": "nick_changed",
    "users": "users",
    "help": "notice",
    "oper": "notice",
    "kick": None,
    "ban": "notice",
    "unban": "notice",
    "mute": None,
    "unmute": None,
    "set_data": "data",
    "ping": "pong",
    "pong": None,
    "bye": None,  # the connection closes
}


class LogCapture(logging.Handler):
    """Everything the server logs, formatted (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(threadName)s %(message)s"))
        self.lines: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._lock2:
            self.lines.append(text)

    def take(self) -> list[str]:
        with self._lock2:
            lines, self.lines = self.lines, []
        return lines


def crashes(lines: list[str]) -> list[str]:
    return [line for line in lines if "Traceback" in line or "internal error" in line]


class Bystander:
    """A plain member in the lobby and the fuzzed room; a thread reads (and keeps) its lines."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.client = WireClient(address)
        self.client.send(f"/nick {BYSTANDER}")
        self.client.send(f"/join {FUZZ_ROOM}")
        self.lines: list[bytes] = []
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="bystander", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while (frame := self.client.recv(timeout=60)) is not None:
                self.lines.append(frame)
        except OSError:
            pass
        self.closed.set()

    def close(self) -> None:
        self.client.close()
        self._thread.join(5)


class Fuzzer:
    """The rich operator that sends the fuzzed frames; connects again when it has to."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.client: WireClient | None = None

    def connect(self) -> None:
        if self.client is not None:
            self.client.close()
        client = WireClient(self.address)
        self.client = client
        client.send_json(type="hello", nick=NICK, version=1)
        welcome = client.recv_json()
        assert welcome["type"] == "welcome", welcome
        client.send_json(type="oper", password=OPER_PASSWORD)
        client.send_json(type="join", room=FUZZ_ROOM)
        # After many wrong oper passwords a new connection is rate_limited: still a member.
        frames, closed = self.sync()
        assert not closed, frames

    def sync(self) -> tuple[list[dict[str, Any]], bool]:
        """Ping; the frames that came before the pong, and whether the server closed first."""
        assert self.client is not None
        token = "sync-" + uuid.uuid4().hex
        self.client.send_json(type="ping", token=token)
        frames = []
        while True:
            payload = self.client.recv()
            if payload is None:
                return frames, True
            parse_server_message(payload)  # the server's every frame obeys the schema
            message = json.loads(payload)
            if message == {"type": "pong", "token": token}:
                return frames, False
            frames.append(message)


def unlimited() -> Limits:
    """No request rate limits: the fuzzer sends hundreds of requests a second (and is not
    always an operator: after a bye its new connection may be refused the oper)."""
    names = {f.name for f in dataclasses.fields(Limits)}
    return Limits(**{name: 0 for name in ("chat_per_minute", "data_per_second") if name in names})


@dataclasses.dataclass
class Rig:
    server: ChatServer
    fuzzer: Fuzzer
    bystander: Bystander
    log: LogCapture


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    logger = logging.getLogger("game_chat.server")
    capture = LogCapture()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    server = start_server(oper_password=OPER_PASSWORD, limits=unlimited())
    try:
        bystander = Bystander(server.address)
        fuzzer = Fuzzer(server.address)
        fuzzer.connect()
        yield Rig(server, fuzzer, bystander, capture)
        bystander.close()
        if fuzzer.client is not None:
            fuzzer.client.close()
    finally:
        server.shutdown()
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    assert not crashes(capture.take())


# --- strategies -------------------------------------------------------------------------------

lone_surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3)
texts = st.text(max_size=30) | lone_surrogates | st.text(max_size=3).map(lambda t: t + "\ud800")
huge_ints = st.sampled_from([2**63 - 1, 2**63, -(2**63 - 1), -(2**63), 2**64, 10**40, -(10**25)])
integers = st.integers() | huge_ints | st.integers(-(2**70), 2**70)
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e308, -1e308, 5e-324])
scalars = st.none() | st.booleans() | integers | floats | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
nicks = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,9}", fullmatch=True).filter(
    lambda n: n.casefold() not in (NICK, BYSTANDER)
)
rooms = st.sampled_from(["#lobby", FUZZ_ROOM, "#FZ", "#other"]) | nicks.map(lambda n: "#" + n)
client_ids = st.none() | st.integers(-(2**63 - 1), 2**63 - 1) | st.text(max_size=64)
member_data = st.dictionaries(
    st.from_regex(r"[A-Za-z0-9_.-]{1,8}", fullmatch=True),
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | floats | st.text(max_size=20),
    max_size=5,
)

#: Values a field of that name takes when a request is meant to succeed (sometimes).
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "room": rooms,
    "nick": nicks,  # never our own nick: a kick of ourselves would end the connection
    "to": st.sampled_from([NICK, BYSTANDER]) | nicks,
    "text": st.text(min_size=1, max_size=40),
    "id": client_ids,
    "token": client_ids,
    "before": st.none() | st.integers(0, 2**63 - 1),
    "after": st.none() | st.integers(0, 2**63 - 1),
    "limit": st.integers(-5, 600),
    "minutes": st.none() | st.floats(0.001, 1e7) | st.integers(1, 10**7),
    "data": member_data,
    "resume": st.none() | st.dictionaries(rooms, st.none() | st.integers(0, 2**63 - 1)),
    "password": st.sampled_from([OPER_PASSWORD, "wrong"]),
    "version": st.just(1),
    "target": nicks | st.sampled_from(["10.9.8.7", "::2"]),
}


def typed(hint: Any) -> st.SearchStrategy[Any]:
    """Values of the field's own JSON type (right type, any value: empty, huge, surrogates)."""
    if hint == ClientId:
        return st.none() | integers | texts | st.text(min_size=60, max_size=70)
    if hint is str:
        return texts
    if hint is int:
        return integers
    if hint is float:
        return integers | floats
    if hint is bool:
        return st.booleans()
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return st.none() | typed(inner)
    if origin is dict:
        return st.dictionaries(texts, json_values, max_size=4)
    return json_values


@st.composite
def client_payloads(draw: st.DrawFn, kind: str) -> bytes:
    """A JSON object of type ``kind``: each field present or not, each of any JSON value, its
    own type or a value meant to succeed, plus unknown keys."""
    cls = CLIENT_TYPES[kind]
    hints = typing.get_type_hints(cls)
    body: dict[str, Any] = {"type": kind}
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if not draw(st.integers(0, 9 if required else 1)):
            continue  # missing (rarely, if required)
        body[f.name] = draw(
            GOOD.get(f.name, typed(hints[f.name])) | typed(hints[f.name]) | json_values
        )
    extra = draw(st.dictionaries(texts, json_values, max_size=2))
    body = {**{k: v for k, v in extra.items() if k != "type"}, **body}
    if draw(st.booleans()):
        text = json.dumps(body)  # lone surrogates as \ud800 escapes
    else:
        text = json.dumps(body, ensure_ascii=False, indent=draw(st.none() | st.just(1)))
    # Raw UTF-8; a lone surrogate then makes invalid UTF-8 (bad_utf8).
    payload = text.encode("utf-8", "surrogatepass")
    assume(len(payload) <= MAX_FRAME)
    return payload


# --- the property -----------------------------------------------------------------------------


def connected(rig: Rig) -> WireClient:
    if rig.fuzzer.client is None:
        rig.fuzzer.connect()
    assert rig.fuzzer.client is not None
    return rig.fuzzer.client


def exchange(rig: Rig, payload: bytes) -> list[dict[str, Any]]:
    """Send one frame and a ping: the frames before the pong. The server must not close the
    connection nor log a traceback."""
    client = connected(rig)
    rig.fuzzer.sync()  # events of other tests' connections, if any, are not the answer
    rig.log.take()
    client.send(payload)
    frames, closed = rig.fuzzer.sync()
    if closed:
        rig.fuzzer.client = None
    logged = crashes(rig.log.take())
    assert not logged, "\n".join(logged)
    assert not closed, f"the server closed the connection after {payload[:300]!r}: {frames}"
    return frames


def check_exchange(rig: Rig, payload: bytes) -> list[dict[str, Any]]:
    """The property: the documented answer, or one non-fatal error with a documented code."""
    try:
        expected: object = parse_client_message(payload)
    except RemoteProtocolError as exc:
        expected = exc
    if isinstance(expected, Goodbye):  # documented answer: nothing, the connection closes
        client = connected(rig)
        rig.log.take()
        client.send(payload)
        assert client.expect_closed() == []
        rig.fuzzer.connect()
        assert not crashes(rig.log.take())
        return []

    frames = exchange(rig, payload)
    errors = [m for m in frames if m["type"] == "error"]
    if isinstance(expected, RemoteProtocolError):  # the server parses as we do
        assert [(m["type"], m.get("code")) for m in frames] == [("error", expected.code)], frames
    if errors:
        assert len(frames) == 1, frames  # a refused request changes nothing else
        assert errors[0]["code"] in ERROR_CODES, errors
        assert errors[0]["fatal"] is False, errors
    else:
        kind = type(expected).TYPE  # type: ignore[attr-defined]
        assert kind != "hello", f"a second hello was not refused: {frames}"
        if ANSWERS[kind] is not None:
            assert ANSWERS[kind] in [m["type"] for m in frames], (payload, frames)

    # Stay where we are: a nick change is undone (a later kick must not hit ourselves), the
    # shared rooms are joined again, others left again (a member may be in only so many).
    if any(m["type"] == "nick_changed" and m["new"] != NICK for m in frames):
        again = exchange(rig, json.dumps({"type": "nick", "nick": NICK}).encode())
        assert again[-1]["type"] == "nick_changed", again
    for m in frames:
        if m["type"] == "part" and m["nick"] == NICK and m["room"] in SHARED_ROOMS:
            again = exchange(rig, json.dumps({"type": "join", "room": m["room"]}).encode())
            assert again[0]["type"] == "joined", again
        elif m["type"] == "joined" and m["room"] not in SHARED_ROOMS:
            again = exchange(rig, json.dumps({"type": "part", "room": m["room"]}).encode())
            assert again[0]["type"] == "part", again
    return frames


def check_first_frame(rig: Rig, payload: bytes) -> None:
    """A fuzzed hello as the first frame of a new connection: a rich one gets a welcome or a
    documented error (and stays open: its next request gets not_registered); anything else
    makes a plain member, answered in text."""
    rig.log.take()
    client = WireClient(rig.server.address)
    try:
        client.send(payload)
        if not is_hello(payload):
            line = client.recv_text()
            assert line is not None and not line.startswith("{"), line
            client.send("!DISCONNECT")
            assert client.expect_closed() is not None
        else:
            client.send_json(type="ping", token="first")
            frames = []
            while (payload_in := client.recv()) is not None:
                parse_server_message(payload_in)
                frames.append(json.loads(payload_in))
                if frames[-1] in ({"type": "pong", "token": "first"}, NOT_REGISTERED):
                    break
            assert frames and frames[-1] in ({"type": "pong", "token": "first"}, NOT_REGISTERED)
            if frames[-1] == NOT_REGISTERED:  # the hello was refused, the connection stayed
                (error,) = frames[:-1]
                assert error["type"] == "error" and error["code"] in ERROR_CODES, error
                assert error["fatal"] is False, error
            else:
                assert frames[0]["type"] == "welcome", frames
                client.send_json(type="bye")  # (unregistered, it would get not_registered)
                assert client.expect_closed() is not None
    finally:
        client.close()
    logged = crashes(rig.log.take())
    assert not logged, "\n".join(logged)


NOT_REGISTERED = {
    "type": "error",
    "code": "not_registered",
    "message": "send a hello first",
    "fatal": False,
    "id": None,
}


@pytest.mark.parametrize("kind", sorted(CLIENT_TYPES))
@settings(
    max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(data=st.data())
def test_any_json_in_any_field_gets_a_documented_answer(
    rig: Rig, kind: str, data: st.DataObject
) -> None:
    payload = data.draw(client_payloads(kind), label="payload")
    check_exchange(rig, payload)
    if kind == "hello":  # the hello's own fields matter only before registering
        check_first_frame(rig, payload)


# --- direct attacks ---------------------------------------------------------------------------

DEEP = [
    b"[" * 4000 + b"]" * 4000,
    b'{"a":' * 1300 + b"1" + b"}" * 1300,
    b'{"type":"chat","text":"x","id":' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"type":"ping","token":1,"x":' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}",
]


@pytest.mark.parametrize("payload", DEEP, ids=["lists", "objects", "in-a-chat", "17-levels"])
def test_deep_json_after_a_hello_is_bad_json(rig: Rig, payload: bytes) -> None:
    frames = check_exchange(rig, payload)
    assert [(m["code"], m["fatal"], m["id"]) for m in frames] == [("bad_json", False, None)]
    assert "nested too deeply" in frames[0]["message"]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type":"hello","nick":"deep","x":' + b"[" * 4000 + b"]" * 4000 + b"}",
        b'{"type":"hello","nick":"deep","x":' + b'{"a":' * 1300 + b"1" + b"}" * 1300 + b"}",
        b'{"type":"hello","nick":"deep","x":'
        + b"[" * MAX_JSON_DEPTH
        + b"]" * MAX_JSON_DEPTH
        + b"}",
        b'{"type":"hello","nick":"nan","version":NaN}',
    ],
    ids=["lists", "objects", "17-levels", "nan"],
)
def test_a_deep_or_non_finite_first_frame_makes_a_plain_client(rig: Rig, payload: bytes) -> None:
    rig.log.take()
    client = WireClient(rig.server.address)
    try:
        client.send(payload)
        first = client.recv_text()
        assert first is not None and not first.startswith("{"), first
        assert first == "Message was Sent!" or first.startswith("ERROR text_too_long:"), first
        client.send("/nick deep-plain")
        assert client.recv_text() is not None  # still connected, a plain member
    finally:
        client.send("!DISCONNECT")
        assert client.expect_closed() is not None
        client.close()
    assert not crashes(rig.log.take())
    deadline = time.monotonic() + 5
    while "deep-plain" in rig.server.state.nicks() and time.monotonic() < deadline:
        time.sleep(0.01)  # gone, and its leave queued for the fuzzer


REQUIRED = [
    (kind, f.name)
    for kind, cls in sorted(CLIENT_TYPES.items())
    for f in dataclasses.fields(cls)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
]


@pytest.mark.parametrize(("kind", "name"), REQUIRED)
def test_null_in_every_required_field_is_a_bad_message(rig: Rig, kind: str, name: str) -> None:
    cls = CLIENT_TYPES[kind]
    hints = typing.get_type_hints(cls)
    fillers = {str: "#x", dict[str, Any]: {}}
    body: dict[str, Any] = {"type": kind}
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            body[f.name] = fillers[hints[f.name]]
    body[name] = None
    frames = check_exchange(rig, json.dumps(body).encode())
    what = {str: "a string", dict[str, Any]: "an object"}[hints[name]]
    assert [(m["code"], m["message"], m["id"]) for m in frames] == [
        ("bad_message", f"field {name!r} of {kind!r} must be {what}", None)
    ]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type":"history","room":"#lobby","before":9223372036854775808}',
        b'{"type":"history","room":"#lobby","after":-9223372036854775808}',
        b'{"type":"chat","text":"x","id":18446744073709551616}',
        b'{"type":"ping","token":' + b"9" * 5000 + b"}",
        b'{"type":"users","x":[-99999999999999999999]}',
    ],
)
def test_integers_beyond_64_bits_are_bad_messages(rig: Rig, payload: bytes) -> None:
    frames = check_exchange(rig, payload)
    assert [(m["code"], m["id"]) for m in frames] == [("bad_message", None)]


def test_the_largest_integers_are_taken(rig: Rig) -> None:
    top = 2**63 - 1
    frames = check_exchange(
        rig, b'{"type":"history","room":"#lobby","before":%d,"after":%d}' % (top, top)
    )
    assert [(m["type"], m["after"]) for m in frames] == [("history", top)]
    frames = check_exchange(rig, b'{"type":"ping","token":%d}' % -top)
    assert frames == [{"type": "pong", "token": -top}]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_bad_json(rig: Rig, number: bytes) -> None:
    frames = check_exchange(rig, b'{"type":"mute","nick":"nobody","minutes":%s}' % number)
    assert [m["code"] for m in frames] == ["bad_json"]


def test_member_data_in_a_room_with_a_plain_member(rig: Rig) -> None:
    # Member data is not shown to plain clients: the bystander in #fz gets nothing of it.
    check_exchange(rig, b'{"type":"join","room":"#fz"}')
    frames = check_exchange(rig, b'{"type":"set_data","room":"#fz","data":{"ready":true}}')
    assert [(m["type"], m["data"]["ready"]) for m in frames] == [("data", True)]


def test_the_bystander_saw_only_plain_text(rig: Rig) -> None:
    # Runs last: whatever the fuzzing did in its rooms, the plain member got lines of text.
    assert not rig.bystander.closed.is_set(), rig.bystander.lines[-3:]
    for line in rig.bystander.lines:
        assert not line.startswith(b"{"), line
        line.decode("utf-8")
