"""A cluster node's line pipeline: what GroupCommit is to a single server.

The chat state hands each line to :meth:`ClusterPipeline.submit`. The line goes to its
stream in Redis (:class:`~game_chat.cluster.appender.Appender`), which gives it its id, and
comes back through the node's :class:`~game_chat.cluster.feed.RoomFeed` with the lines of
every other node, in the streams' order. Only then is it delivered (``deliver``, the state's
fan-out, under the state's lock) and acknowledged to its sender: an ack means the line is in
Redis, and every member on every node sees a room's lines in the same order.

A line the feed brings back is matched with the pending line it came from by its origin
(this node's id and the line's sequence number), written into the entry; lines of other
nodes get a delivery made by ``delivery_for``.

Early lines: a room line not back from Redis within :data:`EARLY_AFTER` seconds (Redis is
slow, restarting or unreachable) is shown at once to the members of its room on this node,
marked pending (``on_early``), so they go on chatting; when it comes back stored they get
its id (a LineSettled), not the line again, and the other nodes get it as usual. Its sender
still gets its ack only then. One lock (``_delivering``) orders early and stored deliveries,
so a member never gets a line's settlement before its early copy.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis

from ..protocol.commands import LOBBY
from ..protocol.errors import ErrorCode, RemoteProtocolError
from ..protocol.messages import UserLeft, encode_message
from ..protocol.names import nick_key
from ..server.group_commit import Deliver, PendingLine
from ..server.history import HistoryError, SentKey, StoredMessage
from .appender import Appender, BacklogFull
from .backoff import Reconnect
from .feed import RoomFeed
from .presence import Presence
from .room_log import (
    Appended,
    ClusterError,
    FeedEvent,
    FeedLine,
    NewEvent,
    NewLine,
    RoomLog,
    private_stream,
)

log = logging.getLogger("game_chat.cluster")


@contextlib.contextmanager
def _as_history_error() -> Iterator[None]:
    """Redis trouble, as the chat state knows store trouble (it reports it and goes on)."""
    try:
        yield
    except ClusterError as exc:
        raise HistoryError(str(exc)) from exc


#: Seconds a room line may wait for Redis before its room's members here are shown it early.
EARLY_AFTER = 0.5
#: Every this many heartbeats a node publishes its whole member list, not only the changes.
FULL_PUBLISH_EVERY = 10
#: Seconds between two retention passes over the streams a node reads.
PRUNE_EVERY = 60.0

#: delivery_for(stored line, pending line of this node or None) -> PendingLine.delivery
DeliveryFor = Callable[[StoredMessage, "PendingLine | None"], Any]


class ClusterPipeline:
    """Submit -> Redis stream -> feed -> deliver (see the module doc)."""

    def __init__(
        self,
        client: redis.Redis,
        deliver: Deliver,
        delivery_for: DeliveryFor,
        *,
        node_id: str | None = None,
        namespace: str = "gc",
        room_cap: int = 10_000,
        backlog_limit: int = 10_000,
        ttl: float = 10.0,
        beat_interval: float = 1.0,
        retention_days: float | None = None,
    ) -> None:
        self.node_id = node_id or secrets.token_hex(6)
        self.log = RoomLog(client, namespace=namespace, room_cap=room_cap)
        self._deliver = deliver
        self._delivery_for = delivery_for
        self._appender = Appender(self.log, node_id=self.node_id, backlog_limit=backlog_limit)
        self._feed = RoomFeed(
            self.log, self._on_lines, on_events=self._on_events, node_id=self.node_id
        )
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        # Wakes the early thread only (the same lock): a delivered line need not wake it.
        self._early_wake = threading.Condition(lock)
        self._seq = 0
        self._done = 0  # every line up to this sequence number is delivered (or failed)
        self._finished: set[int] = set()  # sequence numbers above _done that are finished
        self._mine: dict[str, PendingLine] = {}  # origin -> this node's line, until delivered
        self._by_key: dict[str, PendingLine] = {}  # client retry key -> pending line
        self._closed = False
        # Early lines: (when it is due, origin) of this node's room lines, in submit order.
        self.early_after = EARLY_AFTER
        self._due: deque[tuple[float, str]] = deque()
        self._delivering = threading.Lock()  # early, then stored: never the other way round
        self._early_told = False  # the log says once per outage that lines go out early
        #: Set by the chat state: on_early(lines) shows lines to their rooms' members here
        #: before they are stored (and records who got them in ``line.early_to``);
        #: on_unstored(line) tells them a line they were shown early will never be stored.
        self.on_early: Callable[[Sequence[PendingLine]], None] = lambda lines: None
        self.on_unstored: Callable[[PendingLine], None] = lambda line: None
        self._early_thread = threading.Thread(
            target=self._early_loop, name="cluster-early", daemon=True
        )
        self.beat_interval = beat_interval
        self.retention_days = retention_days
        self._pruned_at = time.monotonic()
        #: Set by the chat state: its members now, nick key -> public info with "rooms".
        self.snapshot: Callable[[], dict[str, dict[str, Any]]] | None = None
        #: Set by the chat state: on_event(server message JSON, room keys) tells the local
        #: members of those rooms what happened to a member of another node.
        self.on_event: Callable[[bytes, Sequence[str]], None] = lambda payload, rooms: None
        #: Set by the chat state: run at each heartbeat (it reloads the cluster's bans).
        self.on_beat: Callable[[], None] = lambda: None
        self._events_sent = 0
        #: Members of the other live nodes as of the last heartbeat: nick key -> info.
        self.remote: dict[str, dict[str, Any]] = {}
        self._published: dict[str, dict[str, Any]] = {}
        self.private_key = private_stream(self.node_id)
        self.presence = Presence(client, namespace=namespace, node_id=self.node_id, ttl=ttl)
        self._stopping = threading.Event()
        self._publish_now = threading.Event()  # a member came or went: publish it at once
        self._heartbeat = threading.Thread(
            target=self._beat_loop, name="cluster-heartbeat", daemon=True
        )
        # HistoryError from here on: Redis cannot be reached at start.
        with _as_history_error():
            #: Welcome ``store``: the same on every node, so a client resumes on any of them.
            self.store_id = self.log.store_id()
            self.presence.beat()
        self.follow(self.private_key)
        self.follow(nick_key(LOBBY))  # everyone's first room: never refused later

    def start(self) -> None:
        """Start the writer, the feed and the heartbeat, once the state has set the
        callbacks (``snapshot``, ``on_event``, ``on_beat``): nothing read is lost before."""
        self._appender.start()
        self._feed.start()
        self._heartbeat.start()
        self._early_thread.start()

    # --- called under the chat state's lock -------------------------------------------------

    def next_id(self) -> int:
        """Ids come from Redis when the line is appended: 0 until then."""
        return 0

    def follow(self, room_key: str) -> int:
        """Deliver the room's lines from now on; returns the first id that will be delivered
        (lines below it are history). Raises HistoryError when Redis cannot be reached."""
        position = self._feed.position(room_key)
        if position is None:
            with _as_history_error():
                position = self.log.last_id(room_key)
            self._feed.follow(room_key, position)
        return position + 1

    def submit(self, line: PendingLine) -> int:
        """Send ``line`` to its stream; returns its sequence number (see :meth:`wait`).
        RemoteProtocolError(unavailable) when Redis has been away for too long."""
        with self._cond:
            if self._closed:
                raise RemoteProtocolError(ErrorCode.SHUTTING_DOWN, "the server is stopping")
            self._seq += 1
            seq = line.seq = self._seq
            origin = line.origin = f"{self.node_id}:{seq}"
            self._mine[origin] = line
            if line.key is not None:
                self._by_key[line.key.key] = line
            if _in_room(line):
                self._due.append((time.monotonic() + self.early_after, origin))
                if len(self._due) == 1:
                    self._early_wake.notify()  # it sleeps until the first line is due
        try:
            self._appender.submit(self._new_line(line, origin), lambda r: self._appended(seq, r))
        except BacklogFull as exc:
            with self._cond:
                self._forget(origin, line)
                self._finish(seq)
            raise RemoteProtocolError(ErrorCode.UNAVAILABLE, f"{exc}; try again later") from None
        return seq

    def find(self, key: str) -> PendingLine | SentKey | None:
        """What a client's retry key was given to: a line of this node not yet delivered, or
        one in Redis (from any node). Raises HistoryError when Redis cannot be reached."""
        with self._cond:
            line = self._by_key.get(key)
        if line is not None:
            return line
        with _as_history_error():
            found = self.log.find_key(key)
        return None if found is None else SentKey(key, *found)

    def history(
        self,
        room: str,
        limit: int,
        *,
        before: int | None = None,
        after: int | None = None,
        newest: bool = True,
    ) -> list[StoredMessage]:
        """Room lines with ``after`` < id < ``before`` from the room's stream. HistoryError
        when Redis cannot be reached."""
        with _as_history_error():
            if newest:
                return self.log.recent(room, limit, before, after)
            return self.log.following(room, after or 0, limit, before)

    # --- presence events -------------------------------------------------------------------

    def tell(
        self,
        payload: bytes,
        rooms: Sequence[str],
        topic: tuple[str, str] | None = None,
        *,
        members_changed: bool = False,
    ) -> None:
        """Tell the other nodes' members of ``rooms`` a server message (a join, part, leave,
        nick, away, topic or member data change here), in order with this node's lines;
        ``topic`` (room key, topic) is also kept for nodes that make the room later.
        ``members_changed`` (someone came, went or was renamed): the member list is
        published now, not at the next beat. Best effort: when Redis has been away too long
        it is dropped."""
        with self._cond:
            self._events_sent += 1
            origin = f"{self.node_id}:e{self._events_sent}"
        try:
            self._appender.submit(NewEvent(payload, tuple(rooms), origin, topic), _ignore)
        except BacklogFull:
            log.warning("a presence event was dropped: Redis has been away too long")
        if members_changed:
            self._publish_now.set()

    def topic(self, room_key: str) -> str:
        """A room's topic as the cluster has it. HistoryError when Redis cannot be reached."""
        with _as_history_error():
            return self.log.topic(room_key)

    def topics(self) -> dict[str, str]:
        """Every room's topic as the cluster has it. HistoryError when Redis cannot be
        reached."""
        with _as_history_error():
            return self.log.topics()

    def _on_events(self, events: Sequence[FeedEvent]) -> None:
        mine = f"{self.node_id}:"
        for event in events:
            if not event.origin.startswith(mine):  # ours were told here when they happened
                self.on_event(event.payload, event.rooms)

    def _announce_dead(self, node: str, members: list[dict[str, Any]]) -> None:
        """A node this one took over: its members left, for everyone (here too)."""
        log.warning("node %s stopped answering; %d members gone", node, len(members))
        now = time.time()
        for info in members:
            nick, rooms = info.get("nick"), info.get("rooms")
            if not isinstance(nick, str) or not isinstance(rooms, list):
                continue
            payload = encode_message(UserLeft(nick, "its server stopped answering", now))
            self.tell(payload, rooms)
            self.on_event(payload, rooms)

    # --- nicks ------------------------------------------------------------------------------

    def claim_nick(self, skeleton: str) -> bool:
        """Take a nick (by its skeleton) for this node: False if another live node holds it.
        HistoryError when Redis cannot be reached (then nobody can take a nick)."""
        with _as_history_error():
            return self.presence.claim_nick(skeleton)

    def release_nick(self, skeleton: str) -> None:
        """Let another node take a nick (best effort: if Redis cannot be reached the claim
        stays until this node is stopped or dies)."""
        try:
            self.presence.release_nick(skeleton)
        except ClusterError as exc:
            log.warning("a nick stays claimed in the cluster: %s", exc)

    def _beat_loop(self) -> None:
        """Heartbeats; and take over nodes that died (their nicks are free again at once)."""
        reconnect = Reconnect("heartbeat")
        beats = 0
        reap_after = 0.0  # monotonic: no node is taken for dead before this
        next_beat = time.monotonic() + self.beat_interval
        while True:
            early = self._publish_now.wait(max(0.0, next_beat - time.monotonic()))
            self._publish_now.clear()
            if self._stopping.is_set():
                return
            if early and time.monotonic() < next_beat and not reconnect.down:
                try:  # only the member list; the rest of the beat keeps its pace
                    self._publish(full=False)
                except ClusterError:
                    pass  # the beat meets the trouble and publishes again
                continue
            next_beat = time.monotonic() + self.beat_interval
            try:
                self.presence.beat()
                # Everything again now and then, and after trouble (another node may have
                # taken this one for dead and dropped its list); only changes in between.
                self._publish(full=beats % FULL_PUBLISH_EVERY == 0 or reconnect.down)
                if reconnect.down:
                    # Redis was away for everyone: give every node a ttl to beat again
                    # before taking any of them for dead.
                    reap_after = time.monotonic() + self.presence.ttl
                if time.monotonic() >= reap_after:
                    for node, members in self.presence.reap().items():
                        self._announce_dead(node, members)
                self.remote = {
                    k: v for k, v in self.presence.members().items() if v["node"] != self.node_id
                }
                self.on_beat()
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY:
                    self._pruned_at = time.monotonic()
                    self.prune()
                reconnect.worked()
                beats += 1
            except ClusterError as exc:
                if not reconnect.failed(exc, self._stopping):
                    return

    def prune(self) -> int:
        """Retention by age (``retention_days``) in the streams this node reads; how many
        lines went. Every node prunes what it reads: the same cut, whoever makes it first.
        Raises ClusterError."""
        if self.retention_days is None:
            return 0
        cutoff = time.time() - self.retention_days * 86400
        return sum(self.log.trim_before(key, cutoff) for key in self._feed.followed())

    def _publish(self, full: bool) -> None:
        """This node's members in the cluster's lists (what ``who`` and ``users`` show)."""
        now = self.snapshot() if self.snapshot is not None else {}
        old = {} if full else self._published
        changed = {k: v for k, v in now.items() if old.get(k) != v}
        gone = [k for k in self._published if k not in now]
        if changed or gone:
            self.presence.publish(changed, gone)
        self._published = now

    # --- waiting ----------------------------------------------------------------------------

    def wait(self, seq: int, timeout: float | None = None) -> bool:
        """Wait until the line with sequence number ``seq`` and all before it are delivered."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= seq, timeout)

    def flush(self, timeout: float | None = None) -> bool:
        with self._cond:
            seq = self._seq
        return self.wait(seq, timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        """Deliver what is under way (within ``timeout``), then stop."""
        with self._cond:
            self._closed = True
        self.flush(timeout)
        self._appender.stop(timeout or 0)
        self._feed.stop(timeout or 0)
        self._stopping.set()
        self._publish_now.set()
        with self._cond:
            self._early_wake.notify()
        self._heartbeat.join(timeout)
        self._early_thread.join(timeout)
        try:
            self.presence.leave()  # its nicks are free at once, not after the ttl
        except ClusterError as exc:
            log.warning("leaving the cluster: %s", exc)

    @property
    def backlog_size(self) -> int:
        return self._appender.backlog

    # --- the appender's and the feed's threads ---------------------------------------------

    def _appended(self, seq: int, result: Appended | ClusterError) -> None:
        if isinstance(result, ClusterError):
            log.error("a line could not be stored and is dropped: %s", result)
            with self._delivering:
                with self._cond:
                    origin = f"{self.node_id}:{seq}"
                    line = self._mine.get(origin)
                    if line is not None:
                        self._forget(origin, line)
                    self._finish(seq)
                if line is not None and line.early_to:
                    self.on_unstored(line)
        # Appended: the feed delivers it (and finishes it) when it reads it back.

    def _on_lines(self, lines: Sequence[FeedLine]) -> None:
        with self._delivering:
            self._deliver_stored(lines)

    def _deliver_stored(self, lines: Sequence[FeedLine]) -> None:
        with self._cond:
            owns = [self._mine.pop(f.origin, None) if f.origin else None for f in lines]
            for own in owns:
                if own is not None and own.key is not None:
                    self._by_key.pop(own.key.key, None)
        # Out of our lock: delivery_for and deliver take the state's lock, which is held
        # around submit (which takes ours).
        batch = []
        for f, own in zip(lines, owns, strict=True):
            delivery = self._delivery_for(f.message, own)
            if delivery is None:  # a private line for nobody here
                continue
            pending = PendingLine(f.message.id, f.message, None, delivery)
            if own is not None:
                pending.extra_acks = own.extra_acks
                pending.origin, pending.early_to = own.origin, own.early_to
                if own.early_to is not None and self._early_told:
                    self._early_told = False
                    log.warning("Redis stores lines again: the pending ones get their ids")
            batch.append(pending)
        sends = self._deliver(batch, True) if batch else None
        if sends is not None:
            sends()  # at once: on this thread nothing else waits for the state's lock
        with self._cond:
            for own in owns:
                if own is not None:
                    self._finish(own.seq)

    def _early_loop(self) -> None:
        """Show the room lines that have waited EARLY_AFTER, while Redis is away, to their
        rooms here. (Not when Redis is only slow: a node behind on a flood would double its
        own work with early copies. A Redis that hangs counts as away after the command
        timeout.)"""
        while True:
            with self._cond:
                due = self._next_due()
                while due is None or due > time.monotonic() or not self._redis_down():
                    if self._stopping.is_set():
                        return
                    # Nothing waiting: until a line comes; one not due yet: until it is; one
                    # overdue while Redis answers (only slow): look again a little later.
                    left = None if due is None else due - time.monotonic()
                    self._early_wake.wait(left if left is None or left > 0 else self.early_after)
                    due = self._next_due()
            with self._delivering:
                with self._cond:  # still waiting (not delivered, not dropped) and due
                    now, lines = time.monotonic(), []
                    while self._due and self._due[0][0] <= now:
                        line = self._mine.get(self._due.popleft()[1])
                        if line is not None:
                            lines.append(line)
                if lines:
                    if not self._early_told:
                        self._early_told = True
                        log.warning("Redis is away: lines are shown to this node's members "
                                    "before they are stored (pending)")  # fmt: skip
                    self.on_early(lines)

    def _redis_down(self) -> bool:
        return self._appender.redis_down or self._feed.redis_down

    def _next_due(self) -> float | None:
        """Lock held: when the first line still waiting is due (those done are dropped)."""
        while self._due and self._due[0][1] not in self._mine:
            self._due.popleft()
        return self._due[0][0] if self._due else None

    def _forget(self, origin: str, line: PendingLine) -> None:
        self._mine.pop(origin, None)
        if line.key is not None:
            self._by_key.pop(line.key.key, None)

    def _finish(self, seq: int) -> None:
        """Lock held: ``seq`` is done; move the done mark over every finished number."""
        self._finished.add(seq)
        while self._done + 1 in self._finished:
            self._done += 1
            self._finished.discard(self._done)
        self._next_due()  # (drops the lines done from the early queue: it stays short)
        self._cond.notify_all()

    def _new_line(self, line: PendingLine, origin: str) -> NewLine:
        message = line.delivery.message
        key = line.key
        recipient = getattr(message, "to", None)
        copy_to = None
        if recipient is not None:  # private: this node's stream, and the recipient's node's
            stream, room = self.private_key, ""
            elsewhere = self.remote.get(nick_key(recipient))
            if elsewhere is not None and line.delivery.recipient is None:
                copy_to = private_stream(elsewhere["node"])
        else:
            stream, room = line.stored.room, message.room  # type: ignore[union-attr]
        return NewLine(
            stream,
            room,
            message.nick,
            message.text,
            message.ts,
            message.action,
            key.key if key is not None else None,
            key.digest if key is not None else b"",
            origin,
            recipient,
            copy_to,
            message.notice,
        )


def _in_room(line: PendingLine) -> bool:
    """A line said in a room (private lines are never shown early)."""
    return getattr(line.delivery.message, "to", None) is None


def _ignore(result: object) -> None:
    """An event's append: nobody waits for it."""
