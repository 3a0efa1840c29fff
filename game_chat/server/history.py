"""Chat history, retry keys and bans, kept in SQLite so that they survive restarts.

:class:`HistoryStore` is the database and nothing else: every method runs on the caller's
thread and either finishes or raises :class:`HistoryError`. When lines are written, in what
batches, and what happens to them when a write fails is decided by
:class:`~game_chat.server.group_commit.GroupCommit`, the only caller of :meth:`~HistoryStore.write`.

What one :meth:`~HistoryStore.write` transaction holds:

* the chat lines (room lines, and private lines when they are to be stored);
* the **retry keys** of the lines that carried a client id (sender + client id -> message id,
  time and a digest of the text), so that a line sent again after a crash is recognised;
* the **id reservation**: message ids are handed out only below ``reserved_id``, a number
  written to the database before any id under it is used. After a crash the next run starts
  above the reservation, so an id that anyone may have seen is never given to another line.

Connections: the writer connection serves writes (lines, bans, retention), one at a time under
a write lock. Reads use a second, query-only connection under a read lock; in WAL mode a reader
never waits for a writer. A memory-only store has a single connection, so its two locks are one.

Durability: WAL with ``synchronous=NORMAL`` by default (a commit survives the process being
killed; a power cut may lose the last ones), or ``FULL`` (an fsync per commit: it survives a
power cut too).
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

from ..dirs import HISTORY_FILE, data_dir
from ..protocol.errors import ChatError
from ..protocol.records import quick_init

log = logging.getLogger("game_chat.server")

__all__ = [
    "BAN_KINDS",
    "SYNC_MODES",
    "Ban",
    "HistoryError",
    "HistoryStore",
    "SentKey",
    "StoredMessage",
    "data_dir",
    "default_history_path",
]

MEMORY = ":memory:"
SCHEMA_VERSION = 2
BAN_KINDS = ("nick", "address")
SYNC_MODES = ("full", "normal")
_DAY = 86_400.0
MAX_ID = 2**63 - 1  # SQLite's largest integer: "no upper bound" for ids
#: A WAL this long (in pages) is checkpointed even if writers must wait for it: passive
#: checkpoints that never catch up with a flood would let it grow without end.
_WAL_RESTART_PAGES = 16_384
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
    (
        # Retry keys: sender + client id -> the line it became (kept also for private lines
        # whose text is not stored). Pruned by age and by count (rowid order = write order).
        """CREATE TABLE sent (
            key TEXT PRIMARY KEY,
            id INTEGER NOT NULL,
            ts REAL NOT NULL,
            digest BLOB NOT NULL
        )""",
        "CREATE INDEX sent_ts ON sent (ts)",
    ),
)

_COLUMNS = "id, room, nick, text, ts, action, private_to"
_INSERT = f"INSERT OR REPLACE INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_INSERT_KEY = "INSERT OR REPLACE INTO sent (key, id, ts, digest) VALUES (?, ?, ?, ?)"
_FIND_KEY = "SELECT id, ts, digest FROM sent WHERE key = ?"
_SET_META = """INSERT INTO meta (key, value) VALUES (?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value"""
_RAISE_META = """INSERT INTO meta (key, value) VALUES (?, ?)
    ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"""
_GET_META = "SELECT value FROM meta WHERE key = ?"
_MAX_MESSAGE_ID = "SELECT coalesce(max(id), 0) FROM messages"
_SELECT_NEWEST = f"""SELECT {_COLUMNS} FROM messages
    WHERE room = ? AND private_to IS NULL AND id > ? AND id < ? ORDER BY id DESC LIMIT ?"""
_SELECT_OLDEST = f"""SELECT {_COLUMNS} FROM messages
    WHERE room = ? AND private_to IS NULL AND id > ? AND id < ? ORDER BY id ASC LIMIT ?"""
_SELECT_FIRST_AT = "SELECT id FROM messages WHERE ts >= ? ORDER BY ts, id LIMIT 1"
_SELECT_PRIVATE = f"""SELECT {_COLUMNS} FROM messages
    WHERE private_to IS NOT NULL AND id < ?
    AND ((nick = ? AND private_to = ?) OR (nick = ? AND private_to = ?))
    ORDER BY id DESC LIMIT ?"""
_DELETE_OLD = f"""DELETE FROM messages WHERE id IN
    (SELECT id FROM messages WHERE ts < ? LIMIT {_PRUNE_CHUNK})"""
_CAP_THRESHOLD = "SELECT id FROM messages WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?"
_DELETE_BELOW = f"""DELETE FROM messages WHERE id IN
    (SELECT id FROM messages WHERE room = ? AND id < ? LIMIT {_PRUNE_CHUNK})"""
_DELETE_OLD_KEYS = f"""DELETE FROM sent WHERE rowid IN
    (SELECT rowid FROM sent WHERE ts < ? LIMIT {_PRUNE_CHUNK})"""
_DELETE_EXTRA_KEYS = f"""DELETE FROM sent WHERE rowid IN (SELECT rowid FROM sent
    WHERE rowid <= (SELECT max(rowid) FROM sent) - ? LIMIT {_PRUNE_CHUNK})"""
_UPSERT_BAN = "INSERT OR REPLACE INTO bans VALUES (?, ?, ?, ?, ?, ?)"
_ACTIVE_BANS = """SELECT target, kind, reason, by, created, expires FROM bans
    WHERE expires IS NULL OR expires > ? ORDER BY created, target"""
_DELETE_EXPIRED_BANS = "DELETE FROM bans WHERE expires IS NOT NULL AND expires <= ?"


class HistoryError(ChatError):
    """The history database cannot be used: it cannot be opened, is damaged, full, read-only,
    locked or closed. The message is one line, fit for a log or a terminal."""


@quick_init
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
    notice: bool = False  # (kept in the action column: 2)


@quick_init
@dataclass(frozen=True)
class SentKey:
    """What a retry key leads to: the line's id, time and a digest of its text."""

    key: str
    id: int
    ts: float
    digest: bytes


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


def default_history_path() -> Path:
    """Where the server keeps its history when --history-db is not given."""
    return data_dir() / HISTORY_FILE


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


def _wal_mode(db: sqlite3.Connection, patience: float = 5.0) -> object:
    """Switch to WAL; the journal mode it is in now. Changing it needs the file to itself for
    a moment, and SQLite answers "locked" at once (no busy timeout) when another process is
    opening it too, as two servers started together do: try again for ``patience`` s."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.01 + 0.02 * random.random())  # nothing to wait on: the other's open


def _migrate(db: sqlite3.Connection, on_disk: bool, sync: str) -> None:
    """WAL mode, then bring the schema up to SCHEMA_VERSION."""
    mode = _wal_mode(db)
    if on_disk and str(mode).lower() != "wal":
        log.warning("history database is in %s mode, not WAL", mode)
    db.execute(f"PRAGMA synchronous = {sync.upper()}")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"schema version {version} is newer than this game_chat knows ({SCHEMA_VERSION})"
        )
    for number in range(version, SCHEMA_VERSION):
        with _transaction(db):
            # Two servers opening one new file at once (two cluster nodes on one machine):
            # the other may have taken this step while we waited for the write lock.
            if db.execute("PRAGMA user_version").fetchone()[0] > number:
                continue
            for statement in MIGRATIONS[number]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")


def _check_integrity(db: sqlite3.Connection) -> None:
    """Refuse a damaged file at open, in one line, rather than fail on the first page read.

    SQLite's report is several lines ("*** in database main ***" and then one per problem):
    joined into one, so that it stays a single line of a log or of stderr."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check(3)").fetchall()]
    if problems != ["ok"]:
        lines = [line.strip() for problem in problems for line in str(problem).splitlines()]
        said = [line for line in lines if line and not line.startswith("*** in database")]
        raise HistoryError("the file is damaged (" + "; ".join(said) + ")")


