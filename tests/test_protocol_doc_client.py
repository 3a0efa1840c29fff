"""A client written only from docs/PROTOCOL.md, talking to the real server.

The client part (``DocClient`` and its helpers) uses nothing but ``socket`` and ``json``: no
game_chat code, so it checks that the document alone is enough to write a client. The server
comes from the ``server`` fixture in conftest.py (127.0.0.1, free port, a fresh one per test).
"""

from __future__ import annotations

import json
import socket
import time

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


def expect(client: DocClient, **fields: object) -> dict[str, object]:
    """Receive a rich message whose keys are exactly ``fields`` plus ``ts``, if it has one."""
    message = client.recv_json()
    if "ts" in message:
        check_ts(message)
        fields["ts"] = message["ts"]
    assert message == fields
    return message


WELCOME_LIMITS = {"max_frame_bytes": 8192, "max_text_chars": 1000, "max_nick_chars": 24}


def hello(client: DocClient, nick: str, users: list[str]) -> None:
    client.send_json(type="hello", nick=nick, version=1)
    expect(
        client,
        type="welcome",
        nick=nick,
        server="game_chat",
        version=1,
        limits=WELCOME_LIMITS,
        users=users,
    )


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


UNKNOWN_COMMAND_TAIL = (
    "; commands: /nick NAME, /who, /quit (start a line with // to send it as text)"
)


# --- tests -------------------------------------------------------------------------------------


def test_rich_and_plain_clients_chat(server) -> None:
    address = server.address

    # Rich client: a keepalive first (does not pick the dialect), then the hello (section 4.4).
    alice = DocClient(address)
    alice.keepalive()
    alice.send(b'{"type":"hello","nick":"alice","version":1}')
    welcome = alice.recv_frame()
    assert welcome == frame_of(
        '{"type":"welcome","nick":"alice","server":"game_chat","version":1,'
        '"limits":{"max_frame_bytes":8192,"max_text_chars":1000,"max_nick_chars":24},'
        '"users":["alice"]}'
    )

    # Plain tutorial-style client: the header and the payload in two sends, as the tutorial
    # does. No welcome: the only answer to its first line is the tutorial's (section 5.3).
    tut = DocClient(address)
    tut.send_raw(b"6" + b" " * 63)
    tut.send_raw(b"Hello!")
    assert tut.recv_frame() == frame_of("Message was Sent!")
    expect(alice, type="join", nick="guest-1")
    first = expect(alice, type="chat", id=1, nick="guest-1", text="Hello!")

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
    expect(alice, type="chat", id=4, nick="guest-1", text="/nick is literal, ünïcödé")

    # Nick changes: announced to everyone, the requester included; this is how a plain client
    # learns its guest nick.
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

    # Exactly the current nick: answered to the asker alone, old == new (section 4.6).
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
    assert tut.recv_line() == "* Users: Alicia, bob"
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
    assert tut.recv_line() == "ERROR unknown_command: unknown command /dance" + UNKNOWN_COMMAND_TAIL
    # The echoed command is cleaned like chat text and cut to 40 characters (section 5.1).
    tut.send("/\x1b[1mZ" + "y" * 60)
    assert tut.recv_line() == (
        "ERROR unknown_command: unknown command /[1mz" + "y" * 35 + UNKNOWN_COMMAND_TAIL
    )
    tut.send("/nick\tbob")  # only a space separates the argument
    assert tut.recv_line() == (
        "ERROR unknown_command: unknown command /nick bob" + UNKNOWN_COMMAND_TAIL
    )
    tut.send("   ")
    assert tut.recv_line() == "ERROR empty_text: empty messages are not sent"

    # Plain chat after the nick change, then the tutorial's disconnect message.
    tut.send("bye all")
    assert tut.recv_line() == "Message was Sent!"
    expect(alice, type="chat", id=5, nick="bob", text="bye all")
    tut.send("!DISCONNECT")
    tut.expect_eof()
    expect(alice, type="leave", nick="bob", reason="quit")

    # Rich goodbye: no reply, the server closes.
    alice.send_json(type="bye", reason="done")
    alice.expect_eof()
    alice.close()
    tut.close()


