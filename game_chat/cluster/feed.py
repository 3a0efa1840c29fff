"""Following room streams: the lines every node fans out to its own members.

A :class:`RoomFeed` runs one thread that reads (``XREAD BLOCK``) the streams of the rooms it
follows, from the last id it handed on in each, and calls ``on_lines`` with what arrived, per
room oldest first. A room's position moves only after ``on_lines`` returned, so every line
reaches ``on_lines`` exactly once and in order, whatever Redis does meanwhile: when it is
unreachable or restarting, the feed waits (with backoff, logged once) and resumes each room
from its position. Lines said while it was away are read then; none is skipped or repeated.

It also reads the cluster's event stream (joins, parts, leaves, nick and away changes of the
members of other nodes), from where it was when the feed started, and hands the events to
``on_events``.

Following a new room takes effect at once: the feed also reads a small wake-up stream of its
own (``{ns}:wake:{node}``), and :meth:`RoomFeed.follow` adds an entry to it, which ends the
blocking read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import redis

from .backoff import Reconnect
from .room_log import ClusterDataError, ClusterError, FeedEvent, FeedLine, RoomLog

log = logging.getLogger("game_chat.cluster")

#: on_lines(lines): each room's lines oldest first.
OnLines = Callable[[Sequence[FeedLine]], None]


class RoomFeed:
    """One node's reader of the room streams (a thread of its own; see the module doc)."""

    def __init__(
        self,
        room_log: RoomLog,
        on_lines: OnLines,
        *,
        on_events: Callable[[Sequence[FeedEvent]], None] = lambda events: None,
        node_id: str,
        block_ms: int = 1000,
        batch: int = 1000,
    ) -> None:
        self._log = room_log
        self._on_lines = on_lines
        self._on_events = on_events
        self._events_position: str | None = None  # read at start, then the last event had
        self._wake_key = f"{room_log.namespace}:wake:{node_id}"
        self._block_ms = block_ms
        self._batch = batch
        self._lock = threading.Lock()
        self._positions: dict[str, int] = {}  # room key -> last id handed on
        self._wake_position = "0-0"  # then the last wake-up read (none is missed in between)
        self._stop = threading.Event()
        self._reconnect = Reconnect("room feed")
        #: The highest id this feed has seen: ids up to it must never be handed out again.
        self.highest_id = 0
        self._thread = threading.Thread(target=self._run, name="cluster-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._poke()
        self._thread.join(timeout)

    def follow(self, room_key: str, after_id: int) -> None:
        """Hand on the lines of ``room_key`` after ``after_id`` (a room already followed
        keeps its position)."""
        with self._lock:
            if room_key in self._positions:
                return
            self._positions[room_key] = after_id
        self._poke()

    def followed(self) -> list[str]:
        """The room keys (streams) this feed reads."""
        with self._lock:
            return list(self._positions)

    @property
    def redis_down(self) -> bool:
        """True while the last read failed for want of Redis (it is being retried)."""
        return self._reconnect.down

    def position(self, room_key: str) -> int | None:
        with self._lock:
            return self._positions.get(room_key)

    def _poke(self) -> None:
        """End the feed's blocking read (best effort: it ends by itself within block_ms)."""
        try:
            self._log.client.xadd(self._wake_key, {"w": "1"}, maxlen=10, approximate=True)
        except redis.RedisError:
            pass  # Redis is away: the feed is not blocked in a read anyway

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                positions = dict(self._positions)
            try:
                if self._reconnect.down:
                    # Ids this node has seen must not come back if Redis lost its data.
                    self._log.raise_id_floor(self.highest_id)
                if self._events_position is None:  # from now on: not what was before we came
                    self._events_position = self._log.events_position()
                wake = (self._wake_key, self._wake_position)
                lines, woken, events, at = self._log.read(
                    positions, self._block_ms, self._batch, wake, self._events_position
                )
                self._wake_position = woken or self._wake_position
                self._events_position = at or self._events_position
                self._reconnect.worked()
            except ClusterDataError as exc:
                log.error("room feed: %s; skipping that read", exc)
                self._stop.wait(1.0)
                continue
            except ClusterError as exc:
                if not self._reconnect.failed(exc, self._stop):
                    return
                continue
            if lines:
                self._hand_on(lines)
            if events:
                self._on_events(events)

    def _hand_on(self, lines: Sequence[FeedLine]) -> None:
        self.highest_id = max(self.highest_id, max(f.message.id for f in lines))
        with self._lock:
            # Only lines past each room's position: none is ever handed on twice.
            pos = self._positions
            fresh = [f for f in lines if f.message.id > pos.get(f.room_key, f.message.id)]
        if not fresh:
            return
        self._on_lines(fresh)
        with self._lock:
            for f in fresh:
                if f.message.id > pos.get(f.room_key, f.message.id):
                    pos[f.room_key] = f.message.id
