"""Appending lines to the room streams from one thread, in order, through Redis outages.

:meth:`Appender.submit` never blocks on Redis: it queues the line (bounded) and the appender's
thread sends what is queued as one pipeline. When Redis cannot be reached, or a reply is lost,
the thread keeps the lines at the head of its queue and sends them again after a backoff.
Sending again is harmless because every line has an origin (the caller's, or one made here
from the node's id and a counter): a line Redis had already appended is answered with its
first id and is not added twice. Lines therefore reach the streams exactly once, each node's
lines in the order they were submitted, and each line's callback runs once, in that order.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..protocol.errors import ChatError
from .backoff import Reconnect
from .room_log import Appended, ClusterDataError, ClusterError, NewEvent, NewLine, RoomLog

log = logging.getLogger("game_chat.cluster")

#: on_done(result): the line's id and time, or the error that means it will never be stored.
OnDone = Callable[[Appended | ClusterError], None]


class BacklogFull(ChatError):
    """Redis has been away so long that ``backlog_limit`` lines are waiting: refuse new ones."""


@dataclass(eq=False)
class _Waiting:
    line: NewLine | NewEvent
    on_done: OnDone


class Appender:
    """One node's writer to the room streams (a thread of its own; see the module doc)."""

    def __init__(
        self,
        room_log: RoomLog,
        *,
        node_id: str,
        batch: int = 500,
        backlog_limit: int = 10_000,
    ) -> None:
        self._log = room_log
        self._node_id = node_id
        self.batch = max(1, batch)
        self.backlog_limit = max(1, backlog_limit)
        self._cond = threading.Condition()
        self._queue: deque[_Waiting] = deque()
        self._made_origins = 0
        self._stop = threading.Event()
        self._reconnect = Reconnect("room log writer")
        self._thread = threading.Thread(target=self._run, name="cluster-append", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after sending what is queued, if Redis lets it within ``timeout``."""
        with self._cond:
            self._stop.set()
            self._cond.notify()
        self._thread.join(timeout)

    @property
    def backlog(self) -> int:
        return len(self._queue)

    @property
    def redis_down(self) -> bool:
        """True while the last append failed for want of Redis (it is being retried)."""
        return self._reconnect.down

    def submit(self, line: NewLine | NewEvent, on_done: OnDone) -> None:
        """Queue ``line`` (or an event, in order with the lines); ``on_done`` runs on the
        appender's thread once it is in Redis. Raises BacklogFull when too many wait for
        Redis already."""
        with self._cond:
            if len(self._queue) >= self.backlog_limit:
                raise BacklogFull("the cluster's store has been unreachable for too long")
            if not line.origin:
                self._made_origins += 1
                line = dataclasses.replace(line, origin=f"{self._node_id}:{self._made_origins}")
            self._queue.append(_Waiting(line, on_done))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if not self._queue:
                    return
                taken = [self._queue[i] for i in range(min(self.batch, len(self._queue)))]
            try:
                results: list[Appended | ClusterError] = list(
                    self._log.append([w.line for w in taken])
                )
                self._reconnect.worked()
            except ClusterDataError as exc:
                log.error("room log writer: %s; %d lines not stored", exc, len(taken))
                results = [exc] * len(taken)
            except ClusterError as exc:
                if self._stop.is_set() or not self._reconnect.failed(exc, self._stop):
                    log.error("room log writer stopped with %d lines unsent", len(self._queue))
                    return
                continue  # the same lines again, in the same order
            with self._cond:
                for _ in taken:
                    self._queue.popleft()
            for waiting, result in zip(taken, results, strict=True):
                waiting.on_done(result)
