#!/usr/bin/env python3
"""Soak test: 200 rich clients chat at 500 messages/s in 10 rooms for --minutes while they join
and part rooms, change nicks and reconnect; every line is checked against the server's history.

    python bench/soak.py --minutes 10

Starts ``run_server.py`` (127.0.0.1, port 0, a fresh history file) and spreads the clients over
``--workers`` processes, each a selector loop over its sockets speaking the rich dialect. Every
10 s it prints the server's RSS, threads and open descriptors (``fds``: sockets included;
``files``: regular files), and the clients' counts so far. It exits with status 1 on any lost,
duplicated or reordered line, on any other fault it sees (a line in the wrong room, an error
frame, a worker that hangs, the server dying), or when the server's RSS grew by more than
``--rss-limit-mb`` (5 MB) from the end of the first minute to the end of the load. A run shorter
than 2 minutes measures the growth from the end of its first third instead, and says so.

What every client does, each at its own random moments (``--action-interval`` on average):
join a room, part one (each stays in 1 to 4 of the rooms), change its nick, or reconnect in one
of three ways: ``abrupt`` (the socket is closed, half of the time with a TCP reset, and the next
hello carries the last welcome's session token), ``ghost`` (a new connection takes the session
over while the old one is still open: the server must end the old one), or ``bye`` (a clean
goodbye, read to the end, then a fresh hello without a token). Every reconnecting hello names
the store and, per room, the last id the client holds (``resume``); after a reconnection the
client sends its unacknowledged lines again, marked ``retry``. Some reconnections wait 1-3 s, so
that more lines are missed than the server replays and ``joined.gap`` is filled page by page.

How the checks are exact. Each chat text starts with "SENDER:SEQ:", and ``id`` is SEQ. Per
client and room a *span* runs from its ``joined`` to its own ``part``; a resumed room continues
the span. In a span, the ids received (live, replayed, gap pages) must strictly increase. The
server delivers every line in id order on each connection, so once a client read id M (a live
line of any room, or an ack), it must hold every line of each of its rooms up to M: the span's
*bound*. The workers read the server's SQLite history (``messages``) while the run goes on and
walk it: every line of the room between the span's start and its bound, other than the client's
own lines (the server does not echo them), must have been received, and nothing else. A span's
start is the oldest line its join replayed when the replay was full (``--history-replay`` lines),
else the room's first line. After the load, every client reconnects if it is down, waits for its
acks and gap pages, and waits for the last line of each of its rooms; then every span is
checked to its end, every acked line must be in the history under its ack's id, every line
sent must be acked, and no SENDER:SEQ may be in the history twice.

Counts: ``lost`` (history lines a member never got, lines never acked, acked lines missing from
the history), ``duplicated`` (an id received twice in a row, a line stored twice, two acks
naming different ids), ``reordered`` (an id lower than the one before it, in a span or in a
connection's live lines), ``misrouted`` (an id received that is not a line of that room).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import selectors
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import raise_fd_limit, read_address, stop_process

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
HEADER = 64
MB = 2**20

#: What every client may have in flight at once (lines sent and not acked).
MAX_IN_FLIGHT = 16
#: Rooms a client stays in (it joins below the first, parts above the second).
MIN_ROOMS, MAX_ROOMS = 1, 4
#: Chat text after the "SENDER:SEQ:" prefix (lines of about 80 bytes).
FILLER = "soak " + "x" * 60
#: How often a worker reads the history and checks its spans, and reports its counts.
CHECK_INTERVAL = 3.0
STATS_INTERVAL = 1.0
#: Bounds of the phases after the load (seconds).
QUIET_TIMEOUT = 90.0
TAIL_TIMEOUT = 45.0
CONNECT_TIMEOUT = 5.0
BYE_TIMEOUT = 15.0
HELLO_TIMEOUT = 10.0

DOWN, HELLO, READY, CLOSING = "down", "hello", "ready", "closing"
ABRUPT, GHOST, BYE = "abrupt", "ghost", "bye"


def frame(message: dict[str, Any]) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode()
    return b"%-64d" % len(payload) + payload


def room_names(count: int) -> list[str]:
    return [f"#soak{i}" for i in range(count)]


# --- the history, as the workers read it ---------------------------------------------------


class RoomLog:
    """The lines of one room in the history: ids (increasing) and their senders (-1: none of
    ours)."""

    __slots__ = ("ids", "senders")

    def __init__(self) -> None:
        self.ids = array("q")
        self.senders = array("l")


class History:
    """Reads the server's history file incrementally (ids only grow; a line is committed before
    anyone sees it, in id order). Keeps every line it read, even after the server prunes it."""

    def __init__(self, path: str, clients: list[Client]) -> None:
        self.path = path
        self.rooms: dict[str, RoomLog] = {}
        self.loaded = 0  # every line with an id up to this one is read
        self.mine = {c.idx: c for c in clients}
        self.stored_twice = 0
        self.unparsable = 0
        self.foreign: list[str] = []
        self._db: sqlite3.Connection | None = None

    def load(self) -> None:
        if self._db is None:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        rows = self._db.execute(
            "SELECT id, room, text FROM messages WHERE id > ? AND private_to IS NULL ORDER BY id",
            (self.loaded,),
        ).fetchall()
        for mid, room, text in rows:
            log = self.rooms.get(room)
            if log is None:
                log = self.rooms[room] = RoomLog()
            sender, seq = parse_text(text)
            if sender < 0:
                self.unparsable += 1
            log.ids.append(mid)
            log.senders.append(sender)
            client = self.mine.get(sender)
            if client is not None:
                if seq >= client.next_seq:  # a line the client does not know it sent
                    self.foreign.append(f"{mid}:{text[:40]}")
                    continue
                if client.stored[seq]:
                    self.stored_twice += 1
                    client.stored_again[seq] = mid
                else:
                    client.stored[seq] = mid
        if rows:
            self.loaded = rows[-1][0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def parse_text(text: str) -> tuple[int, int]:
    """(sender, seq) of a soak line; (-1, -1) for anything else."""
    parts = text.split(":", 2)
    if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1])
    return -1, -1


# --- one client's view of one room ---------------------------------------------------------


class Span:
    """A client's stay in a room, from its ``joined`` to its own ``part``."""

    __slots__ = (
        "first_replayed",
        "frozen",
        "gap",
        "held",
        "last",
        "live",
        "owner",
        "recv",
        "replay_count",
        "replaying",
        "room",
        "start",
        "verified",
    )

    def __init__(self, room: str, owner: int) -> None:
        self.room = room
        self.owner = owner
        self.recv = array("q")  # ids received and not yet checked, increasing
        self.last = 0  # the last id appended to recv
        self.frozen = 0  # a bound carried over from an earlier connection
        self.live = True  # joined on the current connection
        self.replaying = True  # its joined was the last frame (the replay follows it)
        self.replay_count = 0
        self.first_replayed = 0
        #: History ids below it are not expected; None until the join's replay is over.
        self.start: int | None = None
        self.verified = 0  # every history id up to this one is checked
        self.gap: list[int] | None = None  # [after, before] while a resume gap is filled
        self.held = array("q")  # ids from ``before`` on, while the gap is filled


