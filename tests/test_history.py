"""HistoryStore: batched SQLite history and bans; real files in tmp_path, no sleeps."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from game_chat.server.history import (
    SCHEMA_VERSION,
    Ban,
    HistoryError,
    HistoryStore,
    StoredMessage,
    default_history_path,
)

ROOT = Path(__file__).resolve().parent.parent
NEVER = 3600.0  # a commit interval the test never reaches
DAY = 86_400.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def msg(id_: int, room: str = "lobby", nick: str = "ann", **kw: object) -> StoredMessage:
    fields: dict[str, object] = {"text": f"line {id_}", "ts": time.time(), **kw}
    return StoredMessage(id_, room, nick, **fields)  # type: ignore[arg-type]


def ids(messages: list[StoredMessage]) -> list[int]:
    return [m.id for m in messages]


def count_on_disk(path: Path) -> int:
    """Rows committed to the file, seen through a connection of our own."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[HistoryStore]:
    s = HistoryStore(db_path, commit_interval=NEVER)
    try:
        yield s
    finally:
        s.close()


class Signal(logging.Handler):
    """Sets an event when the history logger reports an error."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.event.set()


# --- where the file lives -------------------------------------------------------------------


def test_default_path_follows_xdg_data_home_on_linux() -> None:
    path = default_history_path({"XDG_DATA_HOME": "/data"}, "linux")
    assert path == Path("/data/game_chat/history.sqlite3")


def test_default_path_without_xdg_is_under_local_share() -> None:
    expected = Path.home() / ".local" / "share" / "game_chat" / "history.sqlite3"
    assert default_history_path({}, "linux") == expected
    assert default_history_path({"XDG_DATA_HOME": "relative"}, "linux") == expected


def test_default_path_on_windows_and_macos() -> None:
    windows = default_history_path({"LOCALAPPDATA": "/lad"}, "win32")
    assert windows == Path("/lad") / "game_chat" / "history.sqlite3"
    mac = default_history_path({}, "darwin")
    assert mac == Path.home() / "Library" / "Application Support" / "game_chat" / "history.sqlite3"


def test_data_dir_environment_variable_overrides_everything() -> None:
    env = {"GAME_CHAT_DATA_DIR": "/mine", "XDG_DATA_HOME": "/data", "LOCALAPPDATA": "/lad"}
    for platform in ("linux", "win32", "darwin"):
        assert default_history_path(env, platform) == Path("/mine/history.sqlite3")


# --- the live path --------------------------------------------------------------------------


def test_append_is_visible_before_it_is_committed(store: HistoryStore, db_path: Path) -> None:
    store.append(msg(1))
    assert ids(store.recent("lobby")) == [1]
    assert count_on_disk(db_path) == 0
    store.flush()
    assert count_on_disk(db_path) == 1
    assert ids(store.recent("lobby")) == [1]  # once, not twice


def test_writer_commits_within_the_interval(db_path: Path) -> None:
    with HistoryStore(db_path, commit_interval=0.01) as store:
        store.append(msg(1))
        assert store.wait_committed(timeout=10)
        assert count_on_disk(db_path) == 1


def test_a_full_batch_is_committed_without_waiting_for_the_interval(db_path: Path) -> None:
    with HistoryStore(db_path, commit_interval=NEVER, batch_size=10) as store:
        for i in range(1, 11):
            store.append(msg(i))
        assert store.wait_committed(timeout=10)
        assert count_on_disk(db_path) == 10


def test_wait_committed_times_out_while_nothing_commits(store: HistoryStore) -> None:
    assert store.wait_committed(timeout=0)  # nothing appended yet
    store.append(msg(1))
    assert not store.wait_committed(timeout=0.001)


def test_stored_fields_round_trip(store: HistoryStore) -> None:
    original = StoredMessage(7, "lobby", "Ann", "waves ✓", 1234.5, action=True)
    store.append(original)
    store.flush()
    assert store.recent("lobby") == [original]


# --- restarts and ids -----------------------------------------------------------------------


def test_restart_sees_messages_and_continues_ids(db_path: Path) -> None:
    with HistoryStore(db_path) as first:
        assert first.next_message_id() == 1
        for i in range(1, 6):
            first.append(msg(i))
        assert first.next_message_id() == 6
    with HistoryStore(db_path) as second:
        assert ids(second.recent("lobby")) == [1, 2, 3, 4, 5]
        assert second.next_message_id() == 6


def test_ids_keep_increasing_after_retention_deleted_everything(db_path: Path) -> None:
    clock = Clock()
    with HistoryStore(db_path, clock=clock, retention_days=None) as first:
        first.append(msg(41, ts=clock.now))
    clock.now += 60 * DAY
    with HistoryStore(db_path, clock=clock) as second:
        assert second.wait_pruned(timeout=10)
        assert second.recent("lobby") == []
    with HistoryStore(db_path, clock=clock) as third:
        assert third.next_message_id() == 42


# --- queries --------------------------------------------------------------------------------


def test_recent_pages_back_with_before_id(store: HistoryStore) -> None:
    for i in range(1, 251):
        store.append(msg(i))
        if i == 120:
            store.flush()  # pages span committed and pending messages
    page = store.recent("lobby", limit=100)
    assert ids(page) == list(range(151, 251))
    page = store.recent("lobby", limit=100, before_id=page[0].id)
    assert ids(page) == list(range(51, 151))
    page = store.recent("lobby", limit=100, before_id=page[0].id)
    assert ids(page) == list(range(1, 51))
    assert store.recent("lobby", before_id=1) == []
    assert store.recent("lobby", limit=0) == []


def test_recent_returns_only_that_room(store: HistoryStore) -> None:
    store.append(msg(1, room="lobby"))
    store.append(msg(2, room="games"))
    store.flush()
    store.append(msg(3, room="games"))
    assert ids(store.recent("lobby")) == [1]
    assert ids(store.recent("games")) == [2, 3]
    assert store.recent("nowhere") == []


def test_private_messages_never_appear_in_a_room(store: HistoryStore) -> None:
    store.append(msg(1, nick="ann"))
    store.append(msg(2, nick="ann", private_to="bob"))
    store.append(msg(3, nick="bob", private_to="ann"))
    store.append(msg(4, nick="ann", private_to="cy"))
    assert ids(store.recent("lobby")) == [1]
    assert ids(store.private("ann", "bob")) == [2, 3]
    store.flush()
    assert ids(store.recent("lobby")) == [1]
    assert ids(store.private("bob", "ann")) == [2, 3]
    assert ids(store.private("ann", "bob", before_id=3)) == [2]
    assert ids(store.private("ann", "cy")) == [4]


# --- retention ------------------------------------------------------------------------------


def test_retention_deletes_messages_older_than_the_limit(db_path: Path) -> None:
    clock = Clock()
    with HistoryStore(db_path, commit_interval=NEVER, clock=clock, retention_days=30) as store:
        store.append(msg(1, ts=clock.now - 31 * DAY))
        store.append(msg(2, ts=clock.now - 29 * DAY))
        store.flush()
        assert store.prune_now(timeout=10)
        assert ids(store.recent("lobby")) == [2]
        clock.now += 2 * DAY
        assert store.prune_now(timeout=10)
        assert store.recent("lobby") == []


def test_retention_removes_more_than_one_chunk(db_path: Path) -> None:
    clock = Clock()
    with HistoryStore(db_path, commit_interval=NEVER, clock=clock) as store:
        for i in range(1, 1201):
            store.append(msg(i, ts=clock.now - 40 * DAY))
        store.append(msg(1201, ts=clock.now))
        store.flush()
        assert store.prune_now(timeout=10)
        assert count_on_disk(db_path) == 1


def test_room_cap_keeps_the_newest_messages_of_each_room(db_path: Path) -> None:
    with HistoryStore(db_path, commit_interval=NEVER, retention_days=None, room_cap=5) as store:
        for i in range(1, 9):
            store.append(msg(i, room="lobby"))
        for i in range(9, 12):
            store.append(msg(i, room="games"))
        store.flush()
        assert store.prune_now(timeout=10)
        assert ids(store.recent("lobby")) == [4, 5, 6, 7, 8]
        assert ids(store.recent("games")) == [9, 10, 11]


def test_retention_runs_once_at_open(db_path: Path) -> None:
    clock = Clock()
    with HistoryStore(db_path, clock=clock, retention_days=None, room_cap=None) as first:
        for i in range(1, 21):
            first.append(msg(i, ts=clock.now))
    clock.now += DAY
    with HistoryStore(db_path, clock=clock, retention_days=None, room_cap=3) as second:
        assert second.wait_pruned(timeout=10)
        assert count_on_disk(db_path) == 3


def test_room_cap_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        HistoryStore(None, room_cap=0)


# --- bans -----------------------------------------------------------------------------------


def test_bans_add_list_and_remove(store: HistoryStore) -> None:
    ban = store.add_ban("ann", "nick", "spam", "op", expires=None)
    store.add_ban("10.0.0.9", "address", "flood", "op", expires=None)
    assert store.active_bans() == [ban, store.active_bans()[1]]
    assert {b.target for b in store.active_bans()} == {"ann", "10.0.0.9"}
    assert store.remove_ban("ann")
    assert not store.remove_ban("ann")
    assert [b.target for b in store.active_bans()] == ["10.0.0.9"]


def test_expired_bans_are_ignored_then_pruned(db_path: Path) -> None:
    clock = Clock()
    with HistoryStore(db_path, commit_interval=NEVER, clock=clock) as store:
        store.add_ban("ann", "nick", "cool off", "op", expires=clock.now + 60)
        assert [b.target for b in store.active_bans()] == ["ann"]
        assert store.active_bans(clock.now + 61) == []
        clock.now += 61
        assert store.active_bans() == []
        assert store.prune_now(timeout=10)
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM bans").fetchone()[0] == 0


def test_bans_survive_a_restart(db_path: Path) -> None:
    with HistoryStore(db_path) as first:
        ban = first.add_ban("10.0.0.9", "address", "flood", "op", expires=None)
        first.add_ban("ann", "nick", "spam", "op", expires=2.0**40)
    with HistoryStore(db_path) as second:
        bans = second.active_bans()
    assert ban in bans
    assert Ban("ann", "nick", "spam", "op", bans[1].created, 2.0**40) in bans


def test_ban_kind_is_checked(store: HistoryStore) -> None:
    with pytest.raises(ValueError):
        store.add_ban("ann", "person", "", "", None)


def test_adding_a_ban_again_replaces_it(store: HistoryStore) -> None:
    store.add_ban("ann", "nick", "spam", "op", expires=None)
    store.add_ban("ann", "nick", "flood", "op2", expires=None)
    assert [(b.reason, b.by) for b in store.active_bans()] == [("flood", "op2")]


# --- modes, closing, errors -----------------------------------------------------------------


@pytest.mark.parametrize("where", [None, ":memory:"])
def test_memory_only_store_works_and_writes_nothing(
    where: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with HistoryStore(where, commit_interval=0.01, retention_days=None, room_cap=2) as store:
        assert store.path is None
        for i in range(1, 4):
            store.append(msg(i))
        assert ids(store.recent("lobby")) == [1, 2, 3]
        assert store.wait_committed(timeout=10)
        assert store.prune_now(timeout=10)
        assert ids(store.recent("lobby")) == [2, 3]
        store.add_ban("ann", "nick", "", "", None)
        assert [b.target for b in store.active_bans()] == ["ann"]
    assert list(tmp_path.iterdir()) == []


def test_close_flushes_and_is_idempotent(db_path: Path) -> None:
    store = HistoryStore(db_path, commit_interval=NEVER)
    store.append(msg(1))
    store.close()
    store.close()
    assert count_on_disk(db_path) == 1
    with pytest.raises(HistoryError):
        store.append(msg(2))
    with pytest.raises(HistoryError):
        store.recent("lobby")


def test_missing_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "history.sqlite3"
    with HistoryStore(path):
        assert path.exists()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not sqlite" * 512)
    with pytest.raises(HistoryError, match=r"cannot open history database .*history\.sqlite3"):
        HistoryStore(path)


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    if os.name != "posix" or os.geteuid() == 0:
        pytest.skip("needs a user that file permissions apply to")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(HistoryError, match="cannot open history database"):
            HistoryStore(locked / "sub" / "history.sqlite3")
    finally:
        locked.chmod(0o700)


def test_a_path_below_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    with pytest.raises(HistoryError, match="cannot open history database"):
        HistoryStore(tmp_path / "plain" / "history.sqlite3")


def test_a_database_from_a_newer_version_is_refused(db_path: Path) -> None:
    HistoryStore(db_path).close()
    with sqlite3.connect(db_path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(HistoryError, match="newer"):
        HistoryStore(db_path)


def test_the_file_uses_wal_and_a_schema_version(store: HistoryStore, db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = db.execute("PRAGMA index_info(messages_room_id)").fetchall()
        assert [row[2] for row in indexes] == ["room", "id"]


def test_a_failed_commit_is_logged_and_retried(db_path: Path) -> None:
    signal = Signal()
    logger = logging.getLogger("game_chat.server")
    logger.addHandler(signal)
    HistoryStore(db_path).close()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        with HistoryStore(db_path, commit_interval=0.01, busy_timeout=0.01) as store:
            assert store.wait_pruned(timeout=10)  # the pass at open is done: only commits fail
            blocker.execute("BEGIN EXCLUSIVE")  # the writer gets "database is locked"
            store.append(msg(1))
            assert signal.event.wait(timeout=10)
            assert ids(store.recent("lobby")) == [1]  # still readable while it waits
            with pytest.raises(HistoryError):
                store.flush()
            blocker.execute("ROLLBACK")
            assert store.wait_committed(timeout=10)
        assert count_on_disk(db_path) == 1
        assert "history commit failed" in signal.messages[0]
    finally:
        blocker.close()
        logger.removeHandler(signal)


# --- concurrency, crashes, speed ------------------------------------------------------------


def test_appends_from_four_threads_while_reading_lose_nothing(db_path: Path) -> None:
    per_thread = 2000
    store = HistoryStore(db_path, commit_interval=0.001, batch_size=50)
    done = threading.Event()
    problems: list[str] = []

    def writer(n: int) -> None:
        for i in range(per_thread):
            store.append(msg(n * per_thread + i + 1, room=f"room{n}"))

    def reader() -> None:
        seen = [0] * 4
        while not done.is_set():
            for n in range(4):
                got = ids(store.recent(f"room{n}", limit=per_thread))
                if got != sorted(set(got)) or len(got) < seen[n]:
                    problems.append(f"room{n}: {len(got)} after {seen[n]}")
                seen[n] = len(got)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    store.close()
    assert problems == []
    assert count_on_disk(db_path) == 4 * per_thread
    with HistoryStore(db_path) as again:
        for n in range(4):
            expected = list(range(n * per_thread + 1, (n + 1) * per_thread + 1))
            assert ids(again.recent(f"room{n}", limit=per_thread)) == expected


def test_a_killed_server_keeps_what_was_committed(db_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, time
        from game_chat.server.history import HistoryStore, StoredMessage
        store = HistoryStore(sys.argv[1], commit_interval=0.01)
        for i in range(1, 11):
            store.append(StoredMessage(i, "lobby", "ann", f"line {i}", time.time()))
        ok = store.wait_committed(timeout=20)  # the writer's own commit, not flush()
        os._exit(0 if ok else 3)  # no close(), no atexit: as abrupt as kill -9 for sqlite
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(db_path)], cwd=ROOT, timeout=60, check=False
    )
    assert done.returncode == 0
    with HistoryStore(db_path) as store:
        assert ids(store.recent("lobby")) == list(range(1, 11))
        assert store.next_message_id() == 11


def test_append_is_cheap(tmp_path: Path) -> None:
    n = 100_000
    messages = [msg(i) for i in range(1, n + 1)]
    with HistoryStore(tmp_path / "bench.sqlite3") as store:
        append = store.append
        start = time.perf_counter()
        for m in messages:
            append(m)
        per_append = (time.perf_counter() - start) / n
    assert per_append < 20e-6, f"{per_append * 1e6:.1f} µs per append"
