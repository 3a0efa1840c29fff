"""GroupCommit: lines reach their readers only once stored, in order, in shared commits; a
failing store costs durability (said in the ack), never the chat. Real SQLite files."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from game_chat.server.group_commit import GroupCommit, IdsExhausted, PendingLine
from game_chat.server.history import HistoryStore, SentKey, StoredMessage

ROOT = Path(__file__).resolve().parent.parent


class Deliveries:
    """The deliver callback: records each batch, and what the file held at that moment."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.batches: list[tuple[list[int], bool]] = []
        self.on_disk_when_delivered: list[bool] = []
        self.lock = threading.Lock()

    def __call__(self, batch: Sequence[PendingLine], kept: bool) -> None:
        ids = [line.id for line in batch]
        if self.path is not None and kept:
            with sqlite3.connect(self.path) as db:
                found = {row[0] for row in db.execute("SELECT id FROM messages")}
            self.on_disk_when_delivered.append(set(ids) <= found)
        for line in batch:
            line.delivered = True
        with self.lock:
            self.batches.append((ids, kept))

    @property
    def ids(self) -> list[int]:
        return [i for ids, _ in self.batches for i in ids]


def line(group: GroupCommit, text: str = "hi", key: str | None = None) -> PendingLine:
    n = group.next_id()
    stored = StoredMessage(n, "lobby", "ann", text, 1.0)
    sent = SentKey(key, n, 1.0, b"digest!!") if key else None
    return PendingLine(n, stored, sent, delivery=None)