@dataclass
class Counts:
    """What a worker counted (summed over workers by the main process)."""

    sent: int = 0
    retries: int = 0
    acked: int = 0
    live: int = 0
    replayed: int = 0
    filled: int = 0
    joins: int = 0
    parts: int = 0
    nicks: int = 0
    abrupt: int = 0
    ghost: int = 0
    bye: int = 0
    gaps: int = 0
    checked: int = 0  # history lines a member was checked to have
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    misrouted: int = 0
    errors: int = 0
    dropped: int = 0  # connections the server closed that we did not ask it to
    behind: int = 0  # sends skipped: no client could take a line at that moment
    unsaved: int = 0


# --- a lean rich client --------------------------------------------------------------------


class Client:
    """One chat client; all of its I/O is done by the worker's selector loop."""

    def __init__(self, idx: int, rooms: list[str], rng: random.Random) -> None:
        self.idx = idx
        self.nick = f"c{idx}"
        self.nick_no = 0
        self.rng = rng
        self.session: str | None = None
        self.store: str | None = None
        self.sock: socket.socket | None = None
        self.ghost: socket.socket | None = None  # the old connection while a ghost takes over
        self.gen = 0  # connection number: frames of an older one are ignored
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.state = DOWN
        self.deadline = 0.0  # of HELLO and CLOSING
        self.use_session = False  # the next hello carries the session token
        self.reconnect_at = 0.0
        self.next_action = 0.0
        self.spans: dict[str, Span] = {}
        self.rejoin: set[str] = set(rooms)  # rooms to name in the next hello with no id
        self.pending_join: set[str] = set()
        self.pending_part: set[str] = set()
        self.pending_nick: str | None = None
        self.in_flight: dict[int, str] = {}  # seq -> room
        self.next_seq = 0
        self.acks = array("q")  # seq -> msg_id of its ack (0: none yet)
        self.stored = array("q")  # seq -> id in the history (0: not there)
        self.stored_again: dict[int, int] = {}  # seq -> its second id (a line stored twice)
        self.watermark = 0  # highest live id (line or ack) on this connection
        self.last_live = 0  # highest live line id on this connection
        self.replaying: Span | None = None

    def bound(self, span: Span) -> int:
        """Every line of the span's room up to this id must be with the client."""
        if span.gap is not None:
            return span.gap[0]
        bound = max(span.last, span.frozen)
        if span.live and not span.replaying and self.state in (READY, CLOSING):
            bound = max(bound, self.watermark)
        return bound

    def idle(self) -> bool:
        """Nothing asked and not answered, no gap being filled."""
        return (
            self.state == READY
            and not self.in_flight
            and not self.pending_join
            and not self.pending_part
            and self.pending_nick is None
            and self.ghost is None
            and all(s.gap is None for s in self.spans.values())
        )


@dataclass
class WorkerSpec:
    index: int
    address: tuple[str, int]
    clients: list[int]
    rooms: list[str]
    rate: float  # messages/s of this worker
    action_interval: float
    history_db: str
    replay: int
    seed: int


