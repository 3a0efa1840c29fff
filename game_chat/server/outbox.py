"""A connection's bounded outbound queue.

Producers (any thread, usually while holding the chat state's lock) :meth:`Outbox.put`
frames; that never blocks and never touches a socket. The one sender thread takes
everything queued as a single buffer with :meth:`Outbox.pending`, so many frames leave in one
system call, and reports what went out with :meth:`Outbox.sent`. Going over the byte limit
marks the outbox overflowed, drops what it held and calls ``on_overflow`` once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class Outbox:
    def __init__(
        self,
        limit_bytes: int,
        on_ready: Callable[[], None],
        on_overflow: Callable[[], None],
    ) -> None:
        self.limit_bytes = limit_bytes
        self._on_ready = on_ready  # called when the outbox goes from empty to non-empty
        self._on_overflow = on_overflow
        self._lock = threading.Lock()
        self._frames: deque[bytes] = deque()
        self._head = memoryview(b"")  # joined bytes the sender has not finished sending
        self._size = 0  # bytes in _frames plus the unsent part of _head
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
            size = self._size + len(frame)
            if size > self.limit_bytes:
                self.closed = self.overflowed = True
                self._frames.clear()
                self._head = memoryview(b"")
                self._size = 0
                overflowed = True
            else:
                was_empty = self._size == 0
                self._frames.append(frame)
                self._size = size
                overflowed = False
        if overflowed:
            self._on_overflow()
        elif was_empty:
            self._on_ready()

    def close(self) -> None:
        """Accept no more frames; what is queued still goes out."""
        with self._lock:
            self.closed = True

    def pending(self) -> memoryview:
        """Sender thread only: every unsent byte as one buffer (empty if nothing waits)."""
        with self._lock:
            if not self._head and self._frames:
                frames = self._frames
                self._head = memoryview(frames[0] if len(frames) == 1 else b"".join(frames))
                frames.clear()
            return self._head

    def sent(self, count: int) -> None:
        """Sender thread only: ``count`` bytes of :meth:`pending` went out."""
        with self._lock:
            if self.overflowed:  # everything was dropped while the sender was sending
                return
            self._head = self._head[count:]
            self._size -= count
