"""Room streams: a broadcast is one append, and each member takes what it has not had.

Fanning a line out member by member costs Python work per recipient: a queue operation
under a lock, then a ``send``. For a room of a thousand members that is most of the
server's time (issue 10; README "Fan-out beside a C IRC daemon"). Instead each room has a
:class:`RoomStream`, an append-only log of what delivery passes sent the room: one entry per
run of lines, holding the bytes for each way members see it (dialect, current room) and the
members who get something else instead (the senders, whose acks take their lines' places).
A member's mailbox is a :class:`Follower`: it holds a cursor in each stream of its rooms and,
whenever it sends or queues anything, first takes everything the streams hold beyond its
cursors (``_tails``). So:

- a broadcast is one ``append``, whatever the room's size;
- a member's bytes stay in the order they were made: a frame queued for it (an ack, a
  private line, an event) is queued after what its streams held at that moment;
- a member sends everything it is owed in one ``send``, however many lines that is, so
  :class:`Coalescer` lets a busy room's lines gather before waking its members: a room is
  flushed at once when its last flush ended at least ``FLUSH_SECONDS_PER_MEMBER`` × its size
  ago, otherwise then. A flush costs about 10 µs of CPU per member (the ``send`` is most of
  it), so a busy room's flushes take at most about a quarter of a core, and each carries
  every line that came meanwhile: for a thousand members, a flush every 30 ms or so with
  three lines per ``send`` where one ``send`` per line cost twice ngIRCd's CPU per delivery
  (ngIRCd's event loop ends up sending about three lines per ``write`` too, measured with
  ``perf stat``). A room of a hundred waits at most 3 ms, and a quiet room none.

Memory stays bounded: entries are dropped once every follower is past them, and a follower
that falls further behind than its mailbox's limit (plus ``SLACK_BYTES``) is cut like a full
mailbox (the check runs at every flush of the room).

Locks: entries are appended under the chat state's lock; a follower moves its cursors under
its own mailbox's lock; the stream's own lock only covers reading and trimming its list.
Nothing here touches a socket.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..protocol.messages import ServerMessage

log = logging.getLogger("game_chat.server")

#: How a member sees a room's lines: (dialect, whether the room is its current one).
Variant = tuple[str, bool]
#: An entry's bytes with its place in the order of all entries.
Ordered = tuple[int, bytes]
#: Encodes a message for a variant (the chat state's): a fallback for a variant that had no
#: member when the entry was made.
Encoder = Callable[[ServerMessage, Variant, str], bytes]

#: A room is flushed at most once per this many seconds per member (see the module's doc).
FLUSH_SECONDS_PER_MEMBER = 30e-6

#: How far behind a follower may fall before its limit is looked at (see flush_now).
SLACK_BYTES = 64 * 1024

#: One order for the entries of every stream (appends happen under the chat state's lock):
#: a member of several rooms gets their lines in the order they were delivered.
_order = itertools.count()
#: The order of the last entry appended to any stream, set once it is in its stream. A
#: follower of several rooms takes only entries up to it, read before the streams: one it
#: read the streams past could be followed by an older one appended meanwhile to a stream it
#: had already read (a line of room B sent before the line of room A delivered first).
_published = [-1]


class _Entry:
    """What one delivery pass sent a room."""

    __slots__ = ("before", "blobs", "messages", "order", "skip")

    def __init__(
        self,
        order: int,
        before: int,
        blobs: dict[Variant, bytes],
        skip: frozenset[Any],
        messages: tuple[ServerMessage, ...],
    ) -> None:
        self.order = order  # place among the entries of every stream
        self.before = before  # bytes appended to the stream before this entry
        self.blobs = blobs  # variant -> the bytes of all its messages
        self.skip = skip  # followers that get something else instead
        self.messages = messages  # for a variant missing from blobs


class RoomStream:
    """One room's log of broadcasts and its followers' cursors."""

    __slots__ = (
        "_base",
        "_end",
        "_entries",
        "_last",
        "_lock",
        "_total",
        "cursors",
        "encoder",
        "flushing",
        "last_flush",
        "room",
        "scheduled",
        "variants",
    )

    def __init__(self, room: str = "", encoder: Encoder | None = None) -> None:
        self.room = room
        self.encoder = encoder
        self._entries: list[_Entry] = []
        self._base = 0  # index of _entries[0]
        self._end = 0  # index of the next entry (never moves back; trimming keeps it)
        self._total = 0  # bytes ever appended (each entry counted at its largest variant)
        self._lock = threading.Lock()
        # the last read: (start, stop, variant, followers skipped, what the others get: by
        # entry and joined)
        self._last: tuple[int, int, Variant, frozenset[Any], list[Ordered], bytes] | None = None
        #: follower -> index of the first entry it has not taken
        self.cursors: dict[Follower, int] = {}
        #: variant -> how many followers see the room that way (what an entry must hold)
        self.variants: dict[Variant, int] = {}
        self.last_flush = 0.0  # time.monotonic() when the last flush ended (Coalescer)
        self.flushing = False  # a thread is flushing it now (Coalescer)
        self.scheduled = False  # a flush is due on the coalescer's thread

    @property
    def end(self) -> int:
        return self._end

    def append(
        self,
        blobs: dict[Variant, bytes],
        skip: frozenset[Any] = frozenset(),
        messages: tuple[ServerMessage, ...] = (),
    ) -> None:
        """Chat state's lock held: a broadcast to every follower but those in ``skip``."""
        entry = _Entry(next(_order), self._total, blobs, skip, messages)
        self._total += max(map(len, blobs.values()), default=0)
        with self._lock:
            self._entries.append(entry)
            self._end += 1
        _published[0] = entry.order

    def read(
        self, start: int, variant: Variant, follower: Follower, upto: int | None = None
    ) -> tuple[list[Ordered], bytes, int]:
        """The bytes of the entries from ``start`` on (only those of order ``upto`` at most,
        when given) for ``follower`` (who sees the room as ``variant``): each entry's with its
        place in the order of all entries, all of them joined, and the index after the last
        of them."""
        last, stop = self._last, self._end
        if (
            upto is None
            and last is not None
            and last[:3] == (start, stop, variant)
            and follower not in last[3]
        ):
            # Another follower at this place read these entries as this one sees them: no
            # lock (the cache is a tuple, replaced whole under the lock, never changed).
            return last[4], last[5], stop
        with self._lock:
            base, stop = self._base, self._end
            if upto is not None:
                while stop > start and self._entries[stop - 1 - base].order > upto:
                    stop -= 1
            last = self._last
            if last is None or last[0] != start or last[1] != stop or last[2] != variant:
                # Most followers of a room are at the same place and see it the same way:
                # the entries are gone through once per flush, not once per follower.
                entries = self._entries[start - base : stop - base]
                skipped = frozenset().union(*[e.skip for e in entries if e.skip])
                last = self._last = (start, stop, variant, skipped, *self._pick(entries, variant))
            if follower in last[3]:  # a sender: its own lines' places hold its acks
                entries = self._entries[start - base : stop - base]
                mine = [e for e in entries if follower not in e.skip]
                return (*self._pick(mine, variant), stop)
        return last[4], last[5], stop

    def _pick(self, entries: list[_Entry], variant: Variant) -> tuple[list[Ordered], bytes]:
        """The entries' bytes for ``variant``: each with its order, and all of them joined."""
        pairs = []
        for entry in entries:
            blob = entry.blobs.get(variant)
            if blob is None:  # nobody saw the room this way when the entry was made
                blob = entry.blobs[variant] = self._encode(entry, variant)
            if blob:
                pairs.append((entry.order, blob))
        return pairs, b"".join([blob for _, blob in pairs])

    def _encode(self, entry: _Entry, variant: Variant) -> bytes:
        encoder = self.encoder
        if encoder is None:
            return b""
        return b"".join(encoder(m, variant, self.room) for m in entry.messages)

    def behind(self, cursor: int) -> int:
        """Bytes (at most) a follower at ``cursor`` has not taken yet."""
        with self._lock:
            if cursor >= self._end:
                return 0
            return self._total - self._entries[cursor - self._base].before

    def trim(self) -> None:
        """Drop the entries every follower has taken."""
        low = min(self.cursors.values(), default=self._end)
        with self._lock:
            done = low - self._base
            if done > 0:
                del self._entries[:done]
                self._base = low

    @property
    def held(self) -> int:
        """Entries still kept (tests)."""
        return len(self._entries)

    def _count(self, variant: Variant, change: int) -> None:
        left = self.variants.get(variant, 0) + change
        if left > 0:
            self.variants[variant] = left
        else:
            self.variants.pop(variant, None)


