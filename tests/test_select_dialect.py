"""The select-chatroom tutorial's clients (10-byte headers, the username first, every line as a
username frame and a message frame) against a real server on loopback, beside 64-byte
tutorial clients and rich clients (docs/PROTOCOL.md section 5.5)."""

from __future__ import annotations

import socket
import time

import pytest
from wire import SelectClient, WireClient, rich_client

from game_chat.protocol.framing import SELECT_HEADER_SIZE, encode_frame
from game_chat.protocol.messages import (
    Ack,
    ChatMessage,
    ErrorReply,
    MemberData,
    PrivateMessage,
    UserJoined,
)
from game_chat.protocol.plain import render_select
from game_chat.server.state import ChatState

LOBBY = "#lobby"


# --- rendering, no sockets ---------------------------------------------------------------


def test_lines_come_from_their_nick_events_from_a_star_refusals_from_server() -> None:
    assert render_select(ChatMessage(1, "bob", "hi", 1.0, LOBBY)) == [("bob", "hi")]
    assert render_select(ChatMessage(1, "bob", "waves", 1.0, LOBBY, action=True)) == [
        ("*", "bob waves")
    ]
    assert render_select(ChatMessage(1, "bob", "hi", 1.0, "#team"), LOBBY) == [
        ("bob", "[#team] hi")
    ]
    assert render_select(PrivateMessage(1, "bob", "ann", "psst", 1.0)) == [
        ("bob", "[private] psst")
    ]
    assert render_select(UserJoined("bob", 1.0, LOBBY), LOBBY) == [("*", "bob joined #lobby")]
    assert render_select(ErrorReply("nick_taken", "the nickname bob is taken", True)) == [
        ("server", "ERROR nick_taken: the nickname bob is taken")
    ]


def test_acks_and_member_data_are_not_shown() -> None:
    assert render_select(Ack("c1", 3, 1.0)) == []
    assert render_select(MemberData(LOBBY, "bob", {"ready": True}, 1.0)) == []


def test_nobody_may_be_called_server() -> None:
    state = ChatState()
    for nick in ("server", "SERVER", "ѕerver"):  # the last with a Cyrillic ѕ
        with pytest.raises(Exception, match="is reserved"):
            state.validate_new_nick(nick)


# --- over real sockets -------------------------------------------------------------------


def alice_and_bob(address: tuple[str, int]) -> tuple[WireClient, SelectClient]:
    """A rich alice, then a select bob whose joining she has seen."""
    alice, _ = rich_client(address, "alice")
    bob = SelectClient(address, "bob")
    assert alice.recv_until(lambda m: m["type"] == "join")["nick"] == "bob"
    return alice, bob


def test_three_dialects_in_one_room_each_line_once_and_in_order(burst_server) -> None:
    alice, _ = rich_client(burst_server.address, "alice")
    bob = SelectClient(burst_server.address, "bob")
    assert alice.recv_until(lambda m: m["type"] == "join")["nick"] == "bob"
    tut = WireClient(burst_server.address)
    tut.send("Hello!")  # the 64-byte tutorial: its first line makes it a guest
    assert tut.recv_text() == "Message was Sent!"
    assert bob.recv_pair() == ("*", "guest-1 joined #lobby")
    assert bob.recv_pair() == ("guest-1", "Hello!")
    alice.recv_until(lambda m: m["type"] == "chat" and m["text"] == "Hello!")

    for n in range(20):  # interleaved, each one's lines in its own order
        alice.send_json(type="chat", text=f"a{n}", id=n)
        bob.send(f"b{n}")
        tut.send(f"t{n}")
    # alice's view has every line with its id: her own from the acks, the others' as chat.
    by_id: dict[int, tuple[str, str]] = {}
    while len(by_id) < 60:
        m = alice.recv_json()
        if m["type"] == "chat":
            by_id[m["id"]] = (m["nick"], m["text"])
        else:
            assert m["type"] == "ack", m
            by_id[m["msg_id"]] = ("alice", f"a{m['id']}")
    plain_seen: list[str] = []
    while len(plain_seen) < 40:
        line = tut.recv_text()
        if line != "Message was Sent!":
            plain_seen.append(line)
    select_seen = [bob.recv_pair() for _ in range(40)]  # no acks in its dialect

    order = [by_id[i] for i in sorted(by_id)]  # the one order of the room
    for nick, prefix in [("alice", "a"), ("bob", "b"), ("guest-1", "t")]:
        assert [t for n, t in order if n == nick] == [f"{prefix}{k}" for k in range(20)]
    # Each sees everyone else's lines, once, in that order.
    assert select_seen == [(n, t) for n, t in order if n != "bob"]
    assert plain_seen == [f"{n}: {t}" for n, t in order if n != "guest-1"]
    with pytest.raises(TimeoutError):  # and nothing more
        bob.recv(timeout=0.3)
    for client in (alice, bob, tut):
        client.close()