class Blocker:
    """Another connection holding the write lock: the store's writes fail with 'locked'."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> Blocker:
        self.db.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


@pytest.fixture
def errors() -> Iterator[Errors]:
    handler = Errors()
    logger = logging.getLogger("game_chat.server")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


def test_lines_are_delivered_only_once_they_are_on_disk(db_path: Path) -> None:
    store = HistoryStore(db_path)
    deliveries = Deliveries(db_path)
    group = GroupCommit(store, deliveries)
    try:
        seqs = [group.submit(line(group)) for _ in range(50)]
        assert group.wait(seqs[-1], timeout=10)
        assert deliveries.ids == list(range(1, 51))
        assert deliveries.on_disk_when_delivered and all(deliveries.on_disk_when_delivered)
        assert all(kept for _, kept in deliveries.batches)
    finally:
        group.close()
        store.close()


def test_lines_from_many_threads_share_commits_and_keep_their_order(db_path: Path) -> None:
    store = HistoryStore(db_path)
    deliveries = Deliveries()
    group = GroupCommit(store, deliveries)
    order: list[int] = []
    order_lock = threading.Lock()

    def sender() -> None:
        for _ in range(300):
            with order_lock:  # id and queue position taken together, as under the state lock
                pending = line(group)
                order.append(pending.id)
                group.submit(pending)

    try:
        threads = [threading.Thread(target=sender) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert group.flush(timeout=10)
        assert deliveries.ids == order == sorted(order)
        assert len(deliveries.batches) < 1200  # some commits carried several lines
    finally:
        group.close()
        store.close()


def test_a_failing_store_delivers_unsaved_then_catches_up_in_batches(
    db_path: Path, errors: Errors
) -> None:
    store = HistoryStore(db_path, busy_timeout=0.01)
    deliveries = Deliveries()
    group = GroupCommit(store, deliveries, batch_size=10, retry_interval=0.05)
    try:
        assert wait_until(lambda: group.prune_count >= 1)  # the pass at start is not what fails
        with Blocker(db_path):
            seqs = [group.submit(line(group, key=f"k{n}")) for n in range(35)]
            assert group.wait(seqs[-1], timeout=10)  # delivered although nothing is stored
            assert not group.healthy
            assert {kept for _, kept in deliveries.batches} == {False}
            assert group.backlog_size == 35
            assert isinstance(group.find("k3"), PendingLine)  # retries are still recognised
            assert [m.id for m in group.history("lobby", 5)] == [31, 32, 33, 34, 35]
        assert wait_until(lambda: group.healthy)
        assert group.backlog_size == 0
        assert [m.id for m in store.recent("lobby", 100)] == list(range(1, 36))
        assert group.find("k3") == SentKey("k3", 4, 1.0, b"digest!!")
        assert len(errors.records) == 1, errors.records  # once, however many lines failed
        after = group.submit(line(group))
        assert group.wait(after, timeout=10)
        assert deliveries.batches[-1][1] is True
    finally:
        group.close()
        store.close()


def test_the_backlog_is_bounded(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = HistoryStore(db_path, busy_timeout=0.01)
    group = GroupCommit(store, Deliveries(), backlog_limit=20, retry_interval=0.05)
    try:
        # The retention pass at start must be over: one held up by the blocker resumes once
        # the store works again and would prune these lines (their timestamps are from 1970).
        assert wait_until(lambda: group.prune_count >= 1)
        with Blocker(db_path):
            for _ in range(50):
                group.submit(line(group))
            assert group.flush(timeout=10)
            assert group.backlog_size == 20
        assert wait_until(lambda: group.healthy)
        assert [m.id for m in store.recent("lobby", 100)] == list(range(31, 51))
        assert "30 unsaved lines could not be kept" in caplog.text
    finally:
        group.close()
        store.close()


def test_ids_run_out_only_when_the_store_fails_for_the_whole_runway(db_path: Path) -> None:
    store = HistoryStore(db_path, busy_timeout=0.01)
    group = GroupCommit(store, Deliveries(), runway=10, retry_interval=0.05)
    try:
        for _ in range(30):  # healthy: the reservation grows with the commits
            assert group.wait(group.submit(line(group)), timeout=10)
        with Blocker(db_path):
            group.submit(line(group))
            assert group.flush(timeout=10)
            with pytest.raises(IdsExhausted):
                for _ in range(20):
                    group.submit(line(group))
        assert wait_until(lambda: group.healthy)
        group.submit(line(group))  # numbered again once the store works
    finally:
        group.close()
        store.close()


def test_a_clean_close_delivers_what_waits_and_leaves_no_gap(db_path: Path) -> None:
    store = HistoryStore(db_path)
    deliveries = Deliveries()
    group = GroupCommit(store, deliveries)
    for _ in range(5):
        group.submit(line(group))
    group.close()
    assert deliveries.ids == [1, 2, 3, 4, 5]
    store.close()
    with HistoryStore(db_path) as again:
        assert again.reserved_id == 6


def test_after_a_crash_no_id_that_was_handed_out_comes_again(db_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from game_chat.server.group_commit import GroupCommit, PendingLine
        from game_chat.server.history import HistoryStore, StoredMessage
        store = HistoryStore(sys.argv[1])
        group = GroupCommit(store, lambda batch, kept: None)
        handed = [group.next_id() for _ in range(20)]  # seen by clients, never stored
        for n in handed[:5]:
            group.submit(PendingLine(n, StoredMessage(n, "lobby", "a", "x", 1.0), None, None))
        group.flush(10)
        print(max(handed), flush=True)
        os._exit(0)  # as abrupt as kill -9
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(db_path)],
        cwd=ROOT,
        timeout=60,
        capture_output=True,
        text=True,
        check=True,
    )
    highest = int(done.stdout)
    store = HistoryStore(db_path)
    group = GroupCommit(store, Deliveries())
    try:
        assert group.next_id() > highest
    finally:
        group.close()
        store.close()


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """For state another thread changes with no event to wait on (the store's recovery)."""
    event = threading.Event()
    deadline = timeout
    step = 0.01
    while deadline > 0:
        if predicate():
            return True
        event.wait(step)
        deadline -= step
    return bool(predicate())


def test_a_failing_deliver_callback_never_stops_the_pipeline(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = HistoryStore(db_path)
    calls: list[int] = []

    def deliver(batch: Sequence[PendingLine], kept: bool) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("a bug in the fan-out")

    group = GroupCommit(store, deliver)
    try:
        assert group.wait(group.submit(line(group)), timeout=10)  # waiters are released
        assert group.wait(group.submit(line(group)), timeout=10)  # and the next line goes on
        assert len(calls) == 2
        assert "internal error while delivering 1 lines" in caplog.text
    finally:
        group.close()
        store.close()


# --- who commits: the waiting reader (leader), its followers, the pipeline thread -----------


class Threads(Deliveries):
    """Deliveries that also record which thread delivered each batch; the first batch can
    be held until ``go`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []
        self.hold = threading.Event()
        self.go = threading.Event()
        self.go.set()

    def __call__(self, batch: Sequence[PendingLine], kept: bool) -> None:
        self.threads.append(threading.get_ident())
        self.hold.set()
        self.go.wait(10)
        super().__call__(batch, kept)


@pytest.fixture
def leading(db_path: Path) -> Iterator[tuple[GroupCommit, Threads]]:
    """A group commit on a file store whose deliveries record their threads."""
    store = HistoryStore(db_path)
    deliveries = Threads()
    group = GroupCommit(store, deliveries)
    try:
        yield group, deliveries
    finally:
        group.close()
        store.close()


def test_the_reader_that_waits_commits_its_own_line(leading: tuple[GroupCommit, Threads]) -> None:
    group, deliveries = leading
    assert wait_until(lambda: group.prune_count >= 1)  # the pipeline thread is idle now
    assert group.wait(group.submit(line(group)), timeout=10)
    assert deliveries.threads == [threading.get_ident()]  # no hand-off to another thread


def test_readers_waiting_while_a_commit_runs_are_taken_by_the_leader(
    leading: tuple[GroupCommit, Threads],
) -> None:
    group, deliveries = leading
    assert wait_until(lambda: group.prune_count >= 1)
    deliveries.go.clear()
    leader = threading.Thread(target=lambda: group.wait(group.submit(line(group)), 10))
    leader.start()
    assert deliveries.hold.wait(10)  # the leader is delivering its line, held there
    followers = [group.submit(line(group)) for _ in range(3)]
    waiting = [
        threading.Thread(target=group.wait, args=(seq, 10), daemon=True) for seq in followers
    ]
    for thread in waiting:
        thread.start()
    deliveries.go.set()
    leader.join(10)
    for thread in waiting:
        thread.join(10)
    assert deliveries.ids == [1, 2, 3, 4]
    assert set(deliveries.threads) == {leader.ident}  # the followers' lines too


def test_a_line_nobody_waits_for_is_committed_all_the_same(
    leading: tuple[GroupCommit, Threads],
) -> None:
    group, deliveries = leading
    group.submit(line(group))  # and nobody waits: the pipeline thread finds it
    assert wait_until(lambda: deliveries.ids == [1], timeout=5)
    assert threading.get_ident() not in deliveries.threads
