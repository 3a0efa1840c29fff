"""ChatClient against a real server on 127.0.0.1: events, acks, reconnects, the outbox."""

from __future__ import annotations

import queue
import socket
import time
from typing import Any

import pytest
from conftest import start_server
from wire import rich_client

from game_chat.client.events import (
    ChatFailed,
    ChatSent,
    Connected,
    Connecting,
    Disconnected,
    Reconnecting,
    RoundTrip,
)
from game_chat.client.net import ChatClient
from game_chat.protocol.messages import ChatMessage, ErrorReply, NickChanged, UserJoined
from game_chat.server import ChatServer


def next_event(client: ChatClient, kind: type, timeout: float = 5.0) -> Any:
    """Wait for the next event of ``kind``, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {kind.__name__} event")
        try:
            event = client.events.get(timeout=remaining)
        except queue.Empty:
            continue
        if isinstance(event, kind):
            return event


def make_client(server: ChatServer, nick: str, **options: Any) -> ChatClient:
    host, port = server.address
    options.setdefault("backoff_initial", 0.05)
    client = ChatClient(host, port, nick, **options)
    client.start()
    return client


@pytest.fixture
def clients():  # type: ignore[no-untyped-def]
    made: list[ChatClient] = []
    yield made
    for client in made:
        client.close()


def test_connect_chat_and_ack(server: ChatServer, clients: list[ChatClient]) -> None:
    client = make_client(server, "alice")
    clients.append(client)
    connected = next_event(client, Connected)
    assert connected.nick == "alice"
    assert connected.limits.max_text_chars == 1000
    peer, _ = rich_client(server.address, "bob")
    assert next_event(client, UserJoined).nick == "bob"
    local_id = client.send_chat("hi bob")
    sent = next_event(client, ChatSent)
    assert sent.local_id == local_id
    message = peer.recv_until(lambda m: m["type"] == "chat")
    assert (message["nick"], message["text"], message["id"]) == ("alice", "hi bob", sent.message_id)
    peer.send_json(type="chat", text="hi alice")
    received = next_event(client, ChatMessage)
    assert (received.nick, received.text) == ("bob", "hi alice")
    assert client.pending_count == 0


def test_refused_connection_is_reported_once(clients: list[ChatClient]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ChatClient("127.0.0.1", port, "alice")
    clients.append(client)
    client.start()
    assert isinstance(next_event(client, Connecting), Connecting)
    gone = next_event(client, Disconnected)
    assert not gone.will_retry
    assert "refused" in gone.reason


def test_nick_taken_is_final(server: ChatServer, clients: list[ChatClient]) -> None:
    rich_client(server.address, "alice")
    holder, _ = rich_client(server.address, "bob")
    client = make_client(server, "BOB")
    clients.append(client)
    gone = next_event(client, Disconnected)
    assert (gone.code, gone.will_retry) == ("nick_taken", False)
    holder.close()


def test_refused_line_fails_and_others_go_on(server: ChatServer, clients: list[ChatClient]) -> None:
    client = make_client(server, "alice")
    clients.append(client)
    next_event(client, Connected)
    too_long = client.send_chat("x" * 1001)
    fine = client.send_chat("fine")
    failed = next_event(client, ChatFailed)
    assert failed.local_id == too_long
    assert "limit" in failed.reason
    assert next_event(client, ChatSent).local_id == fine


def test_reconnects_after_server_restart_and_sends_the_outbox(clients: list[ChatClient]) -> None:
    server = start_server()
    port = server.address[1]
    client = make_client(server, "alice", random_source=lambda: 0.5)
    clients.append(client)
    next_event(client, Connected)
    server.shutdown()
    gone = next_event(client, Disconnected)
    assert gone.will_retry
    assert gone.reason == "server shutting down"
    assert isinstance(next_event(client, Reconnecting), Reconnecting)
    queued = [client.send_chat(f"while away {n}") for n in range(3)]
    restarted = start_server(port=port)
    try:
        peer, _ = rich_client(restarted.address, "bob")
        assert next_event(client, Connected, timeout=10).nick == "alice"
        assert [next_event(client, ChatSent).local_id for _ in queued] == queued
        texts = [peer.recv_until(lambda m: m["type"] == "chat")["text"] for _ in queued]
        assert texts == [f"while away {n}" for n in range(3)]
    finally:
        client.close()
        restarted.shutdown()


def test_backoff_doubles_to_the_cap() -> None:
    client = ChatClient("127.0.0.1", 1, "x", random_source=lambda: 0.5)
    assert [client._backoff(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]
    low = ChatClient("127.0.0.1", 1, "x", random_source=lambda: 0.0)
    assert low._backoff(1) == 0.375
    high = ChatClient("127.0.0.1", 1, "x", random_source=lambda: 1.0)
    assert max(high._backoff(n) for n in range(1, 12)) == 10  # as documented, jitter too


def test_close_says_goodbye_and_stops_quickly(server: ChatServer) -> None:
    watcher, _ = rich_client(server.address, "watcher")
    client = make_client(server, "alice")
    next_event(client, Connected)
    started = time.monotonic()
    client.close("dinner")
    assert time.monotonic() - started < 1
    assert not client._thread.is_alive()
    leave = watcher.recv_until(lambda m: m["type"] == "leave")
    assert (leave["nick"], leave["reason"]) == ("alice", "dinner")
    assert next_event(client, Disconnected).reason == "closed"


def test_lines_left_unsent_at_close_are_failed() -> None:
    client = ChatClient("127.0.0.1", 1, "x", backoff_initial=5)
    local_id = client.send_chat("never")
    client.start()
    client.close()
    assert next_event(client, ChatFailed).local_id == local_id


def test_round_trip_and_nick_change(server: ChatServer, clients: list[ChatClient]) -> None:
    client = make_client(server, "alice", ping_interval=0.1)
    clients.append(client)
    next_event(client, Connected)
    assert next_event(client, RoundTrip).ms < 1000
    client.change_nick("alicia")
    changed = next_event(client, NickChanged)
    assert (changed.old, changed.new) == ("alice", "alicia")
    assert client.nick == "alicia"
    client.change_nick("bad nick")
    assert next_event(client, ErrorReply).code == "nick_invalid"


def test_poll_never_blocks(clients: list[ChatClient]) -> None:
    client = ChatClient("127.0.0.1", 1, "x")
    started = time.monotonic()
    assert client.poll() == []
    assert time.monotonic() - started < 0.05


def test_rooms_are_restored_after_a_restart_lobby_left_stays_left(
    clients: list[ChatClient],
) -> None:
    from game_chat.protocol.messages import JoinRoom, PartRoom, RoomJoined, UserParted

    server = start_server()
    port = server.address[1]
    client = make_client(server, "alice", random_source=lambda: 0.5)
    clients.append(client)
    next_event(client, Connected)
    client.send(JoinRoom("#team"))
    assert next_event(client, RoomJoined).room in ("#lobby", "#team")
    client.send(PartRoom("#lobby"))
    assert next_event(client, UserParted).room == "#lobby"
    server.shutdown()
    next_event(client, Disconnected)
    restarted = start_server(port=port)
    try:
        next_event(client, Connected, timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rooms = restarted.state.rooms()
            if "alice" in rooms.get("#team", []) and "alice" not in rooms["#lobby"]:
                break
            time.sleep(0.01)
        rooms = restarted.state.rooms()
        assert "alice" in rooms["#team"]
        assert "alice" not in rooms["#lobby"]
    finally:
        client.close()
        restarted.shutdown()


def test_closing_before_the_welcome_is_read_still_says_goodbye_after_the_hello() -> None:
    """A window closed right after it connected (SIGTERM, the user): the server may have
    welcomed it already, so the goodbye must follow the hello even though the client has not
    read the welcome yet; otherwise the others are told "connection lost"."""
    from game_chat.protocol.framing import FrameDecoder
    from game_chat.protocol.messages import parse_client_message

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    client = ChatClient("127.0.0.1", listener.getsockname()[1], "early")
    client.start()
    try:
        conn, _ = listener.accept()
        conn.settimeout(5)
        decoder = FrameDecoder(1 << 16)
        frames: list[bytes] = []
        while not frames:  # the hello; no welcome is ever sent
            decoder.receive_data(conn.recv(4096))
            frames += list(decoder.frames())
        client.close("window closed")
        while len(frames) < 2:
            data = conn.recv(4096)
            assert data, "closed without a goodbye"
            decoder.receive_data(data)
            frames += list(decoder.frames())
        kinds = [parse_client_message(f).TYPE for f in frames[:2]]
        assert kinds == ["hello", "bye"]
        assert parse_client_message(frames[1]).reason == "window closed"  # type: ignore[union-attr]
        conn.close()
    finally:
        client.close()
        listener.close()
