"""Chat history and bans, kept in SQLite so that they survive restarts.

:class:`HistoryStore` is built so that the live broadcast never waits for the disk:

* :meth:`~HistoryStore.append` only puts the message on an in-memory list under a lock; it never
  touches SQLite. Queries merge that list with the database, so a message can be read back the
  moment it is appended.
* A writer thread commits the waiting messages in one transaction every ``commit_interval``
  seconds, or as soon as ``batch_size`` of them wait. A commit that fails is logged and the same
  messages are tried again on the next cycle; they stay readable meanwhile.
* The same thread enforces retention (age and a per-room cap) once at open and then every
  ``prune_interval`` seconds, in small transactions with batch commits in between.

Connections: the writer's connection serves the writer thread, :meth:`~HistoryStore.flush` and
the (rare, synchronous) ban writes, one at a time under a write lock. Reads use a second,
query-only connection under a read lock; in WAL mode a reader never waits for a writer. A
memory-only store has a single connection, so its two locks are one lock and a read waits at
most for one batch commit.

Durability: WAL with ``synchronous=NORMAL``. A committed batch survives the process being killed
(kill -9 loses at most the batch that had not been committed yet); a power cut may lose more.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

from ..protocol.errors import ChatError

log = logging.getLogger("game_chat.server")

__all__ = [
    "BAN_KINDS",
    "Ban",
    "HistoryError",
    "HistoryStore",
    "StoredMessage",
    "data_dir",
    "default_history_path",
]

MEMORY = ":memory:"
SCHEMA_VERSION = 1
BAN_KINDS = ("nick", "address")
_DAY = 86_400.0
_MAX_ID = 2**63 - 1  # "no upper bound" for before_id
_PRUNE_CHUNK = 500  # rows deleted per retention transaction

#: MIGRATIONS[v] takes a database from user_version v to v + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            room TEXT NOT NULL,
            nick TEXT NOT NULL,
            text TEXT NOT NULL,
            ts REAL NOT NULL,
            action INTEGER NOT NULL DEFAULT 0,
            private_to TEXT
        )""",
        "CREATE INDEX messages_room_id ON messages (room, id)",
        "CREATE INDEX messages_ts ON messages (ts)",
        """CREATE INDEX messages_private ON messages (nick, private_to, id)
            WHERE private_to IS NOT NULL""",
        """CREATE TABLE bans (
            target TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('nick', 'address')),
            reason TEXT NOT NULL DEFAULT '',
            by TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            expires REAL,
            PRIMARY KEY (target, kind)
        )""",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    ),
)

_COLUMNS = "id, room, nick, text, ts, action, private_to"
_INSERT = f"INSERT OR REPLACE INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_SET_LAST_ID = """INSERT INTO meta (key, value) VALUES ('last_message_id', ?)
    ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"""
_LAST_ID = """SELECT max(coalesce((SELECT max(id) FROM messages), 0),
    coalesce((SELECT value FROM meta WHERE key = 'last_message_id'), 0))"""
_SELECT_ROOM = f"""SELECT {_COLUMNS} FROM messages
    WHERE room = ? AND private_to IS NULL AND id < ? ORDER BY id DESC LIMIT ?"""
_SELECT_PRIVATE = f"""SELECT {_COLUMNS} FROM messages
    WHERE private_to IS NOT NULL AND id < ?
    AND ((nick = ? AND private_to = ?) OR (nick = ? AND private_to = ?))
    ORDER BY id DESC LIMIT ?"""
_DELETE_OLD = f"""DELETE FROM messages WHERE id IN
    (SELECT id FROM messages WHERE ts < ? LIMIT {_PRUNE_CHUNK})"""
_CAP_THRESHOLD = "SELECT id FROM messages WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?"
_DELETE_BELOW = f"""DELETE FROM messages WHERE id IN
    (SELECT id FROM messages WHERE room = ? AND id < ? LIMIT {_PRUNE_CHUNK})"""
_UPSERT_BAN = "INSERT OR REPLACE INTO bans VALUES (?, ?, ?, ?, ?, ?)"
_ACTIVE_BANS = """SELECT target, kind, reason, by, created, expires FROM bans
    WHERE expires IS NULL OR expires > ? ORDER BY created, target"""
_DELETE_EXPIRED_BANS = "DELETE FROM bans WHERE expires IS NOT NULL AND expires <= ?"


class HistoryError(ChatError):
    """The history database cannot be used: it cannot be opened, is corrupt, or is closed."""


@dataclass(frozen=True)
class StoredMessage:
    """One chat line as stored: ``id`` is the server's message id, unique across restarts."""

    id: int
    room: str
    nick: str
    text: str
    ts: float
    action: bool = False
    #: The recipient's nick for a private message; None for a room message.
    private_to: str | None = None


