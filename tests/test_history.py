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
    SentKey,
    StoredMessage,
    default_history_path,
)

ROOT = Path(__file__).resolve().parent.parent
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
    s = HistoryStore(db_path)
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


def test_default_path_is_the_history_file_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Which directory that is on each platform: test_dirs.py.
    monkeypatch.setenv("GAME_CHAT_DATA_DIR", str(tmp_path))
    assert default_history_path() == tmp_path / "history.sqlite3"


# --- writing and reading ----------------------------------------------------------------------


def test_a_write_is_on_disk_when_it_returns(store: HistoryStore, db_path: Path) -> None:
    store.write([msg(1), msg(2)])
    assert count_on_disk(db_path) == 2
    assert ids(store.recent("lobby")) == [1, 2]


def test_stored_fields_round_trip(store: HistoryStore) -> None:
    original = StoredMessage(7, "lobby", "Ann", "waves ✓", 1234.5, action=True)
    notice = StoredMessage(8, "lobby", "bot", "build green", 1235.0, notice=True)
    store.write([original, notice])
    assert store.recent("lobby") == [original, notice]


def test_lines_keys_and_reservation_are_kept_together(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        key = SentKey("ann\x00sc1", 1, 5.0, b"12345678")
        store.write([msg(1)], [key], reserve_to=500)
        assert store.find_key(key.key) == key
        assert store.reserved_id == 500
    with HistoryStore(db_path) as again:
        assert ids(again.recent("lobby")) == [1]
        assert again.reserved_id == 500
        assert again.find_key("nobody") is None


def test_a_failed_write_changes_nothing(db_path: Path) -> None:
    with HistoryStore(db_path, busy_timeout=0.01) as store:
        blocker = sqlite3.connect(db_path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            with pytest.raises(HistoryError, match="locked"):
                store.write([msg(1)], [SentKey("k", 1, 1.0, b"d")], reserve_to=10**6)
        finally:
            blocker.close()
        assert store.recent("lobby") == []
        assert store.find_key("k") is None
        store.write([msg(2)])
        assert ids(store.recent("lobby")) == [2]


# --- ids across restarts --------------------------------------------------------------------


def test_the_reservation_survives_and_is_released_on_a_clean_stop(db_path: Path) -> None:
    with HistoryStore(db_path) as first:
        assert first.reserved_id == 1  # a new file: nothing handed out yet
        first.write([msg(1), msg(2)], reserve_to=1000)
    with HistoryStore(db_path) as second:  # as after a crash: ids 1..999 may have been seen
        assert second.reserved_id == 1000
        second.release_reservation(3)  # a clean stop after handing out 1 and 2
    with HistoryStore(db_path) as third:
        assert third.reserved_id == 3


def test_ids_keep_increasing_after_retention_deleted_everything(db_path: Path) -> None:
    clock = Clock()
    with HistoryStore(db_path, clock=clock, retention_days=None) as first:
        first.write([msg(41, ts=clock.now)])
        first.release_reservation(0)  # even a bad release cannot go below what was written
    clock.now += 60 * DAY
    with HistoryStore(db_path, clock=clock) as second:
        list(second.prune_steps())
        assert second.recent("lobby") == []
    with HistoryStore(db_path, clock=clock) as third:
        assert third.reserved_id == 42


def test_every_database_has_its_own_store_id(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "a.sqlite3") as a, HistoryStore(tmp_path / "b.sqlite3") as b:
        first = a.store_id
        assert first != b.store_id
        assert HistoryStore(None).store_id not in (first, b.store_id)
    with HistoryStore(tmp_path / "a.sqlite3") as again:
        assert again.store_id == first


# --- queries --------------------------------------------------------------------------------


def test_recent_pages_back_with_before_id(store: HistoryStore) -> None:
    store.write([msg(i) for i in range(1, 251)])
    page = store.recent("lobby", limit=100)
    assert ids(page) == list(range(151, 251))
    page = store.recent("lobby", limit=100, before_id=page[0].id)
    assert ids(page) == list(range(51, 151))
    page = store.recent("lobby", limit=100, before_id=page[0].id)
    assert ids(page) == list(range(1, 51))
    assert store.recent("lobby", before_id=1) == []
    assert store.recent("lobby", limit=0) == []


def test_following_pages_forwards_from_an_id(store: HistoryStore) -> None:
    store.write([msg(i) for i in range(1, 251)])
    assert ids(store.following("lobby", 100, limit=3)) == [101, 102, 103]
    assert ids(store.following("lobby", 100, limit=3, before_id=102)) == [101]
    assert ids(store.recent("lobby", limit=3, after_id=240)) == [248, 249, 250]
    assert ids(store.recent("lobby", limit=50, after_id=247)) == [248, 249, 250]


def test_ids_beyond_sqlite_integers_are_clamped(store: HistoryStore) -> None:
    store.write([msg(1)])
    assert ids(store.recent("lobby", before_id=2**64)) == [1]
    assert ids(store.following("lobby", -(2**70), before_id=2**70)) == [1]


def test_recent_returns_only_that_room(store: HistoryStore) -> None:
    store.write([msg(1, room="lobby"), msg(2, room="games"), msg(3, room="games")])
    assert ids(store.recent("lobby")) == [1]
    assert ids(store.recent("games")) == [2, 3]
    assert store.recent("nowhere") == []


def test_private_messages_never_appear_in_a_room(store: HistoryStore) -> None:
    store.write(
        [
            msg(1, nick="ann"),
            msg(2, nick="ann", private_to="bob"),
            msg(3, nick="bob", private_to="ann"),
            msg(4, nick="ann", private_to="cy"),
        ]
    )
    assert ids(store.recent("lobby")) == [1]
    assert ids(store.private("bob", "ann")) == [2, 3]
    assert ids(store.private("ann", "bob", before_id=3)) == [2]
    assert ids(store.private("ann", "cy")) == [4]


# --- retention ------------------------------------------------------------------------------


def prune(store: HistoryStore, rooms: set[str] | None = None) -> int:
    """Run a whole retention pass; returns how many transactions it took."""
    return len(list(store.prune_steps(rooms)))


def test_retention_deletes_messages_older_than_the_limit(store: HistoryStore) -> None:
    now = time.time()
    store.write([msg(1, ts=now - 31 * DAY), msg(2, ts=now - 29 * DAY)])
    prune(store)
    assert ids(store.recent("lobby")) == [2]


def test_retention_removes_more_than_one_chunk(db_path: Path) -> None:
    clock = Clock()
    with HistoryStore(db_path, clock=clock) as store:
        store.write([msg(i, ts=clock.now - 40 * DAY) for i in range(1, 1201)])
        store.write([msg(1201, ts=clock.now)])
        assert prune(store) > 3  # small transactions, not one big one
        assert count_on_disk(db_path) == 1


def test_room_cap_keeps_the_newest_messages_of_each_room(db_path: Path) -> None:
    with HistoryStore(db_path, retention_days=None, room_cap=5) as store:
        store.write([msg(i, room="lobby") for i in range(1, 9)])
        store.write([msg(i, room="games") for i in range(9, 12)])
        prune(store, {"games"})
        assert len(store.recent("lobby")) == 8  # not named: not capped this time
        prune(store)
        assert ids(store.recent("lobby")) == [4, 5, 6, 7, 8]
        assert ids(store.recent("games")) == [9, 10, 11]


def test_retry_keys_are_capped_by_age_and_count(db_path: Path) -> None:
    clock = Clock()
    with HistoryStore(db_path, clock=clock, key_cap=3, key_days=1) as store:
        old = SentKey("old", 1, clock.now - 2 * DAY, b"d")
        store.write([], [old, *(SentKey(f"k{i}", i, clock.now, b"d") for i in range(2, 7))])
        prune(store)
        assert store.find_key("old") is None
        assert [store.find_key(f"k{i}") is not None for i in range(2, 7)] == [
            False,
            False,
            True,
            True,
            True,
        ]


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
    with HistoryStore(db_path, clock=clock) as store:
        store.add_ban("ann", "nick", "cool off", "op", expires=clock.now + 60)
        assert [b.target for b in store.active_bans()] == ["ann"]
        assert store.active_bans(clock.now + 61) == []
        clock.now += 61
        assert store.active_bans() == []
        prune(store)
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
    with HistoryStore(where, retention_days=None, room_cap=2) as store:
        assert store.path is None and store.memory_only
        store.write([msg(i) for i in range(1, 4)])
        prune(store)
        assert ids(store.recent("lobby")) == [2, 3]
        store.add_ban("ann", "nick", "", "", None)
        assert [b.target for b in store.active_bans()] == ["ann"]
    assert list(tmp_path.iterdir()) == []


def test_close_is_idempotent_and_final(db_path: Path) -> None:
    store = HistoryStore(db_path)
    store.write([msg(1)])
    store.close()
    store.close()
    assert count_on_disk(db_path) == 1
    with pytest.raises(HistoryError):
        store.write([msg(2)])
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


def test_a_damaged_file_is_one_clear_error(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        store.write([msg(i, text="x" * 2000) for i in range(1, 200)])
    data = bytearray(db_path.read_bytes())
    page = 4096
    data[3 * page : 3 * page + 200] = b"\xde\xad" * 100  # trash the start of a b-tree page
    db_path.write_bytes(bytes(data))
    with pytest.raises(HistoryError, match=r"cannot open history database .*damaged|malformed"):
        HistoryStore(db_path)


# --- crashes --------------------------------------------------------------------------------


def test_a_killed_process_keeps_every_write_that_returned(db_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, time
        from game_chat.server.history import HistoryStore, StoredMessage
        store = HistoryStore(sys.argv[1])
        for i in range(1, 11):
            store.write([StoredMessage(i, "lobby", "ann", f"line {i}", time.time())],
                        reserve_to=1000)
        os._exit(0)  # no close(), no atexit: as abrupt as kill -9 for sqlite
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(db_path)], cwd=ROOT, timeout=60, check=False
    )
    assert done.returncode == 0
    with HistoryStore(db_path) as store:
        assert ids(store.recent("lobby")) == list(range(1, 11))
        assert store.reserved_id == 1000


def test_commits_never_checkpoint_and_checkpoint_moves_the_wal_into_the_file(
    db_path: Path,
) -> None:
    with HistoryStore(db_path) as store:
        base = db_path.stat().st_size
        for start in range(1, 6001, 100):  # more than the 1000 pages of an autocheckpoint
            store.write([msg(i, text="x" * 500) for i in range(start, start + 100)])
        wal = Path(f"{db_path}-wal")
        assert wal.stat().st_size > 1000 * 4096  # all still in the WAL: no commit copied it
        assert db_path.stat().st_size == base
        store.checkpoint()
        assert db_path.stat().st_size > 3_000_000  # now in the database file itself
        assert len(store.recent("lobby", limit=10_000)) == 6000
    with HistoryStore(None) as memory:
        memory.checkpoint()  # nothing to do, no error


def test_servers_opening_one_new_file_at_once_all_open_it(tmp_path: Path) -> None:
    """Two servers on one machine (e.g. two cluster nodes) starting together: the schema
    is made once, and nobody fails on a table the other just made."""
    import threading

    path = tmp_path / "shared.sqlite3"
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            HistoryStore(path).close()
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
