"""Group commit: a chat line is delivered and acknowledged only once it is in the store.

:meth:`GroupCommit.submit` queues a line (O(1), under the chat state's lock). A committer takes
everything queued, writes it to the :class:`~game_chat.server.history.HistoryStore` in one
transaction, and only then hands the batch to ``deliver`` (the chat state's fan-out and acks),
in submission order. Lines that arrive while a transaction runs go into the next one, so the
more lines arrive, the more each commit carries: throughput holds while every ack waits for
the disk.

Who commits: the reader thread that submitted a line and then waits for it
(:meth:`~GroupCommit.wait`), when nobody else is committing (a leader, as in the group
commit of databases). At low load a line is thus stored and fanned out by the thread that
read it, with no hand-off to another thread (each costs a wake-up, tens of microseconds of
CPU on a virtual machine). Readers that wait while a commit runs are followers: the leader
takes their lines in its next batch and lets them go. A leader commits at most a few
batches past its own line, then hands what is left to the pipeline thread, which also runs
retention passes and retries while the store fails. One committer at a time
(``_committing``), so batches never overlap.

Why deliver after the commit and not before: a line seen live by anyone must be in the
history after a crash, or it is a lost line to whoever reloads. Committing first makes
"delivered" imply "stored" (the ack says so), and a crash between commit and delivery only
delays the line: the sender's retry is answered from the stored key, the room gets it on
resume.

When the store fails (full disk, read-only file, damaged page) the chat keeps working: lines
are delivered at once with ``kept`` False (the ack says "unsaved"), and wait in a bounded
backlog that is written in bounded batches once a retry succeeds (every ``retry_interval``,
the first one an interval after the failure; a retry waits at most ``retry_wait`` for a lock
another connection holds, since no line is delivered meanwhile). Failures are logged at most
once a minute (retention failures apart, as warnings: they never hide that lines go unsaved).

Message ids come from a durable reservation (:attr:`HistoryStore.reserved_id`): ids are handed
out only below it, and it is raised (inside the line transactions) long before it runs out, so
a crash at any moment never makes an id that was seen be handed out again. While the store
fails, the reservation cannot grow; the runway left (half a million ids at least) then bounds
how many unsaved lines can be accepted before :class:`IdsExhausted`.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..protocol.errors import ChatError
from .history import HistoryError, HistoryStore, SentKey, StoredMessage
from .throttle import Throttle

log = logging.getLogger("game_chat.server")

#: Ids reserved ahead; the reservation grows again when less than half of it is left.
RUNWAY = 1_000_000
#: Batches a leading reader commits past its own line before it hands over.
LEADER_BATCHES = 4
#: How often the pipeline thread looks for lines that nobody commits (seconds).
ORPHAN_CHECK = 0.25


class IdsExhausted(ChatError):
    """No message id can be handed out: the store has failed for longer than the runway."""


@dataclass(eq=False)
class PendingLine:
    """A line accepted by the chat state, on its way to the store and then to its readers."""

    id: int
    #: What goes into the messages table; None for a line whose text is not kept (a private
    #: line without --store-private): only its retry key is written.
    stored: StoredMessage | None
    #: Its retry key (sender + client id), when it carried a client id.
    key: SentKey | None
    #: Whatever ``deliver`` needs (the message, its sender, its client id); opaque here.
    delivery: Any
    seq: int = 0
    #: Set by ``deliver`` (under the chat state's lock): the readers have it now.
    delivered: bool = False
    #: (member, client id) of retries of this line that arrived before it was delivered.
    extra_acks: list[tuple[Any, Any]] = field(default_factory=list)
    #: Cluster: the line's origin (node id and sequence number), and the members it was shown
    #: to early, pending (the store was slow or away): they get a LineSettled, not the line.
    origin: str = ""
    early_to: set[Any] | None = None


#: deliver(batch, kept): fan the lines out and acknowledge them, in order.
#: It may return a callable (the sends of what it queued), which the committing thread calls
#: once it has let the next commit go.
Deliver = Callable[[Sequence[PendingLine], bool], Callable[[], None] | None]


class GroupCommit:
    """The line pipeline: submit -> commit (grouped) -> deliver, on one background thread."""

    def __init__(
        self,
        store: HistoryStore,
        deliver: Deliver,
        *,
        batch_size: int = 1000,
        backlog_limit: int = 10_000,
        retry_interval: float = 1.0,
        retry_wait: float = 0.1,
        prune_interval: float = 60.0,
        checkpoint_interval: float = 1.0,
        log_interval: float = 60.0,
        runway: int = RUNWAY,
    ) -> None:
        self.store = store
        self._deliver = deliver
        self.batch_size = max(1, batch_size)
        self.backlog_limit = max(1, backlog_limit)
        self.retry_interval = retry_interval
        self.retry_wait = retry_wait
        self.prune_interval = prune_interval
        self._runway = runway
        lock = threading.Lock()
        # One lock, three ways to wait on it, so that nobody is woken for nothing (each
        # needless wake-up is a thread switch, and there are as many as lines x readers):
        self._cond = threading.Condition(lock)  # retention passes (prune_now)
        self._work = threading.Condition(lock)  # the pipeline thread: lines to take
        # Readers waiting for their own line: (seq, tiebreak, gate), each gate a held lock
        # that the committer releases once that line is delivered.
        self._waiters: list[tuple[int, int, threading.Lock]] = []
        # A thread (a leading reader, or the pipeline thread) is writing and delivering;
        # nobody else may until it lets go. Guarded by the lock, like everything below.
        self._committing = False
        self._role_wanted = False  # the pipeline thread waits for the committer to let go
        # Everything below is guarded by the lock.
        self._pending: deque[PendingLine] = deque()
        self._by_key: dict[str, PendingLine] = {}  # pending and backlog lines with a key
        self._next_id = store.reserved_id
        self._seq = 0  # last sequence number handed out
        self._done = 0  # every line up to this sequence number is delivered
        self._stopping = False
        self._stopped = False
        self._prune_requested = False
        self._prunes = 0
        # The committer's (whoever holds _committing):
        self._healthy = True
        self._retry_at = 0.0  # monotonic time of the next retry while the store fails
        self._backlog: deque[PendingLine] = deque()  # delivered unsaved, oldest first
        self._dropped = 0  # backlog lines given up on since the store last worked
        self._dirty_rooms: set[str] | None = None  # rooms to cap at the next prune; None: all
        self._failure_log = Throttle(log_interval)
        self._retention_log = Throttle(log_interval)
        # Reserve before the first id is handed out: HistoryError here means the store
        # cannot be written at all, which the caller reports at start.
        store.write((), (), reserve_to=self._next_id + runway)
        self._thread = threading.Thread(target=self._run, name="history-commit", daemon=True)
        self._thread.start()
        # WAL checkpoints (copying pages into the database file, an fsync) run on a thread of
        # their own, so that no commit, and no line behind it, ever waits for one.
        self.checkpoint_interval = checkpoint_interval
        self._checkpoint_log = Throttle(log_interval)
        self._no_more_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="history-checkpoint", daemon=True
        )
        if not store.memory_only:
            self._checkpointer.start()

    # --- called under the chat state's lock ---------------------------------------------------

    def next_id(self) -> int:
        """A message id never handed out before; IdsExhausted when the runway is used up."""
        with self._cond:
            if self._next_id >= self.store.reserved_id:
                raise IdsExhausted("the history store has failed for too long to number lines")
            self._next_id += 1
            return self._next_id - 1

    def submit(self, line: PendingLine) -> int:
        """Queue ``line`` for the next commit; returns its sequence number (see wait)."""
        with self._cond:
            if self._stopped:
                raise ChatError("the history pipeline is closed")
            self._seq += 1
            line.seq = self._seq
            self._pending.append(line)
            if line.key is not None:
                self._by_key[line.key.key] = line
            # Nobody is woken: the submitter commits it in wait() (or, if a commit runs, the
            # committer takes it next); the pipeline thread looks every ORPHAN_CHECK seconds.
            return line.seq

    def find(self, key: str) -> PendingLine | SentKey | None:
        """What a retry key was given to: a line still in memory, or a stored key.

        Raises HistoryError if the store cannot be read."""
        with self._cond:
            line = self._by_key.get(key)
        if line is not None:
            return line
        return self.store.find_key(key)

    # --- reads ----------------------------------------------------------------------------

    def history(
        self,
        room: str,
        limit: int,
        *,
        before: int | None = None,
        after: int | None = None,
        newest: bool = True,
    ) -> list[StoredMessage]:
        """Room lines with ``after`` < id < ``before``: the newest ``limit`` of them (or the
        oldest, ``newest`` False), oldest first. Lines delivered while the store failed are
        included. Raises HistoryError."""
        low = 0 if after is None else after
        high = before if before is not None else float("inf")
        with self._cond:
            unsaved = [
                line.stored
                for line in self._backlog
                if line.stored is not None
                and line.stored.room == room
                and line.stored.private_to is None
                and low < line.id < high
            ]
        if newest:
            saved = self.store.recent(room, limit, before, after)
        else:
            saved = self.store.following(room, low, limit, before)
        if not unsaved:
            return saved
        merged = {m.id: m for m in saved}
        merged.update((m.id, m) for m in unsaved)
        ids = sorted(merged)
        return [merged[i] for i in (ids[-limit:] if newest else ids[:limit])] if limit else []

    # --- waiting ----------------------------------------------------------------------------

    def wait(self, seq: int, timeout: float | None = None) -> bool:
        """Wait until the line with sequence number ``seq`` (and all before it) is delivered;
        False on timeout. If nobody is committing, the caller commits (leads) itself. Never
        call it holding a lock that ``deliver`` takes."""
        with self._cond:
            if self._done >= seq or self._stopped:
                return True
            lead = not self._committing and not self._stopping
            if lead:
                self._committing = True
        if lead:
            self._lead(seq)
            return True
        with self._cond:
            if self._done >= seq or self._stopped:
                return True
            gate = threading.Lock()
            gate.acquire()
            heapq.heappush(self._waiters, (seq, id(gate), gate))
        if gate.acquire(timeout=-1 if timeout is None else timeout):
            return True
        with self._cond:  # timed out (its gate is opened later, harmlessly)
            return self._done >= seq or self._stopped

    def _open_gates(self, all_of_them: bool = False) -> None:
        """Lock held: let the readers whose lines are delivered go (every one at the end)."""
        waiters = self._waiters
        while waiters and (all_of_them or waiters[0][0] <= self._done):
            heapq.heappop(waiters)[2].release()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is delivered; False on timeout."""
        with self._cond:
            seq = self._seq
        return self.wait(seq, timeout)

    @property
    def healthy(self) -> bool:
        """False while the store fails (lines are delivered unsaved)."""
        return self._healthy

    @property
    def backlog_size(self) -> int:
        with self._cond:
            return len(self._backlog)

    # --- retention ----------------------------------------------------------------------------

    @property
    def prune_count(self) -> int:
        """How many retention passes have finished (the first one runs at start)."""
        with self._cond:
            return self._prunes

    def prune_now(self, timeout: float | None = None) -> bool:
        """Ask for a retention pass and wait for it; False on timeout."""
        with self._cond:
            target = self._prunes + 1
            self._prune_requested = True
            self._work.notify()
            return self._cond.wait_for(lambda: self._prunes >= target, timeout)

    # --- committing ----------------------------------------------------------------------

    def _lead(self, seq: int) -> None:
        """A reader commits: batch after batch until nothing is pending, or, once its own
        line ``seq`` is delivered, after LEADER_BATCHES (the rest goes to the pipeline
        thread, so that no reader commits for everybody for long)."""
        batches, sends = 0, []
        try:
            while True:
                with self._cond:
                    if not self._pending or (batches >= LEADER_BATCHES and self._done >= seq):
                        break
                    batch = self._batch()
                sends.append(self._process(batch))
                batches += 1
        finally:
            self._let_go()
            _run_all(sends)

    def _let_go(self) -> None:
        with self._work:
            self._committing = False
            if self._pending or self._role_wanted:  # lines of followers, or the pipeline's turn
                self._work.notify()

    def _batch(self) -> list[PendingLine]:
        """Lock held: the next batch, oldest first."""
        count = min(len(self._pending), self.batch_size)
        return [self._pending.popleft() for _ in range(count)]

    # --- the pipeline thread ------------------------------------------------------------------

    def _run(self) -> None:
        prune: Iterator[None] | None = None
        next_prune = 0.0  # the first pass at once

        def due() -> float:  # when the pipeline thread has work of its own (monotonic)
            if prune is not None or self._prune_requested:
                return 0.0
            return next_prune if self._healthy else min(next_prune, self._retry_at)

        while True:
            batch = self._take(due)
            if batch is None:
                return
            send = None
            try:
                if batch:
                    send = self._process(batch)
                now = time.monotonic()
                if prune is None and (self._prune_requested or now >= next_prune):
                    prune = self._prune_pass()
                    next_prune = now + self.prune_interval
                if not self._healthy and now >= self._retry_at:
                    self._retry_backlog(self.retry_wait)
                    self._retry_at = time.monotonic() + self.retry_interval
                elif prune is not None and self._healthy:
                    prune = self._step(prune)
            finally:
                self._let_go()
                _run_all([send])

    def _take(self, due: Callable[[], float]) -> list[PendingLine] | None:
        """Become the committer, with the next batch ([] if nothing is pending), once there
        are lines nobody commits or ``due()`` (monotonic) has come; None once stopped and
        every line is delivered."""
        with self._work:
            while True:
                now, due_at = time.monotonic(), due()
                if not self._committing:
                    if self._pending:
                        self._committing = True
                        return self._batch()
                    if self._stopping:
                        return None
                    if now >= due_at:
                        self._committing = True
                        return []
                    # Readers commit their own lines: look only now and then for lines
                    # whose submitter never waits (none of the server's), or a failure.
                    wait = min(ORPHAN_CHECK, due_at - now)
                else:  # wait for the committer to let go if there is work for us
                    self._role_wanted = now >= due_at or self._stopping
                    wait = ORPHAN_CHECK
                self._work.wait(wait)
                self._role_wanted = False

    def _process(self, batch: list[PendingLine]) -> Callable[[], None] | None:
        """Commit and deliver one batch; returns what ``deliver`` left to send."""
        kept = self._healthy and self._write(batch, fresh=len(batch))
        if not kept:
            self._keep_for_later(batch)
        try:
            return self._deliver(batch, kept)
        except Exception:  # a bug of ours: logged once here; the pipeline must go on
            log.exception("internal error while delivering %d lines", len(batch))
            return None
        finally:
            with self._cond:
                if kept:
                    self._forget_keys(batch)
                self._done = batch[-1].seq
                self._open_gates()

    def _write(
        self, lines: Sequence[PendingLine], fresh: int = 0, wait: float | None = None
    ) -> bool:
        """One transaction; False (logged, the store marked failing) if it failed. ``fresh``:
        how many of the lines are new (not yet in the backlog); ``wait``: the busy timeout."""
        stored = [line.stored for line in lines if line.stored is not None]
        keys = [line.key for line in lines if line.key is not None]
        try:
            self.store.write(stored, keys, self._reservation(), busy_timeout=wait)
        except HistoryError as exc:
            self._failed(exc, fresh)
            return False
        except Exception as exc:  # a bug of ours: treated as a failing store, not a dead thread
            log.exception("internal error while storing lines")
            self._failed(HistoryError(f"history write failed: {exc!r}"), fresh)
            return False
        if self._dirty_rooms is not None:
            self._dirty_rooms.update(m.room for m in stored if m.private_to is None)
        return True

    def _reservation(self) -> int | None:
        """A new reservation end when less than half of the runway is left."""
        with self._cond:
            next_id = self._next_id
        if self.store.reserved_id - next_id < self._runway // 2:
            return next_id + self._runway
        return None

    def _keep_for_later(self, batch: list[PendingLine]) -> None:
        with self._cond:
            self._backlog.extend(batch)
            while len(self._backlog) > self.backlog_limit:
                lost = self._backlog.popleft()
                if lost.key is not None and self._by_key.get(lost.key.key) is lost:
                    del self._by_key[lost.key.key]
                self._dropped += 1

    def _forget_keys(self, lines: Sequence[PendingLine]) -> None:
        """Lock held: the lines are stored; their keys are found in the store from now on."""
        for line in lines:
            if line.key is not None and self._by_key.get(line.key.key) is line:
                del self._by_key[line.key.key]

    def _retry_backlog(self, wait: float | None) -> None:
        """While failing: write the backlog in bounded batches, oldest first."""
        while True:
            with self._cond:
                chunk = [self._backlog[i] for i in range(min(self.batch_size, len(self._backlog)))]
            if not self._write(chunk, wait=wait):
                return
            with self._cond:
                for _ in chunk:
                    self._backlog.popleft()
                self._forget_keys(chunk)
                empty = not self._backlog
            if empty:
                break
        dropped, self._dropped = self._dropped, 0
        log.warning(
            "history store works again%s",
            f"; {dropped} unsaved lines could not be kept (backlog limit {self.backlog_limit})"
            if dropped
            else "; every unsaved line is stored now",
        )
        self._healthy = True
        self._failure_log.reset()

    def _failed(self, exc: HistoryError, fresh: int = 0) -> None:
        was_healthy, self._healthy = self._healthy, False
        if was_healthy:  # the first retry an interval from now
            self._retry_at = time.monotonic() + self.retry_interval
        quiet = self._failure_log.due()
        if quiet is None:
            return
        with self._cond:  # the fresh lines are about to join the backlog
            waiting = min(len(self._backlog) + fresh, self.backlog_limit)
        more = f" ({quiet} more failures since the last report)" if quiet else ""
        log.error(
            "%s; %s%d lines wait unsaved, retrying every %g s%s",
            exc,
            "delivering lines without storing them; " if was_healthy else "",
            waiting,
            self.retry_interval,
            more,
        )

    # --- retention ----------------------------------------------------------------------------

    def _prune_pass(self) -> Iterator[None]:
        rooms, self._dirty_rooms = self._dirty_rooms, set()
        with self._cond:
            self._prune_requested = False
        try:
            yield from self.store.prune_steps(rooms)
        except HistoryError as exc:
            self._dirty_rooms = None  # not sure which rooms are done: all of them next time
            # A warning: nothing is lost, old lines just stay until a later pass; and on a
            # throttle of its own, so that it never silences the error that lines go unsaved.
            if (quiet := self._retention_log.due()) is not None:
                log.warning("history retention failed: %s (%d quiet)", exc, quiet)

    def _step(self, prune: Iterator[None]) -> Iterator[None] | None:
        """One retention transaction; None when the pass is over."""
        try:
            next(prune)
        except StopIteration:
            with self._cond:
                self._prunes += 1
                self._cond.notify_all()
            return None
        return prune

    def _checkpoint_loop(self) -> None:
        while not self._no_more_checkpoints.wait(self.checkpoint_interval):
            if not self._healthy:
                continue  # the retries of the backlog find out when the store works again
            try:
                self.store.checkpoint()
            except HistoryError as exc:
                if (quiet := self._checkpoint_log.due()) is not None:
                    log.warning("%s (%d quiet)", exc, quiet)

    # --- closing ----------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued, try once more to store the backlog, give back the unused
        reservation, stop the thread. Idempotent. Does not close the store."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._work.notify()
        self._no_more_checkpoints.set()
        if self._checkpointer.is_alive():
            self._checkpointer.join(timeout)
        self._thread.join(timeout)
        if self._backlog:
            self._retry_backlog(None)  # one last chance, with the store's own busy timeout
        with self._cond:
            self._stopped = True
            left, next_id = len(self._backlog), self._next_id
            self._open_gates(all_of_them=True)
        # Lines let go when the backlog was full were delivered unsaved too: they count.
        dropped = self._dropped
        if left or dropped or self._thread.is_alive():
            log.error(
                "history: %d delivered lines were never stored%s",
                left + dropped,
                f" ({dropped} of them let go when the backlog was full)" if dropped else "",
            )
            return
        try:
            self.store.release_reservation(next_id)
        except HistoryError as exc:
            log.warning("history: could not record the last id (%s); ids will skip ahead", exc)


def _run_all(sends: list[Callable[[], None] | None]) -> None:
    """Out of the committer's role: the sends that deliveries left, in order. A bug in one
    is logged; the others still go."""
    for send in sends:
        if send is not None:
            try:
                send()
            except Exception:
                log.exception("internal error while sending delivered lines")