def test_a_taken_name_gets_a_line_from_server_then_the_connection_closes(server) -> None:
    alice, _ = rich_client(server.address, "alice")
    for name, line in [
        ("ALICE", "ERROR nick_taken: the nickname ALICE is taken"),
        ("a1ice", "ERROR nick_taken: the nickname a1ice looks too much like alice"),
        ("a b", "ERROR nick_invalid: a nickname may hold letters, digits, '_' and '-' only: "
                "no spaces"),
        ("server", "ERROR nick_taken: the nickname server is reserved"),
    ]:  # fmt: skip
        client = SelectClient(server.address, name)
        assert client.expect_pairs_then_closed() == [("server", line)]
        client.close()
    alice.send_json(type="who", room=None)  # nobody joined, nobody left
    assert [m["nick"] for m in alice.recv_until(lambda m: m["type"] == "who")["members"]] == [
        "alice"
    ]
    alice.close()


def test_frames_split_byte_by_byte(server) -> None:
    alice, _ = rich_client(server.address, "alice")
    bob = SelectClient(server.address)
    bob.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in encode_frame(b"bob", SELECT_HEADER_SIZE) + encode_frame(
        "héllo".encode(), SELECT_HEADER_SIZE
    ):
        bob.send_raw(bytes([byte]))
    assert alice.recv_until(lambda m: m["type"] == "join")["nick"] == "bob"
    chat = alice.recv_until(lambda m: m["type"] == "chat")
    assert (chat["nick"], chat["text"]) == ("bob", "héllo")
    for client in (alice, bob):
        client.close()


def test_an_oversize_header_is_refused_and_closes(server) -> None:
    early = SelectClient(server.address)
    early.send_raw(b"9999999   xyz")  # as the username
    assert early.expect_pairs_then_closed() == [
        ("server", "ERROR frame_too_large: frame of 9999999 bytes is over the limit of 8192 bytes")
    ]
    alice, bob = alice_and_bob(server.address)
    bob.send_raw(b"8193      " + b"x" * 100)  # a line one byte over the limit
    assert bob.expect_pairs_then_closed() == [
        ("server", "ERROR frame_too_large: frame of 8193 bytes is over the limit of 8192 bytes")
    ]
    left = alice.recv_until(lambda m: m["type"] == "leave")
    assert left["nick"] == "bob" and "8193" in left["reason"]
    for client in (early, alice, bob):
        client.close()


def test_a_client_that_gives_its_name_then_only_listens(server_factory) -> None:
    """Never pinged (it could not answer), never cut for its silence; it hears every line,
    and the others' comings and goings from *."""
    srv = server_factory(plain_grace=0.2, ping_interval=0.2, ping_timeout=0.3)
    bob = SelectClient(srv.address, "bob")
    bob.send("/who")  # answered once it is a member: then alice comes
    assert bob.recv_pair() == ("*", "Users in #lobby: bob")
    assert bob.recv_pair() == ("*", "You are bob")
    alice, _ = rich_client(srv.address, "alice")
    assert bob.recv_pair() == ("*", "alice joined #lobby")
    deadline = time.monotonic() + 1.5  # many ping intervals
    n = 0
    while time.monotonic() < deadline:
        alice.send_json(type="chat", text=f"line {n}", id=n)
        assert bob.recv_pair() == ("alice", f"line {n}")
        n += 1
        time.sleep(0.1)
    alice.send_json(type="bye", reason="gone")
    assert bob.recv_pair() == ("*", "alice left (gone)")
    srv.shutdown()
    assert bob.expect_pairs_then_closed() == [("*", "Disconnected: server shutting down")]
    for client in (alice, bob):
        client.close()


