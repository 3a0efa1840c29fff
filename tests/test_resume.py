"""Coming back: resume after any gap, taking a ghost over, and dropping peers that vanished.

Real servers on 127.0.0.1, real sockets. The bundled client is tested through a TCP proxy
that can "lose" a connection the way Wi-Fi does: the client's side breaks, the server's side
stays open and silent, so the server keeps a ghost until it notices.
"""

from __future__ import annotations

import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import NO_FLOOD_LIMITS
from wire import WireClient, rich_client

from game_chat.client.events import ChatSent, Connected, Disconnected
from game_chat.client.net import ChatClient
from game_chat.protocol.limits import Limits
from game_chat.protocol.messages import (
    ChatMessage,
    JoinRoom,
    PartRoom,
    RoomJoined,
    UserLeft,
    UserParted,
)
from game_chat.server import ChatServer

LOBBY = "#lobby"


def say(client: WireClient, texts: list[str]) -> list[int]:
    """Send lines, wait for each ack; the message ids."""
    ids = []
    for n, text in enumerate(texts):
        client.send_json(type="chat", text=text, id=f"x{n}")
        ack = client.recv_until(lambda m: m["type"] == "ack")
        ids.append(ack["msg_id"])
    return ids


def chats_until(client: WireClient, last_id: int) -> list[dict[str, Any]]:
    """Chat lines up to (and including) the one with ``last_id``."""
    got: list[dict[str, Any]] = []
    while not got or got[-1]["id"] != last_id:
        got.append(client.recv_until(lambda m: m["type"] == "chat"))
    return got


def hello(client: WireClient, nick: str, **fields: Any) -> dict[str, Any]:
    """Say hello; a nick still held by the connection the test just closed (the server has
    not read its end yet) is asked for again, as a client does."""
    deadline = time.monotonic() + 5
    while True:
        client.send_json(type="hello", nick=nick, version=1, **fields)
        welcome = client.recv_json()
        if welcome.get("code") != "nick_taken" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert welcome["type"] == "welcome", welcome
    return welcome


# --- resume over the wire ---------------------------------------------------------------------


def test_resume_sends_exactly_the_lines_missed(server: ChatServer) -> None:
    alice, welcome = rich_client(server.address, "alice")
    bob, _ = rich_client(server.address, "bob")
    seen = say(bob, [f"before {n}" for n in range(5)])
    assert [m["id"] for m in chats_until(alice, seen[-1])] == seen
    alice.send_json(type="bye")
    alice.close()
    missed = say(bob, [f"while away {n}" for n in range(3)])
    again = WireClient(server.address)
    hello(again, "alice", store=welcome["store"], resume={LOBBY: seen[-1]})
    joined = again.recv_json()
    assert joined["type"] == "joined" and "gap" not in joined
    replay = [again.recv_json() for _ in missed]
    assert [(m["id"], m["history"]) for m in replay] == [(i, True) for i in missed]
    live = say(bob, ["now"])
    assert again.recv_until(lambda m: m["type"] == "chat")["id"] == live[0]


def test_a_gap_larger_than_the_replay_is_named_and_paged_forwards(server_factory) -> None:
    server = server_factory(history_replay=10, limits=NO_FLOOD_LIMITS)
    alice, welcome = rich_client(server.address, "alice")
    bob, _ = rich_client(server.address, "bob")
    last_seen = say(bob, ["seen"])[0]
    chats_until(alice, last_seen)
    alice.close()
    missed = say(bob, [f"missed {n}" for n in range(30)])
    again = WireClient(server.address)
    hello(again, "alice", store=welcome["store"], resume={LOBBY: last_seen})
    joined = again.recv_json()
    assert joined["gap"] == {"after": last_seen, "before": missed[20]}
    assert [again.recv_json()["id"] for _ in range(10)] == missed[20:]
    again.send_json(type="history", room=LOBBY, after=last_seen, before=missed[20], limit=500)
    page = again.recv_until(lambda m: m["type"] == "history")
    assert [m["id"] for m in page["messages"]] == missed[:20]
    assert (page["more"], page["after"]) == (False, last_seen)


def test_resume_puts_a_member_back_in_exactly_its_rooms(server: ChatServer) -> None:
    alice, welcome = rich_client(server.address, "alice")
    alice.close()
    again = WireClient(server.address)
    hello(again, "alice", store=welcome["store"], resume={"#team": None, "#ops": 0})
    rooms = [again.recv_json() for _ in range(2)]
    assert [(m["type"], m["room"]) for m in rooms] == [("joined", "#team"), ("joined", "#ops")]
    again.send_json(type="chat", text="where am I?", id=1)  # the current room: the last one
    again.recv_until(lambda m: m["type"] == "ack")
    again.send_json(type="who")
    who = again.recv_until(lambda m: m["type"] == "who")
    assert who["members"][0]["nick"] == "alice"
    lobby = rich_client(server.address, "bob")[1]["users"]
    assert lobby == ["alice", "bob"]