def test_rich_handshake_retry_and_registration_errors(server) -> None:
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
    expect(alice, type="join", nick="José_Ж-1")

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
        # Escaped lone surrogates, in any field (section 4.1): refused, not fatal.
        (b'{"type":"chat","text":"a\\ud800b","id":"s1"}', "bad_message"),
        (b'{"type":"chat","text":"x","id":"\\udfff"}', "bad_message"),
        (b'{"type":"\\ud800"}', "bad_message"),
        (b'{"type":"nick","nick":"\\ud800"}', "bad_message"),
        (b'{"type":"ping","token":"\\udbff"}', "bad_message"),
        (b'{"type":"bye","reason":"\\ud800"}', "bad_message"),  # not even a bye
    ]:
        other.send(bad)
        expect_error(other, code)
    # A surrogate pair is fine; unknown keys are ignored whatever they hold.
    other.send(b'{"type":"chat","text":"ok \\ud83d\\ude00","id":"p","x":"\\ud800"}')
    expect(other, type="ack", id="p", msg_id=1)
    expect(alice, type="chat", id=1, nick="José_Ж-1", text="ok 😀")

    # Leave reasons are cleaned like chat text and cut to 200 characters (section 4.3).
    other.send_json(type="bye", reason="din\nner\u202e\x1b " + "z" * 300)
    other.expect_eof()
    expect(alice, type="leave", nick="José_Ж-1", reason="din ner " + "z" * 192)
    other.close()

    # Nothing left after cleaning: "quit".
    third = DocClient(server.address)
    hello(third, "third", ["alice", "third"])
    expect(alice, type="join", nick="third")
    third.send_json(type="bye", reason=" \t\x1b\u202e ")
    third.expect_eof()
    expect(alice, type="leave", nick="third", reason="quit")
    third.close()

    # Plain /quit REASON, cleaned the same way.
    tut = DocClient(server.address)
    tut.send("/quit  see\tyou\x1b[0m ")
    tut.expect_eof()
    expect(alice, type="join", nick="guest-1")
    expect(alice, type="leave", nick="guest-1", reason="see you[0m")
    tut.close()
    alice.close()


def test_framing_rules(server) -> None:
    # Padding with NULs and leading zeros are accepted (section 2.2); a plain first frame.
    tut = DocClient(server.address)
    tut.send_raw(b"\x00\x000005" + b"\x00" * 58 + b"hello")
    assert tut.recv_line() == "Message was Sent!"
    tut.send("/who")  # section 5.3: the guest nick shows in the user list
    assert tut.recv_line() == "* Users: guest-1"
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


def test_shutdown_sends_bye(server) -> None:
    alice = DocClient(server.address)
    hello(alice, "alice", ["alice"])
    tut = DocClient(server.address)
    tut.send("hi")
    assert tut.recv_line() == "Message was Sent!"
    expect(alice, type="join", nick="guest-1")
    expect(alice, type="chat", id=1, nick="guest-1", text="hi")

    # Connections that are not members get a rich bye too (section 8.4).
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
    srv = server_factory(max_clients=2, hello_timeout=1.0)
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
    time.sleep(0.3)
    idle.keepalive()
    retrier.send_json(type="hello", nick="zed", version=2)
    expect_error(retrier, "bad_version")
    # Not registered in time: a fatal rich error, then EOF (section 8.1).
    timeout = frame_of(
        '{"type":"error","code":"hello_timeout",'
        '"message":"not registered within 1 s","fatal":true,"id":null}'
    )
    for client in (idle, retrier):
        assert client.recv_frame() == timeout
        client.expect_eof()
        client.close()

    # Once registered there is no deadline: a plain first line registers at once, a rich
    # hello when it is accepted.
    srv = server_factory(hello_timeout=0.5)
    tut = DocClient(srv.address)
    tut.send("hi")
    assert tut.recv_line() == "Message was Sent!"
    alice = DocClient(srv.address)
    hello(alice, "alice", ["guest-1", "alice"])
    assert tut.recv_line() == "* alice joined"
    time.sleep(0.8)
    tut.send("/who")
    assert tut.recv_line() == "* Users: guest-1, alice"
    alice.send_json(type="users")
    expect(alice, type="users", users=["guest-1", "alice"])
    tut.close()
    alice.close()
