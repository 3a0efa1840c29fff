"""Listen-first tutorial clients: a connection that says nothing becomes a plain guest.

The classic tutorial clients connect and then only receive until their user types; they are
in the room from the moment they connect. The server makes a silent connection a plain guest
after a short grace (``plain_grace``), without a reader thread until its first bytes.
"""

from __future__ import annotations

import socket
import threading
import time

from wire import WireClient, rich_client

from game_chat.protocol.framing import encode_frame

GRACE = 0.2


def guests_joined(watcher: WireClient, count: int) -> list[str]:
    return [watcher.recv_until(lambda m: m["type"] == "join")["nick"] for _ in range(count)]


def test_a_listening_client_gets_every_line_said_after_it_connected(server_factory) -> None:
    server = server_factory(plain_grace=GRACE)
    watcher, _ = rich_client(server.address, "watcher")
    listener = WireClient(server.address)  # connects, then only listens
    guest = guests_joined(watcher, 1)[0]
    assert guest.startswith("guest-")
    for n in range(5):
        watcher.send_json(type="chat", text=f"line {n}", id=n)
    assert [listener.recv_text() for _ in range(5)] == [f"watcher: line {n}" for n in range(5)]
    listener.send("hi, I was listening")  # its first line, as the tutorial client sends it
    assert listener.recv_text() == "Message was Sent!"
    said = watcher.recv_until(lambda m: m["type"] == "chat")
    assert (said["nick"], said["text"]) == (guest, "hi, I was listening")


def test_quiet_guests_are_never_cut_for_being_quiet(server_factory) -> None:
    server = server_factory(plain_grace=GRACE, hello_timeout=0.5, ping_interval=0.2)
    watcher, _ = rich_client(server.address, "watcher")
    listener = WireClient(server.address)
    guests_joined(watcher, 1)
    time.sleep(1.5)  # three registration deadlines and many ping intervals: nothing happens
    watcher.send_json(type="chat", text="still with us?", id=1)
    assert listener.recv_text() == "watcher: still with us?"


def test_a_rich_hello_after_the_grace_still_makes_a_rich_member(server_factory) -> None:
    server = server_factory(plain_grace=GRACE)
    watcher, _ = rich_client(server.address, "watcher")
    late = WireClient(server.address)
    guest = guests_joined(watcher, 1)[0]
    late.send_json(type="hello", nick="alice", version=1)
    welcome = late.recv_until(lambda m: m["type"] == "welcome")
    assert welcome["nick"] == "alice"
    left = watcher.recv_until(lambda m: m["type"] == "leave")
    assert left["nick"] == guest  # the quiet guest made way for the member it turned out to be
    assert watcher.recv_until(lambda m: m["type"] == "join")["nick"] == "alice"


def test_quiet_guests_cost_no_thread(server_factory) -> None:
    server = server_factory(plain_grace=GRACE)
    watcher, _ = rich_client(server.address, "watcher")
    before = threading.active_count()
    socks = [socket.create_connection(server.address) for _ in range(50)]
    try:
        guests_joined(watcher, 50)
        assert threading.active_count() <= before + 2  # no reader thread per guest
        socks[0].sendall(encode_frame(b"now I speak"))
        said = watcher.recv_until(lambda m: m["type"] == "chat")
        assert said["text"] == "now I speak"
    finally:
        for sock in socks:
            sock.close()


def test_on_a_password_server_silence_still_times_out(server_factory) -> None:
    server = server_factory(plain_grace=GRACE, hello_timeout=0.5, password="pw")
    silent = WireClient(server.address)
    error = silent.recv_json(timeout=5)
    assert (error["code"], error["fatal"]) == ("hello_timeout", True)


def test_quiet_guests_hear_the_goodbye_at_shutdown(server_factory) -> None:
    server = server_factory(plain_grace=GRACE)
    watcher, _ = rich_client(server.address, "watcher")
    listener = WireClient(server.address)
    guests_joined(watcher, 1)
    server.shutdown()
    assert listener.expect_closed() == [b"* Disconnected: server shutting down"]


def test_lines_said_while_it_waited_to_become_a_guest_are_not_lost(server_factory) -> None:
    server = server_factory(plain_grace=0.5)
    watcher, _ = rich_client(server.address, "watcher")
    listener = WireClient(server.address)  # connected: from now on it must hear every line
    for n in range(3):  # said before the grace made it a guest
        watcher.send_json(type="chat", text=f"early {n}", id=n)
        watcher.recv_until(lambda m: m["type"] == "ack")
    guests_joined(watcher, 1)
    watcher.send_json(type="chat", text="late", id=9)
    heard = [listener.recv_text() for _ in range(4)]
    assert heard == ["watcher: early 0", "watcher: early 1", "watcher: early 2", "watcher: late"]