class Follower:
    """A mailbox's side of the streams: which it follows, as what, and taking what they hold.

    Its methods expect the owner's lock held (the Outbox's; test mailboxes have none), so
    that taking a stream's tail and queueing a frame are one step for other threads."""

    __slots__ = ("_follows",)

    def __init__(self) -> None:
        self._follows: dict[RoomStream, Variant] = {}

    def _tails(self) -> bytes:
        """Everything the followed streams hold beyond this follower's cursors (which move
        to their ends), in the order it was delivered (across rooms too)."""
        follows = self._follows
        taken: list[tuple[list[Ordered], bytes]] = []  # (by entry, joined) per room
        upto = None if len(follows) == 1 else _published[0]  # (read before the streams)
        for stream, variant in follows.items():
            cursor = stream.cursors.get(self)
            if cursor is not None and cursor < stream._end:
                pairs, joined, stream.cursors[self] = stream.read(cursor, variant, self, upto)
                if upto is None:  # in one room (the common case, on every send)
                    return joined
                if joined:
                    taken.append((pairs, joined))
        if len(taken) < 2:  # one room (the common case): its bytes as they are
            return taken[0][1] if taken else b""
        # (the orders are unique: the bytes are never compared)
        return b"".join([blob for _, blob in sorted(p for pairs, _ in taken for p in pairs)])

    def _owed(self) -> bool:
        """Some followed stream holds entries this follower has not taken."""
        for stream in self._follows:
            cursor = stream.cursors.get(self)
            if cursor is not None and cursor < stream._end:
                return True
        return False

    def _refollow(self, wanted: dict[RoomStream, Variant]) -> bytes:
        """Follow exactly ``wanted`` from now on. First everything owed so far is taken, as
        it was seen until now (returned, to be queued before anything newer); new streams are
        followed from their ends."""
        follows = self._follows
        out = self._tails()  # all of it (not only the streams that change): one order
        for stream in [s for s in follows if wanted.get(s) != follows[s]]:
            variant = follows.pop(stream)
            stream.cursors.pop(self, None)
            stream._count(variant, -1)
        for stream, variant in wanted.items():
            if stream not in follows:
                follows[stream] = variant
                stream.cursors[self] = stream._end
                stream._count(variant, +1)
        return out

    def _behind(self) -> int:
        return sum(stream.behind(stream.cursors.get(self, stream._end)) for stream in self._follows)

    def _unfollow_all(self) -> None:
        """Take nothing more (the mailbox is cut or closed): the streams stop keeping lines
        for it at once. (Only the cursors go: the chat state, which alone counts variants,
        drops the follows themselves when the member leaves its rooms.)"""
        for stream in self._follows:
            stream.cursors.pop(self, None)

    # What the streams and the coalescer call; the owner implements them with its lock.

    def follow(self, wanted: dict[RoomStream, Variant]) -> None:
        """Follow exactly these streams (see _refollow); what the others held is queued."""
        data = self._refollow(wanted)
        if data:
            self.put(data)

    def put(self, frame: bytes) -> None:  # pragma: no cover - every owner has its own
        raise NotImplementedError

    def write_through(self) -> None:
        """Send what is owed, if the owner can (test mailboxes just keep it)."""

    def flush_room(self, stream: RoomStream) -> None:
        """A flush of ``stream`` reached this follower: :meth:`write_through`."""
        self.write_through()

    def check_behind(self) -> None:
        """Cut this follower if it is further behind than its limit allows."""

    def peer_closed(self) -> bool:
        """The peer has closed its side of the connection (test mailboxes: never)."""
        return False