def test_ids_of_another_store_replay_as_a_fresh_join(server: ChatServer) -> None:
    bob, _ = rich_client(server.address, "bob")
    said = say(bob, ["one", "two"])
    alice = WireClient(server.address)
    hello(alice, "alice", store="0123456789abcdef", resume={LOBBY: said[-1]})
    assert alice.recv_json()["type"] == "joined"
    assert [alice.recv_json()["id"] for _ in said] == said  # the usual replay, not "nothing"


@pytest.mark.parametrize(
    "resume",
    [
        {"#lobby": "1"},
        {"#lobby": -1},
        {"#lobby": 2**63},
        {"#lobby": True},
        {"lobby": 1},
        {"#Team": None, "#team": 2},
    ],
)
def test_a_bad_resume_is_refused_and_the_hello_can_be_retried(
    server: ChatServer, resume: dict[str, Any]
) -> None:
    client = WireClient(server.address)
    client.send_json(type="hello", nick="alice", version=1, resume=resume)
    error = client.recv_json()
    assert (error["type"], error["fatal"]) == ("error", False)
    assert error["code"] in ("bad_message", "bad_room")
    hello(client, "alice")


def test_history_pages_never_reach_past_the_last_delivered_line(server: ChatServer) -> None:
    alice, _ = rich_client(server.address, "alice")
    said = say(alice, ["a", "b", "c"])
    alice.send_json(type="history", room=LOBBY, before=2**63 - 1, limit=500)
    page = alice.recv_until(lambda m: m["type"] == "history")
    assert [m["id"] for m in page["messages"]] == said
    alice.send_json(type="history", room=LOBBY, after=said[0], limit=1)
    page = alice.recv_until(lambda m: m["type"] == "history")
    assert ([m["id"] for m in page["messages"]], page["more"]) == ([said[1]], True)


def test_a_page_of_long_lines_stays_small_enough_to_be_received(server_factory) -> None:
    server = server_factory(send_queue_bytes=1024 * 1024, limits=NO_FLOOD_LIMITS)
    alice, _ = rich_client(server.address, "alice")
    text = "語" * 1000  # 3,000 bytes a line: 500 of them would be 1.5 MB
    for n in range(500):
        alice.send_json(type="chat", text=text, id=n)
    for _ in range(500):
        alice.recv_until(lambda m: m["type"] == "ack")
    alice.send_json(type="history", room=LOBBY, limit=500)
    page = alice.recv_until(lambda m: m["type"] == "history")
    assert page["more"] is True
    assert 50 < len(page["messages"]) < 100  # cut at about 256 KiB, newest kept
    alice.send_json(type="ping", token=1)
    assert alice.recv_until(lambda m: m["type"] == "pong")["token"] == 1  # still connected


# --- taking a ghost over ----------------------------------------------------------------------


def test_a_session_token_takes_the_ghost_over_silently(server: ChatServer) -> None:
    ghost, welcome = rich_client(server.address, "alice")
    ghost.send_json(type="join", room="#team")
    ghost.recv_until(lambda m: m["type"] == "joined")
    ghost.send_json(type="away", reason="lunch")
    ghost.recv_until(lambda m: m["type"] == "away")
    bob, _ = rich_client(server.address, "bob")
    heir = WireClient(server.address)
    taken = hello(heir, "whoever", session=welcome["session"], store=welcome["store"])
    assert taken["nick"] == "alice"
    assert taken["session"] != welcome["session"]
    rooms = {heir.recv_json()["room"], heir.recv_json()["room"]}
    assert rooms == {LOBBY, "#team"}
    error = ghost.recv_until(lambda m: m["type"] == "error")
    assert (error["code"], error["fatal"]) == ("replaced", True)
    assert ghost.expect_closed() == []
    said = say(bob, ["still there?"])
    heir.recv_until(lambda m: m["type"] == "chat" and m["id"] == said[0])
    bob.send_json(type="who")
    who = bob.recv_until(lambda m: m["type"] == "who")
    assert [(m["nick"], m["away"]) for m in who["members"]] == [("alice", "lunch"), ("bob", "")]
    bob.send_json(type="ping", token=7)
    seen = bob.recv_until(lambda m: m["type"] == "pong" or m["type"] in ("leave", "join"))
    assert seen["type"] == "pong"  # bob heard of no leave and no join
    stale = WireClient(server.address)
    stale.send_json(type="hello", nick="alice", version=1, session=welcome["session"])
    assert stale.recv_json()["code"] == "nick_taken"  # the old token is spent


