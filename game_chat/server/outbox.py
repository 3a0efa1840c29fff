"""A connection's bounded outbound queue.

Producers (any thread, usually while holding the chat state's lock) :meth:`Outbox.put`
frames; that never blocks and never touches a socket. The connection's sender thread sends
everything queued as one buffer with :meth:`Outbox.send_to`, so many frames leave in one
system call. Going over the byte limit
marks the outbox overflowed, drops what it held and calls ``on_overflow`` once.

Write-through: the thread that fans lines out (server/fanout.py) calls :meth:`Outbox.offer`
instead of :meth:`Outbox.put`. When nothing is queued or on its way (the common case: the
client keeps up), ``offer`` sends at once, from that thread, under the outbox's lock, so at
low load a line costs one ``send`` per recipient and no thread hop; only what the socket
does not take is queued for the sender thread. Frames never overtake each other: a thread
sends only from an outbox with nothing queued and nothing in flight.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable

Buffer = bytes | memoryview


def _nothing() -> None:
    pass


#: Results of :meth:`Outbox.send_to`.
DRAINED, MORE, BLOCKED = 0, 1, 2


class Outbox:
    __slots__ = (
        "_frames",
        "_lock",
        "_on_overflow",
        "_on_ready",
        "_size",
        "closed",
        "limit_bytes",
        "overflowed",
        "sock",
    )

    def __init__(
        self,
        limit_bytes: int,
        on_ready: Callable[[], None],
        on_overflow: Callable[[], None],
        sock: socket.socket | None = None,
    ) -> None:
        self.limit_bytes = limit_bytes
        self._on_ready = on_ready  # called when the outbox goes from empty to non-empty
        self._on_overflow = on_overflow
        self.sock = sock  # non-blocking; for offer (None: the sender thread does all sends)
        self._lock = threading.Lock()
        self._frames: deque[Buffer] = deque()
        self._size = 0  # bytes queued plus bytes taken by the sender and not yet sent
        self.closed = False  # no more puts are accepted
        self.overflowed = False

    @property
    def size(self) -> int:
        return self._size

    def put(self, frame: bytes) -> None:
        """Queue a frame; never blocks. Dropped silently once closed."""
        with self._lock:
            if self.closed:
                return
            was_empty = self._queue(frame)
        self._after_queue(was_empty)

    def offer(self, frame: bytes) -> None:
        """:meth:`put`, but if nothing is queued or being sent, one non-blocking ``send``
        of ``frame`` now, from the calling thread; only the part the socket does not take
        (all of it on an error, which the sender thread then meets) is queued. Never
        blocks for longer than that ``send``."""
        sock = self.sock
        with self._lock:
            if self.closed:
                return
            if self._size or sock is None:  # queued or in flight: behind those
                was_empty = self._queue(frame)
            else:
                try:
                    sent = sock.send(frame)
                except OSError:  # full (BlockingIOError) or broken: the sender thread's
                    sent = 0
                if sent == len(frame):
                    return
                was_empty = self._queue(memoryview(frame)[sent:] if sent else frame)
        self._after_queue(was_empty)

    def _queue(self, data: Buffer) -> bool:
        """Lock held: append ``data`` (or overflow); True if the outbox was empty."""
        was_empty = self._size == 0
        self._size += len(data)
        if self._size > self.limit_bytes:
            self.closed = self.overflowed = True
            self._frames.clear()
            self._size = 0
        else:
            self._frames.append(data)
        return was_empty

    def _after_queue(self, was_empty: bool) -> None:
        """Out of the lock: tell the sender thread (or, once, that the client is cut)."""
        if self.overflowed:
            self._on_overflow()
        elif was_empty:
            self._on_ready()

    def close(self) -> None:
        """Accept no more frames; what is queued still goes out."""
        with self._lock:
            self.closed = True

    def detach(self) -> None:
        """The connection is closed: forget the callbacks, which point back at it, so that
        it is freed at once rather than by the cycle collector (a server with many short
        connections otherwise holds their garbage, and fragments its heap, in between)."""
        with self._lock:
            self.closed = True
            self._on_ready = self._on_overflow = _nothing

    def send_to(self, sock: socket.socket) -> int:
        """Sender only: one non-blocking ``send`` of everything queued.

        Returns :data:`DRAINED` (nothing left), :data:`MORE` (more arrived meanwhile) or
        :data:`BLOCKED` (the socket took only part; the rest waits at the head of the queue).
        Raises OSError if the connection is broken. This is :meth:`take` and :meth:`sent` in
        one, because it runs once per recipient per burst: the hottest path of a broadcast.
        """
        with self._lock:
            frames = self._frames
            if not frames:
                return DRAINED
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            frames.clear()
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        with self._lock:
            if self.overflowed:  # everything was dropped while we were sending
                return DRAINED
            self._size -= sent
            if sent < len(data):
                frames.appendleft(memoryview(data)[sent:])
                return BLOCKED
            return MORE if self._size else DRAINED