def test_commands_keepalives_and_disconnect(server) -> None:
    alice, bob = alice_and_bob(server.address)
    bob.send(b"")  # a keepalive: nothing happens
    bob.send("/who")
    assert bob.recv_pair() == ("*", "Users in #lobby: alice, bob")
    assert bob.recv_pair() == ("*", "You are bob")
    bob.send("/me waves")
    action = alice.recv_until(lambda m: m["type"] == "chat")
    assert (action["nick"], action["text"], action["action"]) == ("bob", "waves", True)
    alice.send_json(type="chat", text="hands", id=1, action=True)
    assert bob.recv_pair() == ("*", "alice hands")
    bob.send("/nope")
    name, line = bob.recv_pair()
    assert name == "server" and line.startswith("ERROR unknown_command:")
    bob.send("Client Disconnected")
    assert alice.recv_until(lambda m: m["type"] == "leave")["reason"] == "quit"
    assert bob.expect_closed() == []
    for client in (alice, bob):
        client.close()


def test_a_password_server_asks_for_it_after_the_name(server_factory) -> None:
    srv = server_factory(password="pw")
    alice = WireClient(srv.address)
    alice.send_json(type="hello", nick="alice", version=1, password="pw")
    alice.recv_until(lambda m: m["type"] == "joined")
    bob = SelectClient(srv.address, "bob")
    assert bob.recv_pair() == ("*", "this server needs a password: send /pass PASSWORD")
    bob.send("/pass pw")
    assert bob.recv_pair() == ("*", "Welcome, you are bob")
    assert alice.recv_until(lambda m: m["type"] == "join")["nick"] == "bob"
    wrong = SelectClient(srv.address, "carol")
    wrong.recv_pair()
    wrong.send("hello?")
    assert wrong.expect_pairs_then_closed() == [
        ("server", "ERROR bad_password: this server needs a password: send /pass PASSWORD first")
    ]
    for client in (alice, bob, wrong):
        client.close()


def test_a_quiet_guest_that_then_speaks_select_becomes_its_name(server_factory) -> None:
    srv = server_factory(plain_grace=0.2)
    alice, _ = rich_client(srv.address, "alice")
    late = SelectClient(srv.address)  # silent: a plain guest after 0.2 s
    assert alice.recv_until(lambda m: m["type"] == "join")["nick"] == "guest-1"
    late.send("bob")
    left = alice.recv_until(lambda m: m["type"] == "leave")
    assert (left["nick"], left["reason"]) == ("guest-1", "quit")
    assert alice.recv_until(lambda m: m["type"] == "join")["nick"] == "bob"
    for client in (alice, late):
        client.close()


def test_a_flood_is_refused_then_kicked(server) -> None:
    alice, bob = alice_and_bob(server.address)
    bob.send_raw(b"".join(encode_frame(b"spam", SELECT_HEADER_SIZE) for _ in range(200)))
    pairs = bob.expect_pairs_then_closed()
    assert all(name == "server" for name, _ in pairs)
    assert pairs[0][1].startswith("ERROR rate_limited: slow down: too many messages")
    assert pairs[-1] == ("server", "ERROR rate_limited: excess flood: too many messages, too fast")
    said = []
    while (m := alice.recv_json())["type"] != "leave":
        if m["type"] == "chat":
            said.append(m["text"])
    assert said == ["spam"] * 19  # the burst, its username frame was the 20th
    alice.close()
    bob.close()


def test_its_lines_are_kept_and_replayed_to_who_joins_later(server) -> None:
    """No acks in this dialect, but its lines are stored like everyone's."""
    bob = SelectClient(server.address, "bob")
    for n in range(3):
        bob.send(f"kept {n}")
    bob.send("/who")  # answered after the lines before it are stored
    bob.recv_pair()
    bob.recv_pair()
    alice = WireClient(server.address)
    alice.send_json(type="hello", nick="alice", version=1)
    alice.recv_until(lambda m: m["type"] == "joined")
    history = [alice.recv_json() for _ in range(3)]
    assert [(m["nick"], m["text"], m["history"]) for m in history] == [
        ("bob", f"kept {n}", True) for n in range(3)
    ]
    for client in (alice, bob):
        client.close()