class Coalescer:
    """Flushes rooms: at once when a room's last flush ended long enough ago, otherwise when
    that time comes (one thread keeps the due times). "Long enough" is ``per_member`` times
    the room's size, counted from the end of the last flush: a busy room's flushes so take
    at most about a third of a core, and each carries every line that came meanwhile."""

    def __init__(self, per_member: float = FLUSH_SECONDS_PER_MEMBER) -> None:
        self.per_member = per_member
        self._cond = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, RoomStream]] = []
        self._order = 0
        self._stop = False
        self._thread: threading.Thread | None = None

    def flush(self, streams: Iterable[RoomStream]) -> None:
        """Lines were appended to these streams (called with no lock held)."""
        for stream in streams:
            with self._cond:
                if stream.scheduled:
                    continue  # the thread will take this line along
                due = self._due_time(stream)
                if due is not None:
                    stream.scheduled = True
                    self._schedule(due, stream)
                    continue
                stream.flushing = True
            self._flush(stream)

    def _due_time(self, stream: RoomStream) -> float | None:
        """Lock held: when ``stream`` may be flushed next; None: now."""
        now = time.monotonic()
        if stream.flushing:  # look again once it may have ended
            return now + self.per_member * len(stream.cursors)
        due = stream.last_flush + self.per_member * len(stream.cursors)
        return due if due > now else None

    def _flush(self, stream: RoomStream) -> None:
        """``stream.flushing`` set by the caller: flush it, then note when that ended."""
        try:
            flush_now(stream)
        except Exception:  # a bug of ours: log it, keep flushing the other rooms
            log.exception("flushing %s failed", stream.room)
        finally:
            with self._cond:
                stream.last_flush = time.monotonic()
                stream.flushing = False

    def _schedule(self, due: float, stream: RoomStream) -> None:
        self._order += 1
        heapq.heappush(self._due, (due, self._order, stream))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="chat-flush", daemon=True)
            self._thread.start()
        self._cond.notify()

    def close(self) -> None:
        """Flush what is due at once and end the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._due or self._due[0][0] > time.monotonic()):
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._cond.wait(wait)
                if self._stop and not self._due:
                    return
                _, _, stream = heapq.heappop(self._due)
                due = None if self._stop else self._due_time(stream)
                if due is not None:  # a flush ran meanwhile: wait for its time
                    self._schedule(due, stream)
                    continue
                stream.scheduled = False
                if stream.flushing:  # (stopping) another thread flushes it now
                    continue
                stream.flushing = True
            self._flush(stream)


def flush_now(stream: RoomStream) -> None:
    """Each follower sends what it is owed; entries everyone has are dropped; a follower too
    far behind is cut."""
    for follower in list(stream.cursors):
        follower.flush_room(stream)
    stream.trim()
    # Is anyone too far behind? Only looked at follower by follower once the one furthest
    # behind lacks more than SLACK_BYTES: a mailbox may so hold up to its limit plus that
    # much (its own queue is checked against the limit whenever something joins it).
    if stream.behind(stream._base) > SLACK_BYTES:
        for follower in list(stream.cursors):
            follower.check_behind()
