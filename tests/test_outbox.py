"""Outbox: bounded, non-blocking, coalescing; exercised on a real socket pair."""

from __future__ import annotations

import socket

from game_chat.server.outbox import BLOCKED, DRAINED, MORE, Outbox


class Calls:
    def __init__(self) -> None:
        self.ready = 0
        self.overflow = 0

    def outbox(self, limit: int) -> Outbox:
        def on_ready() -> None:
            self.ready += 1

        def on_overflow() -> None:
            self.overflow += 1

        return Outbox(limit, on_ready, on_overflow)


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


def test_ready_only_when_going_from_empty() -> None:
    calls = Calls()
    box = calls.outbox(1000)
    box.put(b"a")
    box.put(b"b")
    assert calls.ready == 1
    a, b = pair()
    assert box.send_to(a) == DRAINED
    assert b.recv(10) == b"ab"  # two frames, one send
    box.put(b"c")
    assert calls.ready == 2


def test_overflow_drops_everything_once() -> None:
    calls = Calls()
    box = calls.outbox(10)
    box.put(b"12345")
    box.put(b"123456")
    box.put(b"more")
    assert (calls.overflow, box.overflowed, box.closed, box.size) == (1, True, True, 0)


def test_partial_send_keeps_the_rest_in_order() -> None:
    calls = Calls()
    box = calls.outbox(1 << 24)
    a, b = pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    chunk = b"x" * 65536
    for _ in range(64):
        box.put(chunk)
    assert box.send_to(a) == BLOCKED
    assert 0 < box.size < 64 * 65536
    received = b""
    b.setblocking(False)
    for _ in range(10_000):
        try:
            received += b.recv(1 << 20)
        except BlockingIOError:
            pass
        result = box.send_to(a)
        if result == DRAINED and len(received) == 64 * 65536:
            break
    assert received == chunk * 64
    assert box.size == 0


def test_more_when_frames_arrive_during_a_send() -> None:
    calls = Calls()
    box = calls.outbox(1000)
    a, b = pair()

    class Interleaving:
        """A socket whose send lets another frame in, as a producer thread could."""

        def send(self, data: bytes) -> int:
            box.put(b"late")
            return a.send(data)

    box.put(b"first")
    assert box.send_to(Interleaving()) == MORE  # type: ignore[arg-type]
    assert box.send_to(a) == DRAINED
    assert b.recv(100) == b"firstlate"


def test_closed_outbox_ignores_puts_but_sends_what_it_has() -> None:
    calls = Calls()
    box = calls.outbox(1000)
    box.put(b"bye")
    box.close()
    box.put(b"ignored")
    a, b = pair()
    assert box.send_to(a) == DRAINED
    assert b.recv(100) == b"bye"