@dataclass(frozen=True)
class Ban:
    """A ban on a nick key or an address; ``expires`` None means it never expires."""

    target: str
    kind: str  # one of BAN_KINDS
    reason: str
    by: str
    created: float
    expires: float | None = None

    def active(self, now: float) -> bool:
        return self.expires is None or self.expires > now


# --- where the database lives ---------------------------------------------------------------


def data_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user data directory of game_chat ($GAME_CHAT_DATA_DIR overrides)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    override = env.get("GAME_CHAT_DATA_DIR")
    if override:
        return Path(override)
    if platform == "win32":
        local = env.get("LOCALAPPDATA")
        return (Path(local) if local else Path.home() / "AppData" / "Local") / "game_chat"
    if platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "game_chat"
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "game_chat"


def default_history_path(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """Where the server keeps its history when --history-db is not given."""
    return data_dir(env, platform) / "history.sqlite3"


# --- sqlite helpers -------------------------------------------------------------------------


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (connections are in autocommit)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _connect(target: str, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves. Each connection is used by one
    # thread at a time, under the store's locks, hence check_same_thread=False.
    return sqlite3.connect(
        target, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )


def _migrate(db: sqlite3.Connection, on_disk: bool) -> None:
    """WAL mode, then bring the schema up to SCHEMA_VERSION."""
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if on_disk and str(mode).lower() != "wal":
        log.warning("history database is in %s mode, not WAL", mode)
    db.execute("PRAGMA synchronous = NORMAL")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"schema version {version} is newer than this game_chat knows ({SCHEMA_VERSION})"
        )
    for number in range(version, SCHEMA_VERSION):
        with _transaction(db):
            for statement in MIGRATIONS[number]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")


def _open(path: Path | None, busy_timeout: float) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """(writer, reader) connections; the same one twice for a memory-only store."""
    if path is None:
        db = _connect(MEMORY, busy_timeout)
        _migrate(db, on_disk=False)
        return db, db
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = _connect(str(path), busy_timeout)
        try:
            _migrate(writer, on_disk=True)
            reader = _connect(str(path), busy_timeout)
            reader.execute("PRAGMA query_only = ON")
        except BaseException:
            writer.close()
            raise
    except (OSError, sqlite3.Error, HistoryError) as exc:
        raise HistoryError(f"cannot open history database {path}: {exc}") from exc
    return writer, reader


def _row(message: StoredMessage) -> tuple[object, ...]:
    m = message
    return (m.id, m.room, m.nick, m.text, m.ts, int(m.action), m.private_to)


def _message(row: Sequence[object]) -> StoredMessage:
    id_, room, nick, text, ts, action, private_to = row
    return StoredMessage(id_, room, nick, text, ts, bool(action), private_to)  # type: ignore[arg-type]


def _merge(
    unsaved: list[StoredMessage], saved: list[StoredMessage], limit: int
) -> list[StoredMessage]:
    """The last ``limit`` of both lists by id, oldest first, each id once."""
    by_id = {m.id: m for m in saved}
    by_id.update((m.id, m) for m in heapq.nlargest(limit, unsaved, key=_by_id))
    return [by_id[i] for i in heapq.nlargest(limit, by_id)][::-1]


def _by_id(message: StoredMessage) -> int:
    return message.id


# --- the store ------------------------------------------------------------------------------


class HistoryStore:
    """Room messages, private messages and bans in one SQLite database.

    ``path`` None or ":memory:" keeps everything in memory (nothing on disk). Opening raises
    :class:`HistoryError` with a one-line reason when the file cannot be used. Queries and ban
    writes raise :class:`HistoryError` too; :meth:`append` raises it only after :meth:`close`.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        commit_interval: float = 1.0,
        batch_size: int = 1000,
        retention_days: float | None = 30,
        room_cap: int | None = 10_000,
        prune_interval: float = 60.0,
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if room_cap is not None and room_cap < 1:
            raise ValueError("room_cap must be at least 1")
        self.path = None if path is None or str(path) == MEMORY else Path(path)
        self.commit_interval = commit_interval
        self.batch_size = max(1, batch_size)
        self.retention_days = retention_days
        self.room_cap = room_cap
        self.prune_interval = prune_interval
        self._clock = clock
        self._writer_db, self._reader_db = _open(self.path, busy_timeout)
        self._write_lock = threading.Lock()  # the writer connection, and _dirty_rooms
        self._read_lock = self._write_lock if self.path is None else threading.Lock()
        self._cond = threading.Condition(threading.Lock())  # everything below up to _closed
        self._pending: list[StoredMessage] = []  # appended, not yet taken by a commit
        self._in_flight: list[StoredMessage] = []  # taken by a commit that has not succeeded
        self._appended = 0
        self._committed = 0
        self._prunes = 0
        self._prune_requested = False
        self._last_id: int = self._writer_db.execute(_LAST_ID).fetchone()[0]
        self._closed = False  # no more appends
        self._db_closed = False  # connections closed (checked under the db locks)
        self._dirty_rooms: set[str] | None = None  # rooms to cap; None: every room
        self._failures = 0  # writer cycles failed in a row
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the live path ----------------------------------------------------------------------

    def append(self, message: StoredMessage) -> None:
        """Queue ``message`` for the next batch commit. O(1); never touches SQLite."""
        with self._cond:
            if self._closed:
                raise HistoryError("the history store is closed")
            self._pending.append(message)
            self._appended += 1
            if message.id > self._last_id:
                self._last_id = message.id
            full = len(self._pending) >= self.batch_size
        if full:
            self._wake.set()

    def next_message_id(self) -> int:
        """One more than the highest id ever stored or appended (pruned ids are not reused)."""
        with self._cond:
            return self._last_id + 1

    # --- queries ----------------------------------------------------------------------------

    def recent(
        self, room: str, limit: int = 100, before_id: int | None = None
    ) -> list[StoredMessage]:
        """Up to ``limit`` room messages with id < ``before_id``, oldest first; no privates."""
        before = _MAX_ID if before_id is None else before_id

        def wanted(m: StoredMessage) -> bool:
            return m.room == room and m.private_to is None and m.id < before

        return self._query(wanted, _SELECT_ROOM, (room, before, limit), limit)

    def private(
        self, nick_a: str, nick_b: str, limit: int = 100, before_id: int | None = None
    ) -> list[StoredMessage]:
        """Private messages between the two nicks (either way, exact match), oldest first."""
        before = _MAX_ID if before_id is None else before_id
        pairs = {(nick_a, nick_b), (nick_b, nick_a)}

        def wanted(m: StoredMessage) -> bool:
            return m.private_to is not None and (m.nick, m.private_to) in pairs and m.id < before

        params = (before, nick_a, nick_b, nick_b, nick_a, limit)
        return self._query(wanted, _SELECT_PRIVATE, params, limit)

    def _query(
        self,
        wanted: Callable[[StoredMessage], bool],
        sql: str,
        params: tuple[object, ...],
        limit: int,
    ) -> list[StoredMessage]:
        if limit <= 0:
            return []
        # Memory first, then the database: a message that leaves memory is committed before it
        # leaves, so it is always found in one of the two.
        unsaved = [m for m in self._unsaved() if wanted(m)]
        saved = [_message(row) for row in self._read(sql, params)]
        return _merge(unsaved, saved, limit)

    def _unsaved(self) -> list[StoredMessage]:
        with self._cond:
            return [*self._in_flight, *self._pending]

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._read_lock:
            self._require_open()
            try:
                return self._reader_db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise HistoryError(f"history read failed: {exc}") from exc

    # --- bans (synchronous: they are rare, and appends never wait for them) ------------------

    def add_ban(
        self,
        target: str,
        kind: str,
        reason: str = "",
        by: str = "",
        expires: float | None = None,
    ) -> Ban:
        """Store (or replace) a ban on ``target``, a nick key or an address."""
        if kind not in BAN_KINDS:
            raise ValueError(f"ban kind must be one of {BAN_KINDS}, not {kind!r}")
        ban = Ban(target, kind, reason, by, self._clock(), expires)
        self._write(_UPSERT_BAN, astuple(ban))
        return ban

    def remove_ban(self, target: str) -> bool:
        """Lift every ban on ``target``; False if there was none."""
        return self._write("DELETE FROM bans WHERE target = ?", (target,)) > 0

    def active_bans(self, now: float | None = None) -> list[Ban]:
        """Bans not expired at ``now`` (default: the clock), oldest first."""
        now = self._clock() if now is None else now
        return [Ban(*row) for row in self._read(_ACTIVE_BANS, (now,))]  # type: ignore[arg-type]

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        with self._write_lock:
            self._require_open()
            try:
                with _transaction(self._writer_db):
                    return self._writer_db.execute(sql, params).rowcount
            except sqlite3.Error as exc:
                raise HistoryError(f"history write failed: {exc}") from exc

    # --- committing -------------------------------------------------------------------------

    def flush(self) -> None:
        """Commit everything appended so far, on this thread, now. Raises HistoryError."""
        with self._write_lock:
            self._require_open()
        try:
            self._commit_pending()
        except sqlite3.Error as exc:
            raise HistoryError(f"history commit failed: {exc}") from exc

    def wait_committed(self, timeout: float | None = None) -> bool:
        """Wait until everything appended before this call is committed; False on timeout."""
        with self._cond:
            target = self._appended
            return self._cond.wait_for(lambda: self._committed >= target, timeout)

    def _commit_pending(self) -> None:
        with self._write_lock:
            batch = self._take_batch()
            if not batch:
                return
            with _transaction(self._writer_db):
                self._writer_db.executemany(_INSERT, map(_row, batch))
                self._writer_db.execute(_SET_LAST_ID, (max(m.id for m in batch),))
            if self._dirty_rooms is not None:
                self._dirty_rooms.update(m.room for m in batch)
            with self._cond:
                self._in_flight = []
                self._committed += len(batch)
                self._cond.notify_all()

    def _take_batch(self) -> list[StoredMessage]:
        """Move the pending messages in flight, after any left by a failed commit."""
        with self._cond:
            batch = [*self._in_flight, *self._pending] if self._in_flight else self._pending
            self._in_flight = batch
            self._pending = []
            return batch

    # --- retention --------------------------------------------------------------------------

    @property
    def prune_count(self) -> int:
        """How many retention passes the writer has finished (the first one runs at open)."""
        with self._cond:
            return self._prunes

    def wait_pruned(self, count: int = 1, timeout: float | None = None) -> bool:
        """Wait until ``count`` retention passes have finished; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._prunes >= count, timeout)

    def prune_now(self, timeout: float | None = None) -> bool:
        """Ask the writer thread for a retention pass and wait for it; False on timeout."""
        with self._cond:
            target = self._prunes + 1
            self._prune_requested = True
        self._wake.set()
        return self.wait_pruned(target, timeout)

    def _prune(self) -> None:
        with self._cond:
            self._prune_requested = False
        now = self._clock()
        self._write_chunk(_DELETE_EXPIRED_BANS, (now,))
        if self.retention_days is not None:
            self._delete_in_chunks(_DELETE_OLD, (now - self.retention_days * _DAY,))
        if self.room_cap is not None:
            self._cap_rooms(self.room_cap)
        with self._cond:
            self._prunes += 1
            self._cond.notify_all()

    def _cap_rooms(self, cap: int) -> None:
        try:
            for room in self._rooms_to_cap():
                self._cap_room(room, cap)
        except BaseException:
            with self._write_lock:
                self._dirty_rooms = None  # not sure which rooms are done: all of them next time
            raise

    def _rooms_to_cap(self) -> set[str]:
        """Every room on the first pass; later, only the rooms written to since the last one."""
        with self._write_lock:
            rooms = self._dirty_rooms
            self._dirty_rooms = set()
            if rooms is None:
                rows = self._writer_db.execute("SELECT DISTINCT room FROM messages").fetchall()
                rooms = {row[0] for row in rows}
            return rooms

    def _cap_room(self, room: str, cap: int) -> None:
        with self._write_lock:
            row = self._writer_db.execute(_CAP_THRESHOLD, (room, cap - 1)).fetchone()
        if row is not None:
            self._delete_in_chunks(_DELETE_BELOW, (room, row[0]))

    def _delete_in_chunks(self, sql: str, params: tuple[object, ...]) -> None:
        """Repeat a bounded DELETE in its own transactions, committing batches in between."""
        while self._write_chunk(sql, params) >= _PRUNE_CHUNK and not self._stop.is_set():
            self._commit_pending()

    def _write_chunk(self, sql: str, params: tuple[object, ...]) -> int:
        with self._write_lock, _transaction(self._writer_db):
            return self._writer_db.execute(sql, params).rowcount

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        next_prune = 0.0  # prune at once: the pass at open
        while not self._stop.is_set():
            if self._prune_requested or time.monotonic() >= next_prune:
                self._safely("retention", self._prune)
                next_prune = time.monotonic() + self.prune_interval
            self._wake.wait(self.commit_interval)
            self._wake.clear()
            if not self._stop.is_set():
                self._safely("commit", self._commit_pending)

    def _safely(self, what: str, step: Callable[[], None]) -> None:
        """Run one writer step; log a failure (a traceback for the first in a row), never raise."""
        try:
            step()
        except Exception as exc:
            self._failures += 1
            waiting = len(self._unsaved())
            if self._failures == 1:
                log.exception("history %s failed; %d messages wait for the retry", what, waiting)
            else:
                log.warning("history %s failed again (%s); %d messages wait", what, exc, waiting)
            return
        if self._failures:
            log.info("history %s works again", what)
            self._failures = 0

    # --- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the writer, commit what is left and close the database. Idempotent.

        A final commit that fails is logged (with the number of messages lost), not raised.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join()
        try:
            self._commit_pending()
        except sqlite3.Error as exc:
            log.error("history: %d messages not saved at close: %s", len(self._unsaved()), exc)
        with self._all_locks():
            self._db_closed = True
            self._reader_db.close()
            self._writer_db.close()

    @contextlib.contextmanager
    def _all_locks(self) -> Iterator[None]:
        with self._write_lock:
            if self._read_lock is self._write_lock:
                yield
                return
            with self._read_lock:
                yield

    def _require_open(self) -> None:
        if self._db_closed:
            raise HistoryError("the history store is closed")