class Worker:
    """A selector loop over this worker's clients, and the checker of their spans."""

    def __init__(self, spec: WorkerSpec, control: Connection) -> None:
        self.spec = spec
        self.control = control
        self.sel = selectors.DefaultSelector()
        self.sel.register(control, selectors.EVENT_READ, None)
        self.counts = Counts()
        self.errors: Counter[str] = Counter()
        self.samples: list[str] = []  # the first few faults of each kind, for the report
        self.sampled: Counter[str] = Counter()
        self.clients: list[Client] = []
        for idx in spec.clients:
            rng = random.Random(spec.seed * 100_003 + idx)
            self.clients.append(Client(idx, rng.sample(spec.rooms, 2), rng))
        self.history = History(spec.history_db, self.clients)
        self.closed_spans: list[Span] = []
        self.sending = False
        self.stopping = False
        self.clients_rng = random.Random(spec.seed * 7 + spec.index)
        self.t0 = 0.0
        self.sent_due = 0
        self.last_check = 0.0
        self.last_stats = 0.0
        self.orders: list[dict[str, Any]] = []

    # --- faults ---

    def fault(self, kind: str, text: str, n: int = 1) -> None:
        setattr(self.counts, kind, getattr(self.counts, kind) + n)
        self.note(kind, text)

    def note(self, kind: str, text: str) -> None:
        """Keep the first few samples of each kind of fault for the report."""
        self.sampled[kind] += 1
        if self.sampled[kind] <= 5:
            self.samples.append(f"{kind}: {text}")

    # --- sockets ---

    def connect(self, c: Client, ghost: bool = False) -> None:
        """Open a connection and send the hello (a ghost keeps the old socket open)."""
        if ghost and c.sock is not None:
            self.sel.unregister(c.sock)
            c.ghost = c.sock
            c.sock = None
        try:
            sock = socket.create_connection(self.spec.address, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            self.fault("errors", f"c{c.idx}: connect failed: {exc}")
            self.errors["connect"] += 1
            c.state, c.reconnect_at = DOWN, time.monotonic() + 1.0
            self.close_ghost(c)
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sock = sock
        c.gen += 1
        c.rbuf.clear()
        c.wbuf.clear()
        self.sel.register(sock, selectors.EVENT_READ, c)
        c.state, c.deadline = HELLO, time.monotonic() + HELLO_TIMEOUT
        self.send(c, self.hello(c))

    def hello(self, c: Client) -> dict[str, Any]:
        resume: dict[str, int | None] = {}
        for room, span in c.spans.items():
            resume[room] = self.bound_or_none(c, span)
        for room in c.rejoin:
            resume[room] = None
        message: dict[str, Any] = {"type": "hello", "nick": c.nick, "version": 1}
        if c.use_session and c.session:
            message["session"] = c.session
        if c.store:
            message["store"] = c.store
        message["resume"] = resume
        return message

    @staticmethod
    def bound_or_none(c: Client, span: Span) -> int | None:
        bound = c.bound(span)
        return bound or None

    def send(self, c: Client, message: dict[str, Any]) -> None:
        data = frame(message)
        sock = c.sock
        if sock is None:
            return
        if c.wbuf:
            c.wbuf += data
            return
        try:
            n = sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.lost_connection(c, "send failed")
            return
        if n < len(data):
            c.wbuf += data[n:]
            self.sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def flush(self, c: Client) -> None:
        sock = c.sock
        if sock is None:
            return
        try:
            n = sock.send(c.wbuf)
        except BlockingIOError:
            return
        except OSError:
            self.lost_connection(c, "send failed")
            return
        del c.wbuf[:n]
        if not c.wbuf:
            self.sel.modify(sock, selectors.EVENT_READ, c)

    def close_socket(self, c: Client, reset: bool) -> None:
        sock = c.sock
        if sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)
        if reset:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        sock.close()
        c.sock = None
        c.gen += 1

    def close_ghost(self, c: Client) -> None:
        if c.ghost is not None:
            with contextlib.suppress(OSError):
                c.ghost.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
            c.ghost.close()
            c.ghost = None

    def readable(self, c: Client) -> None:
        sock = c.sock
        if sock is None:
            return
        try:
            data = sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.lost_connection(c, f"recv: {exc}")
            return
        if not data:
            if c.state == CLOSING:
                self.closed_cleanly(c)
            else:
                self.lost_connection(c, "the server closed the connection")
            return
        buf = c.rbuf
        buf += data
        pos, n, payloads = 0, len(buf), []
        while n - pos >= HEADER:
            end = pos + HEADER + int(buf[pos : pos + HEADER])
            if end > n:
                break
            payloads.append(buf[pos + HEADER : end])
            pos = end
        del buf[:pos]
        gen = c.gen
        for payload in payloads:
            self.handle(c, json.loads(payload))
            if c.gen != gen:  # the connection ended while handling: the rest is stale
                return

    # --- connection ends ---

    def freeze(self, c: Client) -> None:
        """The connection is over: each span keeps what it has, and its bound."""
        for room, span in list(c.spans.items()):
            if span.gap is not None:  # the resume asks for the gap and what followed again
                span.frozen = max(span.frozen, span.gap[0])
                span.gap = None
                span.held = array("q")
            elif span.replaying:  # cut in the middle of a replay: only what was read counts
                self.end_replay(c, span, complete=False)
                span.frozen = max(span.frozen, span.last)
            elif span.live:
                span.frozen = max(span.frozen, span.last, c.watermark)
            span.live = span.replaying = False
            if span.start is None or c.bound(span) == 0:  # nothing to resume after
                self.close_span(c, span)
                c.rejoin.add(room)
        c.replaying = None
        c.pending_join.clear()
        c.pending_part.clear()
        c.pending_nick = None
        c.watermark = c.last_live = 0

    def lost_connection(self, c: Client, why: str) -> None:
        if c.state != CLOSING:
            self.fault("dropped", f"c{c.idx} ({c.state}): {why}")
        self.close_socket(c, reset=True)
        self.close_ghost(c)
        self.freeze(c)
        c.state, c.use_session = DOWN, True
        c.reconnect_at = time.monotonic() + 0.2

    def closed_cleanly(self, c: Client) -> None:
        """The server closed after our bye: the next hello is a fresh one (no token)."""
        self.close_socket(c, reset=False)
        self.freeze(c)
        c.state, c.use_session = DOWN, False
        c.reconnect_at = time.monotonic() + self.reconnect_delay(c)

    def reconnect_delay(self, c: Client) -> float:
        if self.stopping:
            return 0.0
        if c.rng.random() < 0.3:
            return c.rng.uniform(1.0, 3.0)  # long enough for a gap in a busy room
        return c.rng.uniform(0.0, 0.3)

    # --- frames ---

    def handle(self, c: Client, m: dict[str, Any]) -> None:
        kind = m.get("type")
        span = c.replaying
        if span is not None and not (
            kind == "chat" and m.get("history") and m.get("room", "").lower() == span.room
        ):
            self.end_replay(c, span, complete=True)
        handler = HANDLERS.get(kind)  # type: ignore[arg-type]
        if handler is not None:
            handler(self, c, m)

    def end_replay(self, c: Client, span: Span, complete: bool) -> None:
        c.replaying = None
        span.replaying = False
        if span.start is not None:  # a resumed span: it started long ago
            return
        if complete and span.replay_count < self.spec.replay:
            span.start = 1  # the replay held the whole room: every line of it is expected
        elif span.replay_count:
            span.start = span.first_replayed
        else:
            return  # cut before its replay: the span ends with nothing to check
        span.verified = span.start - 1

    def on_welcome(self, c: Client, m: dict[str, Any]) -> None:
        if c.state != HELLO:
            self.fault("errors", f"c{c.idx}: welcome while {c.state}")
            return
        c.nick, c.session, c.store = m["nick"], m["session"], m["store"]
        c.state = READY
        c.watermark = c.last_live = 0
        self.close_ghost(c)
        for seq in sorted(c.in_flight):  # sent again; the server answers a known one from
            self.counts.retries += 1  # its store (same nick, id and text)
            self.send(c, self.chat(c, seq, c.in_flight[seq], retry=True))

    def on_joined(self, c: Client, m: dict[str, Any]) -> None:
        room = m["room"].lower()
        c.pending_join.discard(room)
        span = c.spans.get(room)
        if span is not None and span.live:
            self.fault("errors", f"c{c.idx}: joined {room} while in it")
            return
        if span is None:  # a join, or a room a resume (re)entered from scratch
            c.rejoin.discard(room)
            span = c.spans[room] = Span(room, c.idx)
            self.counts.joins += 1
        else:  # a resumed span goes on
            span.live = span.replaying = True
            gap = m.get("gap")
            if gap:
                self.counts.gaps += 1
                span.gap = [gap["after"], gap["before"]]
                if gap["after"] < span.last:
                    self.fault("reordered", f"c{c.idx} {room}: gap after {gap} < {span.last}")
                self.ask_gap(c, span)
        c.replaying = span

    def ask_gap(self, c: Client, span: Span) -> None:
        assert span.gap is not None
        after, before = span.gap
        self.send(
            c,
            {"type": "history", "room": span.room, "after": after, "before": before, "limit": 500},
        )

    def on_chat(self, c: Client, m: dict[str, Any]) -> None:
        room = m["room"].lower()
        mid = m["id"]
        span = c.spans.get(room)
        if not m.get("history"):
            self.counts.live += 1
            if mid <= c.last_live:
                self.fault("reordered", f"c{c.idx}: live id {mid} after {c.last_live}")
            else:
                c.last_live = mid
                if mid > c.watermark:
                    c.watermark = mid
        else:
            self.counts.replayed += 1
            if span is None or span is not c.replaying:
                self.fault("misrouted", f"c{c.idx}: replayed {room} {mid} outside a replay")
                return
            span.replay_count += 1
            if not span.first_replayed:
                span.first_replayed = mid
        if span is None:
            self.fault("misrouted", f"c{c.idx}: line {mid} of {room}, not one of its rooms")
            return
        self.add(c, span, mid)

    def add(self, c: Client, span: Span, mid: int) -> None:
        if span.gap is not None:
            held = span.held
            if mid >= span.gap[1] and (not held or mid > held[-1]):
                held.append(mid)
            else:
                kind = "duplicated" if held and mid == held[-1] else "reordered"
                self.fault(kind, f"c{c.idx} {span.room}: {mid} while filling {span.gap}")
            return
        if mid > span.last and mid > span.verified:
            span.recv.append(mid)
            span.last = mid
        elif mid == span.last:
            self.fault("duplicated", f"c{c.idx} {span.room}: {mid} twice")
        else:
            self.fault("reordered", f"c{c.idx} {span.room}: {mid} after {span.last}")

    def on_page(self, c: Client, m: dict[str, Any]) -> None:
        room = m["room"].lower()
        span = c.spans.get(room)
        if span is None or span.gap is None or m.get("after") is None:
            self.fault("errors", f"c{c.idx}: history page of {room} not asked for")
            return
        after, before = span.gap
        if m["after"] != after:
            self.fault("errors", f"c{c.idx}: page after {m['after']}, asked {after}")
            return
        for line in m["messages"]:
            mid = line["id"]
            if not after < mid < before:
                self.fault("misrouted", f"c{c.idx} {room}: page line {mid} outside {span.gap}")
                continue
            self.counts.filled += 1
            if mid > span.last and mid > span.verified:
                span.recv.append(mid)
                span.last = span.gap[0] = after = mid
            else:
                self.fault("reordered", f"c{c.idx} {room}: page line {mid} after {span.last}")
        if m["more"] and m["messages"] and span.gap[0] + 1 < before:
            self.ask_gap(c, span)
            return
        span.gap = None  # filled: what came from ``before`` on follows
        held, span.held = span.held, array("q")
        for mid in held:
            self.add(c, span, mid)

    def on_ack(self, c: Client, m: dict[str, Any]) -> None:
        seq, mid = m["id"], m["msg_id"]
        if m.get("unsaved"):
            self.counts.unsaved += 1
        if not isinstance(seq, int) or not 0 <= seq < c.next_seq:
            self.fault("errors", f"c{c.idx}: ack for an id it never sent: {seq}")
            return
        first = c.in_flight.pop(seq, None) is not None
        if first:
            self.counts.acked += 1
        known = c.acks[seq]
        if known and known != mid:  # the line was taken twice: counted from the history
            self.note("duplicated", f"c{c.idx}: seq {seq} acked as {known} and {mid}")
        else:
            c.acks[seq] = mid
        if mid > c.watermark:
            c.watermark = mid

    def on_part(self, c: Client, m: dict[str, Any]) -> None:
        room = m["room"].lower()
        if room not in c.pending_part or m["nick"] not in (c.nick, c.pending_nick):
            return  # someone else
        c.pending_part.discard(room)
        span = c.spans.get(room)
        if span is None:
            return
        span.frozen = max(span.frozen, c.bound(span))
        self.close_span(c, span)
        self.counts.parts += 1

    def close_span(self, c: Client, span: Span) -> None:
        span.live = False
        del c.spans[span.room]
        if c.replaying is span:
            c.replaying = None
        if span.start is not None:
            self.closed_spans.append(span)

    def on_nick(self, c: Client, m: dict[str, Any]) -> None:
        if m["old"] == c.nick:
            c.nick = m["new"]
            if c.pending_nick is not None:
                c.pending_nick = None
                self.counts.nicks += 1

    def on_ping(self, c: Client, m: dict[str, Any]) -> None:
        self.send(c, {"type": "pong", "token": m.get("token")})

    def on_error(self, c: Client, m: dict[str, Any]) -> None:
        code = m.get("code", "?")
        if code == "nick_taken" and c.state == HELLO:  # a fresh hello: another nick
            self.errors["nick_taken_hello"] += 1
            c.nick_no += 1
            c.nick = f"c{c.idx}-{c.nick_no}"
            self.send(c, self.hello(c))
            return
        self.errors[code] += 1
        self.fault("errors", f"c{c.idx} ({c.state}): {json.dumps(m)[:200]}")
        if m.get("id") is not None and m["id"] in c.in_flight:
            del c.in_flight[m["id"]]  # refused: it will never be acked
        if code in ("nick_taken", "nick_invalid"):
            c.pending_nick = None
        if m.get("fatal"):
            self.lost_connection(c, f"fatal error {code}")

    def on_bye(self, c: Client, m: dict[str, Any]) -> None:
        self.fault("errors", f"c{c.idx}: the server said goodbye: {m.get('reason')}")

    # --- what the clients do ---

    def chat(self, c: Client, seq: int, room: str, retry: bool = False) -> dict[str, Any]:
        message = {"type": "chat", "text": f"{c.idx}:{seq}:{FILLER}", "id": seq, "room": room}
        if retry:
            message["retry"] = True
        return message

    def say(self, c: Client) -> bool:
        rooms = [r for r, s in c.spans.items() if s.live and r not in c.pending_part]
        if not rooms:
            return False
        room = c.rng.choice(rooms)
        seq = c.next_seq
        c.next_seq += 1
        c.acks.append(0)
        c.stored.append(0)
        c.in_flight[seq] = room
        self.counts.sent += 1
        self.send(c, self.chat(c, seq, room))
        return True

    def can_say(self, c: Client) -> bool:
        return c.state == READY and c.pending_nick is None and len(c.in_flight) < MAX_IN_FLIGHT

    def act(self, c: Client, now: float) -> None:
        """One random action of a client that is ready; else try again soon."""
        if c.state != READY or c.pending_nick is not None or c.pending_join or c.pending_part:
            c.next_action = now + 0.5
            return
        c.next_action = now + c.rng.expovariate(1.0 / self.spec.action_interval)
        rooms = len(c.spans) + len(c.rejoin)
        roll = c.rng.random()
        if (roll < 0.3 and rooms < MAX_ROOMS) or rooms < MIN_ROOMS:
            free = [r for r in self.spec.rooms if r not in c.spans and r not in c.rejoin]
            room = c.rng.choice(free)
            c.pending_join.add(room)
            self.send(c, {"type": "join", "room": room})
        elif roll < 0.6 and rooms > MIN_ROOMS:
            ours = [r for r, s in c.spans.items() if s.gap is None and s.live]
            if ours:
                room = c.rng.choice(ours)
                c.pending_part.add(room)
                self.send(c, {"type": "part", "room": room, "reason": "soak"})
        elif roll < 0.75:
            if not c.in_flight:  # retry keys are per nick: no line may be in flight
                c.nick_no += 1
                c.pending_nick = f"c{c.idx}-{c.nick_no}"
                self.send(c, {"type": "nick", "nick": c.pending_nick})
        else:
            self.reconnect(c, c.rng.choice((ABRUPT, ABRUPT, GHOST, BYE)))

    def reconnect(self, c: Client, mode: str) -> None:
        setattr(self.counts, mode, getattr(self.counts, mode) + 1)
        if mode == BYE:
            self.send(c, {"type": "bye", "reason": "soak"})
            c.state, c.deadline = CLOSING, time.monotonic() + BYE_TIMEOUT
        elif mode == GHOST:
            self.freeze(c)
            c.use_session = True
            self.connect(c, ghost=True)
        else:
            self.close_socket(c, reset=c.rng.random() < 0.5)
            self.freeze(c)
            c.state, c.use_session = DOWN, True
            c.reconnect_at = time.monotonic() + self.reconnect_delay(c)

    # --- the loop ---

    def pump(self, timeout: float) -> None:
        for key, events in self.sel.select(timeout):
            c = key.data
            if c is None:
                self.orders.append(self.control.recv())
                continue
            if events & selectors.EVENT_WRITE:
                self.flush(c)
            if events & selectors.EVENT_READ:
                self.readable(c)

    def timers(self, now: float) -> None:
        for c in self.clients:
            if c.state == DOWN and now >= c.reconnect_at:
                self.connect(c)
            elif c.state in (HELLO, CLOSING) and now >= c.deadline:
                self.fault("errors", f"c{c.idx}: no answer while {c.state}")
                self.lost_connection(c, f"timeout while {c.state}")
            elif self.sending and c.state == READY and now >= c.next_action:
                self.act(c, now)

    def send_due(self, now: float) -> None:
        due = int((now - self.t0) * self.spec.rate) - self.sent_due
        clients = self.clients
        for _ in range(max(0, min(due, 1000))):
            self.sent_due += 1
            for _ in range(8):
                c = clients[self.clients_rng.randrange(len(clients))]
                if self.can_say(c) and self.say(c):
                    break
            else:
                self.counts.behind += 1

    def report(self, now: float, force: bool = False) -> None:
        if force or now - self.last_stats >= STATS_INTERVAL:
            self.last_stats = now
            self.control.send({"stats": self.stats()})

    def stats(self) -> dict[str, Any]:
        out = dict(vars(self.counts))
        out["connected"] = sum(c.state == READY for c in self.clients)
        out["spans"] = sum(len(c.spans) for c in self.clients)
        out["errors_by_code"] = dict(self.errors)
        return out

    def check(self, force_to_end: bool = False) -> None:
        """Read the new history lines and check every span as far as it can be."""
        self.history.load()
        loaded = self.history.loaded
        for c in self.clients:
            for span in c.spans.values():
                bound = c.bound(span)
                if force_to_end:
                    log = self.history.rooms.get(span.room)
                    bound = max(bound, log.ids[-1] if log and log.ids else 0)
                self.verify(span, min(bound, loaded))
        keep = []
        for span in self.closed_spans:
            self.verify(span, min(span.frozen, loaded))
            if span.verified < span.frozen:
                keep.append(span)
        self.closed_spans = keep

    def verify(self, span: Span, upto: int) -> None:
        """Walk the room's history from the span's last checked id to ``upto``: every line
        (but the owner's) must be among the ids received, and no id received may be missing
        from it."""
        if span.start is None or upto <= span.verified:
            return
        log = self.history.rooms.get(span.room) or RoomLog()
        ids, senders, recv, owner = log.ids, log.senders, span.recv, span.owner
        i, j, n = bisect_right(ids, span.verified), 0, len(recv)
        end = bisect_right(ids, upto)
        checked = 0
        while i < end:
            hid = ids[i]
            while j < n and recv[j] < hid:
                self.fault("misrouted", f"c{owner} {span.room}: got {recv[j]}, not in the room")
                j += 1
            if j < n and recv[j] == hid:
                j += 1
                checked += 1
            elif senders[i] != owner:
                self.fault("lost", f"c{owner} {span.room}: never got {hid}")
            i += 1
        while j < n and recv[j] <= upto:
            self.fault("misrouted", f"c{owner} {span.room}: got {recv[j]}, not in the room")
            j += 1
        del recv[:j]
        span.verified = upto
        self.counts.checked += checked

    def run(self) -> None:
        for c in self.clients:
            self.connect(c)
        deadline = time.monotonic() + 120
        while not all(c.state == READY for c in self.clients):
            if time.monotonic() > deadline:
                raise TimeoutError("clients did not all register in 120 s")
            self.pump(0.05)
            self.timers(time.monotonic())
        self.report(time.monotonic(), force=True)
        self.control.send({"ready": True})
        go = self.wait_order("go")
        self.t0, t_end = go["t0"], go["t_end"]
        for c in self.clients:
            c.next_action = self.t0 + c.rng.uniform(0, 2 * self.spec.action_interval)
        while time.monotonic() < self.t0:
            self.pump(max(0.0, self.t0 - time.monotonic()))
        self.last_check = time.monotonic()
        while not any("stop" in o for o in self.orders):
            now = time.monotonic()
            self.sending = now < t_end
            if self.sending:
                self.send_due(now)
            self.timers(now)
            if now - self.last_check >= CHECK_INTERVAL:
                self.check()
                self.last_check = time.monotonic()
            self.report(now)
            self.pump(0.005)
        self.sending, self.stopping = False, True
        self.quiesce()
        self.wait_order("final")
        self.finish()

    def wait_order(self, name: str, timeout: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for order in self.orders:
                if name in order:
                    self.orders.remove(order)
                    return order[name]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name!r} from the main process in {timeout:g} s")
            self.pump(0.05)
            self.timers(time.monotonic())

    def quiesce(self) -> None:
        """After the load: everyone back, every line acked, every gap filled (bounded)."""
        for c in self.clients:
            if c.state == DOWN:
                c.reconnect_at = 0.0
        deadline = time.monotonic() + QUIET_TIMEOUT
        while not all(c.idle() for c in self.clients) and time.monotonic() < deadline:
            self.pump(0.02)
            self.timers(time.monotonic())
            self.report(time.monotonic())
        busy = [c for c in self.clients if not c.idle()]
        for c in busy:
            self.note(
                "busy",
                f"busy at the end: c{c.idx} {c.state} in_flight={len(c.in_flight)} "
                f"join={c.pending_join} part={c.pending_part} nick={c.pending_nick}",
            )
        self.control.send({"quiet": {"busy": len(busy)}})

    def finish(self) -> None:
        """Wait (bounded) for the last line of every room, check everything, report."""
        self.history.load()
        deadline = time.monotonic() + TAIL_TIMEOUT
        while time.monotonic() < deadline:
            waiting = [
                (c, s)
                for c in self.clients
                for s in c.spans.values()
                if (log := self.history.rooms.get(s.room)) and c.bound(s) < log.ids[-1]
            ]
            if not waiting:
                break
            self.pump(0.05)
            self.timers(time.monotonic())
        for c in self.clients:  # nothing came after its last replay: it is complete
            if c.replaying is not None:
                self.end_replay(c, c.replaying, complete=True)
        self.check(force_to_end=True)
        for span in self.closed_spans:  # cut short by a timeout: checked as far as it goes
            if span.verified < span.frozen:
                self.fault("lost", f"c{span.owner} {span.room}: unchecked to {span.frozen}")
        self.check_lines()
        self.history.close()
        self.control.send(
            {
                "result": self.stats()
                | {
                    "samples": self.samples,
                    "stored_twice": self.history.stored_twice,
                    "foreign": self.history.foreign[:5],
                    "unparsable": self.history.unparsable,
                    "cpu_s": round(sum(os.times()[:2]), 1),
                }
            }
        )
        for c in self.clients:
            if c.sock is not None:
                self.send(c, {"type": "bye", "reason": "done"})
                self.close_socket(c, reset=False)

    def check_lines(self) -> None:
        """Every line sent is acked, and in the history under its ack's id, once."""
        if self.history.stored_twice:
            for c in self.clients:
                for seq, mid in c.stored_again.items():
                    self.note(
                        "duplicated", f"c{c.idx} seq {seq} stored as {c.stored[seq]} and {mid}"
                    )
            self.counts.duplicated += self.history.stored_twice
        for c in self.clients:
            for seq in range(c.next_seq):
                acked, stored = c.acks[seq], c.stored[seq]
                if not acked:
                    self.fault("lost", f"c{c.idx} seq {seq} never acked (stored as {stored})")
                elif acked != stored and acked != c.stored_again.get(seq):
                    self.fault("lost", f"c{c.idx} seq {seq} acked as {acked}, stored as {stored}")


