#!/usr/bin/env python3
"""Crash benchmark: kill -9 the server while a client sends, restart it on the same history.

    python bench/crash.py                      # 2,000 lines at 200/s, killed twice
    python bench/crash.py --lines 300 --rate 300 --restarts 1 --seed 7

One ``run_server.py`` at a time runs on one ``--history-db`` file (port 0, 127.0.0.1 only).
A **sender** (a rich client, nick ``sender``) sends ``--lines`` lines paced at ``--rate``
lines/s, client ids ``s-1`` .. ``s-N``. At ``--restarts`` random moments of the sending the
server gets SIGKILL and is started again at once on the same file. The sender reconnects and,
like the real client, resends every line it has no ack for with ``"retry": true`` before its
new lines. A **reader** (nick ``reader``) stays connected, reconnects after each crash (with
``--reader resume``: a hello with ``resume`` and ``store``, filling ``joined.gap`` with
``history`` pages; with ``--reader plain``: a plain hello, then ``history`` pages forwards
from its last id) and records every chat line it gets, live or from history.

At the end the history is paged backwards (``before``) and forwards (``after``) by a fresh
client, the server is stopped cleanly (SIGTERM) and the SQLite file is read (read-only).
One JSON line is printed; the exit status is 1 when a count that must be 0 is not:

* ``lines_unacked``: lines that never got an ack (within the deadline);
* ``acked_missing_from_history``: acked lines not in the stored history (with their text);
* ``duplicated_in_history``: extra rows holding a line's text (a line stored twice);
* ``ids_reused``: ids seen (acks, reader, history) with more than one text;
* ``ack_id_changed``: lines acked twice with different ids (a retry taken as a new line);
* ``ids_not_above_earlier_runs``: lines first sent after a restart whose id is not above every
  id acked before it;
* ``reader_missing``: acked lines the reader never got; ``reader_duplicates``: lines the
  reader got twice without asking again (same id), or under two ids;
* ``paging_mismatch``: lines where the paged history and the SQLite file disagree;
* ``server_errors``: error frames, and acks marked ``unsaved``;
and the final SIGTERM must end the server with status 0 (``server_exit``).

Also reported: ``ack_ms`` (send -> ack of lines acked on their first send), ``ack_ms_retried``
(first send -> ack of the others, across the crash), ``id_jumps`` (first new id after each
restart minus the highest id acked before), ``reader_reasked`` (lines the reader got again
because it asked for them again), ``resume_gaps`` and ``run_s``. Everything is bounded by
``--timeout`` (a global deadline) and by counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import secrets
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fanout import read_address  # bench/ is on the path of a script run from it

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
HEADER = 64
ROOM = "#lobby"
PAGE = 500  # the server's largest history page
#: Counts that must be 0 (with --reader plain, same-id repeats are expected: see Reader).
MUST_BE_ZERO = (
    "lines_unacked",
    "acked_missing_from_history",
    "duplicated_in_history",
    "ids_reused",
    "ack_id_changed",
    "ids_not_above_earlier_runs",
    "reader_missing",
    "reader_duplicates",
    "paging_mismatch",
    "server_errors",
)


# --- the server process ---------------------------------------------------------------------


class ServerProcess:
    """``run_server.py`` on one history file, one process at a time: start, SIGKILL, start
    again, SIGTERM. Clients find the current address with :meth:`wait_address`; each start
    is a new ``generation``. Only processes started here are ever signalled (by their PID)."""

    def __init__(self, db: Path, log_path: Path, extra_args: Sequence[str] = ()) -> None:
        self.db = Path(db)
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.generation = 0
        self._address: tuple[str, int] | None = None
        self._cond = threading.Condition()

    def command(self) -> list[str]:
        return [
            sys.executable, str(ROOT / "run_server.py"), "--host", HOST, "--port", "0",
            "--history-db", str(self.db), "--log-level", "WARNING", "--no-announce",
            "--no-flood-limits",  # 200 lines/s from one client: far more than a person types
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 15.0) -> tuple[str, int]:
        """Start a server on the file and wait for its address."""
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                self.command(), cwd=ROOT, stdout=subprocess.PIPE, stderr=log, stdin=None
            )
        try:
            address = read_address(proc, timeout)
        except BaseException:
            self._reap(proc, signal.SIGKILL)
            raise
        with self._cond:
            self.proc = proc
            self.generation += 1
            self._address = address
            self._cond.notify_all()
        return address

    @property
    def address(self) -> tuple[str, int] | None:
        with self._cond:
            return self._address

    def wait_address(self, newer_than: int, timeout: float) -> tuple[int, tuple[str, int]] | None:
        """(generation, address) of a running server newer than ``newer_than``; None when
        none came within ``timeout``."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._address is not None and self.generation > newer_than,
                max(0.0, timeout),
            )
            if not ok or self._address is None:
                return None
            return self.generation, self._address

    def kill(self) -> None:
        """SIGKILL the running server (no chance to flush or say goodbye) and reap it."""
        with self._cond:
            proc, self.proc, self._address = self.proc, None, None
        if proc is not None:
            self._reap(proc, signal.SIGKILL)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (a clean stop); SIGKILL if it does not end within ``timeout``. Returns
        the exit status (None if there was no server)."""
        with self._cond:
            proc, self.proc, self._address = self.proc, None, None
        if proc is None:
            return None
        return self._reap(proc, signal.SIGTERM, timeout)

    def close(self) -> None:
        """Whatever happened: no server of ours is left running."""
        self.kill()

    @staticmethod
    def _reap(proc: subprocess.Popen[bytes], sig: int, timeout: float = 10.0) -> int | None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# --- frames -----------------------------------------------------------------------------------


class Link:
    """One client socket: JSON frames out (blocking), frames in as they come (after select)."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._messages: list[dict[str, Any]] = []

    def send(self, **fields: Any) -> None:
        payload = json.dumps(fields).encode("utf-8")
        self.sock.sendall(b"%-64d" % len(payload) + payload)

    def readable(self, timeout: float) -> bool:
        if self._messages:
            return True
        return bool(select.select([self.sock], [], [], max(0.0, timeout))[0])

    def read(self) -> list[dict[str, Any]] | None:
        """Messages complete after one recv (call when readable); None once the peer closed.
        Raises OSError when the connection broke."""
        if self._messages:
            ready, self._messages = self._messages, []
            return ready
        data = self.sock.recv(65536)
        if not data:
            return None
        self._buf += data
        out = []
        while len(self._buf) >= HEADER:
            length = int(self._buf[:HEADER].strip(b" \x00"))
            if len(self._buf) < HEADER + length:
                break
            payload = bytes(self._buf[HEADER : HEADER + length])
            del self._buf[: HEADER + length]
            if payload:  # empty: keepalive
                out.append(json.loads(payload))
        return out

    def recv(self, timeout: float) -> dict[str, Any]:
        """The next message (for setup steps); TimeoutError, or ConnectionError if closed."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.readable(deadline - time.monotonic()):
                raise TimeoutError("no message in time")
            got = self.read()
            if got is None:
                raise ConnectionError("server closed the connection")
            if got:
                first, rest = got[0], got[1:]
                self._messages = rest + self._messages
                return first

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# --- the sender -------------------------------------------------------------------------------


@dataclass
class Line:
    index: int
    cid: str
    text: str
    first_sent: float | None = None
    last_sent: float | None = None
    sends: int = 0
    first_generation: int = 0  # the server (start number) it was first sent to
    msg_id: int | None = None
    ack_generation: int = 0
    ack_s: float | None = None  # last send -> ack, for lines acked on their first send
    ack_from_first_s: float | None = None


class Sender(threading.Thread):
    """Sends every line once, paced; after a reconnection resends the unacked ones first,
    marked retry. Runs until every line is acked, ``stop`` is set or the deadline passes."""

    def __init__(
        self, server: ServerProcess, lines: int, rate: float, tag: str, deadline: float
    ) -> None:
        super().__init__(name="crash-sender", daemon=True)
        self.server = server
        self.rate = rate
        self.deadline = deadline
        self.lines = [Line(i, f"s-{i + 1}", f"crash {tag} line {i + 1:05d}") for i in range(lines)]
        self.by_cid = {line.cid: line for line in self.lines}
        self.stop = threading.Event()
        self.done = threading.Event()
        self.started_at = 0.0
        self.connections = 0
        self.retries_sent = 0
        self.ack_id_changed = 0
        self.errors: list[dict[str, Any]] = []
        self.unsaved = 0
        self.welcomes: list[dict[str, Any]] = []
        self.failure: str | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()  # the pacing (and the kill moments) count from here
        super().start()

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # reported, never hidden in a thread
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()

    def _run(self) -> None:
        link: Link | None = None
        generation, next_index, unacked = 0, 0, len(self.lines)
        session: str | None = None
        try:
            while unacked and not self.stop.is_set():
                now = time.monotonic()
                if now >= self.deadline:
                    return
                if link is None:
                    got = self.server.wait_address(generation, min(0.5, self.deadline - now))
                    if got is None:
                        continue
                    link, welcome = self._connect(got[1], session)
                    if link is None:
                        time.sleep(0.05)  # refused: the server may be dying; look again
                        continue
                    generation, session = got[0], welcome.get("session")
                    try:
                        self._resend(link, next_index, generation)
                    except OSError:
                        link = self._drop(link)
                        continue
                try:
                    while next_index < len(self.lines) and self._due(next_index) <= now:
                        self._send(link, self.lines[next_index], generation, retry=False)
                        next_index += 1
                    wait = 0.05
                    if next_index < len(self.lines):
                        wait = min(wait, self._due(next_index) - time.monotonic())
                    if not link.readable(wait):
                        continue
                    messages = link.read()
                except OSError:
                    messages = None
                if messages is None:  # the server is gone: wait for the next one
                    link = self._drop(link)
                    continue
                for message in messages:
                    unacked -= self._handle(message, generation)
        finally:
            if link is not None:
                link.close()

    def _due(self, index: int) -> float:
        return self.started_at + index / self.rate

    def _connect(
        self, address: tuple[str, int], session: str | None
    ) -> tuple[Link | None, dict[str, Any]]:
        try:
            link = Link(address)
        except OSError:
            return None, {}
        try:
            hello: dict[str, Any] = {"type": "hello", "nick": "sender", "version": 1}
            if session:
                hello["session"] = session  # a ghost of ours on the same server is taken over
            link.send(**hello)
            welcome = link.recv(5.0)
            if welcome.get("type") != "welcome":
                raise ConnectionError(f"no welcome: {welcome}")
        except (OSError, ValueError):
            link.close()
            return None, {}
        self.connections += 1
        self.welcomes.append(welcome)
        return link, welcome

    @staticmethod
    def _drop(link: Link) -> None:
        link.close()

    def _resend(self, link: Link, next_index: int, generation: int) -> None:
        """What a client does after reconnecting: every line sent without an ack, again."""
        for line in self.lines[:next_index]:
            if line.msg_id is None:
                self.retries_sent += 1
                self._send(link, line, generation, retry=True)

    def _send(self, link: Link, line: Line, generation: int, retry: bool) -> None:
        now = time.monotonic()
        if line.first_sent is None:
            line.first_sent, line.first_generation = now, generation
        line.last_sent = now
        line.sends += 1
        fields: dict[str, Any] = {"type": "chat", "text": line.text, "id": line.cid}
        if retry:
            fields["retry"] = True
        link.send(**fields)

    def _handle(self, message: dict[str, Any], generation: int) -> int:
        """Returns 1 when ``message`` acks a line for the first time."""
        kind = message.get("type")
        if kind == "error":
            self.errors.append(message)
            return 0
        if kind != "ack":
            return 0
        line = self.by_cid.get(message.get("id"))  # type: ignore[arg-type]
        if line is None:
            self.errors.append({"unknown_ack": message})
            return 0
        if message.get("unsaved"):
            self.unsaved += 1
        if line.msg_id is not None:
            if message["msg_id"] != line.msg_id:
                self.ack_id_changed += 1
            return 0
        now = time.monotonic()
        line.msg_id, line.ack_generation = int(message["msg_id"]), generation
        assert line.first_sent is not None and line.last_sent is not None
        line.ack_from_first_s = now - line.first_sent
        if line.sends == 1:
            line.ack_s = now - line.last_sent
        return 1


# --- the reader -------------------------------------------------------------------------------


class Reader(threading.Thread):
    """Stays in the lobby and records every chat line it gets, live or from history.

    After a crash it reconnects. ``resume``: a hello with ``resume`` {#lobby: last id} and the
    ``store`` of its last welcome: the server replays every line after that id (a ``joined``
    ``gap`` names lines left out: they are paged in with ``history`` ``after``/``before``).
    ``plain``: a plain hello (the newest lines are replayed, some of them again), then pages
    forwards from its last id; live lines then arrive both live and in a page, so same-id
    repeats are expected there (``reader_reasked``), as a real client drops them by id.
    """

    def __init__(
        self, server: ServerProcess, mode: str, deadline: float, away: float = 0.0
    ) -> None:
        super().__init__(name="crash-reader", daemon=True)
        self.server = server
        self.mode = mode
        self.away = away  # seconds to stay away after losing the connection
        self.deadline = deadline
        self.stop = threading.Event()
        self.joined = threading.Event()
        self.complete = threading.Event()
        self._lock = threading.Lock()
        self._target: set[int] | None = None
        self.received: dict[int, str] = {}  # id -> text (the first time)
        self.text_ids: dict[str, set[int]] = defaultdict(set)
        self.live = 0
        self.replayed = 0
        self.paged = 0
        self.repeats = 0  # an id got again without asking: a duplicate
        self.reasked = 0  # an id got again because the reader asked for it again
        self.gaps: list[dict[str, int]] = []
        self.connections = 0
        self.store: str | None = None
        self.errors: list[dict[str, Any]] = []
        self.failure: str | None = None
        self._max_id = 0
        self._fills: dict[int, int | None] = {}  # a page's `after` -> its `before`
        self._asked: list[tuple[int, int]] = []  # id ranges (low, high] asked for again

    def expect(self, ids: set[int]) -> None:
        """Set ``complete`` once every id of ``ids`` has arrived."""
        with self._lock:
            self._target = set(ids)
            self._check()

    def _check(self) -> None:
        if self._target is not None and self._target <= self.received.keys():
            self.complete.set()

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"

    def _run(self) -> None:
        generation = 0
        link: Link | None = None
        try:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                if link is None:
                    got = self.server.wait_address(generation, 0.2)
                    if got is None:
                        continue
                    link = self._connect(got[1])
                    if link is None:
                        time.sleep(0.05)
                        continue
                    generation = got[0]
                try:
                    messages = link.read() if link.readable(0.1) else []
                except OSError:
                    messages = None
                if messages is None:
                    link.close()
                    link = None
                    self.stop.wait(min(self.away, max(0.0, self.deadline - time.monotonic())))
                    continue
                for message in messages:
                    self._handle(link, message)
        finally:
            if link is not None:
                link.close()

    def _resume_point(self) -> int:
        """Every line up to this id is held: the last id, or where an unfinished fill is."""
        return min(self._fills) if self._fills else self._max_id

    def _connect(self, address: tuple[str, int]) -> Link | None:
        hello: dict[str, Any] = {"type": "hello", "nick": "reader", "version": 1}
        point = self._resume_point()
        again = self.connections > 0
        if again and self.mode == "resume" and self.store is not None:
            hello["resume"], hello["store"] = {ROOM: point}, self.store
        try:
            link = Link(address)
            link.send(**hello)
            welcome = link.recv(5.0)
            if welcome.get("type") != "welcome":
                raise ConnectionError(f"no welcome: {welcome}")
        except (OSError, ValueError):
            return None
        self._fills.clear()
        if again and point < self._max_id:
            self._asked.append((point, self._max_id))
        self.connections += 1
        self.store = welcome.get("store")
        if again and self.mode == "plain":
            self._asked.append((0, self._max_id))  # the plain join replays lines we have
            self._fill(link, point, None)
        self.joined.set()
        return link

    def _fill(self, link: Link, after: int, before: int | None) -> None:
        request: dict[str, Any] = {"type": "history", "room": ROOM, "after": after, "limit": PAGE}
        if before is not None:
            request["before"] = before
        self._fills[after] = before
        link.send(**request)

    def _handle(self, link: Link, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "chat":
            if message.get("history"):
                self.replayed += 1
            else:
                self.live += 1
            self._record(message)
        elif kind == "joined":
            gap = message.get("gap")
            if gap:
                self.gaps.append(gap)
                self._fill(link, int(gap["after"]), int(gap["before"]))
        elif kind == "history" and message.get("after") in self._fills:
            after = int(message["after"])
            before = self._fills.pop(after)
            page = message.get("messages", [])
            self.paged += len(page)
            for line in page:
                self._record(line)
            if message.get("more") and page:
                self._fill(link, int(page[-1]["id"]), before)
        elif kind == "error":
            self.errors.append(message)

    def _record(self, message: dict[str, Any]) -> None:
        msg_id, text = int(message["id"]), str(message["text"])
        with self._lock:
            if msg_id in self.received:
                if any(low < msg_id <= high for low, high in self._asked):
                    self.reasked += 1
                else:
                    self.repeats += 1
                return
            self.received[msg_id] = text
            self.text_ids[text].add(msg_id)
            self._max_id = max(self._max_id, msg_id)
            self._check()


# --- reading the history back -----------------------------------------------------------------


def page_history(
    address: tuple[str, int], limit_pages: int
) -> tuple[dict[int, str], dict[int, str]]:
    """The whole room paged by a fresh client: backwards with ``before``, then forwards with
    ``after``. Each as id -> text."""
    link = Link(address)
    try:
        link.send(type="hello", nick="auditor", version=1)
        backwards: dict[int, str] = {}
        forwards: dict[int, str] = {}
        before: int | None = None
        for _ in range(limit_pages):
            request: dict[str, Any] = {"type": "history", "room": ROOM, "limit": PAGE}
            if before is not None:
                request["before"] = before
            link.send(**request)
            page = _next_page(link)
            backwards.update((int(m["id"]), m["text"]) for m in page["messages"])
            if not page["more"] or not page["messages"]:
                break
            before = int(page["messages"][0]["id"])
        after = 0
        for _ in range(limit_pages):
            link.send(type="history", room=ROOM, after=after, limit=PAGE)
            page = _next_page(link)
            forwards.update((int(m["id"]), m["text"]) for m in page["messages"])
            if not page["more"] or not page["messages"]:
                break
            after = int(page["messages"][-1]["id"])
        return backwards, forwards
    finally:
        link.close()


def _next_page(link: Link) -> dict[str, Any]:
    for _ in range(10_000):
        message = link.recv(10.0)
        if message.get("type") == "history":
            return message
        if message.get("type") == "error":
            raise RuntimeError(f"history request refused: {message}")
    raise RuntimeError("no history page")


def stored_rows(db: Path) -> list[tuple[int, str, str]]:
    """(id, room, text) of every stored room line, read-only, in id order."""
    uri = f"file:{db}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
        rows = conn.execute(
            "SELECT id, room, text FROM messages WHERE private_to IS NULL ORDER BY id"
        ).fetchall()
    return [(int(i), str(r), str(t)) for i, r, t in rows]


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Options:
    lines: int = 2000
    rate: float = 200.0
    restarts: int = 2
    seed: int | None = None
    reader: str = "resume"
    reader_away: float = 0.0  # seconds the reader stays away after each crash
    timeout: float | None = None  # global deadline, seconds; None: derived from the load
    history_db: Path | None = None  # None: a fresh file in a temporary directory
    keep: bool = False  # keep the temporary directory (db, server log)
    server_args: list[str] = field(default_factory=list)


def percentiles(values: Sequence[float]) -> dict[str, float | int]:
    """p50/p99/max in milliseconds (nearest rank), and how many."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1))
        return round(ordered[index] * 1000, 2)

    return {"n": len(ordered), "p50": rank(0.50), "p99": rank(0.99), "max": rank(1.0)}


def kill_times(options: Options, rng: random.Random) -> list[float]:
    """Seconds after the sending starts: random, inside the sending, at least 0.3 s apart."""
    span = options.lines / options.rate
    low, high = 0.1 * span, 0.9 * span
    times: list[float] = []
    for _ in range(1000):
        if len(times) == options.restarts:
            break
        t = rng.uniform(low, high)
        if all(abs(t - other) >= min(0.3, span / (4 * options.restarts + 1)) for other in times):
            times.append(t)
    return sorted(times)


@contextlib.contextmanager
def workspace(options: Options) -> Iterator[tuple[Path, Path]]:
    """(history file, server log); a temporary directory unless --history-db was given."""
    tmp = Path(tempfile.mkdtemp(prefix="game-chat-crash-"))
    db = options.history_db or tmp / "history.sqlite3"
    ok = False
    try:
        yield db, tmp / "server.log"
        ok = True
    finally:
        if ok and not options.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"crash.py: kept {tmp}", file=sys.stderr)


