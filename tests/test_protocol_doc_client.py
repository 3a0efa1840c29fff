"""A client written only from docs/PROTOCOL.md, talking to the real server.

The client part (``DocClient`` and its helpers) uses nothing but ``socket`` and ``json``: no
game_chat code, so it checks that the document alone is enough to write a client. The server
comes from the ``server`` fixture in conftest.py (127.0.0.1, free port, a fresh one per test).
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

from conftest import NO_FLOOD_LIMITS  # the server's settings, not the client's knowledge

from game_chat.protocol.limits import Limits  # the server's settings too

# --- the client, from docs/PROTOCOL.md only -----------------------------------------------------

HEADER_SIZE = 64  # section 2: 64-byte ASCII header
MAX_SERVER_FRAME = 4 * 1024 * 1024  # section 2.4: accept server frames of at least 4 MiB
TIMEOUT = 3.0


def frame(payload: bytes) -> bytes:
    """Section 2.1: length in decimal, left-aligned, padded with spaces to 64 bytes."""
    header = str(len(payload)).encode("ascii")
    return header + b" " * (HEADER_SIZE - len(header)) + payload


def parse_header(header: bytes) -> int:
    """Section 2.2: strip spaces and NULs from both ends; the rest must be ASCII digits."""
    digits = header.strip(b" \x00")
    if not digits or any(b not in b"0123456789" for b in digits):
        raise ValueError(f"bad frame header {header!r}")
    length = int(digits)
    if length > MAX_SERVER_FRAME:
        raise ValueError(f"frame of {length} bytes is too large")
    return length


class DocClient:
    """One connection; every ``recv_*`` waits at most TIMEOUT seconds."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.buf = b""

    # sending
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        self.sock.sendall(frame(payload))

    def send_json(self, **fields: object) -> None:
        # Section 2.4: send non-ASCII as raw UTF-8, not \u escapes.
        self.send(json.dumps(fields, ensure_ascii=False, separators=(",", ":")))

    def keepalive(self) -> None:
        self.sock.sendall(frame(b""))  # section 2.3

    # receiving
    def _read_exactly(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                if self.buf:
                    raise ConnectionError("server closed in the middle of a frame")
                return None
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv_frame(self) -> bytes | None:
        """The next complete frame (header included), or None on a clean EOF.

        Zero-length keepalive frames are skipped (section 2.3).
        """
        while True:
            header = self._read_exactly(HEADER_SIZE)
            if header is None:
                return None
            length = parse_header(header)
            if length == 0:
                continue
            payload = self._read_exactly(length)
            if payload is None:
                raise ConnectionError("server closed in the middle of a frame")
            return header + payload

    def recv_payload(self) -> bytes:
        data = self.recv_frame()
        assert data is not None, "server closed the connection"
        return data[HEADER_SIZE:]

    def recv_json(self) -> dict[str, object]:
        message = json.loads(self.recv_payload().decode("utf-8"))
        assert isinstance(message, dict) and isinstance(message.get("type"), str), message
        return message

    def recv_line(self) -> str:
        return self.recv_payload().decode("utf-8")

    def expect_eof(self) -> None:
        assert self.recv_frame() is None

    def close(self) -> None:
        self.sock.close()


# --- assertions on what the document promises -------------------------------------------------


def frame_of(payload: str) -> bytes:
    """The exact bytes the doc says the server sends for ``payload``."""
    body = payload.encode("utf-8")
    return (b"%d" % len(body)).ljust(HEADER_SIZE, b" ") + body


def check_ts(message: dict[str, object]) -> float:
    ts = message["ts"]
    assert isinstance(ts, (int, float)) and not isinstance(ts, bool), message
    assert ts > 1_600_000_000, message  # Unix time in seconds
    return ts


#: Section 4.3: a welcome's ``session`` is 24 URL-safe characters, its ``store`` 16 hex digits;
#: both differ on every run, so the examples write SESSION and STORE for them.
SESSION_RE = re.compile(r"[A-Za-z0-9_-]{24}")
STORE_RE = re.compile(r"[0-9a-f]{16}")


def expect_welcome(client: DocClient, nick: str, users: list[str]) -> dict[str, object]:
    """Section 4.3: a welcome with our nick, the server's limits and its members."""
    message = client.recv_json()
    session, store = message.pop("session"), message.pop("store")
    assert SESSION_RE.fullmatch(str(session)) and STORE_RE.fullmatch(str(store)), message
    limits = message.pop("limits")
    # The flood limits are the operator's to set (a test server may turn them off, 0).
    flood = {key: limits.get(key) for key in WELCOME_LIMITS if key.startswith(("chat_", "data_"))}
    assert all(isinstance(v, int) and v >= 0 for v in flood.values()), limits
    assert {**limits, **{k: WELCOME_LIMITS[k] for k in flood}} == WELCOME_LIMITS, limits
    expected = dict(type="welcome", nick=nick, server="game_chat", version=1)
    assert message == {**expected, "users": users}
    return {**message, "limits": limits, "session": session, "store": store}


def expect(client: DocClient, **fields: object) -> dict[str, object]:
    """Receive a rich message whose keys are exactly ``fields`` plus ``ts``, if it has one.

    A ``ts`` given in ``fields`` must match exactly (replayed history keeps its time).
    """
    message = client.recv_json()
    if "ts" in message:
        check_ts(message)
        fields.setdefault("ts", message["ts"])
    assert message == fields
    return message


WELCOME_LIMITS = {
    "max_frame_bytes": 8192,
    "max_text_chars": 1000,
    "max_nick_chars": 24,
    "chat_burst": 20,
    "chat_per_minute": 120,
    "data_burst": 60,
    "data_per_second": 30,
}
LOBBY = "#lobby"


def member(
    nick: str, away: str = "", oper: bool = False, muted: bool = False, op: bool = False
) -> dict:
    """A member object of ``joined`` / ``who`` (section 4.3); ``op``: the room's operator."""
    found = {"nick": nick, "away": away, "oper": oper, "muted": muted}
    return {**found, "op": True} if op else found


def replayed(chat: dict[str, object]) -> dict[str, object]:
    """A chat line as history gives it back: the same object plus ``"history": true``."""
    return {**chat, "history": True}


def hello(
    client: DocClient,
    nick: str,
    users: list[str],
    members: list[str | dict[str, object]] | None = None,
    history: list[dict[str, object]] = (),  # type: ignore[assignment]
    topic: str = "",
) -> dict[str, object]:
    """Section 4.4: welcome, then ``joined`` for #lobby, then the lobby's history replayed;
    returns the welcome (its ``session`` and ``store`` are needed to come back, 4.12)."""
    client.send_json(type="hello", nick=nick, version=1)
    welcome = expect_welcome(client, nick, users)
    lobby = users if members is None else members
    infos = [member(m) if isinstance(m, str) else m for m in lobby]
    expect(client, type="joined", room=LOBBY, topic=topic, members=infos)
    for chat in history:
        expect(client, **replayed(chat))
    return welcome


def expect_error(
    client: DocClient, code: str, *, fatal: bool = False, id: object = None
) -> dict[str, object]:
    """Receive an error frame (section 7): exactly type, code, message, fatal and id."""
    message = client.recv_json()
    assert set(message) == {"type", "code", "message", "fatal", "id"}, message
    assert isinstance(message["message"], str), message
    assert (message["type"], message["code"], message["fatal"], message["id"]) == (
        "error",
        code,
        fatal,
        id,
    ), message
    return message


def expect_frame(client: DocClient, payload: str) -> bytes:
    """Receive exactly the frame of ``payload``, where ``TS`` stands for the frame's ``ts``
    and ``SESSION`` / ``STORE`` for a welcome's session and store (checked for their form)."""
    data = client.recv_frame()
    assert data is not None, "server closed the connection"
    if any(name in payload for name in ("TS", "SESSION", "STORE")):
        message = json.loads(data[HEADER_SIZE:].decode("utf-8"))
    if "TS" in payload:
        payload = payload.replace("TS", json.dumps(check_ts(message)))
    for name, pattern in (("SESSION", SESSION_RE), ("STORE", STORE_RE)):
        if name in payload:
            assert pattern.fullmatch(message[name.lower()]), message
            payload = payload.replace(name, message[name.lower()])
    assert data == frame_of(payload)
    return data


def error_of(code: str, message: str, *, fatal: bool = False, id: object = None) -> dict:
    return {"type": "error", "code": code, "message": message, "fatal": fatal, "id": id}


def notice(text: str, room: str | None = None) -> dict[str, object]:
    return {"type": "notice", "text": text, "room": room}


UNKNOWN_COMMAND_TAIL = "; /help lists the commands"


# --- tests -------------------------------------------------------------------------------------


def test_rich_and_plain_clients_chat(server) -> None:
    address = server.address

    # Rich client: a keepalive first (does not pick the dialect), then the hello (section 4.4):
    # the welcome, then "joined" for #lobby (no history yet).
    alice = DocClient(address)
    alice.keepalive()
    alice.send(b'{"type":"hello","nick":"alice","version":1}')
    expect_frame(
        alice,
        '{"type":"welcome","nick":"alice","server":"game_chat","version":1,'
        '"limits":{"max_frame_bytes":8192,"max_text_chars":1000,"max_nick_chars":24,"chat_burst":20,'
        '"chat_per_minute":120,"data_burst":60,"data_per_second":30},'
        '"users":["alice"],"session":"SESSION","store":"STORE"}',
    )
    assert alice.recv_frame() == frame_of(
        '{"type":"joined","room":"#lobby","topic":"",'
        '"members":[{"nick":"alice","away":"","oper":false,"muted":false}]}'
    )

    # Plain tutorial-style client: the header and the payload in two sends, as the tutorial
    # does. No welcome, no joined line: the only answer to its first line is the tutorial's
    # (section 5.3).
    tut = DocClient(address)
    tut.send_raw(b"6" + b" " * 63)
    tut.send_raw(b"Hello!")
    assert tut.recv_frame() == frame_of("Message was Sent!")
    expect(alice, type="join", nick="guest-1", room=LOBBY)
    first = expect(alice, type="chat", id=1, nick="guest-1", text="Hello!", room=LOBBY)

    # Rich chat with a client id: ack to the sender, "NICK: TEXT" to the plain client.
    alice.send_json(type="chat", text="hi guest-1", id="c1")
    ack = expect(alice, type="ack", id="c1", msg_id=2)
    assert ack["ts"] >= first["ts"]
    assert tut.recv_frame() == frame_of("alice: hi guest-1")

    # Sanitising (section 6.1); integer ids are echoed too; the server ignores a claimed nick.
    alice.send_json(type="chat", text="x\ty\n\nz\x1b[31m\u202eq  ", id=7, nick="mallory")
    expect(alice, type="ack", id=7, msg_id=3)
    assert tut.recv_line() == "alice: x y z[31mq"

    # Plain chat, non-ASCII, and the // escape.
    tut.send("//nick is literal, ünïcödé")
    assert tut.recv_line() == "Message was Sent!"
    expect(alice, type="chat", id=4, nick="guest-1", text="/nick is literal, ünïcödé", room=LOBBY)

    # Nick changes: announced to everyone who shares a room, the requester included; this is
    # how a plain client learns its guest nick.
    tut.send("/nick bob")
    assert tut.recv_line() == "* guest-1 is now known as bob"
    expect(alice, type="nick_changed", old="guest-1", new="bob")

    alice.send_json(type="nick", nick="BOB")  # case-insensitive uniqueness
    expect(
        alice,
        type="error",
        code="nick_taken",
        message="the nickname BOB is taken",
        fatal=False,
        id=None,
    )
    alice.send_json(type="nick", nick="Alicia")
    expect(alice, type="nick_changed", old="alice", new="Alicia")
    assert tut.recv_line() == "* alice is now known as Alicia"

    # Exactly the current nick: answered to the asker alone, old == new (section 4.10).
    alice.send_json(type="nick", nick="Alicia")
    expect(alice, type="nick_changed", old="Alicia", new="Alicia")
    tut.send("/nick bob")
    assert tut.recv_line() == "* bob is now known as bob"

    # Ping/pong and user lists (a renamed member keeps its place: join order).
    alice.send_json(type="ping", token=42)
    assert alice.recv_frame() == frame_of('{"type":"pong","token":42}')
    alice.send_json(type="ping")
    expect(alice, type="pong", token=None)
    alice.send_json(type="users")
    expect(alice, type="users", users=["Alicia", "bob"])
    tut.send("/who")
    assert tut.recv_line() == "* Users in #lobby: Alicia, bob"
    assert tut.recv_line() == "* You are bob"
    tut.send("/USERS")  # an alias of /who; command names are case-insensitive
    assert tut.recv_line() == "* Users in #lobby: Alicia, bob"
    assert tut.recv_line() == "* You are bob"

    # Refusals are errors in each client's dialect; the connections stay open. Errors about a
    # chat carry its id (section 4.5).
    alice.send_json(type="chat", text=" \t ", id="empty")
    assert alice.recv_frame() == frame_of(
        '{"type":"error","code":"empty_text","message":"empty messages are not sent",'
        '"fatal":false,"id":"empty"}'
    )
    alice.send_json(type="chat", text="x" * 1001, id="m7")
    assert alice.recv_frame() == frame_of(
        '{"type":"error","code":"text_too_long",'
        '"message":"message of 1001 characters is over the limit of 1000",'
        '"fatal":false,"id":"m7"}'
    )
    alice.send_json(type="chat", text="")
    expect_error(alice, "empty_text", id=None)
    tut.send("/DANCE")
    assert tut.recv_line() == "ERROR unknown_command: unknown command /DANCE" + UNKNOWN_COMMAND_TAIL
    # The echoed command is cut to 40 characters (section 5.1).
    tut.send("/Z" + "y" * 60)
    assert tut.recv_line() == (
        "ERROR unknown_command: unknown command /Z" + "y" * 39 + UNKNOWN_COMMAND_TAIL
    )
    tut.send("/nick")  # a known command used wrongly: its usage
    assert tut.recv_line() == "ERROR bad_command: usage: /nick NEW"
    tut.send("/msg bob")
    assert tut.recv_line() == "ERROR bad_command: usage: /msg NICK TEXT"
    tut.send("   ")
    assert tut.recv_line() == "ERROR empty_text: empty messages are not sent"

    # Plain chat after the nick change, then the tutorial's disconnect message.
    tut.send("bye all")
    assert tut.recv_line() == "Message was Sent!"
    expect(alice, type="chat", id=5, nick="bob", text="bye all", room=LOBBY)
    tut.send("!DISCONNECT")
    tut.expect_eof()
    expect(alice, type="leave", nick="bob", reason="quit")

    # Rich goodbye: no reply, the server closes.
    alice.send_json(type="bye", reason="done")
    alice.expect_eof()
    alice.close()
    tut.close()


def test_example_session_of_section_9(server) -> None:
    """Section 9, frame by frame."""
    alice = DocClient(server.address)
    tut = DocClient(server.address)
    alice.send('{"type":"hello","nick":"alice","version":1}')
    expect_frame(
        alice,
        '{"type":"welcome","nick":"alice","server":"game_chat","version":1,"limits":'
        '{"max_frame_bytes":8192,"max_text_chars":1000,"max_nick_chars":24,"chat_burst":20,'
        '"chat_per_minute":120,"data_burst":60,"data_per_second":30},"users":["alice"],'
        '"session":"SESSION","store":"STORE"}',
    )
    expect_frame(
        alice,
        '{"type":"joined","room":"#lobby","topic":"","members":'
        '[{"nick":"alice","away":"","oper":false,"muted":false}]}',
    )
    tut.send("Hello!")
    expect_frame(tut, "Message was Sent!")
    expect_frame(alice, '{"type":"join","nick":"guest-1","ts":TS,"room":"#lobby"}')
    expect_frame(
        alice, '{"type":"chat","id":1,"nick":"guest-1","text":"Hello!","ts":TS,"room":"#lobby"}'
    )
    alice.send('{"type":"chat","text":"hi guest-1","id":"c1"}')
    expect_frame(alice, '{"type":"ack","id":"c1","msg_id":2,"ts":TS}')
    expect_frame(tut, "alice: hi guest-1")
    tut.send("/nick bob")
    expect_frame(tut, "* guest-1 is now known as bob")
    expect_frame(alice, '{"type":"nick_changed","old":"guest-1","new":"bob","ts":TS}')
    alice.send('{"type":"join","room":"#team"}')
    expect_frame(
        alice,
        '{"type":"joined","room":"#team","topic":"","members":'
        '[{"nick":"alice","away":"","oper":false,"muted":false,"op":true}]}',
    )  # (who makes a room is its operator)
    tut.send("/join #team")
    expect_frame(tut, "* You are in #team. Here: alice, bob")
    expect_frame(alice, '{"type":"join","nick":"bob","ts":TS,"room":"#team"}')
    alice.send('{"type":"chat","text":"anyone in the lobby?","id":"c2","room":"#lobby"}')
    expect_frame(alice, '{"type":"ack","id":"c2","msg_id":3,"ts":TS}')
    expect_frame(tut, "[#lobby] alice: anyone in the lobby?")
    tut.send("/who")
    expect_frame(tut, "* Users in #team: alice, bob")
    expect_frame(tut, "* You are bob")
    alice.send('{"type":"ping","token":1}')
    expect_frame(alice, '{"type":"pong","token":1}')
    alice.send('{"type":"chat","text":" ","id":"c3"}')
    expect_frame(
        alice,
        '{"type":"error","code":"empty_text","message":"empty messages are not sent",'
        '"fatal":false,"id":"c3"}',
    )
    tut.send("!DISCONNECT")
    tut.expect_eof()
    expect_frame(alice, '{"type":"leave","nick":"bob","reason":"quit","ts":TS}')
    alice.send('{"type":"bye"}')
    alice.expect_eof()
    alice.close()
    tut.close()


def test_rich_handshake_retry_and_registration_errors(burst_server) -> None:
    server = burst_server  # a long run of refused frames: no flood limit in the way (6.5)
    alice = DocClient(server.address)
    hello(alice, "alice", ["alice"])

    other = DocClient(server.address)
    # A hello with a bad version still makes the connection rich; the client may retry.
    other.send_json(type="hello", nick="zed", version=2)
    expect_error(other, "bad_version")
    other.send_json(type="chat", text="too early", id=1)
    expect_error(other, "not_registered", id=None)
    refusals = [
        ("ＡＬＩＣＥ", "nick_taken"),  # fullwidth: the same nick after NFKC + casefold
        ("a b", "nick_invalid"),
        ("x" * 25, "nick_invalid"),
    ]
    for nick, code in refusals:
        other.send_json(type="hello", nick=nick, version=1)
        expect_error(other, code)
    hello(other, "José_Ж-1", ["alice", "José_Ж-1"])
    expect(alice, type="join", nick="José_Ж-1", room=LOBBY)

    other.send_json(type="hello", nick="again", version=1)
    expect_error(other, "already_registered")
    for bad, code in [
        (b"[1]", "bad_json"),
        (b"{nope", "bad_json"),
        (b"\xff", "bad_utf8"),
        (b'{"type":"dance"}', "bad_message"),
        (b'{"type":"chat"}', "bad_message"),
        (b'{"type":"chat","text":"x","id":true}', "bad_message"),
        (b'{"type":"chat","text":5,"id":"m9"}', "bad_message"),  # malformed: id is null
        (b'{"type":"chat","text":"x","id":"' + b"i" * 65 + b'"}', "bad_message"),
        (b'{"type":"chat","text":"x","retry":1}', "bad_message"),  # booleans are booleans
        (b'{"type":"history","room":"#lobby","limit":2.0}', "bad_message"),
        (b'{"type":"join"}', "bad_message"),
        # Escaped lone surrogates, in any field (section 4.1): refused, not fatal.
        (b'{"type":"chat","text":"a\\ud800b","id":"s1"}', "bad_message"),
        (b'{"type":"chat","text":"x","id":"\\udfff"}', "bad_message"),
        (b'{"type":"\\ud800"}', "bad_message"),
        (b'{"type":"nick","nick":"\\ud800"}', "bad_message"),
        (b'{"type":"ping","token":"\\udbff"}', "bad_message"),
        (b'{"type":"join","room":"#\\udbff"}', "bad_message"),
        (b'{"type":"bye","reason":"\\ud800"}', "bad_message"),  # not even a bye
    ]:
        other.send(bad)
        expect_error(other, code)
    # A surrogate pair is fine; unknown keys are ignored whatever they hold.
    other.send(b'{"type":"chat","text":"ok \\ud83d\\ude00","id":"p","x":"\\ud800"}')
    expect(other, type="ack", id="p", msg_id=1)
    ok = expect(alice, type="chat", id=1, nick="José_Ж-1", text="ok 😀", room=LOBBY)

    # Leave reasons are cleaned like chat text and cut to 200 characters (section 4.3).
    other.send_json(type="bye", reason="din\nner\u202e\x1b " + "z" * 300)
    other.expect_eof()
    expect(alice, type="leave", nick="José_Ж-1", reason="din ner " + "z" * 192)
    other.close()

    # Nothing left after cleaning: "quit". A later member gets the lobby's history replayed.
    third = DocClient(server.address)
    hello(third, "third", ["alice", "third"], history=[ok])
    expect(alice, type="join", nick="third", room=LOBBY)
    third.send_json(type="bye", reason=" \t\x1b\u202e ")
    third.expect_eof()
    expect(alice, type="leave", nick="third", reason="quit")
    third.close()

    # Plain /quit REASON, cleaned the same way.
    tut = DocClient(server.address)
    tut.send("/quit  see\tyou\x1b[0m ")
    tut.expect_eof()
    expect(alice, type="join", nick="guest-1", room=LOBBY)
    expect(alice, type="leave", nick="guest-1", reason="see you[0m")
    tut.close()
    alice.close()


def test_framing_rules(server) -> None:
    # Padding with NULs and leading zeros are accepted (section 2.2); a plain first frame.
    tut = DocClient(server.address)
    tut.send_raw(b"\x00\x000005" + b"\x00" * 58 + b"hello")
    assert tut.recv_line() == "Message was Sent!"
    tut.send("/who")  # section 5.3: the guest nick shows in the user list
    assert tut.recv_line() == "* Users in #lobby: guest-1"
    assert tut.recv_line() == "* You are guest-1"
    # Oversize frame: fatal error in the connection's dialect, then EOF (section 2.4).
    tut.send_raw(b"8193".ljust(64))
    assert tut.recv_line() == (
        "ERROR frame_too_large: frame of 8193 bytes is over the limit of 8192 bytes"
    )
    tut.expect_eof()
    tut.close()

    # A bad header before any dialect is known: a rich error frame, then EOF.
    for header in (b"+5", b"5 5", b"five", b""):
        bad = DocClient(server.address)
        bad.send_raw(header.ljust(64) + b"hello")
        expect_error(bad, "bad_header", fatal=True)
        bad.expect_eof()
        bad.close()
    # The exact frame of section 7.
    bad = DocClient(server.address)
    bad.send_raw(b"+5".ljust(64) + b"hello")
    assert bad.recv_frame() == frame_of(
        '{"type":"error","code":"bad_header",'
        '"message":"frame header must be a decimal length, got b\'+5\'","fatal":true,"id":null}'
    )
    bad.expect_eof()
    bad.close()


def alice_and_guest(address: tuple[str, int]) -> tuple[DocClient, DocClient, dict[str, object]]:
    """alice (rich), then a tutorial client whose first line "hi" makes it guest-1; returns
    both and the chat alice got."""
    alice = DocClient(address)
    hello(alice, "alice", ["alice"])
    tut = DocClient(address)
    tut.send("hi")
    assert tut.recv_line() == "Message was Sent!"
    expect(alice, type="join", nick="guest-1", room=LOBBY)
    hi = expect(alice, type="chat", id=1, nick="guest-1", text="hi", room=LOBBY)
    return alice, tut, hi


def test_shutdown_sends_bye(server) -> None:
    alice, tut, _ = alice_and_guest(server.address)

    # Connections that are not members get a rich bye too (section 8.6).
    silent = DocClient(server.address)  # nothing sent
    keeping = DocClient(server.address)
    keeping.keepalive()  # only keepalives: still no dialect
    partial = DocClient(server.address)
    partial.send_raw(b"5".ljust(64) + b"he")  # half a frame
    refused = DocClient(server.address)
    refused.send_json(type="hello", nick="ALICE", version=1)  # rich, still saying hello
    expect_error(refused, "nick_taken")

    server.shutdown()
    bye = frame_of('{"type":"bye","reason":"server shutting down"}')
    for client in (alice, silent, keeping, partial, refused):
        assert client.recv_frame() == bye
        client.expect_eof()
        client.close()
    assert tut.recv_line() == "* Disconnected: server shutting down"
    tut.expect_eof()
    tut.close()


def test_server_full_and_registration_deadline(server_factory) -> None:
    srv = server_factory(max_clients=2, hello_timeout=0.5)
    # Two slots. Keepalives do not count as registering (section 2.3).
    idle = DocClient(srv.address)
    idle.keepalive()
    # Neither do refused hellos (section 8.1): this connection is rich but never registers.
    retrier = DocClient(srv.address)
    retrier.send(b'{"type":"hello","nick":"\\ud800","version":1}')
    expect_error(retrier, "bad_message")
    # While both hold a slot, the next connection is refused without sending anything.
    refused = DocClient(srv.address)
    assert refused.recv_frame() == frame_of(
        '{"type":"error","code":"server_full",'
        '"message":"server full (2 clients), try again later","fatal":true,"id":null}'
    )
    refused.expect_eof()
    refused.close()
    idle.keepalive()
    retrier.send_json(type="hello", nick="zed", version=2)
    expect_error(retrier, "bad_version")
    # Not registered in time: a fatal rich error, then EOF (section 8.1).
    timeout = frame_of(
        '{"type":"error","code":"hello_timeout",'
        '"message":"not registered within 0.5 s","fatal":true,"id":null}'
    )
    for client in (idle, retrier):
        assert client.recv_frame() == timeout
        client.expect_eof()
        client.close()

    # Once registered there is no deadline: a plain first line registers at once, a rich
    # hello when it is accepted. A third connection that never registers is the clock: when
    # its deadline has passed, so have the others'.
    srv = server_factory(hello_timeout=0.5)
    tut = DocClient(srv.address)
    tut.send("hi")
    assert tut.recv_line() == "Message was Sent!"
    alice = DocClient(srv.address)
    hi = {"type": "chat", "id": 1, "nick": "guest-1", "text": "hi", "room": LOBBY}
    alice.send_json(type="hello", nick="alice", version=1)
    expect_welcome(alice, "alice", ["guest-1", "alice"])
    expect(alice, type="joined", room=LOBBY, topic="",
           members=[member("guest-1"), member("alice")])  # fmt: skip
    replay = alice.recv_json()
    assert replay == {**hi, "ts": replay["ts"], "history": True}
    assert tut.recv_line() == "* alice joined #lobby"
    # The clock: a connection that sent half a header never registers; its hello_timeout
    # is rich JSON, as it has no dialect (section 8.1).
    clock = DocClient(srv.address)
    clock.send_raw(b"12")
    assert clock.recv_json()["code"] == "hello_timeout"
    clock.expect_eof()
    clock.close()
    tut.send("/who")
    assert tut.recv_line() == "* Users in #lobby: guest-1, alice"
    assert tut.recv_line() == "* You are guest-1"
    alice.send_json(type="users")
    expect(alice, type="users", users=["guest-1", "alice"])
    tut.close()
    alice.close()


def test_rooms_topic_part_and_plain_room_prefix(server) -> None:
    alice, tut, hi = alice_and_guest(server.address)
    bob = DocClient(server.address)
    hello(bob, "bob", ["alice", "guest-1", "bob"], history=[hi])
    expect(alice, type="join", nick="bob", room=LOBBY)
    assert tut.recv_line() == "* bob joined #lobby"

    # Joining makes the room (section 4.6); the first spelling is kept, names compare like
    # nicks. The joiner gets "joined", the room's members get "join".
    alice.send_json(type="join", room="#Team")
    expect(alice, type="joined", room="#Team", topic="", members=[member("alice", op=True)])
    bob.send_json(type="join", room="#team")
    expect(
        bob,
        type="joined",
        room="#Team",
        topic="",
        members=[member("alice", op=True), member("bob")],
    )
    expect(alice, type="join", nick="bob", room="#Team")

    # A topic goes to the room's members; "rooms" lists every room.
    bob.send_json(type="topic", room="#team", topic="push B")
    expect(bob, type="topic", room="#Team", topic="push B", nick="bob")
    expect(alice, type="topic", room="#Team", topic="push B", nick="bob")
    alice.send_json(type="rooms")
    expect(
        alice,
        type="rooms",
        rooms=[
            {"room": LOBBY, "members": 3, "topic": ""},
            {"room": "#Team", "members": 2, "topic": "push B"},
        ],
    )

    # A chat with a room goes to that room only: tut, only in #lobby, gets nothing (the ack
    # comes after the others' copies are queued, so tut's /who reply would come after it).
    alice.send_json(type="chat", room="#Team", text="team line", id="t1")
    expect(alice, type="ack", id="t1", msg_id=2)
    team_line = expect(bob, type="chat", id=2, nick="alice", text="team line", room="#Team")
    tut.send("/who #team")
    assert tut.recv_line() == "* Users in #Team: alice, bob"
    assert tut.recv_line() == "* You are guest-1"

    # A plain /join: the "You are in" line, then the room's history as "[history]" lines.
    tut.send("/join team")  # the # may be left out in /join
    assert tut.recv_line() == "* You are in #Team. Topic: push B. Here: alice, bob, guest-1"
    assert tut.recv_line() == "[history] alice: team line"
    expect(alice, type="join", nick="guest-1", room="#Team")
    expect(bob, type="join", nick="guest-1", room="#Team")

    # The plain client's current room is #Team now: lines of its other rooms are prefixed.
    alice.send_json(type="chat", room=LOBBY, text="lobby line", id="l1")
    expect(alice, type="ack", id="l1", msg_id=3)
    expect(bob, type="chat", id=3, nick="alice", text="lobby line", room=LOBBY)
    assert tut.recv_line() == "[#lobby] alice: lobby line"
    # A rich chat without "room" goes to the sender's current room: the one it joined last.
    alice.send_json(type="chat", text="no room given", id="n1")
    expect(alice, type="ack", id="n1", msg_id=4)
    expect(bob, type="chat", id=4, nick="alice", text="no room given", room="#Team")
    assert tut.recv_line() == "alice: no room given"
    # Plain lines go to the current room; /topic without a room too.
    tut.send("team here")
    assert tut.recv_line() == "Message was Sent!"
    expect(alice, type="chat", id=5, nick="guest-1", text="team here", room="#Team")
    expect(bob, type="chat", id=5, nick="guest-1", text="team here", room="#Team")
    tut.send("/me waves")
    assert tut.recv_line() == "Message was Sent!"
    expect(alice, type="chat", id=6, nick="guest-1", text="waves", room="#Team", action=True)
    expect(bob, type="chat", id=6, nick="guest-1", text="waves", room="#Team", action=True)
    tut.send("/topic push A")
    assert tut.recv_line() == "* guest-1 set the topic of #Team: push A"
    expect(alice, type="topic", room="#Team", topic="push A", nick="guest-1")
    expect(bob, type="topic", room="#Team", topic="push A", nick="guest-1")
    tut.send("/topic #lobby all welcome")
    assert tut.recv_line() == "[#lobby] * guest-1 set the topic of #lobby: all welcome"
    expect(alice, type="topic", room=LOBBY, topic="all welcome", nick="guest-1")
    expect(bob, type="topic", room=LOBBY, topic="all welcome", nick="guest-1")

    # Parting: every member of the room is told, the parter included.
    bob.send_json(type="part", room="#team", reason="brb")
    expect(bob, type="part", room="#Team", nick="bob", reason="brb")
    expect(alice, type="part", room="#Team", nick="bob", reason="brb")
    assert tut.recv_line() == "* bob left #Team (brb)"
    bob.send_json(type="chat", room="#Team", text="still there?", id="g")
    expect(bob, **error_of("not_in_room", "you are not in #Team", id="g"))
    bob.send_json(type="chat", room="#nowhere", text="hello?", id="h")
    expect(bob, **error_of("no_such_room", "you are not in #nowhere", id="h"))
    bob.send_json(type="join", room="team")
    expect(bob, **error_of("bad_room", "room names start with #, e.g. #team"))

    # A plain /part leaves the current room; the current room is then the lobby again.
    tut.send("/part")
    assert tut.recv_line() == "* guest-1 left #Team"
    expect(alice, type="part", room="#Team", nick="guest-1", reason="")
    tut.send("back")
    assert tut.recv_line() == "Message was Sent!"
    expect(alice, type="chat", id=7, nick="guest-1", text="back", room=LOBBY)
    expect(bob, type="chat", id=7, nick="guest-1", text="back", room=LOBBY)

    # A room nobody is in is gone (the lobby stays).
    alice.send_json(type="part", room="#Team")
    expect(alice, type="part", room="#Team", nick="alice", reason="")
    alice.send_json(type="rooms")
    expect(alice, type="rooms", rooms=[{"room": LOBBY, "members": 3, "topic": "all welcome"}])
    tut.send("/rooms")
    assert tut.recv_line() == "* Rooms: #lobby (3): all welcome"
    for client in (alice, bob, tut):
        client.close()
    del team_line


def test_private_messages_and_away(server) -> None:
    alice = DocClient(server.address)
    hello(alice, "alice", ["alice"])
    bob = DocClient(server.address)
    hello(bob, "bob", ["alice", "bob"])
    expect(alice, type="join", nick="bob", room=LOBBY)
    tut = DocClient(server.address)
    tut.send("/who")  # a command as the first line registers too
    assert tut.recv_line() == "* Users in #lobby: alice, bob, guest-1"
    assert tut.recv_line() == "* You are guest-1"
    expect(alice, type="join", nick="guest-1", room=LOBBY)
    expect(bob, type="join", nick="guest-1", room=LOBBY)

    # Away: told to everyone who shares a room with you, you included (section 4.7).
    bob.send_json(type="away", reason="lunch")
    expect(bob, type="away", nick="bob", reason="lunch")
    expect(alice, type="away", nick="bob", reason="lunch")
    assert tut.recv_line() == "* bob is away: lunch"

    # A private message: the recipient gets "msg", the sender an ack, then (recipient away)
    # a notice.
    alice.send_json(type="msg", to="BOB", text="psst", id="p1")
    psst = expect(bob, type="msg", id=1, nick="alice", to="bob", text="psst")
    expect(alice, type="ack", id="p1", msg_id=1, ts=psst["ts"])
    assert alice.recv_frame() == frame_of(
        '{"type":"notice","text":"bob is away: lunch","room":null}'
    )
    tut.send("/msg bob are you there?")
    assert tut.recv_line() == "Message was Sent!"
    assert tut.recv_line() == "* bob is away: lunch"
    expect(bob, type="msg", id=2, nick="guest-1", to="bob", text="are you there?")
    alice.send_json(type="msg", to="guest-1", text="hi tut", id="p2")
    expect(alice, type="ack", id="p2", msg_id=3)
    assert tut.recv_line() == "[private] alice: hi tut"
    alice.send_json(type="msg", to="guest-1", text="waves", id="p2a", action=True)
    expect(alice, type="ack", id="p2a", msg_id=4)
    assert tut.recv_line() == "[private] * alice waves"
    alice.send_json(type="msg", to="nobody", text="hello?", id="p3")
    expect(alice, **error_of("no_such_nick", "nobody is called nobody", id="p3"))

    # who: away and operator marks; rich without a room: everyone on the server.
    alice.send_json(type="who")
    expect(
        alice,
        type="who",
        room=None,
        members=[member("alice"), member("bob", away="lunch"), member("guest-1")],
    )
    tut.send("/who")
    assert tut.recv_line() == "* Users in #lobby: alice, bob (away: lunch), guest-1"
    assert tut.recv_line() == "* You are guest-1"

    # An empty reason: back.
    bob.send_json(type="away")
    expect(bob, type="away", nick="bob", reason="")
    expect(alice, type="away", nick="bob", reason="")
    assert tut.recv_line() == "* bob is back"
    alice.send_json(type="msg", to="bob", text="welcome back", id="p4")
    expect(bob, type="msg", id=5, nick="alice", to="bob", text="welcome back")
    expect(alice, type="ack", id="p4", msg_id=5)
    alice.send_json(type="ping", token="no notice")  # nothing came between: no notice
    expect(alice, type="pong", token="no notice")
    for client in (alice, bob, tut):
        client.close()


def test_history_replay_paging_and_retry(server_factory) -> None:
    srv = server_factory(history_replay=3)
    alice = DocClient(srv.address)
    hello(alice, "alice", ["alice"])
    lines = []
    for n in range(1, 6):
        alice.send_json(type="chat", text=f"line {n}", id=f"c{n}", action=n == 5)
        ack = expect(alice, type="ack", id=f"c{n}", msg_id=n)
        chat = {"type": "chat", "id": n, "nick": "alice", "text": f"line {n}"}
        chat.update(ts=ack["ts"], room=LOBBY, **({"action": True} if n == 5 else {}))
        lines.append(chat)
    # A retry of a line the server has: the same ack again, nothing delivered (section 4.5).
    alice.send_json(type="chat", text="line 2", id="c2", retry=True)
    expect(alice, type="ack", id="c2", msg_id=2, ts=lines[1]["ts"])

    # Joining replays the newest lines (here 3, --history-replay), "history": true.
    bob = DocClient(srv.address)
    hello(bob, "bob", ["alice", "bob"], history=lines[2:])
    expect(alice, type="join", nick="bob", room=LOBBY)

    # Older pages: ids below "before", oldest first; "more" says whether older ones exist.
    def paged(chat: dict[str, object]) -> dict[str, object]:
        return replayed(chat)

    bob.send_json(type="history", room=LOBBY, before=3, limit=1)
    expect(bob, type="history", room=LOBBY, messages=[paged(lines[1])], more=True)
    bob.send_json(type="history", room=LOBBY, before=2, limit=1)
    expect(bob, type="history", room=LOBBY, messages=[paged(lines[0])], more=False)
    bob.send_json(type="history", room=LOBBY)  # no "before": the newest
    expect(bob, type="history", room=LOBBY, messages=[paged(c) for c in lines], more=False)
    bob.send_json(type="history", room="#elsewhere")
    expect(bob, **error_of("no_such_room", "you are not in #elsewhere"))

    # A plain client: no replay on its first line; [history] lines when it joins a room.
    tut = DocClient(srv.address)
    tut.send("/join #lobby")
    assert tut.recv_line() == "* You are in #lobby. Here: alice, bob, guest-1"
    expect(alice, type="join", nick="guest-1", room=LOBBY)
    expect(bob, type="join", nick="guest-1", room=LOBBY)
    tut.send("/join #side")
    assert tut.recv_line() == "* You are in #side. Here: guest-1"
    tut.send("/join #lobby")  # already a member: made current again, no replay
    assert tut.recv_line() == "* You are in #lobby. Here: alice, bob, guest-1"
    tut.send("/part #lobby see you")
    assert tut.recv_line() == "* guest-1 left #lobby (see you)"
    expect(alice, type="part", room=LOBBY, nick="guest-1", reason="see you")
    expect(bob, type="part", room=LOBBY, nick="guest-1", reason="see you")
    tut.send("/join #lobby")  # a new join: the newest lines again
    assert tut.recv_line() == "* You are in #lobby. Here: alice, bob, guest-1"
    assert tut.recv_line() == "[history] alice: line 3"
    assert tut.recv_line() == "[history] alice: line 4"
    assert tut.recv_line() == "[history] * alice line 5"
    expect(alice, type="join", nick="guest-1", room=LOBBY)
    expect(bob, type="join", nick="guest-1", room=LOBBY)
    tut.send("/history")  # plain clients only get the count
    page = tut.recv_line().split("\n")
    assert page[0] == "* 5 older messages of #lobby:"
    assert len(page) == 6 and all(line.startswith("[history] ") for line in page[1:])
    for client in (alice, bob, tut):
        client.close()


def test_operators_kick_mute_and_ban(server_factory) -> None:
    srv = server_factory(oper_password="pw")
    op = DocClient(srv.address)
    hello(op, "op", ["op"])
    bob = DocClient(srv.address)
    hello(bob, "bob", ["op", "bob"])
    expect(op, type="join", nick="bob", room=LOBBY)
    tut = DocClient(srv.address)
    tut.send("hi")
    assert tut.recv_line() == "Message was Sent!"
    for client in (op, bob):
        expect(client, type="join", nick="guest-1", room=LOBBY)
        hi = expect(client, type="chat", id=1, nick="guest-1", text="hi", room=LOBBY)

    bob.send_json(type="kick", nick="op")
    expect(bob, **error_of("not_operator", "only operators can do that (/oper PASSWORD)"))
    op.send_json(type="oper", password="wrong")
    expect(op, **error_of("bad_password", "wrong operator password"))
    op.send_json(type="oper", password="pw")
    assert op.recv_frame() == frame_of(
        '{"type":"notice","text":"You are now an operator. /help lists the operator commands.",'
        '"room":null}'
    )
    tut.send("/who")
    assert tut.recv_line() == "* Users in #lobby: @op, bob, guest-1"
    assert tut.recv_line() == "* You are guest-1"

    # Mute: a notice in every room of the target; the target's chats are refused.
    op.send_json(type="mute", nick="guest-1", minutes=5)
    muted = notice("guest-1 was muted by op for 5 minute(s)", LOBBY)
    expect(op, **muted)
    expect(bob, **muted)
    assert tut.recv_line() == "* guest-1 was muted by op for 5 minute(s)"
    tut.send("can I talk?")
    assert tut.recv_line() == "ERROR muted: you are muted"
    op.send_json(type="who", room=LOBBY)
    expect(
        op,
        type="who",
        room=LOBBY,
        members=[member("op", oper=True), member("bob"), member("guest-1", muted=True)],
    )
    op.send_json(type="unmute", nick="guest-1")
    expect(op, **notice("guest-1 may talk again (op)", LOBBY))
    expect(bob, **notice("guest-1 may talk again (op)", LOBBY))
    assert tut.recv_line() == "* guest-1 may talk again (op)"

    # Kick: a notice to the target's rooms, a fatal "kicked" error to the target, then EOF;
    # "leave" to the others.
    op.send_json(type="kick", nick="bob", reason="spam")
    kicked = notice("bob was kicked by op: spam", LOBBY)
    expect(op, **kicked)
    expect(op, type="leave", nick="bob", reason="kicked by op: spam")
    expect(bob, **kicked)
    assert bob.recv_frame() == frame_of(
        '{"type":"error","code":"kicked","message":"you were kicked by op: spam",'
        '"fatal":true,"id":null}'
    )
    bob.expect_eof()
    assert tut.recv_line() == "* bob was kicked by op: spam"
    assert tut.recv_line() == "* bob left (kicked by op: spam)"
    op.send_json(type="kick", nick="bob")
    expect(op, **error_of("no_such_nick", "nobody is called bob"))

    # Bans: a nick ban refuses that nick (not fatal); unban answers with a notice.
    op.send_json(type="ban", target="mallory", minutes=10, reason="rude")
    expect(op, **notice("mallory is banned by op for 10 minute(s): rude"))
    mallory = DocClient(srv.address)
    mallory.send_json(type="hello", nick="Mallory", version=1)
    expect(
        mallory,
        **error_of("banned", "you are banned from this server for 10 more minute(s): rude"),
    )
    op.send_json(type="unban", target="mallory")
    expect(op, **notice("mallory is no longer banned"))
    op.send_json(type="unban", target="mallory")
    expect(op, **notice("mallory was not banned"))
    lobby = [member("op", oper=True), "guest-1", "Mallory"]
    hello(mallory, "Mallory", ["op", "guest-1", "Mallory"], members=lobby, history=[hi])
    mallory.close()
    expect(op, type="join", nick="Mallory", room=LOBBY)
    expect(op, type="leave", nick="Mallory", reason="connection lost")
    assert tut.recv_line() == "* Mallory joined #lobby"
    assert tut.recv_line() == "* Mallory left (connection lost)"

    # An address ban removes everyone connected from it (here: everyone but the operator)
    # and refuses new connections from it before they send anything.
    op.send_json(type="ban", target="127.0.0.1")
    expect(op, **notice("127.0.0.1 is banned by op for good"))
    expect(op, **notice("guest-1 was banned by op for good", LOBBY))
    assert tut.recv_line() == "* guest-1 was banned by op for good"
    assert tut.recv_line() == "ERROR banned: you were banned by op for good"
    tut.expect_eof()
    refused = DocClient(srv.address)
    assert refused.recv_frame() == frame_of(
        '{"type":"error","code":"banned","message":"you are banned from this server",'
        '"fatal":true,"id":null}'
    )
    refused.expect_eof()
    for client in (op, bob, tut, refused):
        client.close()


def test_failed_oper_tries_wait_longer_and_help(server_factory) -> None:
    """Section 4.9: four failures are free, then each makes the next try wait (1 s, 2 s, ...),
    per connection and per address; a try refused for waiting is no failure."""
    srv = server_factory(oper_password="pw")
    eve = DocClient(srv.address)
    hello(eve, "eve", ["eve"])
    ally = DocClient(srv.address)  # the same address (127.0.0.1)
    hello(ally, "ally", ["eve", "ally"])
    expect(eve, type="join", nick="ally", room=LOBBY)
    for _ in range(5):
        eve.send_json(type="oper", password="guess")
        expect(eve, **error_of("bad_password", "wrong operator password"))
    wait_1 = doc_code_block("too many failed attempts: try again in 1 s")[0]
    eve.send_json(type="oper", password="pw")  # even the right password waits now
    expect_frame(eve, wait_1)
    ally.send_json(type="oper", password="pw")  # and so does everyone from the address
    expect_frame(ally, wait_1)
    time.sleep(1.1)
    eve.send_json(type="oper", password="guess")  # the 6th failure: the refused tries were none
    expect(eve, **error_of("bad_password", "wrong operator password"))
    eve.send_json(type="oper", password="guess")
    expect(eve, **error_of("rate_limited", "too many failed attempts: try again in 2 s"))
    time.sleep(2.1)
    ally.send_json(type="oper", password="pw")  # the right password: the address starts afresh
    expect(ally, **notice("You are now an operator. /help lists the operator commands."))
    eve.send_json(type="oper", password="guess")  # but eve's connection keeps its count
    expect(eve, **error_of("bad_password", "wrong operator password"))
    eve.send_json(type="oper", password="guess")
    expect(eve, **error_of("rate_limited", "too many failed attempts: try again in 4 s"))

    # help: one notice per command.
    eve.send_json(type="help")
    first = expect(eve, **notice("/join #ROOM — join a room (made if new) and make it current"))
    assert first
    texts = []
    while not texts or not texts[-1].startswith("//TEXT"):
        message = eve.recv_json()
        assert message["type"] == "notice" and message["room"] is None, message
        texts.append(str(message["text"]))
    assert texts[-1] == "//TEXT — send a line that starts with a slash"
    assert "/oper PASSWORD — become an operator" in texts
    assert not any(t.startswith("/kick") for t in texts)  # operator commands: operators only
    for client in (eve, ally):
        client.close()


def test_server_password(server_factory) -> None:
    srv = server_factory(password="hunter2")
    rich = DocClient(srv.address)
    rich.send_json(type="hello", nick="x", version=1)
    assert rich.recv_frame() == frame_of(
        '{"type":"error","code":"bad_password","message":"this server needs a password",'
        '"fatal":true,"id":null}'
    )
    rich.expect_eof()
    rich = DocClient(srv.address)
    rich.send_json(type="hello", nick="x", version=1, password="nope")
    expect(rich, **error_of("bad_password", "wrong password", fatal=True))
    rich.expect_eof()
    rich = DocClient(srv.address)
    rich.send_json(type="hello", nick="x", version=1, password="hunter2")
    expect_welcome(rich, "x", ["x"])
    expect(rich, type="joined", room=LOBBY, topic="", members=[member("x")])

    plain = DocClient(srv.address)
    plain.send("hi")
    assert plain.recv_line() == (
        "ERROR bad_password: this server needs a password: send /pass PASSWORD first"
    )
    plain.expect_eof()
    plain = DocClient(srv.address)
    plain.send("/pass hunter2")
    assert plain.recv_line() == "* Welcome, you are guest-1"
    expect(rich, type="join", nick="guest-1", room=LOBBY)
    plain.send("hello")
    assert plain.recv_line() == "Message was Sent!"
    expect(rich, type="chat", id=1, nick="guest-1", text="hello", room=LOBBY)
    plain.close()
    rich.close()


# --- durability and coming back (sections 4.5, 4.8, 4.12, 8.1, 8.5) ---------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"
PAGE_BYTES = 256 * 1024  # section 4.8: a page stops growing at 256 KiB


def doc_code_block(containing: str) -> list[str]:
    """The non-empty lines, stripped, of the one code block of the document that contains
    ``containing``."""
    blocks = DOC.read_text(encoding="utf-8").split("```")[1::2]
    (block,) = [b for b in blocks if containing in b]
    return [line.strip() for line in block.splitlines()[1:] if line.strip()]


def doc_exchange(containing: str) -> list[tuple[str, str, str]]:
    """(who, "C" or "S", payload) for each ``[WHO] C> PAYLOAD`` / ``[WHO] S> PAYLOAD`` line of
    the document's code block that contains ``containing``. A ``"ts"`` number becomes ``TS``
    (times vary, expect_frame checks them); other lines (comments) are left out."""
    out = []
    for line in doc_code_block(containing):
        match = re.fullmatch(r"(?:(\w+) +)?([CS])> (.+)", line)
        if match:
            payload = re.sub(r'"ts":[0-9.]+', '"ts":TS', match.group(3))
            out.append((match.group(1) or "", match.group(2), payload))
    return out


def play(clients: dict[str, DocClient], exchange: list[tuple[str, str, str]]) -> None:
    """Send the ``C>`` payloads and expect the ``S>`` frames of a document example, each on
    its client, in the order given (a payload with ``...`` is abridged: it is not checked)."""
    for who, direction, payload in exchange:
        if direction == "C":
            clients[who].send(payload)
        elif "..." not in payload:
            expect_frame(clients[who], payload)


def compact(value: object) -> str:
    """JSON as the server writes it (section 4.1)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def members_json(*nicks: str) -> str:
    return compact([member(nick) for nick in nicks])


def chat_json(id: int, nick: str, text: str, ts: str = "TS", history: bool = False) -> str:
    """A chat frame of #lobby as the server writes it (section 4.3)."""
    tail = ',"history":true' if history else ""
    return (
        f'{{"type":"chat","id":{id},"nick":"{nick}","text":"{text}","ts":{ts},'
        f'"room":"#lobby"{tail}}}'
    )


def welcome_json(nick: str, *users: str) -> str:
    return (
        f'{{"type":"welcome","nick":"{nick}","server":"game_chat","version":1,"limits":'
        '{"max_frame_bytes":8192,"max_text_chars":1000,"max_nick_chars":24,"chat_burst":20,'
        '"chat_per_minute":120,"data_burst":60,"data_per_second":30},'
        f'"users":{compact(list(users))},"session":"SESSION","store":"STORE"}}'
    )


def say_lines(
    client: DocClient, nick: str, texts: list[str], room: str | None = LOBBY, lands_in: str = ""
) -> list[dict[str, object]]:
    """Send chat lines (each text is its own id) to ``room`` (None: the current room, which is
    ``lands_in``) and wait for the acks; the chat objects the others get."""
    for text in texts:
        client.send_json(type="chat", text=text, id=text, room=room)
    said = []
    for text in texts:
        ack = client.recv_json()  # an ordinary ack: no "unsaved" key (section 4.5)
        assert set(ack) == {"type", "id", "msg_id", "ts"} and ack["id"] == text, ack
        chat = {"type": "chat", "id": ack["msg_id"], "nick": nick, "text": text, "ts": ack["ts"]}
        said.append({**chat, "room": room or lands_in})
    return said


def answering_pings(client: DocClient) -> dict[str, object]:
    """The next message that is not a ping; pings are answered with a pong (section 8.1)."""
    while True:
        message = client.recv_json()
        if message["type"] != "ping":
            return message
        client.send_json(type="pong", token=message["token"])


def quiet_for(client: DocClient, seconds: float) -> bool:
    """True if nothing at all (no frame, no EOF) arrives within ``seconds``."""
    client.sock.settimeout(seconds)
    try:
        client.recv_frame()
    except TimeoutError:
        return True
    finally:
        client.sock.settimeout(TIMEOUT)
    return False


def test_welcome_hex_dump_of_section_9(server) -> None:
    """The dump in the notes of section 9, ``ss`` / ``hh`` marking session and store bytes."""
    notes = DOC.read_text(encoding="utf-8").split("digits of the store:", 1)[1]
    block = notes.split("```", 2)[1]
    cells = [cell for line in block.strip().splitlines() for cell in line.split()[1:]]
    alice = DocClient(server.address)
    alice.send(b'{"type":"hello","nick":"alice","version":1}')
    data = alice.recv_frame()
    assert data is not None and len(data) == len(cells) == 363
    assert data[:HEADER_SIZE] == b"299".ljust(HEADER_SIZE)
    welcome = json.loads(data[HEADER_SIZE:])
    marked = data.replace(welcome["session"].encode(), b"\x01" * 24)
    marked = marked.replace(welcome["store"].encode(), b"\x02" * 16)
    assert ["ss" if b == 1 else "hh" if b == 2 else f"{b:02x}" for b in marked] == cells
    alice.close()


def test_resume_replays_exactly_the_lines_after_the_last_id(server) -> None:
    """Section 4.12, its first example: alice had lines 1 to 3, bob said 4 and 5 since."""
    alice = DocClient(server.address)
    first = hello(alice, "alice", ["alice"])
    bob = DocClient(server.address)
    hello(bob, "bob", ["alice", "bob"])
    expect(alice, type="join", nick="bob", room=LOBBY)
    for line in say_lines(bob, "bob", ["line 1", "line 2", "line 3"]):
        expect(alice, **line)
    alice.send_json(type="bye")
    alice.expect_eof()
    expect(bob, type="leave", nick="alice", reason="quit")
    say_lines(bob, "bob", ["line 4", "line 5"])

    # Her token names nobody any more: ignored. Her store is the server's: the id counts.
    again = DocClient(server.address)
    again.send(
        f'{{"type":"hello","nick":"alice","version":1,"session":"{first["session"]}",'
        f'"store":"{first["store"]}","resume":{{"#lobby":3}}}}'
    )
    data = expect_frame(again, welcome_json("alice", "bob", "alice"))
    welcome = json.loads(data[HEADER_SIZE:])
    assert welcome["store"] == first["store"] and welcome["session"] != first["session"]
    expect_frame(
        again,
        '{"type":"joined","room":"#lobby","topic":"","members":'
        + members_json("bob", "alice")
        + "}",
    )
    expect_frame(again, chat_json(4, "bob", "line 4", history=True))
    expect_frame(again, chat_json(5, "bob", "line 5", history=True))
    expect(bob, type="join", nick="alice", room=LOBBY)
    # Then the live lines: nothing missed, nothing twice.
    (live,) = say_lines(bob, "bob", ["line 6"])
    expect(again, **live)
    for client in (again, bob):
        client.close()


def test_resume_with_a_gap_then_paging_forwards(server_factory) -> None:
    """Sections 4.12 and 4.8: 30 lines missed, 10 replayed, the gap paged forwards."""
    srv = server_factory(history_replay=10, limits=NO_FLOOD_LIMITS)  # bob says 30 at once
    alice = DocClient(srv.address)
    first = hello(alice, "alice", ["alice"])
    bob = DocClient(srv.address)
    hello(bob, "bob", ["alice", "bob"])
    expect(alice, type="join", nick="bob", room=LOBBY)
    (seen,) = say_lines(bob, "bob", ["seen"])
    expect(alice, **seen)
    alice.close()  # the connection just breaks
    expect(bob, type="leave", nick="alice", reason="connection lost")
    missed = say_lines(bob, "bob", [f"missed {n}" for n in range(30)])
    assert [line["id"] for line in missed] == list(range(2, 32))

    again = DocClient(srv.address)
    again.send_json(
        type="hello",
        nick="alice",
        version=1,
        session=first["session"],
        store=first["store"],
        resume={LOBBY: 1},
    )
    expect_welcome(again, "alice", ["bob", "alice"])
    expect_frame(
        again,
        '{"type":"joined","room":"#lobby","topic":"","members":'
        + members_json("bob", "alice")
        + ',"gap":{"after":1,"before":22}}',
    )
    for line in missed[20:]:
        expect(again, **replayed(line))
    expect(bob, type="join", nick="alice", room=LOBBY)

    # Section 4.8, the example of a forwards page: the first line of the gap.
    again.send('{"type":"history","room":"#lobby","after":1,"before":22,"limit":1}')
    first_missed = chat_json(2, "bob", "missed 0", json.dumps(missed[0]["ts"]), history=True)
    expect_frame(
        again,
        '{"type":"history","room":"#lobby","messages":['
        + first_missed
        + '],"more":true,"after":1}',
    )
    # Section 4.2's example: the whole gap in one page.
    again.send('{"type":"history","room":"#lobby","after":1,"before":22,"limit":500}')
    expect(again, type="history", room=LOBBY, messages=[replayed(m) for m in missed[:20]],
           more=False, after=1)  # fmt: skip
    # Filling the gap: its "after", then the largest id got, until "more" is false.
    got: list[dict[str, object]] = []
    after, more, pages = 1, True, 0
    while more:
        again.send_json(type="history", room=LOBBY, after=after, before=22, limit=8)
        page = again.recv_json()
        assert set(page) == {"type", "room", "messages", "more", "after"}, page
        assert page["after"] == after, page
        got += page["messages"]
        more, after, pages = page["more"], got[-1]["id"], pages + 1
    assert (got, pages) == ([replayed(line) for line in missed[:20]], 3)
    # Without "before": up to the newest line; "after" is echoed. The largest id is fine,
    # one beyond it is refused (4.1).
    again.send_json(type="history", room=LOBBY, after=29, limit=8)
    expect(again, type="history", room=LOBBY, messages=[replayed(m) for m in missed[-2:]],
           more=False, after=29)  # fmt: skip
    again.send_json(type="history", room=LOBBY, after=2**63 - 1)
    expect(again, type="history", room=LOBBY, messages=[], more=False, after=2**63 - 1)
    again.send_json(type="history", room=LOBBY, before=2**63 - 1, limit=2)
    expect(again, type="history", room=LOBBY, messages=[replayed(m) for m in missed[-2:]],
           more=True)  # fmt: skip
    again.send_json(type="history", room=LOBBY, before=2**64)
    expect_error(again, "bad_message")
    for client in (again, bob):
        client.close()


def test_resume_with_another_store_null_ids_new_rooms_and_no_room(server) -> None:
    bob = DocClient(server.address)
    welcome = hello(bob, "bob", ["bob"])
    one, two = say_lines(bob, "bob", ["one", "two"])

    # Ids of another store are ignored: the lobby replays as on a fresh join. A room that does
    # not exist is made; the last room named becomes the current room.
    alice = DocClient(server.address)
    alice.send_json(
        type="hello",
        nick="alice",
        version=1,
        store="0123456789abcdef",
        resume={LOBBY: 1, "#team": 5},
    )
    expect_welcome(alice, "alice", ["bob", "alice"])
    expect(alice, type="joined", room=LOBBY, topic="", members=[member("bob"), member("alice")])
    expect(alice, **replayed(one))
    expect(alice, **replayed(two))
    expect(alice, type="joined", room="#team", topic="", members=[member("alice", op=True)])
    expect(bob, type="join", nick="alice", room=LOBBY)
    (team_line,) = say_lines(alice, "alice", ["where am I?"], room=None, lands_in="#team")
    bob.send_json(type="ping", token=1)  # the line went to #team: bob got nothing
    expect(bob, type="pong", token=1)

    # No store at all: the same; null: the usual replay.
    carol = DocClient(server.address)
    carol.send_json(type="hello", nick="carol", version=1, resume={"#Team": 3, LOBBY: None})
    expect_welcome(carol, "carol", ["bob", "alice", "carol"])
    expect(
        carol,
        type="joined",
        room="#team",
        topic="",
        members=[member("alice", op=True), member("carol")],
    )
    expect(carol, **replayed(team_line))
    expect(alice, type="join", nick="carol", room="#team")
    expect(carol, type="joined", room=LOBBY, topic="",
           members=[member("bob"), member("alice"), member("carol")])  # fmt: skip
    expect(carol, **replayed(one))
    expect(carol, **replayed(two))
    expect(bob, type="join", nick="carol", room=LOBBY)
    expect(alice, type="join", nick="carol", room=LOBBY)

    # An empty resume: no room at all.
    dave = DocClient(server.address)
    dave.send_json(type="hello", nick="dave", version=1, store=welcome["store"], resume={})
    expect_welcome(dave, "dave", ["bob", "alice", "carol", "dave"])
    dave.send_json(type="chat", text="anyone?", id="d1")
    expect_error(dave, "not_in_room", id="d1")
    dave.send_json(type="rooms")
    expect(dave, type="rooms", rooms=[{"room": LOBBY, "members": 3, "topic": ""},
                                      {"room": "#team", "members": 2, "topic": ""}])  # fmt: skip
    for client in (alice, bob, carol, dave):
        client.close()


def test_bad_resume_values_are_refused_and_the_hello_sent_again(server) -> None:
    client = DocClient(server.address)
    client.send('{"type":"hello","nick":"alice","version":1,"resume":{"#lobby":-1}}')
    expect_frame(
        client,
        '{"type":"error","code":"bad_message","message":"resume ids must be integers from 0 to '
        '2**63-1 or null","fatal":false,"id":null}',
    )
    bad_id = "resume ids must be integers from 0 to 2**63-1 or null"
    client.send_json(type="hello", nick="alice", version=1, resume={LOBBY: 2**63})
    expect(client, **error_of("bad_message", "integers must be within -(2**63-1) and 2**63-1"))
    for value in ("1", 1.5, True, [1]):
        client.send_json(type="hello", nick="alice", version=1, resume={LOBBY: value})
        expect(client, **error_of("bad_message", bad_id))
    too_many = {f"#r{n}": None for n in range(21)}
    client.send_json(type="hello", nick="alice", version=1, resume=too_many)
    expect(client, **error_of("bad_message", "resume names more than 20 rooms"))
    client.send_json(type="hello", nick="alice", version=1, resume={"lobby": 1})
    expect(client, **error_of("bad_room", "room names start with #, e.g. #team"))
    client.send_json(type="hello", nick="alice", version=1, resume={"#a b": None})
    expect(
        client,
        **error_of("bad_room", "a room name may hold letters, digits, '_' and '-' only: no spaces"),
    )
    for fields in ({"resume": [LOBBY]}, {"session": 5}, {"store": 1}):
        client.send_json(type="hello", nick="alice", version=1, **fields)
        expect_error(client, "bad_message")
    # Still unregistered; the hello may be sent again. 20 rooms and the largest id are fine.
    rooms = {f"#r{n}": None for n in range(19)} | {LOBBY: 2**63 - 1}
    client.send_json(type="hello", nick="alice", version=1, resume=rooms)
    expect_welcome(client, "alice", ["alice"])
    for name in rooms:
        members = [member("alice", op=name != LOBBY)]
        expect(client, type="joined", room=name, topic="", members=members)
    client.send_json(type="chat", text="in the lobby", id=1)  # the last room named is current
    expect(client, type="ack", id=1, msg_id=1)
    client.send_json(type="history", room=LOBBY)
    page = client.recv_json()
    assert [m["text"] for m in page["messages"]] == ["in the lobby"], page
    client.close()


def test_a_session_token_takes_a_ghost_over(server) -> None:
    """Section 4.12: the new connection becomes the member; the old one is told, the others
    see nothing."""
    ghost = DocClient(server.address)
    first = hello(ghost, "alice", ["alice"])
    ghost.send_json(type="join", room="#team")
    expect(ghost, type="joined", room="#team", topic="", members=[member("alice", op=True)])
    ghost.send_json(type="away", reason="lunch")
    expect(ghost, type="away", nick="alice", reason="lunch")
    bob = DocClient(server.address)
    away = member("alice", away="lunch")
    hello(bob, "bob", ["alice", "bob"], members=[away, "bob"])
    bob.send_json(type="join", room="#team")
    team = [member("alice", away="lunch", op=True), member("bob")]
    expect(bob, type="joined", room="#team", topic="", members=team)
    said = say_lines(bob, "bob", ["t1", "t2", "t3"], room="#team")
    # The ghost reads no more: say its client had t1 when the connection broke.

    heir = DocClient(server.address)
    heir.send_json(
        type="hello",
        nick="whoever",
        version=1,
        session=first["session"],
        store=first["store"],
        resume={"#team": said[0]["id"]},
    )
    taken = expect_welcome(heir, "alice", ["alice", "bob"])  # her nick, her place
    assert taken["session"] != first["session"] and taken["store"] == first["store"]
    # Her rooms in the order she joined them: #lobby (not named: the usual replay, empty),
    # then #team after the id given.
    expect(heir, type="joined", room=LOBBY, topic="", members=[away, member("bob")])
    expect(heir, type="joined", room="#team", topic="", members=team)  # still its operator
    for line in said[1:]:
        expect(heir, **replayed(line))

    # The old connection: what was queued for it, then "replaced", then EOF.
    frames = []
    while (data := ghost.recv_frame()) is not None:
        frames.append(json.loads(data[HEADER_SIZE:]))
    assert [(f["type"], f.get("id")) for f in frames] == [
        ("join", None),
        ("join", None),
        ("chat", 1),
        ("chat", 2),
        ("chat", 3),
        ("error", None),
    ]
    assert frame_of(compact(frames[-1])) == frame_of(
        '{"type":"error","code":"replaced","message":"this session was taken over by a newer '
        'connection","fatal":true,"id":null}'
    )

    # The others saw no leave and no join: bob's next frame is his pong.
    bob.send_json(type="ping", token=7)
    expect(bob, type="pong", token=7)
    # Same member: still away, current room #team.
    (back,) = say_lines(heir, "alice", ["back"], room=None, lands_in="#team")
    expect(bob, **back)
    bob.send_json(type="who", room="#team")
    expect(bob, type="who", room="#team", members=team)
    # The first token is spent: ignored, so the nick is checked as usual.
    stale = DocClient(server.address)
    stale.send_json(type="hello", nick="alice", version=1, session=first["session"])
    expect(stale, **error_of("nick_taken", "the nickname alice is taken"))
    for client in (ghost, bob, heir, stale):
        client.close()


def test_the_server_pings_a_silent_rich_member_and_drops_it(server_factory) -> None:
    """Section 8.1, with --ping-interval 0.3 and --ping-timeout 1."""
    srv = server_factory(ping_interval=0.3, ping_timeout=1.0)
    tut = DocClient(srv.address)
    tut.send("/who")
    assert tut.recv_line() == "* Users in #lobby: guest-1"
    assert tut.recv_line() == "* You are guest-1"
    bob = DocClient(srv.address)
    hello(bob, "bob", ["guest-1", "bob"])
    assert tut.recv_line() == "* bob joined #lobby"
    alice = DocClient(srv.address)
    hello(alice, "alice", ["guest-1", "bob", "alice"])
    assert answering_pings(bob)["nick"] == "alice"
    assert tut.recv_line() == "* alice joined #lobby"

    # Silent: a ping. A pong, or a keepalive, shows she is alive; the tokens count up.
    expect_frame(alice, '{"type":"ping","token":1}')
    alice.send('{"type":"pong","token":1}')
    bob.keepalive()
    expect_frame(alice, '{"type":"ping","token":2}')
    alice.keepalive()
    bob.keepalive()
    expect_frame(alice, '{"type":"ping","token":3}')
    # No answer: the others see her leave, she gets the fatal error, then EOF.
    left = answering_pings(bob)
    assert left == {"type": "leave", "nick": "alice", "reason": "ping timeout", "ts": left["ts"]}
    check_ts(left)
    expect_frame(
        alice,
        '{"type":"error","code":"ping_timeout","message":"no answer to a ping within 1 s",'
        '"fatal":true,"id":null}',
    )
    alice.expect_eof()
    assert tut.recv_line() == "* alice left (ping timeout)"
    assert quiet_for(tut, 0.8)  # plain members are never pinged
    for client in (alice, bob, tut):
        client.close()


def test_history_pages_stop_at_256_kib(burst_server) -> None:
    """Section 4.8: as many lines as fit in 262,144 bytes of chat objects, at least one."""
    alice = DocClient(burst_server.address)
    hello(alice, "alice", ["alice"])
    text = "語" * 1000  # 3,000 bytes of UTF-8
    for n in range(100):
        alice.send_json(type="chat", text=text, id=n)
    lines = []
    for n in range(100):
        ack = expect(alice, type="ack", id=n, msg_id=n + 1)
        chat = {"type": "chat", "id": n + 1, "nick": "alice", "text": text, "ts": ack["ts"]}
        lines.append({**chat, "room": LOBBY, "history": True})

    def fitting(ordered: list[dict[str, object]]) -> int:
        total = count = 0
        for line in ordered:
            total += len(compact(line).encode("utf-8"))
            if total > PAGE_BYTES and count:
                break
            count += 1
        return count

    newest, oldest = fitting(lines[::-1]), fitting(lines)
    assert oldest == newest == 84  # "84 of 3-byte characters"
    alice.send_json(type="history", room=LOBBY, limit=500)
    expect(alice, type="history", room=LOBBY, messages=lines[-newest:], more=True)
    alice.send_json(type="history", room=LOBBY, after=0, limit=500)
    expect(alice, type="history", room=LOBBY, messages=lines[:oldest], more=True, after=0)
    # Paging on from the page's own ids gets the rest.
    alice.send_json(type="history", room=LOBBY, before=lines[-newest]["id"], limit=500)
    expect(alice, type="history", room=LOBBY, messages=lines[:-newest], more=False)
    alice.close()


def test_a_failing_store_unsaved_acks_and_unavailable(server) -> None:
    """Sections 4.5, 4.8 and 7. The test breaks the server's store from the inside, as a
    full disk or a read-only file would."""
    alice, tut, _ = alice_and_guest(server.address)
    alice.send('{"type":"chat","text":"hi guest-1","id":"c1"}')
    expect_frame(alice, '{"type":"ack","id":"c1","msg_id":2,"ts":TS}')  # stored: no flag
    assert tut.recv_line() == "alice: hi guest-1"

    server.history.close()
    alice.send('{"type":"chat","text":"still here","id":"c2"}')
    data = expect_frame(alice, '{"type":"ack","id":"c2","msg_id":3,"ts":TS,"unsaved":true}')
    unsaved = json.loads(data[HEADER_SIZE:])
    assert tut.recv_line() == "alice: still here"
    tut.send("me too")
    assert tut.recv_line() == "Message was Sent!"  # plain clients cannot be told
    expect(alice, type="chat", id=4, nick="guest-1", text="me too", room=LOBBY)
    # A retry of the unsaved line: known (in memory), acked again, still unsaved.
    alice.send_json(type="chat", text="still here", id="c2", retry=True)
    expect(alice, type="ack", id="c2", msg_id=3, ts=unsaved["ts"], unsaved=True)
    # A retry of a stored line cannot be checked: unavailable, with its id.
    alice.send('{"type":"chat","text":"hi guest-1","id":"c1","retry":true}')
    expect_frame(
        alice,
        '{"type":"error","code":"unavailable","message":"the server cannot check this retry '
        'now; try again later","fatal":false,"id":"c1"}',
    )
    alice.send('{"type":"history","room":"#lobby"}')
    expect_frame(
        alice,
        '{"type":"error","code":"unavailable","message":"the history is unavailable right now",'
        '"fatal":false,"id":null}',
    )
    alice.send('{"type":"join","room":"#team"}')
    expect_frame(
        alice,
        '{"type":"joined","room":"#team","topic":"","members":'
        '[{"nick":"alice","away":"","oper":false,"muted":false,"op":true}]}',
    )
    expect_frame(
        alice,
        '{"type":"notice","text":"The history of this room is unavailable right now.",'
        '"room":"#team"}',
    )
    alice.send_json(type="ping", token="end")  # nothing else came
    expect(alice, type="pong", token="end")
    # Failing for so long that no id is left to hand out (the test pretends the ids the
    # server reserved are used up): lines are refused, with their id.
    server.history.reserved_id = 0
    alice.send('{"type":"chat","text":"hello?","id":"c9"}')
    expect_frame(
        alice,
        '{"type":"error","code":"unavailable","message":"the server cannot store messages right '
        'now","fatal":false,"id":"c9"}',
    )
    alice.send_json(type="msg", to="guest-1", text="psst", id="p9")
    expect(alice, **error_of("unavailable", "the server cannot store messages right now", id="p9"))
    tut.send("and me?")
    assert tut.recv_line() == "ERROR unavailable: the server cannot store messages right now"
    for client in (alice, tut):
        client.close()


def test_store_ids_and_retry_keys_survive_a_restart(server_factory, tmp_path) -> None:
    """Sections 4.3, 4.5 and 8.5, on a server keeping its history in a file."""
    db = str(tmp_path / "history.sqlite3")
    srv = server_factory(history_db=db)
    alice = DocClient(srv.address)
    first = hello(alice, "alice", ["alice"])
    bob = DocClient(srv.address)
    hello(bob, "bob", ["alice", "bob"])
    expect(alice, type="join", nick="bob", room=LOBBY)
    (kept,) = say_lines(alice, "alice", ["kept"])
    expect(bob, **kept)
    alice.send_json(type="msg", to="bob", text="psst", id="p1")
    psst = expect(bob, type="msg", id=2, nick="alice", to="bob", text="psst")
    expect(alice, type="ack", id="p1", msg_id=2, ts=psst["ts"])
    srv.shutdown()
    for client in (alice, bob):
        expect(client, type="bye", reason="server shutting down")
        client.expect_eof()

    srv = server_factory(history_db=db)
    bob = DocClient(srv.address)
    again = hello(bob, "bob", ["bob"], history=[kept])
    assert again["store"] == first["store"]  # the same history: the same store
    alice = DocClient(srv.address)
    alice.send_json(type="hello", nick="alice", version=1, store=first["store"], resume={LOBBY: 0})
    expect_welcome(alice, "alice", ["bob", "alice"])
    expect(alice, type="joined", room=LOBBY, topic="", members=[member("bob"), member("alice")])
    expect(alice, **replayed(kept))
    expect(bob, type="join", nick="alice", room=LOBBY)
    # The retry keys were stored with the lines: answered from the store, delivered to nobody
    # (for the private message too, whose text this server does not store).
    alice.send_json(type="chat", text="kept", id="kept", retry=True)
    expect(alice, type="ack", id="kept", msg_id=1, ts=kept["ts"])
    alice.send_json(type="msg", to="bob", text="psst", id="p1", retry=True)
    expect(alice, type="ack", id="p1", msg_id=2, ts=psst["ts"])
    # After a clean stop the ids go on without a gap.
    (new,) = say_lines(alice, "alice", ["new"])
    expect(bob, **new)
    assert new["id"] == 3
    for client in (alice, bob):
        client.close()

    # A memory-only store (--no-history) is another one on every start.
    stores = []
    for _ in range(2):
        client = DocClient(server_factory().address)
        stores.append(hello(client, "x", ["x"])["store"])
        client.close()
    assert stores[0] != stores[1] and first["store"] not in stores


# --- flood limits, quiet clients, room caps, JSON limits, Unicode (sections 3-8) ------------


def test_json_limits_of_section_4_1(burst_server) -> None:
    """Section 4.1: nesting, finite numbers, 64-bit integers and null, over the whole payload;
    then the messages of its table. (Many refused frames: no flood limit in the way.)"""
    alice = DocClient(burst_server.address)
    hello(alice, "alice", ["alice"])
    play({"": alice}, doc_exchange('"x":NaN}'))
    ok_depth = b'{"type":"ping","token":2,"x":' + b"[" * 15 + b"]" * 15 + b"}"  # 16 levels
    alice.send(ok_depth)
    expect(alice, type="pong", token=2)
    for bad in (b'{"type":"ping","x":Infinity}', b'{"type":"ping","x":-Infinity}',
                b'{"type":"ping","x":1e400}'):  # fmt: skip
        alice.send(bad)
        expect(alice, **error_of("bad_json", "numbers must be finite (no NaN or Infinity)"))
    out_of_range = "integers must be within -(2**63-1) and 2**63-1"
    for bad in (b'{"type":"ping","x":{"y":[-9223372036854775808]}}', b'{"type":"ping","x":1' +
                b"0" * 400 + b"}"):  # fmt: skip
        alice.send(bad)
        expect(alice, **error_of("bad_message", out_of_range))
    # The largest integers are fine, in unknown keys too.
    alice.send(b'{"type":"ping","token":9223372036854775807,"x":-9223372036854775807}')
    expect(alice, type="pong", token=2**63 - 1)
    # The table, row by row (the messages of its examples).
    for payload, code, message in [
        (b"\xff", "bad_utf8", "frame payload is not valid UTF-8 (byte 0)"),
        (b"{nope", "bad_json", "payload is not valid JSON"),
        (b"[1]", "bad_json", "payload must be a JSON object"),
        (b'{"type":"dance"}', "bad_message", "unknown message type 'dance'"),
        (b'{"type":"join"}', "bad_message", "'join' message lacks the field 'room'"),
        (b'{"type":"chat","text":"x","id":"' + b"i" * 65 + b'"}', "bad_message",
         "field 'id' of 'chat' is longer than 64 characters"),
        (b'{"type":"chat","text":"a\\ud800"}', "bad_message",
         "field 'text' of 'chat' is not valid Unicode"),
        # null only where the table of 4.2 says "or null"
        (b'{"type":"chat","text":null}', "bad_message", "field 'text' of 'chat' must be a string"),
        (b'{"type":"part","room":"#lobby","reason":null}', "bad_message",
         "field 'reason' of 'part' must be a string"),
        (b'{"type":"history","room":"#lobby","limit":null}', "bad_message",
         "field 'limit' of 'history' must be an integer"),
    ]:  # fmt: skip
        alice.send(payload)
        expect(alice, **error_of(code, message))
    alice.send(b'{"type":"who","room":null}')  # "or null": fine
    expect(alice, type="who", room=None, members=[member("alice")])

    # Section 4.8: before/after below 0 count as 0; "after" is echoed as sent.
    (line,) = say_lines(alice, "alice", ["one"])
    alice.send_json(type="history", room=LOBBY, after=-5)
    expect(alice, type="history", room=LOBBY, messages=[replayed(line)], more=False, after=-5)
    alice.send_json(type="history", room=LOBBY, before=-5)
    expect(alice, type="history", room=LOBBY, messages=[], more=False)
    alice.close()


def test_the_first_frame_and_the_json_limits(server) -> None:
    """Section 3: a hello too deep or with NaN is no hello (a plain first line); a hello with
    an integer out of range is a hello, refused with bad_message."""
    alice = DocClient(server.address)
    hello(alice, "alice", ["alice"])
    deep = '{"type":"hello","nick":"x","version":1,"x":' + "[" * 16 + "]" * 16 + "}"
    nan = '{"type":"hello","nick":"y","version":NaN}'
    said = []
    for n, payload in enumerate((deep, nan), 1):
        tut = DocClient(server.address)
        tut.send(payload)
        assert tut.recv_line() == "Message was Sent!"
        expect(alice, type="join", nick=f"guest-{n}", room=LOBBY)
        said.append(expect(alice, type="chat", id=n, nick=f"guest-{n}", text=payload, room=LOBBY))
        tut.send("!DISCONNECT")
        tut.expect_eof()
        expect(alice, type="leave", nick=f"guest-{n}", reason="quit")
        tut.close()
    rich = DocClient(server.address)
    rich.send('{"type":"hello","nick":"bob","version":1,"x":9223372036854775808}')
    expect(rich, **error_of("bad_message", "integers must be within -(2**63-1) and 2**63-1"))
    hello(rich, "bob", ["alice", "bob"], history=said)
    expect(alice, type="join", nick="bob", room=LOBBY)
    for client in (alice, rich):
        client.close()


def test_nicks_that_look_alike_are_refused(burst_server) -> None:
    """Section 6.2: the TR39 skeleton of a nick in use holds its look-alikes back."""
    server = burst_server  # many nick changes (4 lines each, 6.5): no flood limit in the way
    alice = DocClient(server.address)
    hello(alice, "alice", ["alice"])
    bob = DocClient(server.address)
    hello(bob, "bob", ["alice", "bob"])
    expect(alice, type="join", nick="bob", room=LOBBY)
    play({"": bob}, doc_exchange('"nick":"a1ice"'))
    for nick in ("аlice", "alıce", "Αlice", "aIice"):
        bob.send_json(type="nick", nick=nick)
        expect(bob, **error_of("nick_taken", f"the nickname {nick} looks too much like alice"))
    other = DocClient(server.address)  # a hello too
    other.send_json(type="hello", nick="b0b", version=1)
    expect(other, **error_of("nick_taken", "the nickname b0b looks too much like bob"))
    other.send_json(type="hello", nick="rnallory", version=1)
    expect_welcome(other, "rnallory", ["alice", "bob", "rnallory"])
    expect(other, type="joined", room=LOBBY, topic="",
           members=[member("alice"), member("bob"), member("rnallory")])  # fmt: skip
    expect(alice, type="join", nick="rnallory", room=LOBBY)
    expect(bob, type="join", nick="rnallory", room=LOBBY)
    bob.send_json(type="nick", nick="mallory")
    expect(bob, **error_of("nick_taken", "the nickname mallory looks too much like rnallory"))
    # One's own nick may change to a look-alike of itself.
    alice.send_json(type="nick", nick="a1ice")
    for client in (alice, bob, other):
        expect(client, type="nick_changed", old="alice", new="a1ice")
    # Guest numbers skip names that look like one in use: guest-l holds guest-1 back.
    bob.send_json(type="nick", nick="guest-l")
    for client in (alice, bob, other):
        expect(client, type="nick_changed", old="bob", new="guest-l")
    tut = DocClient(server.address)
    tut.send("/who")
    assert tut.recv_line() == "* Users in #lobby: a1ice, guest-l, rnallory, guest-2"
    assert tut.recv_line() == "* You are guest-2"
    tut.send("/nick guest-1")
    assert tut.recv_line() == "ERROR nick_taken: the nickname guest-1 looks too much like guest-l"
    for client in (alice, bob, other, tut):
        client.close()


def test_unicode_rules_of_sections_6_1_to_6_3(burst_server) -> None:
    alice, tut, _ = alice_and_guest(burst_server.address)
    # Kept: joiners that join (emoji sequences, Sinhala, Persian), a subdivision flag.
    flag = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
    emoji = ["👨\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈", "👩🏽\u200d💻"]
    kept = [*emoji, "ශ්\u200dරී", "می\u200cخواهم", flag]
    for text in kept:
        tut.send(text)
        assert tut.recv_line() == "Message was Sent!"
        assert alice.recv_json()["text"] == text
    # Removed: format characters, stray joiners, fillers; marks beyond 6; line breaks.
    for sent, delivered in [
        ("a\u200bb\u2060c\u00add\ufeffe\u200ef", "abcdef"),
        ("\u200da\u200db\u200c", "ab"),
        ("x\u3164y\u115f", "xy"),
        ("e" + "\u0301" * 999, "e" + "\u0301" * 6),
        ("one\u2028two\x85three\x0bfour", "one two three four"),
    ]:
        tut.send(sent)
        assert tut.recv_line() == "Message was Sent!"
        assert alice.recv_json()["text"] == delivered
    for empty in ("\u3164", "\u200b\u200b"):
        alice.send_json(type="chat", text=empty, id="e")
        expect(alice, **error_of("empty_text", "empty messages are not sent", id="e"))
    # Nicks: refused rather than cleaned.
    for nick, message in [
        ("a\u200db", "a nickname may hold letters, digits, '_' and '-' only: not '\\u200d'"),
        ("a\u3164", "a nickname may hold letters, digits, '_' and '-' only: not '\u3164'"),
        ("a\ufe0f", "a nickname may hold letters, digits, '_' and '-' only: not '\ufe0f'"),
        ("_\u0301", "a combining mark goes on a letter or a digit"),
        ("x" + "\u0301" * 5, "a nickname has at most 4 marks on one letter"),
    ]:
        alice.send_json(type="nick", nick=nick)
        expect(alice, **error_of("nick_invalid", message))
    alice.send_json(type="nick", nick="ကျော်")  # Burmese "Kyaw": 4 marks on one letter
    expect(alice, type="nick_changed", old="alice", new="ကျော်")
    assert tut.recv_line() == "* alice is now known as ကျော်"
    # Room names: the same character rules; look-alikes are other rooms.
    alice.send_json(type="join", room="#x" + "\u0301" * 5)
    expect(alice, **error_of("bad_room", "a room name has at most 4 marks on one letter"))
    alice.send_json(type="join", room="#team")
    expect(alice, type="joined", room="#team", topic="", members=[member("ကျော်", op=True)])
    alice.send_json(type="join", room="#tеam")  # Cyrillic е
    expect(alice, type="joined", room="#tеam", topic="", members=[member("ကျော်", op=True)])
    for client in (alice, tut):
        client.close()


def test_room_caps_of_section_4_6(server_factory) -> None:
    """20 rooms per member (the default, exactly as the document shows it), and with caps of
    2 per member and 3 in all: joins, a resume and a takeover over the caps."""
    srv = server_factory(limits=NO_FLOOD_LIMITS)  # 20 joins at once
    alice = DocClient(srv.address)
    hello(alice, "alice", ["alice"])
    for n in range(19):
        alice.send_json(type="join", room=f"#r{n}")
        expect(alice, type="joined", room=f"#r{n}", topic="", members=[member("alice", op=True)])
    member_cap, server_cap = doc_exchange("too_many_rooms")
    alice.send_json(type="join", room="#one-more")
    expect_frame(alice, member_cap[2])
    alice.send_json(type="join", room="#r3")  # a room she is in: fine
    expect(alice, type="joined", room="#r3", topic="", members=[member("alice", op=True)])
    alice.close()

    srv = server_factory(max_rooms_per_member=2, max_rooms=3)
    alice = DocClient(srv.address)
    first = hello(alice, "alice", ["alice"])
    alice.send_json(type="join", room="#a")
    expect(alice, type="joined", room="#a", topic="", members=[member("alice", op=True)])
    alice.send_json(type="join", room="#b")
    expect(alice, **error_of("too_many_rooms", "you are in 2 rooms, the most one may be in: "
                             "part one first"))  # fmt: skip
    bob = DocClient(srv.address)
    hello(bob, "bob", ["alice", "bob"])
    expect(alice, type="join", nick="bob", room=LOBBY)
    bob.send_json(type="part", room=LOBBY)
    expect(bob, type="part", room=LOBBY, nick="bob", reason="")
    expect(alice, type="part", room=LOBBY, nick="bob", reason="")
    bob.send_json(type="join", room="#b")  # the third room of the server
    expect(bob, type="joined", room="#b", topic="", members=[member("bob", op=True)])
    bob.send_json(type="join", room="#c")
    expect_frame(bob, server_cap[2].replace("1000 rooms", "3 rooms"))
    bob.send_json(type="join", room="#a")  # a room that exists: fine
    expect(
        bob, type="joined", room="#a", topic="", members=[member("alice", op=True), member("bob")]
    )
    expect(alice, type="join", nick="bob", room="#a")
    # A resume that would make a room over the cap; a takeover that would add one.
    carol = DocClient(srv.address)
    carol.send_json(type="hello", nick="carol", version=1, resume={"#new": None})
    expect(carol, **error_of("too_many_rooms", "the server has 3 rooms, the most it keeps: "
                             "join one of them"))  # fmt: skip
    carol.send_json(type="hello", nick="alice", version=1, session=first["session"],
                    resume={"#b": None})  # fmt: skip
    expect(carol, **error_of("too_many_rooms", "you are in 2 rooms, the most one may be in: "
                             "part one first"))  # fmt: skip
    carol.send_json(type="hello", nick="carol", version=1, resume={"#b": None})
    expect_welcome(carol, "carol", ["alice", "bob", "carol"])
    expect(
        carol, type="joined", room="#b", topic="", members=[member("bob", op=True), member("carol")]
    )
    expect(bob, type="join", nick="carol", room="#b")
    # Plain: the same error as a line.
    tut = DocClient(srv.address)
    tut.send("/join #d")
    assert tut.recv_line() == (
        "ERROR too_many_rooms: the server has 3 rooms, the most it keeps: join one of them"
    )
    for client in (alice, bob, carol, tut):
        client.close()


REFUSED = r"slow down: too many messages; try again in \d+ s"


def test_a_flood_is_refused_then_cut_off(server) -> None:
    """Section 6.5 with the default limits, its examples frame by frame: the hello and 19
    lines take the burst, the next lines are refused (each with its id), and a client that
    goes on is disconnected about 40 lines later; the others see it leave."""
    alice = DocClient(server.address)
    hello(alice, "alice", ["alice"])
    spam = DocClient(server.address)
    hello(spam, "spam", ["alice", "spam"])
    expect(alice, type="join", nick="spam", room=LOBBY)
    (_, _, first_line), (_, _, first_refusal) = doc_exchange('"text":"spam 19"')
    (fatal,) = doc_code_block("excess flood: too many messages, too fast")
    for n in range(19):
        spam.send_json(type="chat", text=f"spam {n}", id=n)
        expect(spam, type="ack", id=n, msg_id=n + 1)
    spam.send(first_line)
    expect_frame(spam, first_refusal)
    n, answer = 19, {"fatal": False}
    while not answer["fatal"]:  # each refused line costs too: the debt grows
        n += 1
        spam.send_json(type="chat", text=f"spam {n}", id=n)
        data = spam.recv_frame()
        assert data is not None
        answer = json.loads(data[HEADER_SIZE:])
        if not answer["fatal"]:
            assert answer == error_of("rate_limited", answer["message"], id=n), answer
            assert re.fullmatch(REFUSED, answer["message"]), answer
    # 40 lines of debt: the 41st refusal is the flood (or one more, if the server's clock
    # gave back a line meanwhile: half a second at 2 a second).
    assert n in (59, 60)
    assert data == frame_of(fatal.removeprefix("S> ").replace('"id":59', f'"id":{n}'))
    spam.expect_eof()
    said = [
        expect(alice, type="chat", id=k + 1, nick="spam", text=f"spam {k}", room=LOBBY)
        for k in range(19)
    ]
    expect(alice, type="leave", nick="spam", reason="excess flood: too many messages, too fast")
    # Its nick is banned for a minute; its address is loopback, so it may connect still.
    again = DocClient(server.address)
    again.send_json(type="hello", nick="SPAM", version=1)
    (_, _, banned) = doc_exchange('excess flood","fatal":false')[0]
    expect_frame(again, banned)
    hello(again, "spam2", ["alice", "spam2"], history=[replayed(c) for c in said[-19:]])
    for client in (alice, spam, again):
        client.close()


def test_budgets_refill_data_has_its_own_and_plain_floods_end(server_factory) -> None:
    """Section 6.5 with small limits: 3 lines at once, 1 a second, 2 s of debt; member data
    2 at once, 1 a second."""
    limits = Limits(chat_burst=3, chat_per_minute=60, flood_seconds=2, data_burst=2,
                    data_per_second=1)  # fmt: skip
    srv = server_factory(limits=limits, oper_password="pw")
    bob = DocClient(srv.address)
    welcome = hello(bob, "bob", ["bob"])  # 1
    assert {k: v for k, v in welcome["limits"].items() if k.startswith(("chat", "data"))} == {
        "chat_burst": 3, "chat_per_minute": 60, "data_burst": 2, "data_per_second": 1
    }  # fmt: skip
    said = say_lines(bob, "bob", ["a", "b"])  # 2 and 3: the burst is spent
    bob.send_json(type="chat", text="c", id="c")
    expect(bob, **error_of("rate_limited", "slow down: too many messages; try again in 2 s",
                           id="c"))  # fmt: skip
    # Member data has a budget of its own.
    for x in (1, 2):
        bob.send_json(type="set_data", room=LOBBY, data={"x": x})
        expect(bob, type="data", room=LOBBY, nick="bob", data={"x": x})
    bob.send_json(type="set_data", room=LOBBY, data={"x": 3})
    expect(bob, **error_of("rate_limited", "slow down: too many data updates; try again in 2 s"))
    # Waiting as told gets the line through.
    time.sleep(2.1)
    said += say_lines(bob, "bob", ["c"])
    # Operators are not limited.
    op = DocClient(srv.address)
    bob_with_data = {**member("bob"), "data": {"x": 2}}
    hello(op, "op", ["bob", "op"], members=[bob_with_data, "op"], history=said)  # 1
    expect(bob, type="join", nick="op", room=LOBBY)
    op.send_json(type="oper", password="pw")  # 2
    expect(op, **notice("You are now an operator. /help lists the operator commands."))
    for line in say_lines(op, "op", [f"news {n}" for n in range(8)]):
        expect(bob, **line)
    # A plain client: refused as lines, then cut off; the others see why.
    tut = DocClient(srv.address)
    for text in ("1", "2", "3"):
        tut.send(text)
        assert tut.recv_line() == "Message was Sent!"
    for wait in (2, 3):
        tut.send("more")
        assert tut.recv_line() == (
            f"ERROR rate_limited: slow down: too many messages; try again in {wait} s"
        )
    tut.send("more")
    assert tut.recv_line() == "ERROR rate_limited: excess flood: too many messages, too fast"
    tut.expect_eof()
    expect(bob, type="join", nick="guest-1", room=LOBBY)
    for n, text in enumerate(("1", "2", "3")):
        expect(bob, type="chat", id=12 + n, nick="guest-1", text=text, room=LOBBY)
    expect(bob, type="leave", nick="guest-1", reason="excess flood: too many messages, too fast")
    for client in (bob, op, tut):
        client.close()


def test_member_data_is_not_shown_to_plain_clients(server) -> None:
    """Sections 4.11 and 5.4."""
    alice, tut, _ = alice_and_guest(server.address)
    alice.send('{"type":"set_data","room":"#lobby","data":{"ready":true,"team":"red"}}')
    expect_frame(
        alice, '{"type":"data","room":"#lobby","nick":"alice","data":{"ready":true,"team":"red"},'
        '"ts":TS}'
    )  # fmt: skip
    alice.send_json(type="who", room=LOBBY)
    expect(alice, type="who", room=LOBBY, members=[
        {**member("alice"), "data": {"ready": True, "team": "red"}}, member("guest-1")
    ])  # fmt: skip
    tut.send("/who")  # its first line since: no line about the data came before it
    assert tut.recv_line() == "* Users in #lobby: alice, guest-1"
    assert tut.recv_line() == "* You are guest-1"
    for client in (alice, tut):
        client.close()


def test_a_silent_connection_becomes_a_plain_guest(server_factory) -> None:
    """Section 5.3 with --plain-grace 0.2, its two examples frame by frame."""
    srv = server_factory(plain_grace=0.2)
    alice = DocClient(srv.address)
    hello(alice, "alice", ["alice"])
    tut = DocClient(srv.address)  # connects, then only listens
    keeping = DocClient(srv.address)
    keeping.keepalive()  # a byte sent: never a guest by silence
    play({"alice": alice, "tut": tut}, doc_exchange('"text":"anyone there?"'))
    # Never dropped for being quiet, and no line of its own. Over a second: the lines above
    # are older than the catch-up margin when `late` connects, so it gets none of them.
    assert quiet_for(tut, 1.2)

    late = DocClient(srv.address)
    expect(alice, type="join", nick="guest-2", room=LOBBY)  # silent: a guest
    play({"alice": alice, "late": late}, doc_exchange('"nick":"bob","version":1}'))
    expect_welcome(late, "bob", ["alice", "guest-1", "bob"])
    expect(late, type="joined", room=LOBBY, topic="",
           members=[member("alice"), member("guest-1"), member("bob")])  # fmt: skip
    history = [late.recv_json() for _ in range(2)]  # the lobby's history, as for any hello
    assert [(m["nick"], m["text"], m["history"]) for m in history] == [
        ("alice", "anyone there?", True), ("guest-1", "Hello!", True)
    ]  # fmt: skip
    assert tut.recv_line() == "* guest-2 joined #lobby"
    assert tut.recv_line() == "* guest-2 left (quit)"
    assert tut.recv_line() == "* bob joined #lobby"

    # The connection that sent a keepalive never became a guest: its hello is a first hello.
    keeping.send_json(type="hello", nick="carol", version=1)
    expect_welcome(keeping, "carol", ["alice", "guest-1", "bob", "carol"])
    expect(alice, type="join", nick="carol", room=LOBBY)  # no leave before it
    assert tut.recv_line() == "* carol joined #lobby"

    # At shutdown a guest gets the plain goodbye.
    srv.shutdown()
    assert tut.recv_line() == "* Disconnected: server shutting down"
    tut.expect_eof()
    for client in (alice, tut, keeping, late):
        client.close()


def test_silence_with_and_without_a_password(server_factory) -> None:
    """Sections 5.3 and 8.1: a guest made by its silence is never cut for being quiet, past
    the registration deadline and the ping timeouts; with a password there are no such guests,
    silence ends with hello_timeout. Section 8.2: this machine's own connections are not
    counted per address."""
    srv = server_factory(plain_grace=0.2, hello_timeout=0.5, ping_interval=0.2, ping_timeout=0.3)
    tut = DocClient(srv.address)
    assert quiet_for(tut, 1.2)
    tut.send("still here")
    assert tut.recv_line() == "Message was Sent!"
    tut.close()

    srv = server_factory(password="pw", plain_grace=0.2, hello_timeout=0.6, max_per_address=2)
    silent = [DocClient(srv.address) for _ in range(4)]
    for client in silent:
        expect_frame(
            client, '{"type":"error","code":"hello_timeout","message":"not registered within '
            '0.6 s","fatal":true,"id":null}'
        )  # fmt: skip
        client.expect_eof()
        client.close()


def test_an_address_banned_after_connecting_is_refused_at_registration(server_factory) -> None:
    """Sections 4.4 and 7: the address is checked again when the connection registers."""
    srv = server_factory(oper_password="pw")
    op = DocClient(srv.address)
    hello(op, "op", ["op"])
    op.send_json(type="oper", password="pw")
    expect(op, **notice("You are now an operator. /help lists the operator commands."))
    rich, plain = DocClient(srv.address), DocClient(srv.address)
    for client in (rich, plain):
        client.keepalive()  # connected, not registered (and not silent)
    # The server's own count (not a client's knowledge): both accepted before the ban, or
    # they would be refused at the accept instead (section 8.2).
    deadline = time.monotonic() + 5
    while srv.client_count < 3:
        assert time.monotonic() < deadline, "the server never took both connections"
        time.sleep(0.01)
    op.send_json(type="ban", target="127.0.0.1")
    expect(op, **notice("127.0.0.1 is banned by op for good"))
    rich.send_json(type="hello", nick="bob", version=1)
    expect(rich, **error_of("banned", "you are banned from this server", fatal=True))
    rich.expect_eof()
    plain.send("hi")
    assert plain.recv_line() == "ERROR banned: you are banned from this server"
    plain.expect_eof()
    for client in (op, rich, plain):
        client.close()


# --- section 5.5: the select dialect, 10-byte headers -------------------------------------


class SelectDocClient:
    """A client of the select chatroom tutorial, from sections 2.6 and 5.5: 10-byte headers
    (digits then spaces), the username first, every line as a username and a message."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, f"server closed after {data!r}"
            data += chunk
        return data

    def expect_eof(self) -> None:
        assert self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


def select_bytes(shown: str) -> bytes:
    """Bytes written as in section 5.5: "header" (· for a padding space) + 'payload' + ..."""
    pieces = re.findall(r'"([^"]*)"|\'([^\']*)\'', shown)
    return b"".join(
        (header.replace("·", " ") + payload).encode("utf-8") for header, payload in pieces
    )


def test_the_select_dialect_of_section_5_5(server_factory) -> None:
    """Section 5.5's example frame by frame, and its refusal example."""
    srv = server_factory(plain_grace=None)  # tut speaks first anyway: no timing involved
    alice, tut = DocClient(srv.address), DocClient(srv.address)
    hello(alice, "alice", ["alice"])
    bob = SelectDocClient(srv.address)
    clients: dict[str, object] = {"alice": alice, "tut": tut, "bob": bob}
    lines = doc_code_block("\"3·········\" + 'bob'")
    for line in lines:
        match = re.fullmatch(r"(\w+) +([CS])> (.+)", line)
        assert match, line
        who, direction, payload = match.groups()
        payload = re.sub(r'"ts":[0-9.]+', '"ts":TS', payload)
        if who == "bob":
            data = select_bytes(payload)
            if direction == "C":
                bob.send_raw(data)
            else:
                assert bob.recv_exactly(len(data)) == data, line
        elif direction == "C":
            clients[who].send(payload)  # type: ignore[attr-defined]
        else:
            expect_frame(clients[who], payload)  # type: ignore[arg-type]
    bob.expect_eof()

    (sent, refused, _) = doc_code_block("the nickname alice is taken")
    late = SelectDocClient(srv.address)
    late.send_raw(select_bytes(sent.partition("C> ")[2]))
    expected = select_bytes(refused.partition("S> ")[2])
    assert late.recv_exactly(len(expected)) == expected
    late.expect_eof()
    for client in (alice, tut, bob, late):
        client.close()
