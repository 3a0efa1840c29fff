"""A connection's bounded outbound queue.

Producers (any thread, usually while holding the chat state's lock) :meth:`Outbox.put`
frames; that never blocks and never touches a socket. The connection's sender thread takes
everything queued as one buffer with :meth:`Outbox.take`, so many frames leave in one system
call, and reports how much went out with :meth:`Outbox.sent`. Going over the byte limit
marks the outbox overflowed, drops what it held and calls ``on_overflow`` once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

Buffer = bytes | memoryview


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
    )

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
        elif was_empty:
            self._on_ready()

    def close(self) -> None:
        """Accept no more frames; what is queued still goes out."""
        with self._lock:
            self.closed = True

    def take(self) -> Buffer:
        """Sender only: everything queued, as one buffer (empty if nothing waits).

        The bytes still count towards the limit until :meth:`sent` reports them gone.
        """
        with self._lock:
            frames = self._frames
            if not frames:
                return b""
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            frames.clear()
            return data

    def sent(self, data: Buffer, count: int) -> bool:
        """Sender only: ``count`` bytes of ``data`` (from :meth:`take`) went out; the rest goes
        back to the head of the queue. True if anything is left to send."""
        with self._lock:
            if self.overflowed:  # everything was dropped while the sender was sending
                return False
            self._size -= count
            if count < len(data):
                self._frames.appendleft(memoryview(data)[count:])
            return self._size > 0