def run(options: Options) -> dict[str, Any]:
    """One measurement; returns the result line (``ok`` False when a must-be-0 is not 0)."""
    if options.lines < 1 or options.rate <= 0 or options.restarts < 0:
        raise ValueError("--lines and --rate must be positive, --restarts not negative")
    seed = options.seed if options.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    started = time.monotonic()
    span = options.lines / options.rate
    budget = options.timeout or span + 30 + 15 * options.restarts
    deadline = started + budget
    tag = secrets.token_hex(3)
    with workspace(options) as (db, log_path):
        server = ServerProcess(db, log_path, options.server_args)
        reader = sender = None
        try:
            server.start()
            reader = Reader(server, options.reader, deadline, options.reader_away)
            reader.start()
            if not reader.joined.wait(max(0.0, min(10.0, deadline - time.monotonic()))):
                raise RuntimeError(f"the reader could not join: {reader.failure}")
            sender = Sender(server, options.lines, options.rate, tag, deadline)
            kills = kill_times(options, rng)
            killed_at, restart_s = [], []
            sender.start()
            for at in kills:
                if sender.done.wait(max(0.0, sender.started_at + at - time.monotonic())):
                    break  # finished (or failed) before this kill was due
                killed_at.append(round(time.monotonic() - sender.started_at, 3))
                server.kill()
                t = time.monotonic()
                server.start()
                restart_s.append(round(time.monotonic() - t, 3))
            sender.done.wait(max(0.0, deadline - time.monotonic()))
            sender.stop.set()
            sender.join(5)
            acked_ids = {line.msg_id for line in sender.lines if line.msg_id is not None}
            reader.expect(acked_ids)
            reader.complete.wait(max(0.0, min(15.0, deadline - time.monotonic())))
            address = server.address
            backwards, forwards = ({}, {})
            if address is not None and time.monotonic() < deadline:
                backwards, forwards = page_history(address, max(2 * options.lines // PAGE, 20) + 10)
            reader.stop.set()
            reader.join(5)
            stop_status = server.stop()
            rows = stored_rows(db)
        finally:
            if sender is not None:
                sender.stop.set()
            if reader is not None:
                reader.stop.set()
            server.close()
        result = summarize(options, seed, sender, reader, rows, backwards, forwards)
        result.update(
            kills_at_s=killed_at,
            restart_s=restart_s,
            server_exit=stop_status,
            run_s=round(time.monotonic() - started, 2),
        )
        if stop_status != 0:  # SIGTERM must end the server cleanly
            result["ok"] = False
            result.setdefault("problems", []).append("server_exit")
        if not result["ok"]:
            result["server_log_tail"] = server.log_tail(1000)
            options.keep = True
    return result


def summarize(
    options: Options,
    seed: int,
    sender: Sender,
    reader: Reader,
    rows: list[tuple[int, str, str]],
    backwards: dict[int, str],
    forwards: dict[int, str],
) -> dict[str, Any]:
    lines = sender.lines
    acked = [line for line in lines if line.msg_id is not None]
    room_rows = [(i, t) for i, r, t in rows if r == ROOM]
    stored = dict(room_rows)
    texts_stored = Counter(t for _, t in room_rows)
    ours = {line.text for line in lines}

    # Every id with every text it was seen with: acks, the reader, the history.
    seen: dict[int, set[str]] = defaultdict(set)
    for line in acked:
        seen[line.msg_id].add(line.text)  # type: ignore[index]
    for source in (reader.received, stored, backwards, forwards):
        for msg_id, text in source.items():
            seen[msg_id].add(text)
    ids_reused = sum(1 for texts in seen.values() if len(texts) > 1)

    # Ids after a restart: a line first sent to start number g must be above every id acked
    # by the servers before it.
    highest_by_generation: dict[int, int] = defaultdict(int)
    for line in acked:
        g = line.ack_generation
        highest_by_generation[g] = max(highest_by_generation[g], line.msg_id)  # type: ignore[type-var]
    not_above, jumps = 0, []
    generations = sorted({line.first_generation for line in acked})
    for g in generations:
        earlier = max((v for k, v in highest_by_generation.items() if k < g), default=0)
        fresh = [line.msg_id for line in acked if line.first_generation == g]
        not_above += sum(1 for i in fresh if i <= earlier)  # type: ignore[operator]
        if g > 1 and fresh:
            jumps.append(min(fresh) - earlier)  # type: ignore[type-var, operator]

    # A retry answered from the store keeps an id of an earlier run (ids jump by the runway at
    # each restart); one numbered anew is within `lines` of the run's first fresh line.
    first_fresh: dict[int, int] = {}
    for line in acked:
        g = line.first_generation
        first_fresh[g] = min(first_fresh.get(g, line.msg_id), line.msg_id)  # type: ignore[type-var]
    from_store = anew = 0
    for line in acked:
        if line.sends > 1 and line.ack_generation in first_fresh:
            if first_fresh[line.ack_generation] - line.msg_id > options.lines:  # type: ignore[operator]
                from_store += 1
            else:
                anew += 1

    reader_missing = sum(1 for line in acked if line.msg_id not in reader.received)
    reader_twice = sum(1 for ids in reader.text_ids.values() if len(ids) > 1)
    mismatch = {
        i
        for paged in (backwards, forwards)
        for i in paged.keys() | stored.keys()
        if paged.get(i) != stored.get(i)
    }
    result: dict[str, Any] = {
        "bench": "crash",
        "lines": options.lines,
        "rate": options.rate,
        "restarts": options.restarts,
        "seed": seed,
        "reader": options.reader,
        "reader_away": options.reader_away,
        "lines_sent": sum(1 for line in lines if line.sends),
        "lines_acked": len(acked),
        "lines_unacked": len(lines) - len(acked),
        "retries_sent": sender.retries_sent,
        "retries_answered_from_store": from_store,
        "retries_numbered_anew": anew,
        "sender_connections": sender.connections,
        "history_rows": len(room_rows),
        "acked_missing_from_history": sum(
            1
            for line in acked
            if stored.get(line.msg_id) != line.text  # type: ignore[arg-type]
        ),
        "duplicated_in_history": sum(n - 1 for n in texts_stored.values() if n > 1),
        "foreign_rows": sum(1 for _, t in room_rows if t not in ours),
        "ids_reused": ids_reused,
        "ack_id_changed": sender.ack_id_changed,
        "ids_not_above_earlier_runs": not_above,
        "id_jumps": jumps,
        "reader_connections": reader.connections,
        "reader_live": reader.live,
        "reader_replayed": reader.replayed,
        "reader_paged": reader.paged,
        "reader_missing": reader_missing,
        "reader_duplicates": reader_twice + (reader.repeats if options.reader == "resume" else 0),
        "reader_reasked": reader.reasked + (reader.repeats if options.reader == "plain" else 0),
        "resume_gaps": reader.gaps,
        "paging_mismatch": len(mismatch),
        "history_paged": len(backwards),
        "server_errors": len(sender.errors) + len(reader.errors) + sender.unsaved,
        "ack_ms": percentiles([line.ack_s for line in acked if line.ack_s is not None]),
        "ack_ms_retried": percentiles(
            [line.ack_from_first_s for line in acked if line.sends > 1]  # type: ignore[misc]
        ),
    }
    problems = [name for name in MUST_BE_ZERO if result[name]]
    failures = [f for f in (sender.failure, reader.failure) if f]
    if failures:
        result["failures"] = failures
    if sender.errors or reader.errors:
        result["errors_seen"] = (sender.errors + reader.errors)[:5]
    result["resume_works"] = (
        not (reader_missing or result["reader_duplicates"] or reader.failure)
        if options.reader == "resume"
        else None
    )
    result["ok"] = not problems and not failures
    if problems:
        result["problems"] = problems
    return result


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=2000, help="lines sent (default 2000)")
    parser.add_argument("--rate", type=float, default=200.0, help="lines/s (default 200)")
    parser.add_argument(
        "--restarts", type=int, default=2, help="kill -9 and restarts during the sending (2)"
    )
    parser.add_argument("--seed", type=int, help="random seed of the kill moments")
    parser.add_argument(
        "--reader",
        choices=("resume", "plain"),
        default="resume",
        help="how the reader reconnects: hello resume (default) or a plain join + paging",
    )
    parser.add_argument(
        "--reader-away",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds the reader waits before reconnecting after a crash; over 100 lines' "
        "worth makes the resume leave a gap to fill (default 0)",
    )
    parser.add_argument(
        "--timeout", type=float, help="global deadline in seconds (default: sending time + 30 s "
        "+ 15 s per restart)"
    )  # fmt: skip
    parser.add_argument(
        "--history-db", type=Path, help="the history file (default: a fresh temporary one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra run_server.py argument, e.g. --server-arg=--history-sync=full (repeatable)",
    )
    args = parser.parse_args(argv)
    return Options(
        lines=args.lines,
        rate=args.rate,
        restarts=args.restarts,
        seed=args.seed,
        reader=args.reader,
        reader_away=args.reader_away,
        timeout=args.timeout,
        history_db=args.history_db,
        keep=args.keep,
        server_args=args.server_arg,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        result = run(options)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"crash.py: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
