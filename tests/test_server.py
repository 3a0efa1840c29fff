"""The server over real sockets on 127.0.0.1: both dialects, bad input, slow readers, limits."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from conftest import NO_FLOOD_LIMITS
from wire import WireClient, rich_client

from game_chat.protocol.framing import HEADER_SIZE, encode_frame
from game_chat.server import ChatServer


def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Poll server-side state that has no event to wait on (client counts)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


class TutorialClient:
    """The classic tutorial client, byte for byte: HEADER=64, plain text, blocking sends."""

    HEADER = 64
    FORMAT = "utf-8"

    def __init__(self, address: tuple[str, int]) -> None:
        self.client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.client.settimeout(5)
        self.client.connect(address)

    def send(self, msg: str) -> None:
        message = msg.encode(self.FORMAT)
        send_length = str(len(message)).encode(self.FORMAT)
        send_length += b" " * (self.HEADER - len(send_length))
        self.client.send(send_length)
        self.client.send(message)

    def _recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.client.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def receive(self) -> str:
        msg_length = int(self._recv_exactly(self.HEADER).decode(self.FORMAT))
        return self._recv_exactly(msg_length).decode(self.FORMAT)


# --- both dialects -------------------------------------------------------------------------


def test_rich_clients_chat(server: ChatServer) -> None:
    alice, welcome = rich_client(server.address, "alice")
    assert welcome["users"] == ["alice"]
    bob, welcome = rich_client(server.address, "bob")
    assert welcome["users"] == ["alice", "bob"]
    assert alice.recv_json()["type"] == "join"
    alice.send_json(type="chat", id="a1", text="hi bob")
    message = bob.recv_json()
    assert (message["type"], message["nick"], message["text"]) == ("chat", "alice", "hi bob")
    ack = alice.recv_json()
    assert ack == {"type": "ack", "id": "a1", "msg_id": message["id"], "ts": message["ts"]}


def test_tutorial_client_works_unchanged(server: ChatServer) -> None:
    first = TutorialClient(server.address)
    second = TutorialClient(server.address)
    first.send("Hello World!")
    assert first.receive() == "Message was Sent!"
    second.send("Hi")
    assert second.receive() == "Message was Sent!"
    lines = [first.receive(), first.receive()]
    assert lines[0].endswith(" joined #lobby")
    assert lines[1].endswith(": Hi")
    first.send("Client Disconnected")
    assert second.receive().endswith(" left (quit)")


def test_rich_and_plain_clients_chat(server: ChatServer) -> None:
    rich, _ = rich_client(server.address, "alice")
    plain = WireClient(server.address)
    plain.send("/nick bob")
    assert plain.recv_text() == "* guest-1 is now known as bob"
    assert rich.recv_json()["nick"] == "guest-1"  # join
    assert rich.recv_json() == {
        "type": "nick_changed",
        "old": "guest-1",
        "new": "bob",
        "ts": pytest.approx(time.time(), abs=5),
    }
    plain.send("hello rich")
    assert plain.recv_text() == "Message was Sent!"
    message = rich.recv_json()
    assert (message["nick"], message["text"]) == ("bob", "hello rich")
    rich.send_json(type="chat", id=1, text="hello plain")
    assert plain.recv_text() == "alice: hello plain"
    plain.send("!DISCONNECT")
    assert plain.expect_closed() == []
    leave = rich.recv_until(lambda m: m["type"] == "leave")
    assert (leave["nick"], leave["reason"]) == ("bob", "quit")


def test_burst_of_1000_arrives_complete_and_in_order(burst_server: ChatServer) -> None:
    server = burst_server
    sender, _ = rich_client(server.address, "sender")
    receiver, _ = rich_client(server.address, "receiver")
    sender.recv_json()  # receiver's join
    sender.send_raw(
        b"".join(
            encode_frame(b'{"type":"chat","id":%d,"text":"m%d"}' % (i, i)) for i in range(1000)
        )
    )
    texts = [receiver.recv_json()["text"] for _ in range(1000)]
    assert texts == [f"m{i}" for i in range(1000)]
    acks = [sender.recv_json()["id"] for _ in range(1000)]
    assert acks == list(range(1000))


def test_many_senders_everyone_sees_everything_in_order(burst_server: ChatServer) -> None:
    server = burst_server
    clients = [rich_client(server.address, f"u{i}")[0] for i in range(5)]
    for i, client in enumerate(clients):  # drain the join notices
        for _ in range(len(clients) - 1 - i):
            client.recv_json()
    for i, client in enumerate(clients):
        client.send_raw(
            b"".join(encode_frame(b'{"type":"chat","text":"%d %d"}' % (i, n)) for n in range(100))
        )
    for i, client in enumerate(clients):
        chats = [client.recv_until(lambda m: m["type"] == "chat") for _ in range(400)]
        for j in range(len(clients)):
            seen = [int(m["text"].split()[1]) for m in chats if m["nick"] == f"u{j}"]
            assert seen == ([] if j == i else list(range(100)))


# --- bad input -----------------------------------------------------------------------------


def test_bad_header_gets_error_frame_and_close(server: ChatServer, caplog) -> None:  # type: ignore[no-untyped-def]
    watcher, _ = rich_client(server.address, "watcher")
    bad, _ = rich_client(server.address, "bad")
    watcher.recv_json()
    with caplog.at_level(logging.INFO, logger="game_chat.server"):
        bad.send_raw(b"-12".ljust(HEADER_SIZE))
        frames = bad.expect_closed()
        leave = watcher.recv_until(lambda m: m["type"] == "leave")
    assert b'"code":"bad_header"' in frames[0] and b'"fatal":true' in frames[0]
    assert leave["nick"] == "bad"
    bad_lines = [r for r in caplog.records if "bad_header" in r.getMessage()]
    assert len(bad_lines) == 1
    assert bad_lines[0].levelno == logging.WARNING
    assert "127.0.0.1:" in bad_lines[0].getMessage()


def test_oversize_header_closes_before_payload(server: ChatServer) -> None:
    client = WireClient(server.address)
    client.send_raw(b"8193".ljust(HEADER_SIZE))
    frames = client.expect_closed()
    assert b"frame_too_large" in frames[0]


def test_64_digit_length_is_rejected(server: ChatServer) -> None:
    client = WireClient(server.address)
    client.send_raw(b"9" * HEADER_SIZE)
    assert b"frame_too_large" in client.expect_closed()[0]


def test_invalid_utf8_and_long_text_keep_the_connection(server: ChatServer) -> None:
    alice, _ = rich_client(server.address, "alice")
    alice.send(b"\xc3\x28")
    assert alice.recv_json()["code"] == "bad_utf8"
    alice.send_json(type="chat", text="x" * 1001)
    assert alice.recv_json()["code"] == "text_too_long"
    alice.send_json(type="chat", id=5, text="still here")
    assert alice.recv_json()["type"] == "ack"


def test_peer_closing_mid_frame_is_cleaned_up(server: ChatServer) -> None:
    watcher, _ = rich_client(server.address, "watcher")
    quitter, _ = rich_client(server.address, "quitter")
    watcher.recv_json()
    quitter.send_raw(b"100".ljust(HEADER_SIZE) + b"partial")
    quitter.close()
    leave = watcher.recv_until(lambda m: m["type"] == "leave")
    assert leave == {**leave, "nick": "quitter", "reason": "connection lost"}
    wait_for(lambda: server.client_count == 1)


def test_no_first_frame_times_out(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(hello_timeout=0.3)
    client = WireClient(server.address)
    client.send(b"")  # a keepalive is not a first frame
    started = time.monotonic()
    frames = client.expect_closed()
    assert b"hello_timeout" in frames[0]
    assert 0.2 < time.monotonic() - started < 3


def test_half_a_header_times_out(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(hello_timeout=0.3)
    client = WireClient(server.address)
    client.send_raw(b"12   ")
    assert b"hello_timeout" in client.expect_closed()[0]


def test_server_full(server_factory, caplog) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(max_clients=2)
    first, _ = rich_client(server.address, "a")
    second, _ = rich_client(server.address, "b")
    with caplog.at_level(logging.WARNING, logger="game_chat.server"):
        third = WireClient(server.address)
        frames = third.expect_closed()
    assert b'"code":"server_full"' in frames[0]
    assert any("server full" in r.getMessage() for r in caplog.records)
    first.send_json(type="chat", text="still fine")
    assert second.recv_until(lambda m: m["type"] == "chat")["text"] == "still fine"
    assert first.recv_until(lambda m: m["type"] == "ack")


def test_client_that_never_reads_is_cut_and_others_carry_on(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(send_queue_bytes=64 * 1024, limits=NO_FLOOD_LIMITS)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.settimeout(5)
    stalled.connect(server.address)
    stalled.sendall(encode_frame(b'{"type":"hello","nick":"stalled"}'))
    talker, _ = rich_client(server.address, "talker")
    listener, _ = rich_client(server.address, "listener")
    text = b"x" * 900
    received: list[int] = []
    leave = None
    # The kernel buffers a few MB for the stalled socket before its outbox starts to grow.
    # Batches well under the listener's 64 KiB queue even while TCP windows are still small.
    for batch in range(500):
        if leave is not None:
            break
        first = batch * 20
        talker.send_raw(
            b"".join(
                encode_frame(b'{"type":"chat","text":"%d %s"}' % (n, text))
                for n in range(first, first + 20)
            )
        )
        while len(received) < first + 20:
            message = listener.recv_json()
            if message["type"] == "chat":
                received.append(int(message["text"].split()[0]))
            elif message["type"] == "leave":
                leave = message
    assert leave is not None, "the stalled client was never cut"
    assert (leave["nick"], leave["reason"]) == ("stalled", "send queue exceeded")
    assert received == list(range(len(received)))
    talker.send_json(type="chat", text="after")
    assert listener.recv_until(lambda m: m["type"] == "chat")["text"] == "after"
    stalled.close()


# --- shutdown ------------------------------------------------------------------------------


def test_shutdown_says_goodbye_and_closes_quickly(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    rich, _ = rich_client(server.address, "alice")
    plain = WireClient(server.address)
    plain.send("hi")
    assert plain.recv_text() == "Message was Sent!"  # registered before the shutdown starts
    pending = WireClient(server.address)  # never said anything
    started = time.monotonic()
    server.shutdown()
    assert time.monotonic() - started < 2
    assert rich.recv_until(lambda m: m["type"] == "bye")["reason"] == "server shutting down"
    assert rich.expect_closed() == []
    texts = [f.decode() for f in plain.expect_closed()]
    assert texts[-1] == "* Disconnected: server shutting down"
    assert pending.expect_closed() == [b'{"type":"bye","reason":"server shutting down"}']
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=1).close()


def test_silent_connections_cost_no_thread_and_time_out(server_factory) -> None:  # type: ignore[no-untyped-def]
    import threading

    # No plain grace: silent connections here stay unregistered (tests/test_quiet_clients.py
    # has those that become listening guests).
    server = server_factory(hello_timeout=0.5, max_clients=30, plain_grace=None)
    before = threading.active_count()
    silent = [WireClient(server.address) for _ in range(30)]
    refused = WireClient(server.address)  # the 31st: the silent ones count towards the limit
    assert b"server_full" in refused.expect_closed()[0]
    assert threading.active_count() - before < 3  # no reader thread until a first frame
    talker = silent.pop()
    talker.send_json(type="hello", nick="talker", version=1)
    assert talker.recv_json()["type"] == "welcome"
    for client in silent:
        frames = client.expect_closed()
        assert b'"code":"hello_timeout"' in frames[0]