# --- liveness ------------------------------------------------------------------------------


def test_a_silent_rich_client_is_pinged_then_dropped(server_factory) -> None:
    server = server_factory(ping_interval=0.3, ping_timeout=0.3)
    lively = ChatClient(*server.address, "lively")  # answers pings on its own thread
    lively.start()
    try:
        events_until(lively, lambda e: isinstance(e, Connected))
        mute, _ = rich_client(server.address, "mute")
        started = time.monotonic()
        ping = mute.recv_until(lambda m: m["type"] == "ping")
        assert isinstance(ping["token"], int)
        error = mute.recv_until(lambda m: m["type"] == "error")
        assert (error["code"], error["fatal"]) == ("ping_timeout", True)
        assert mute.expect_closed() == []
        left = events_until(lively, lambda e: isinstance(e, UserLeft))[-1]
        assert (left.nick, left.reason) == ("mute", "ping timeout")
        assert 0.5 < time.monotonic() - started < 5
        lively.change_nick("still-here")  # more than a ping interval later: not dropped
        events_until(lively, lambda e: getattr(e, "new", None) == "still-here")
    finally:
        lively.close()


def test_sockets_get_keepalive_that_drops_a_vanished_peer_in_two_minutes(
    server: ChatServer,
) -> None:
    client, _ = rich_client(server.address, "alice")
    (conn,) = list(server._connections)
    sock = conn.sock
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    if not hasattr(socket, "TCP_KEEPIDLE"):
        pytest.skip("this system has no TCP_KEEPIDLE")
    idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
    interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
    count = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
    assert idle + interval * count <= 120
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) <= 120_000
    client.close()


# --- the bundled client ----------------------------------------------------------------------


