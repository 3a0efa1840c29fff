"""Outbox: bounded, non-blocking, coalescing; exercised on a real socket pair."""

from __future__ import annotations

import socket

from game_chat.server.outbox import BLOCKED, BUSY, DRAINED, MORE, Outbox


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


# --- put_held / write_through: sends from the delivering thread --------------------------


def held(box: Outbox, frame: bytes) -> None:
    """As the fan-out does: queue without waking, then write through if it was empty."""
    if box.put_held(frame):
        box.write_through()


def test_write_through_sends_at_once_when_nothing_waits() -> None:
    ready: list[int] = []
    a, b = pair()
    box = Outbox(1000, lambda: ready.append(1), lambda: None, sock=a)
    held(box, b"hello")
    assert b.recv(10) == b"hello"
    assert box.size == 0 and ready == []  # no sender thread involved


def test_a_held_frame_queues_behind_what_waits() -> None:
    ready: list[int] = []
    a, b = pair()
    box = Outbox(1000, lambda: ready.append(1), lambda: None, sock=a)
    box.put(b"first ")  # waiting for the sender thread
    assert box.put_held(b"second") is False  # not empty: nothing to write through
    assert ready == [1] and box.size == 12
    assert box.send_to(a) == DRAINED
    assert b.recv(20) == b"first second"


def test_what_the_socket_does_not_take_goes_to_the_sender() -> None:
    ready: list[int] = []
    a, b = pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    box = Outbox(1 << 22, lambda: ready.append(1), lambda: None, sock=a)
    big = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffer
    held(box, big)
    assert ready == [1] and 0 < box.size < len(big)  # the rest waits for the sender
    got = bytearray()
    while len(got) < len(big):
        box.send_to(a)
        got += b.recv(1 << 20)
    assert bytes(got) == big


def test_only_one_thread_sends_at_a_time() -> None:
    a, b = pair()
    box = Outbox(1000, lambda: None, lambda: None, sock=a)
    box.put(b"x")
    box._sending = True  # as while another thread is in send_to
    assert box.send_to(a) == BUSY  # left to that thread, which sees what is left
    assert box.size == 1
    box._sending = False
    assert box.send_to(a) == DRAINED and b.recv(5) == b"x"


def test_a_held_frame_over_the_limit_overflows() -> None:
    overflow: list[int] = []
    a, _peer = pair()  # kept open: the send must not fail
    box = Outbox(10_000, lambda: None, lambda: overflow.append(1), sock=a)
    assert box.put_held(b"x" * 1_000_000) is False
    assert overflow == [1] and box.overflowed and box.size == 0
    assert box.put_held(b"more") is False  # closed: dropped
    assert box.size == 0


def test_a_broken_socket_is_left_to_the_sender() -> None:
    ready: list[int] = []
    a, b = pair()
    b.close()
    box = Outbox(1000, lambda: ready.append(1), lambda: None, sock=a)
    held(box, b"lost?")
    assert ready == [1] and box.size == 5  # put back: the sender thread's send fails
    try:
        box.send_to(a)
    except OSError:
        pass
    else:  # pragma: no cover - a platform that buffers after the peer closed
        raise AssertionError("send on a closed pair should fail")


def test_peer_closed_sees_a_close_the_reader_has_not_read() -> None:
    a, b = pair()
    box = Outbox(1000, lambda: None, lambda: None, sock=a)
    b.sendall(b"unread")
    assert not box.peer_closed()  # open, bytes waiting: the peek takes nothing
    b.close()
    assert not box.peer_closed()  # the close is behind bytes the reader has not taken
    assert a.recv(100) == b"unread"
    assert box.peer_closed()
    assert a.recv(100) == b""  # the reader still sees the close itself
    box.close()
    assert box.peer_closed()