HANDLERS = {
    "welcome": Worker.on_welcome,
    "joined": Worker.on_joined,
    "chat": Worker.on_chat,
    "history": Worker.on_page,
    "ack": Worker.on_ack,
    "part": Worker.on_part,
    "nick_changed": Worker.on_nick,
    "ping": Worker.on_ping,
    "error": Worker.on_error,
    "bye": Worker.on_bye,
}


def worker_main(spec: WorkerSpec, control: Connection) -> None:
    try:
        Worker(spec, control).run()
    except BaseException:
        with contextlib.suppress(OSError):
            control.send({"error": traceback.format_exc()})
        raise


# --- the main process ----------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    address: tuple[str, int]
    log_path: str
    db_path: str


@contextlib.contextmanager
def launched_server(args: argparse.Namespace, workdir: str) -> Iterator[Server]:
    db_path = os.path.join(workdir, "history.sqlite3")
    log_path = os.path.join(workdir, "server.log")
    command = [
        sys.executable, args.server_script, "--host", HOST, "--port", "0",
        "--history-db", db_path, "--log-level", "WARNING", "--history-replay", str(args.replay),
        "--max-clients", str(2 * args.clients + 100),
        "--no-flood-limits",  # 2.5 lines/s per client, more than a person types
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
    try:
        yield Server(proc, read_address(proc, 15.0), log_path, db_path)
    finally:
        stop_process(proc)


@dataclass
class Sample:
    t: float
    rss_mb: float
    threads: int
    fds: int
    files: int
    cpu_s: float  # the server's CPU time so far (user + system)


def sample(proc: psutil.Process, t: float) -> Sample:
    with proc.oneshot():
        return Sample(
            t,
            proc.memory_info().rss / MB,
            proc.num_threads(),
            proc.num_fds(),
            len(proc.open_files()),
            sum(proc.cpu_times()[:2]),
        )


class Workers:
    def __init__(self, specs: list[WorkerSpec]) -> None:
        self.pipes: list[Connection] = []
        self.procs: list[mp.Process] = []
        self.stats: list[dict[str, Any]] = [{} for _ in specs]
        self.finished: set[int] = set()  # workers that sent their result
        for spec in specs:
            ours, theirs = mp.Pipe()
            self.pipes.append(ours)
            self.procs.append(mp.Process(target=worker_main, args=(spec, theirs), daemon=True))

    def __enter__(self) -> Workers:
        for proc in self.procs:
            proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for pipe in self.pipes:
            pipe.close()

    def broadcast(self, order: dict[str, Any]) -> None:
        for pipe in self.pipes:
            pipe.send(order)

    def poll(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        """Messages that arrive within ``timeout`` (worker stats are kept, errors raised).
        A worker that sent its result may exit: its pipe is not waited on any more."""
        out = []
        pipes = [p for i, p in enumerate(self.pipes) if i not in self.finished]
        if not pipes:
            time.sleep(timeout)
            return out
        for pipe in wait(pipes, timeout):
            i = self.pipes.index(pipe)  # type: ignore[arg-type]
            try:
                message = pipe.recv()  # type: ignore[union-attr]
            except EOFError:
                raise RuntimeError(f"worker {i} died") from None
            if "error" in message:
                raise RuntimeError(f"worker {i} failed:\n{message['error']}")
            if "stats" in message:
                self.stats[i] = message["stats"]
                continue
            if "result" in message:
                self.finished.add(i)
            out.append((i, message))
        return out

    def gather(self, name: str, timeout: float) -> list[dict[str, Any]]:
        got: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(self.pipes):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"workers did not send {name!r} within {timeout:g} s")
            for i, message in self.poll(min(left, 1.0)):
                if name in message:
                    got[i] = message[name]
        return [got[i] for i in range(len(self.pipes))]

    def total(self, key: str) -> int:
        return sum(s.get(key, 0) for s in self.stats)


def progress_line(s: Sample, before: Sample | None, workers: Workers) -> str:
    t = workers.total
    cpu = (s.cpu_s - before.cpu_s) / max(1e-9, s.t - before.t) if before else 0.0
    return (
        f"[{s.t:5.0f}s] server rss={s.rss_mb:6.1f} MB threads={s.threads:4d} fds={s.fds:4d} "
        f"files={s.files:2d} cpu={cpu:4.0%} | connected={t('connected')} sent={t('sent')} "
        f"acked={t('acked')} live={t('live')} replayed={t('replayed')} filled={t('filled')} "
        f"joins={t('joins')} parts={t('parts')} nicks={t('nicks')} "
        f"reconnects={t('abrupt')}/{t('ghost')}/{t('bye')} gaps={t('gaps')} "
        f"checked={t('checked')} | lost={t('lost')} duplicated={t('duplicated')} "
        f"reordered={t('reordered')}"
    )


def worker_specs(args: argparse.Namespace, address: tuple[str, int], db: str) -> list[WorkerSpec]:
    n = max(1, min(args.workers, args.clients))
    rooms = room_names(args.rooms)
    return [
        WorkerSpec(
            index=w,
            address=address,
            clients=list(range(w, args.clients, n)),
            rooms=rooms,
            rate=args.rate / n,
            action_interval=args.action_interval,
            history_db=db,
            replay=args.replay,
            seed=args.seed,
        )
        for w in range(n)
    ]


def baseline_time(duration: float) -> tuple[float, str]:
    """When RSS growth starts to count, and how the report names it."""
    if duration >= 120:
        return 60.0, "after the first minute"
    return duration / 3, (
        f"after the first third of the run ({duration / 3:.0f} s; the run is shorter than "
        "2 minutes, so the first minute cannot be left out)"
    )


def run(args: argparse.Namespace) -> int:
    duration = args.minutes * 60
    raise_fd_limit(4 * args.clients + 1024)
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as workdir,
        launched_server(args, workdir) as server,
    ):
        proc = psutil.Process(server.proc.pid)
        host, port = server.address
        print(
            f"soak: {args.clients} clients over {args.workers} workers, {args.rate:g} messages/s, "
            f"{args.rooms} rooms, {duration:g} s; server pid {proc.pid} on {host}:{port}",
            flush=True,
        )
        samples: list[Sample] = []
        with Workers(worker_specs(args, server.address, server.db_path)) as workers:
            try:
                workers.gather("ready", 150.0)
                t0 = time.monotonic() + 0.2
                workers.broadcast({"go": {"t0": t0, "t_end": t0 + duration}})
                samples.append(sample(proc, 0.0))
                print(progress_line(samples[-1], None, workers), flush=True)
                ticks = [min(t, duration) for t in range(10, int(duration) + 10, 10)]
                ticks = sorted(set(ticks))
                for tick in ticks:
                    while (left := t0 + tick - time.monotonic()) > 0:
                        workers.poll(min(left, 0.5))
                        if server.proc.poll() is not None:
                            raise RuntimeError(f"the server died (exit {server.proc.returncode})")
                    samples.append(sample(proc, tick))
                    print(progress_line(samples[-1], samples[-2], workers), flush=True)
                workers.broadcast({"stop": True})
                quiet = workers.gather("quiet", QUIET_TIMEOUT + 30)
                workers.broadcast({"final": True})
                results = workers.gather("result", TAIL_TIMEOUT + 120)
                after = sample(proc, time.monotonic() - t0)
            except Exception:
                print(traceback.format_exc(), file=sys.stderr)
                print("server log tail:\n" + Path(server.log_path).read_text()[-3000:])
                return 1
        log_tail = Path(server.log_path).read_text(errors="replace")[-3000:]
    return report(args, samples, after, quiet, results, log_tail)