class LossyProxy:
    """Forwards TCP between clients and a server; :meth:`lose` breaks the client side of every
    connection at once and leaves the server side open and unread, like a dropped Wi-Fi."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()[:2]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.ghosts: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def lose(self) -> None:
        with self.lock:
            for client, upstream in self.pairs:
                # RST, not FIN: the client sees an error, the server sees nothing at all.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                self.ghosts.append(upstream)
            self.pairs = []

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()
        for sock in [s for pair in self.pairs for s in pair] + self.ghosts:
            sock.close()

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                pairs = list(self.pairs)
            socks = [self.listener] + [s for pair in pairs for s in pair]
            readable, _, _ = select.select(socks, [], [], 0.05)
            for sock in readable:
                if sock is self.listener:
                    client, _ = self.listener.accept()
                    upstream = socket.create_connection(self.target)
                    with self.lock:
                        self.pairs.append((client, upstream))
                    continue
                with self.lock:
                    pair = next((p for p in self.pairs if sock in p), None)
                    if pair is None:
                        continue  # lost meanwhile
                    other = pair[1] if sock is pair[0] else pair[0]
                    try:
                        data = sock.recv(65536)
                        if data:
                            other.sendall(data)
                            continue
                    except OSError:
                        pass
                    self.pairs.remove(pair)
                    for s in pair:
                        s.close()


@pytest.fixture
def proxy(burst_server: ChatServer) -> Iterator[LossyProxy]:
    lossy = LossyProxy(burst_server.address)
    try:
        yield lossy
    finally:
        lossy.close()


def events_until(client: ChatClient, predicate, timeout: float = 10.0) -> list[Any]:  # type: ignore[no-untyped-def]
    """Every event up to the first that matches ``predicate``."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while not out or not predicate(out[-1]):
        try:
            out.append(client.events.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            raise AssertionError(f"no matching event; got {out[-5:]}") from None
    return out


def test_the_bundled_client_comes_back_under_its_nick_and_misses_nothing(
    burst_server: ChatServer, proxy: LossyProxy
) -> None:
    server = burst_server
    host, port = proxy.address
    alice = ChatClient(host, port, "alice", backoff_initial=0.05, backoff_max=0.2)
    alice.start()
    try:
        events_until(alice, lambda e: isinstance(e, Connected))
        bob, _ = rich_client(server.address, "bob")
        first = say(bob, ["hello"])[0]
        events_until(alice, lambda e: isinstance(e, ChatMessage) and e.id == first)
        proxy.lose()  # the server still thinks alice is there
        events_until(alice, lambda e: isinstance(e, Disconnected))
        pending = alice.send_chat("typed while offline")
        missed = say(bob, [f"missed {n}" for n in range(250)])  # more than the replay
        events = events_until(
            alice, lambda e: isinstance(e, ChatMessage) and e.id == missed[-1], timeout=20
        )
        connected = [e for e in events if isinstance(e, Connected)]
        assert [c.nick for c in connected] == ["alice"]  # its ghost was taken over, no alice2
        lines = [e.id for e in events if isinstance(e, ChatMessage) and e.id > first]
        assert lines == missed  # every line once, in order, though 250 > the replay of 100
        sent = [e for e in events if isinstance(e, ChatSent)]
        if not sent:
            sent = [events_until(alice, lambda e: isinstance(e, ChatSent))[-1]]
        assert sent[0].local_id == pending
        bob.send_json(type="history", room=LOBBY, limit=500)
        page = bob.recv_until(lambda m: m["type"] == "history")
        texts = [m["text"] for m in page["messages"]]
        assert texts.count("typed while offline") == 1
        assert texts.count("hello") == 1
    finally:
        alice.close()


def test_a_takeover_is_final_for_the_connection_that_lost(server: ChatServer) -> None:
    host, port = server.address
    first = ChatClient(host, port, "alice", backoff_initial=0.05)
    first.start()
    try:
        events_until(first, lambda e: isinstance(e, Connected))
        welcome_session = first._session
        assert welcome_session
        heir = WireClient(server.address)
        hello(heir, "alice", session=welcome_session)
        gone = events_until(first, lambda e: isinstance(e, Disconnected))[-1]
        assert gone.code == "replaced" and not gone.will_retry
        watcher, _ = rich_client(server.address, "watcher")
        assert watcher.joined["members"][0]["nick"] == "alice"  # the heir kept the nick
    finally:
        first.close()


def test_others_see_a_ghost_leave_only_when_it_times_out(server_factory) -> None:
    server = server_factory(ping_interval=0.2, ping_timeout=0.2)
    lossy = LossyProxy(server.address)
    host, port = lossy.address
    alice = ChatClient(host, port, "alice", reconnect=False)
    alice.start()
    try:
        events_until(alice, lambda e: isinstance(e, Connected))
        bob = ChatClient(*server.address, "bob")
        bob.start()
        events_until(bob, lambda e: isinstance(e, Connected))
        lossy.lose()
        left = events_until(bob, lambda e: isinstance(e, UserLeft), timeout=10)[-1]
        assert (left.nick, left.reason) == ("alice", "ping timeout")
        bob.close()
    finally:
        alice.close()
        lossy.close()


def test_gap_pages_refused_for_coming_too_fast_are_asked_again(server_factory) -> None:
    # A small budget: the resume's page requests for three gaps at once go over it.
    limits = Limits(
        chat_burst=3,
        chat_per_minute=600,
        costs={"history": 2, "join": 0.1, "part": 0.1, "chat": 0.1, "hello": 0.1},
    )
    server = server_factory(history_replay=5, limits=limits)
    lossy = LossyProxy(server.address)
    host, port = lossy.address
    alice = ChatClient(host, port, "alice", backoff_initial=0.05, backoff_max=0.2)
    alice.start()
    try:
        events_until(alice, lambda e: isinstance(e, Connected))
        rooms = ["#a", "#b", "#c"]
        for room in rooms:
            alice.send(JoinRoom(room))
            events_until(alice, lambda e, r=room: isinstance(e, RoomJoined) and e.room == r)
        alice.send(PartRoom("#lobby"))
        events_until(alice, lambda e: isinstance(e, UserParted))
        alice.send_chat("here before the drop", room="#a")  # its ack: where each room resumes
        mine = events_until(alice, lambda e: isinstance(e, ChatSent))[-1].message_id
        lossy.lose()
        events_until(alice, lambda e: isinstance(e, Disconnected))
        said: dict[str, list[int]] = {}
        for room in rooms:  # each writer: 12 lines, 5 replayed, a gap of 7
            writer = ChatClient(*server.address, f"w{room[1:]}")
            writer.start()
            events_until(writer, lambda e: isinstance(e, Connected))
            writer.send(JoinRoom(room))
            events_until(writer, lambda e, r=room: isinstance(e, RoomJoined) and e.room == r)
            ids = []
            for n in range(12):
                writer.send_chat(f"{room} {n}", room=room)
                ids.append(events_until(writer, lambda e: isinstance(e, ChatSent))[-1].message_id)
            said[room] = ids
            writer.close()
        got: dict[str, list[int]] = {room: [] for room in rooms}
        deadline = time.monotonic() + 20
        while any(got[r][-1:] != said[r][-1:] for r in rooms) and time.monotonic() < deadline:
            event = events_until(alice, lambda e: isinstance(e, ChatMessage))[-1]
            got[event.room].append(event.id)
        assert got == said  # every line once, in order, though pages were refused on the way
        assert min(min(ids) for ids in said.values()) > mine
    finally:
        alice.close()
        lossy.close()