def _open(
    path: Path | None, busy_timeout: float, sync: str
) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """(writer, reader) connections; the same one twice for a memory-only store."""
    if path is None:
        db = _connect(MEMORY, busy_timeout)
        _migrate(db, on_disk=False, sync=sync)
        return db, db
    writer = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = _connect(str(path), busy_timeout)
        _check_integrity(writer)
        _migrate(writer, on_disk=True, sync=sync)
        # No checkpoint in the commit that fills the WAL: it would copy pages and fsync the
        # file while lines wait to be delivered. checkpoint() runs them on another thread.
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        reader = _connect(str(path), busy_timeout)
        reader.execute("PRAGMA query_only = ON")
    except (OSError, sqlite3.Error, HistoryError) as exc:
        if writer is not None:
            writer.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise HistoryError(f"cannot open history database {path}: {reason}") from exc
    return writer, reader


def _row(message: StoredMessage) -> tuple[object, ...]:
    m = message
    return (m.id, m.room, m.nick, m.text, m.ts, line_kind(m.action, m.notice), m.private_to)


#: The action column's values: a line, an action (/me), a notice (IRC's NOTICE).
LINE, ACTION, NOTICE = 0, 1, 2


def line_kind(action: bool, notice: bool) -> int:
    """The action column's value for a line (the cluster's room log keeps the same)."""
    return NOTICE if notice else ACTION if action else LINE


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