def report(
    args: argparse.Namespace,
    samples: list[Sample],
    after: Sample,
    quiet: list[dict[str, Any]],
    results: list[dict[str, Any]],
    log_tail: str,
) -> int:
    duration = args.minutes * 60
    total = Counter[str]()
    errors = Counter[str]()
    for r in results:
        total.update({k: v for k, v in r.items() if isinstance(v, int) and k != "connected"})
        errors.update(r["errors_by_code"])
    lost, duplicated, reordered = total["lost"], total["duplicated"], total["reordered"]
    start_t, said = baseline_time(duration)
    base = next(s for s in samples if s.t >= start_t - 1e-6)
    end = samples[-1]
    growth = end.rss_mb - base.rss_mb
    rss = [round(s.rss_mb, 1) for s in samples]
    print(f"RSS trajectory (MB, every 10 s): {rss}; after the drain: {after.rss_mb:.1f}")
    print(
        f"threads {samples[0].threads} -> {end.threads} (after the drain {after.threads}); "
        f"fds {samples[0].fds} -> {end.fds} ({after.fds}); files {end.files}"
    )
    print(
        f"RSS growth {said}: {growth:+.1f} MB ({base.rss_mb:.1f} MB at {base.t:.0f} s -> "
        f"{end.rss_mb:.1f} MB at {end.t:.0f} s; limit {args.rss_limit_mb:g} MB)"
    )
    sent = total["sent"]
    print(
        f"lines: sent={sent} ({sent / duration:.0f}/s) acked={total['acked']} "
        f"retries={total['retries']} delivered live={total['live']} replayed={total['replayed']} "
        f"gap-filled={total['filled']} checked={total['checked']} behind={total['behind']}"
    )
    print(
        f"churn: joins={total['joins']} parts={total['parts']} nicks={total['nicks']} "
        f"reconnects abrupt={total['abrupt']} ghost={total['ghost']} bye={total['bye']} "
        f"gaps={total['gaps']} dropped by the server={total['dropped']}"
    )
    print(f"loadgen cpu: {[r['cpu_s'] for r in results]} s")
    problems = []
    if lost or duplicated or reordered:
        problems.append("lines lost, duplicated or reordered")
    if total["misrouted"]:
        problems.append(f"{total['misrouted']} ids received that are not lines of their room")
    if total["errors"] or errors:
        problems.append(f"error frames or client faults: {dict(errors)}")
    if total["dropped"]:
        problems.append(f"{total['dropped']} connections closed by the server")
    if any(q["busy"] for q in quiet):
        problems.append(f"clients still busy after {QUIET_TIMEOUT:g} s: {quiet}")
    if total["unparsable"] or any(r["foreign"] for r in results):
        problems.append("lines in the history that no client sent")
    if growth > args.rss_limit_mb:
        problems.append(f"RSS grew {growth:.1f} MB {said} (limit {args.rss_limit_mb:g} MB)")
    samples_out = [s for r in results for s in r["samples"]]
    if samples_out:
        print(
            "first faults seen (at most 5 of each kind per worker):\n  " + "\n  ".join(samples_out)
        )
    summary = {
        "lost": lost,
        "duplicated": duplicated,
        "reordered": reordered,
        "misrouted": total["misrouted"],
        "sent": sent,
        "rss_growth_mb": round(growth, 1),
        "rss_mb": rss,
        "threads": [s.threads for s in samples],
        "fds": [s.fds for s in samples],
        "errors": dict(errors),
        "ok": not problems,
    }
    print(json.dumps(summary))
    print(f"lost={lost} duplicated={duplicated} reordered={reordered}")
    if problems:
        print("FAIL: " + "; ".join(problems))
        if errors or total["dropped"]:
            print("server log tail:\n" + log_tail)
        return 1
    print("PASS")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=500.0, help="chat lines/s in total")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument(
        "--action-interval",
        type=float,
        default=8.0,
        help="mean seconds between a client's joins, parts, nick changes and reconnections",
    )
    parser.add_argument(
        "--replay", type=int, default=100, help="the server's --history-replay (default 100)"
    )
    parser.add_argument("--rss-limit-mb", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--server-script",
        default=str(ROOT / "run_server.py"),
        help="script that runs the server (same flags as run_server.py), e.g. a wrapper that "
        "traces its memory",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.minutes <= 0 or args.clients < 1 or args.rooms < MAX_ROOMS + 1:
        build_parser().error(f"--minutes > 0, --clients >= 1 and --rooms >= {MAX_ROOMS + 1}")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
