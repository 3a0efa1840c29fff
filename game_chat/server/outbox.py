"""A connection's bounded outbound queue.

Producers (any thread, usually while holding the chat state's lock) :meth:`Outbox.put`
frames; that never blocks and never touches a socket. The connection's sender thread sends
everything queued as one buffer with :meth:`Outbox.send_to`, so many frames leave in one
system call. Going over the byte limit
marks the outbox overflowed, drops what it held and calls ``on_overflow`` once.

Write-through: the thread that fans a batch of lines out (server/fanout.py) queues with
:meth:`Outbox.put_held`, which does not wake the sender thread, and then, out of the chat
state's lock and of the commit, sends itself with :meth:`Outbox.write_through`: at low load
a line costs one ``send`` per recipient and no thread hop, and while it sends, the next batch
can be committed by another thread. Only what the socket does not take goes to the sender
thread. One thread at a time sends from an outbox (``_sending``), so frames never overtake
each other whoever sends them.
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
#: BUSY: another thread is sending from this outbox right now (it sees what is left).
DRAINED, MORE, BLOCKED, BUSY = 0, 1, 2, 3


class Outbox:
    __slots__ = (
        "_frames",
        "_lock",
        "_on_overflow",
        "_on_ready",
        "_sending",
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
        self.sock = sock  # non-blocking, for write_through (None: the sender thread sends all)
        self._lock = threading.Lock()
        self._frames: deque[Buffer] = deque()
        self._size = 0  # bytes queued plus bytes taken by a sending thread, not yet sent
        self._sending = False  # a thread is in send_to: the others leave the outbox to it
        self.closed = False  # no more puts are accepted
        self.overflowed = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def sending(self) -> bool:
        """A thread is in the middle of a send from this outbox (its socket must stay open)."""
        return self._sending

    def put(self, frame: bytes) -> None:
        """Queue a frame; never blocks. Dropped silently once closed."""
        if self.put_held(frame):
            self._on_ready()

    def put_held(self, frame: bytes) -> bool:
        """:meth:`put` without waking the sender thread: True if the outbox was empty, and
        the caller must then call :meth:`write_through` (or the frame would wait there)."""
        with self._lock:
            if self.closed:
                return False
            was_empty = self._size == 0
            self._size += len(frame)
            if self._size > self.limit_bytes:
                self.closed = self.overflowed = True
                self._frames.clear()
                self._size = 0
            else:
                self._frames.append(frame)
        if self.overflowed:
            self._on_overflow()
            return False
        return was_empty

    def write_through(self) -> None:
        """After :meth:`put_held` returned True, out of any lock: one non-blocking ``send``
        now, from the calling thread; whatever is left (the socket took only part, or more
        came meanwhile) and any error go to the sender thread, which alone parks sockets
        and breaks connections."""
        sock = self.sock
        if sock is not None:
            try:
                if self.send_to(sock) in (DRAINED, BUSY):  # BUSY: the other one sends it
                    return
            except OSError:
                pass  # put back by send_to: the sender thread meets the error again
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

        Returns :data:`DRAINED` (nothing left), :data:`MORE` (more arrived meanwhile),
        :data:`BLOCKED` (the socket took only part; the rest waits at the head of the queue)
        or :data:`BUSY` (another thread is sending from it: nothing was done). Raises OSError
        if the connection is broken. Taking and sending in one, because it runs once per
        recipient per burst: the hottest path of a broadcast.
        """
        with self._lock:
            frames = self._frames
            if self._sending:  # another thread sends: it sees what is left
                return BUSY
            if not frames:
                return DRAINED
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            frames.clear()
            self._sending = True
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            with self._lock:
                self._sending = False
                if not self.overflowed:
                    frames.appendleft(data)
            raise
        with self._lock:
            self._sending = False
            if self.overflowed:  # everything was dropped while we were sending
                return DRAINED
            self._size -= sent
            if sent < len(data):
                frames.appendleft(memoryview(data)[sent:])
                return BLOCKED
            return MORE if self._size else DRAINED