def _damaged(what: str) -> HistoryError:
    return HistoryError(f"history read failed: {what} is damaged (a value of the wrong type)")


def _message(row: Sequence[object]) -> StoredMessage:
    """A stored line, checked: SQLite does not enforce column types, so a damaged record (one
    flipped bit in its header) reads back with a value of another type, which must not reach
    a client (a blob cannot even be put in a JSON frame). HistoryError if so."""
    id_, room, nick, text, ts, action, private_to = row
    if not (
        type(id_) is int
        and isinstance(room, str)
        and isinstance(nick, str)
        and isinstance(text, str)
        and _is_number(ts)
        and type(action) is int
        and (private_to is None or isinstance(private_to, str))
    ):
        raise _damaged(f"line {id_}")
    return StoredMessage(
        id_,
        room,
        nick,
        text,
        float(ts),  # type: ignore[arg-type]
        action == ACTION,
        private_to,
        action == NOTICE,
    )


def _clamp(value: int) -> int:
    """An id bound SQLite can hold (a peer may ask for 2**64)."""
    return max(0, min(MAX_ID, value))


# --- the store ------------------------------------------------------------------------------


class HistoryStore:
    """Room messages, private messages, retry keys and bans in one SQLite database.

    ``path`` None or ":memory:" keeps everything in memory (nothing on disk). Opening raises
    :class:`HistoryError` with a one-line reason when the file cannot be used (unreadable,
    damaged, from a newer version). Every other method raises :class:`HistoryError` when the
    database fails; none raises anything else for a database problem.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        retention_days: float | None = 30,
        room_cap: int | None = 10_000,
        key_cap: int = 100_000,
        key_days: float = 7,
        busy_timeout: float = 5.0,
        sync: str = "normal",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if room_cap is not None and room_cap < 1:
            raise ValueError("room_cap must be at least 1")
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}, not {sync!r}")
        self.path = None if path is None or str(path) == MEMORY else Path(path)
        self.retention_days = retention_days
        self.room_cap = room_cap
        self.key_cap = max(1, key_cap)
        self.key_days = key_days
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._writer_db, self._reader_db = _open(self.path, busy_timeout, sync)
        self._write_lock = threading.Lock()  # the writer connection
        self._checkpoint_lock = threading.Lock()  # the checkpoint connection (made when used)
        self._checkpoint_db: sqlite3.Connection | None = None
        self._busy_timeout_s = busy_timeout
        self._read_lock = self._write_lock if self.path is None else threading.Lock()
        self._closed = False
        try:
            self.store_id = self._init_store_id()
            #: Ids below this one may have been handed out (by this run or one before it).
            self.reserved_id = max(self._meta("reserved_id"), self._last_written() + 1)
        except sqlite3.Error as exc:
            self._close_connections()
            raise HistoryError(f"cannot open history database {self.path}: {exc}") from exc

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- identity and ids ---------------------------------------------------------------------

    def _init_store_id(self) -> str:
        """A random name of this database, made once: ids mean something only within it."""
        existing = self._writer_db.execute(_GET_META, ("store_id",)).fetchone()
        if existing is not None:
            return str(existing[0])
        store_id = secrets.token_hex(8)
        with _transaction(self._writer_db):
            self._writer_db.execute(_SET_META, ("store_id", store_id))
        return store_id

    def _meta(self, key: str) -> int:
        row = self._writer_db.execute(_GET_META, (key,)).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def _last_written(self) -> int:
        """The highest id ever written (retention may have deleted the line itself)."""
        in_table = self._writer_db.execute(_MAX_MESSAGE_ID).fetchone()[0]
        return max(int(in_table), self._meta("last_message_id"))

    @property
    def memory_only(self) -> bool:
        return self.path is None

    # --- writing lines --------------------------------------------------------------------------

    def write(
        self,
        messages: Sequence[StoredMessage],
        keys: Sequence[SentKey] = (),
        reserve_to: int | None = None,
        *,
        busy_timeout: float | None = None,
    ) -> None:
        """Commit lines, their retry keys and (optionally) a new id reservation, all or none.

        ``busy_timeout``: how long to wait for a lock another connection holds, instead of
        the store's own (a retry of a failing store should not wait long: lines wait
        meanwhile)."""
        with self._writer(busy_timeout) as db, _transaction(db):
            if messages:
                db.executemany(_INSERT, map(_row, messages))
                if self.path is not None:  # (read when a file is opened again: never in memory)
                    db.execute(_RAISE_META, ("last_message_id", max(m.id for m in messages)))
            if keys:
                db.executemany(_INSERT_KEY, map(astuple, keys))
            if reserve_to is not None:
                db.execute(_RAISE_META, ("reserved_id", reserve_to))
        if reserve_to is not None:
            self.reserved_id = max(self.reserved_id, reserve_to)

    def release_reservation(self, next_id: int) -> None:
        """A clean stop: the next run may start at ``next_id`` (no gap in the ids)."""
        with self._writer() as db, _transaction(db):
            db.execute(_SET_META, ("reserved_id", next_id))
        self.reserved_id = next_id

    def find_key(self, key: str) -> SentKey | None:
        """The line a retry key was given to, if it is still remembered."""
        rows = self._read(_FIND_KEY, (key,))
        if not rows:
            return None
        id_, ts, digest = rows[0]
        if type(id_) is not int or not _is_number(ts) or not isinstance(digest, bytes):
            raise _damaged("a retry key")
        return SentKey(key, id_, float(ts), digest)  # type: ignore[arg-type]

    # --- queries ----------------------------------------------------------------------------

    def recent(
        self,
        room: str,
        limit: int = 100,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[StoredMessage]:
        """The newest ``limit`` room lines with ``after_id`` < id < ``before_id``, oldest
        first; never private ones."""
        params = self._room_params(room, before_id, after_id, limit)
        return [_message(r) for r in self._read(_SELECT_NEWEST, params)][::-1]

    def following(
        self, room: str, after_id: int, limit: int = 100, before_id: int | None = None
    ) -> list[StoredMessage]:
        """The oldest ``limit`` room lines with ``after_id`` < id < ``before_id``, oldest
        first (for filling a gap forwards)."""
        params = self._room_params(room, before_id, after_id, limit)
        return [_message(r) for r in self._read(_SELECT_OLDEST, params)]

    def first_id_at(self, ts: float) -> int | None:
        """The id of the first line (of any room) stored with a time of ``ts`` or later."""
        rows = self._read(_SELECT_FIRST_AT, (ts,))
        return rows[0][0] if rows and type(rows[0][0]) is int else None  # type: ignore[return-value]

    @staticmethod
    def _room_params(
        room: str, before_id: int | None, after_id: int | None, limit: int
    ) -> tuple[object, ...]:
        before = MAX_ID if before_id is None else _clamp(before_id)
        after = 0 if after_id is None else _clamp(after_id)
        return (room, after, before, max(0, limit))

    def private(
        self, nick_a: str, nick_b: str, limit: int = 100, before_id: int | None = None
    ) -> list[StoredMessage]:
        """Private messages between the two nicks (either way, exact match), oldest first."""
        before = MAX_ID if before_id is None else _clamp(before_id)
        params = (before, nick_a, nick_b, nick_b, nick_a, max(0, limit))
        return [_message(r) for r in self._read(_SELECT_PRIVATE, params)][::-1]

    # --- bans (synchronous: they are rare) ----------------------------------------------------

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
        bans = []
        for target, kind, reason, by, created, expires in self._read(_ACTIVE_BANS, (now,)):
            if not (
                isinstance(target, str)
                and kind in BAN_KINDS
                and isinstance(reason, str)
                and isinstance(by, str)
                and _is_number(created)
                and (expires is None or _is_number(expires))
            ):
                raise _damaged("a ban")
            bans.append(Ban(target, kind, reason, by, created, expires))  # type: ignore[arg-type]
        return bans

    # --- retention --------------------------------------------------------------------------

    def prune_steps(self, rooms: set[str] | None = None) -> Iterator[None]:
        """Retention as a series of small transactions: expired bans, lines older than
        ``retention_days``, lines beyond ``room_cap`` in ``rooms`` (None: every room), retry
        keys beyond their age and count. Yields after each transaction, so the caller can
        write lines in between; raises HistoryError."""
        now = self._clock()
        self._write(_DELETE_EXPIRED_BANS, (now,))
        yield
        if self.retention_days is not None:
            yield from self._chunks(_DELETE_OLD, (now - self.retention_days * _DAY,))
        if self.room_cap is not None:
            if rooms is None:
                rows = self._read("SELECT DISTINCT room FROM messages", ())
                rooms = {str(row[0]) for row in rows}
            for room in sorted(rooms):
                found = self._read(_CAP_THRESHOLD, (room, self.room_cap - 1))
                if found:
                    yield from self._chunks(_DELETE_BELOW, (room, found[0][0]))
        yield from self._chunks(_DELETE_OLD_KEYS, (now - self.key_days * _DAY,))
        yield from self._chunks(_DELETE_EXTRA_KEYS, (self.key_cap,))

    def _chunks(self, sql: str, params: tuple[object, ...]) -> Iterator[None]:
        while self._write(sql, params) >= _PRUNE_CHUNK:
            yield
        yield

    # --- checkpoints --------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file (and sync it), on a connection of
        its own, without stopping writes; a memory-only store has nothing to do. Called
        periodically from a thread of its own (GroupCommit). Raises HistoryError."""
        if self.path is None:
            return
        with self._checkpoint_lock:
            self._require_open()
            try:
                if self._checkpoint_db is None:
                    self._checkpoint_db = _connect(str(self.path), self._busy_timeout_s)
                db = self._checkpoint_db
                _, pages, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if pages > _WAL_RESTART_PAGES:
                    db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            except sqlite3.Error as exc:
                raise HistoryError(f"history checkpoint failed: {exc}") from exc

    # --- plumbing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writer(self, busy_timeout: float | None = None) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            self._require_open()
            db = self._writer_db
            try:
                if busy_timeout is None:
                    yield db
                    return
                db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                try:
                    yield db
                finally:
                    db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            except sqlite3.Error as exc:
                raise HistoryError(f"history write failed: {exc}") from exc

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        with self._writer() as db, _transaction(db):
            return db.execute(sql, params).rowcount

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._read_lock:
            self._require_open()
            try:
                return self._reader_db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise HistoryError(f"history read failed: {exc}") from exc

    def _require_open(self) -> None:
        if self._closed:
            raise HistoryError("the history store is closed")

    def close(self) -> None:
        """Close the database. Idempotent."""
        with self._checkpoint_lock, self._all_locks():
            if self._closed:
                return
            self._closed = True
            self._close_connections()

    def _close_connections(self) -> None:
        if self._checkpoint_db is not None:
            self._checkpoint_db.close()
        self._reader_db.close()
        self._writer_db.close()  # the last one: SQLite checkpoints and removes the WAL

    @contextlib.contextmanager
    def _all_locks(self) -> Iterator[None]:
        with self._write_lock:
            if self._read_lock is self._write_lock:
                yield
                return
            with self._read_lock:
                yield
