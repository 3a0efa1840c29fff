"""One load-generator worker process: many plain-dialect (or IRC) client sockets in one loop.

``bench/fanout.py`` starts several of these with :func:`worker_main`. The worker connects its
clients, registers them (first frame ``/who``, then waits for the ``* You are NICK`` line),
reports the senders' nicks, and on the start message runs the measurement:

* senders send chat lines ``.....SSSQQQQQQQQQQTTTTTTTTTTTTTTTT`` (sender id, sequence number,
  send time in microseconds of ``time.monotonic``), padded so that every delivered frame
  ``NICK: TEXT`` has the same length; flat-out senders keep at most ``window`` messages in
  flight that some receiver (in any worker) has not received yet, paced senders follow a clock;
* every receiver checks each sender's sequence numbers (exactly once, in order) and records
  the latency of every delivery.

The hot path (:meth:`Worker._fast`) handles a whole ``recv`` at once: it cuts the server's
``Message was Sent!`` acknowledgements out with ``bytes.split``, proves that the rest is a run
of fixed-length chat frames (every 64-byte header announces exactly that length) and unpacks
the fields with ``struct.iter_unpack``. Anything else (notices, errors, odd lengths) goes to the
exact frame-by-frame parser (:meth:`Worker._generic`).

With ``WorkerSpec.irc`` the worker is an :class:`IrcWorker`: its clients speak IRC (register,
join ``#bench``, ``PRIVMSG`` the same texts), with a fast path of its own for runs of
same-length chat lines.

With ``WorkerSpec.tls`` every client speaks TLS (any certificate accepted: this measures, it
does not verify): an ``ssl.SSLObject`` over two memory BIOs per client, the handshake done
blocking at connect, then the same loop with ciphertext on the sockets.
"""

from __future__ import annotations

import os
import re
import select
import socket
import ssl
import struct
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from operator import itemgetter
from typing import Any

HEADER_SIZE = 64
ACK_TEXT = b"Message was Sent!"
ACK_HEADER = b"%-64d" % len(ACK_TEXT)
HELLO_FRAME = b"%-64d/who" % 4
#: Digits at the end of each chat text: sender id (3), sequence number (10), send time (16).
FIELDS_LEN = 29
PAD = b"."
RECV_SIZE = 256 * 1024
MAX_SAMPLES = 5
LATENCY_BUCKET_US = 10  # latency resolution
SMALL_READS = 16  # flat out: frames per recv below which the loop pauses ...
COALESCE_S = 0.003  # ... this long, to let more data collect per socket
NO_RECEIVER = 1 << 62  # published progress when a worker has no receiver for a sender
#: How a plain client learns its nick: ``/who`` is answered with ``* You are NICK``.
WELCOME = re.compile(rb"\* You are (\S+)\Z|\* Welcome to .*, (\S+)\. Here: ")


@dataclass
class WorkerSpec:
    """What one worker does; built by the coordinator."""

    index: int
    address: tuple[str, int]
    n_clients: int  # clients that read (senders included)
    sender_ids: list[int]  # global sender ids; client i of this worker is sender_ids[i]
    total_senders: int
    n_workers: int
    window: int  # flat-out: messages in flight per sender
    min_batch: int  # flat-out: send only when this many window slots are free
    rate_per_sender: float  # messages/s per sender; 0 means flat-out
    stalled: bool = False  # this worker has one extra client that never reads after /who
    #: Some worker has a stalled client: keep sending after t_end until it is seen cut,
    #: for at most this many seconds more.
    wait_for_cut: float = 0.0
    setup_timeout: float = 60.0
    drain_timeout: float = 10.0
    tls: bool = False  # every client speaks TLS
    irc: bool = False  # every client speaks IRC (IrcWorker)
    first_client: int = 0  # IRC: global number of this worker's first client (its nick)
    total_clients: int = 0  # IRC: clients in all workers (the join barrier waits for them all)
    connect_wave: int = 8  # IRC: clients connected before waiting for their registration


@dataclass
class Shared:
    """Counters shared by all workers (``multiprocessing.RawArray('q', ...)``)."""

    progress: Any  # [worker * S + sender]: min count received by the worker's receivers
    sent: Any  # [sender]: messages sent so far
    done: Any  # [worker]: 1 once the worker stopped sending
    cut_seen: Any  # [0]: monotonic µs when a receiver first saw a "left" notice (0: not yet)


def int_view(raw: Any) -> memoryview:
    """A fast int64 view of a RawArray (plain indexing and strided slicing)."""
    return memoryview(raw).cast("B").cast("q")


class Client:
    """One client socket and its receiver state."""

    __slots__ = ("acks", "exp", "is_sender", "missing", "nick", "out", "sock", "tail", "tls")

    def __init__(self, sock: socket.socket, tls: Tls | None = None) -> None:
        self.sock = sock
        self.tls = tls  # None: clear text
        self.tail = b""  # bytes of an incomplete frame
        self.nick: str | None = None
        self.exp: dict[bytes, int] = {}  # sender key -> next expected sequence number
        self.missing: dict[bytes, set[int]] = {}  # sender key -> numbers skipped so far
        self.acks = 0
        self.is_sender = False  # gets "Message was Sent!" acks
        self.out = b""  # unsent bytes (senders only)


class Tls:
    """A client's TLS: an SSLObject over two memory BIOs (one thread: no lock)."""

    __slots__ = ("inc", "obj", "out")

    def __init__(self, context: ssl.SSLContext) -> None:
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.inc, self.out, server_hostname="localhost")

    def handshake(self, sock: socket.socket) -> None:
        """The whole handshake, blocking (setup only)."""
        while True:
            try:
                self.obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            if self.out.pending:
                sock.sendall(self.out.read())
            if done:
                return
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during the TLS handshake")
            self.inc.write(data)

    def encrypt(self, data: bytes) -> bytes:
        self.obj.write(data)
        return self.out.read()

    def decrypt(self, data: bytes | memoryview) -> bytes:
        self.inc.write(data)
        pieces = []
        while True:
            try:
                piece = self.obj.read(RECV_SIZE)
            except ssl.SSLWantReadError:
                break
            if not piece:
                break
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class Sender:
    """A sending client: its global id and sequence counter."""

    client: Client
    sid: int
    key: bytes
    prefix: bytes = b""  # frame header + padding, set at start
    seq: int = 0
    next_due: float = 0.0  # paced senders: monotonic time of the next message
    interval: float = 0.0


@dataclass
class Stats:
    """What the receivers of one worker saw."""

    deliveries: int = 0
    duplicated: int = 0
    reordered: int = 0
    unknown: int = 0
    hist: dict[int, int] = field(default_factory=dict)  # latency // LATENCY_BUCKET_US -> count
    last_delivery_us: int = 0
    left_notices: list[str] = field(default_factory=list)
    other_samples: list[str] = field(default_factory=list)
    other_frames: int = 0
    disconnected: list[str] = field(default_factory=list)
    fallbacks: int = 0
    batches: int = 0  # buffers handled by the fast path


def now_us() -> int:
    return time.monotonic_ns() // 1000


READ = select.POLLIN | select.POLLERR | select.POLLHUP
WRITE = select.POLLOUT


class Poller:
    """``select.epoll`` (or ``poll``) keyed by file descriptor, lighter than ``selectors``."""

    def __init__(self) -> None:
        self._epoll = hasattr(select, "epoll")
        self._poll: Any = select.epoll() if self._epoll else select.poll()
        self.owners: dict[int, Any] = {}

    def register(self, fd: int, owner: Any, events: int = READ) -> None:
        self.owners[fd] = owner
        self._poll.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self._poll.modify(fd, events)

    def unregister(self, fd: int) -> None:
        del self.owners[fd]
        self._poll.unregister(fd)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        """Ready (fd, events); ``timeout`` in seconds."""
        if self._epoll:
            return self._poll.poll(timeout)  # type: ignore[no-any-return]
        return self._poll.poll(timeout * 1000)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._epoll:
            self._poll.close()


class Worker:
    """The event loop of one worker process."""

    #: The end of every message sent: sender id, sequence number, send time (µs).
    FIELDS_FORMAT = b"%03d%010d%016d"

    def __init__(self, spec: WorkerSpec, shared: Shared, control: Connection) -> None:
        self.spec = spec
        self.control = control
        self.progress = int_view(shared.progress)
        self.sent = int_view(shared.sent)
        self.done = int_view(shared.done)
        self.cut_seen = int_view(shared.cut_seen)
        self.poller = Poller()
        self.buffer = bytearray(RECV_SIZE)
        self.view = memoryview(self.buffer)
        self.clients: list[Client] = []
        self.senders: list[Sender] = []
        self.stalled: Client | None = None
        self.stats = Stats()
        self.frame_len = 0  # fixed chat frame length, 0 until the start message
        self.payload_len = 0
        self.chat_header = b""
        self.unpack: struct.Struct | None = None
        self.header_checks: list[tuple[int, bytes]] = []
        self.watch: list[tuple[int, Any, list[dict[bytes, int]]]] = []
        self.control_msgs: list[dict[str, Any]] = []

    # --- setup ------------------------------------------------------------------------------

    def connect_all(self) -> None:
        """Open every client socket and send its first frame (``/who``)."""
        spec = self.spec
        total = spec.n_clients + (1 if spec.stalled else 0)
        keys = [b"%03d" % s for s in range(spec.total_senders)]
        context = tls_context() if spec.tls else None
        for i in range(total):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if i == spec.n_clients:  # the stalled one: keep its receive buffer small
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            sock.connect(spec.address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = Tls(context) if context is not None else None
            if tls is not None:
                tls.handshake(sock)
            sock.sendall(HELLO_FRAME if tls is None else tls.encrypt(HELLO_FRAME))
            sock.setblocking(False)
            client = Client(sock, tls)
            self.poller.register(sock.fileno(), client)
            if i == spec.n_clients:
                self.stalled = client
                continue
            self.add_reader(i, client, keys)
        self.poller.register(self.control.fileno(), None)

    def add_reader(self, i: int, client: Client, keys: list[bytes]) -> None:
        """Client ``i`` of this worker reads every sender but itself; the first ones send."""
        spec = self.spec
        self.clients.append(client)
        own = spec.sender_ids[i] if i < len(spec.sender_ids) else None
        client.exp = {k: 0 for s, k in enumerate(keys) if s != own}
        if own is not None:
            client.is_sender = True
            self.senders.append(Sender(client, own, keys[own]))

    def register_all(self) -> dict[int, str]:
        """Wait until every client knows its nick (``* You are NICK``); return {sender id: nick}."""
        everyone = [*self.clients, *([self.stalled] if self.stalled else [])]
        deadline = time.monotonic() + self.spec.setup_timeout
        while any(c.nick is None for c in everyone):
            if time.monotonic() > deadline:
                raise TimeoutError("clients got no welcome within the setup timeout")
            self.poll(0.1)
        if self.stalled is not None:
            self.poller.unregister(self.stalled.sock.fileno())  # it never reads again
        return {s.sid: s.client.nick or "" for s in self.senders}

    def start(self, payload_len: int) -> None:
        """Fix the chat frame layout for this run (every delivered chat frame has this size)."""
        self.payload_len = payload_len
        self.frame_len = HEADER_SIZE + payload_len
        self.chat_header = b"%-64d" % payload_len
        # Sender id, sequence number and send time at the end of each frame.
        self.unpack = struct.Struct(f"{self.frame_len - FIELDS_LEN}x3s10s16s")
        # Header bytes to check in every frame: the length digits, the space after them, the last.
        digits = len(str(payload_len))
        self.header_checks = [(j, self.chat_header[j : j + 1]) for j in (*range(digits + 1), 63)]
        for sender in self.senders:
            nick = (sender.client.nick or "").encode()
            pad = payload_len - len(nick) - 2 - FIELDS_LEN
            sender.prefix = b"%-64d" % (pad + FIELDS_LEN) + PAD * pad
        self.watch_senders()

    def watch_senders(self) -> None:
        """For each sender, the receivers whose progress this worker publishes."""
        readers = self.clients
        for s in range(self.spec.total_senders):
            key = b"%03d" % s
            dicts = [c.exp for c in readers if key in c.exp]
            self.watch.append(
                (self.spec.index * self.spec.total_senders + s, itemgetter(key), dicts)
            )

    # --- event loop -----------------------------------------------------------------------

    def poll(self, timeout: float) -> int:
        """One round: wait for sockets, read every ready one, then handle what was read.

        Reading (and time-stamping) everything first keeps the handling of one socket out of
        the latency measured on the next.
        """
        owners = self.poller.owners
        arrived = []
        for fd, mask in self.poller.poll(timeout):
            client = owners.get(fd)
            if client is None:
                if fd == self.control.fileno():
                    self.control_msgs.append(self.control.recv())
                continue
            if mask & READ:
                data = self.read(client)
                if data:
                    arrived.append((client, data, now_us()))
            if mask & WRITE and fd in owners:
                self.on_writable(client)
        for client, data, t_us in arrived:
            self.receive(client, data, t_us)
        return len(arrived)

    def read(self, c: Client) -> bytes | None:
        """One ``recv`` into the reused buffer (``recv(256 KiB)`` would map a new block each
        time); None if nothing came or the connection ended."""
        try:
            n = c.sock.recv_into(self.buffer)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self.lost_client(c, f"recv failed: {exc}")
            return None
        if not n:
            self.lost_client(c, "closed by server")
            return None
        if c.tls is not None:
            try:
                return c.tls.decrypt(self.view[:n]) or None
            except ssl.SSLError as exc:
                self.lost_client(c, f"TLS failed: {exc}")
                return None
        return bytes(self.view[:n])

    def lost_client(self, c: Client, why: str) -> None:
        self.poller.unregister(c.sock.fileno())
        self.stats.disconnected.append(f"{c.nick}: {why}")

    def on_writable(self, c: Client) -> None:
        self.write(c, c.out)

    def write(self, c: Client, data: bytes) -> None:
        """Send ``data`` (after what is pending); keep the rest for when the socket is writable."""
        try:
            n = c.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self.stats.disconnected.append(f"{c.nick}: send failed: {exc}")
            n = len(data)
        was_pending = bool(c.out)
        c.out = data[n:]
        if bool(c.out) != was_pending:
            self.poller.modify(c.sock.fileno(), READ | (WRITE if c.out else 0))

    # --- receiving ---------------------------------------------------------------------------

    def receive(self, c: Client, data: bytes, t_us: int) -> None:
        if c.tail:
            data = c.tail + data
        if self.unpack is not None:
            rest = self._fast(c, data, t_us)
            if rest is not None:
                c.tail = rest
                return
            self.stats.fallbacks += 1
        c.tail = self._generic(c, data, t_us)

    @staticmethod
    def _strip_acks(data: bytes) -> tuple[bytes | None, int]:
        """Cut whole ``Message was Sent!`` frames out: (the rest, how many), or (None, 0)."""
        parts = data.split(ACK_TEXT)
        if len(parts) == 1:
            return data, 0
        last = parts.pop()
        for part in parts:
            if not part.endswith(ACK_HEADER):
                return None, 0
        acks = len(parts)
        parts = [p[:-HEADER_SIZE] for p in parts]
        parts.append(last)
        return b"".join(parts), acks

    def _fast(self, c: Client, data: bytes, t_us: int) -> bytes | None:
        """Handle a run of chat frames and acks; None (nothing done) if anything else is there.

        Each frame's header must start with this run's length digits and a space and end with
        a space (checked column-wise with strided slices), and its three number fields must be
        all digits; otherwise (a notice, an error, a shifted frame) the exact parser takes the
        whole buffer. Returns the bytes of an incomplete frame at the end.
        """
        chat, acks = self._strip_acks(data) if c.is_sender else (data, 0)
        if chat is None:
            return None
        k, rem = divmod(len(chat), self.frame_len)
        if k == 1:
            tail = self._fast_one(c, chat, t_us, rem)
        elif k:
            tail = self._fast_many(c, chat, t_us, k, rem)
        else:
            tail = chat
        if tail is not None:
            c.acks += acks
        return tail

    def _fast_many(self, c: Client, chat: bytes, t_us: int, k: int, rem: int) -> bytes | None:
        """``k`` chat frames (and ``rem`` bytes of the next one)."""
        assert self.unpack is not None
        fl = self.frame_len
        body = chat[: k * fl] if rem else chat
        for j, byte in self.header_checks:
            if body[j::fl].count(byte) != k:
                return None
        if not self._record(c, self.unpack, body, t_us, k):
            return None
        return chat[k * fl :] if rem else b""

    def _record(self, c: Client, unpack: struct.Struct, body: bytes, t_us: int, k: int) -> bool:
        """Check and time ``k`` messages laid out by ``unpack``; False (and nothing counted)
        if a number field is not a number."""
        sids, seqs, stamps = zip(*unpack.iter_unpack(body), strict=True)
        try:
            numbers = list(map(int, seqs))
            sent_at = [(t_us - int(t), n) for t, n in Counter(stamps).items()]
        except ValueError:
            return False
        self._check(c, sids, numbers, k)
        hist = self.stats.hist
        for latency, n in sent_at:
            key = latency // LATENCY_BUCKET_US
            hist[key] = hist.get(key, 0) + n
        self.stats.last_delivery_us = t_us
        self.stats.batches += 1
        return True

    def _fast_one(self, c: Client, chat: bytes, t_us: int, rem: int) -> bytes | None:
        """The common case at low rates: one whole chat frame (header checked in full)."""
        fl = self.frame_len
        fields = chat[fl - FIELDS_LEN : fl]
        if not chat.startswith(self.chat_header) or not fields.isdigit():
            return None
        self._check(c, (fields[:3],), [int(fields[3:13])], 1)
        self._latency(t_us - int(fields[13:]))
        self.stats.last_delivery_us = t_us
        self.stats.batches += 1
        return chat[fl:] if rem else b""

    def _latency(self, latency_us: int) -> None:
        hist, key = self.stats.hist, latency_us // LATENCY_BUCKET_US
        hist[key] = hist.get(key, 0) + 1

    def _check(self, c: Client, sids: tuple[bytes, ...], numbers: list[int], k: int) -> None:
        """Exactly-once, in-order check of one batch of (sender, sequence number)."""
        exp = c.exp
        bad = 0
        for s, q in zip(sids, numbers, strict=True):
            if exp.get(s) == q:
                exp[s] = q + 1
            else:
                bad += self._anomaly(c, s, q)
        self.stats.deliveries += k - bad

    def _anomaly(self, c: Client, s: bytes, q: int) -> int:
        """Classify an unexpected number; returns 1 if it is not a new delivery."""
        stats = self.stats
        e = c.exp.get(s)
        if e is None or q < 0 or q - e > 10_000_000:
            stats.unknown += 1
            return 1
        if q > e:
            c.missing.setdefault(s, set()).update(range(e, q))
            c.exp[s] = q + 1
            return 0
        gaps = c.missing.get(s)
        if gaps is not None and q in gaps:
            gaps.discard(q)
            stats.reordered += 1
            return 0
        stats.duplicated += 1
        return 1

    def _generic(self, c: Client, data: bytes, t_us: int) -> bytes:
        """Exact frame-by-frame parse; returns the incomplete tail."""
        pos, n = 0, len(data)
        while n - pos >= HEADER_SIZE:
            try:
                length = int(data[pos : pos + HEADER_SIZE].strip(b" \x00"))
            except ValueError:
                self._other(f"bad header {data[pos : pos + 16]!r}")
                return b""
            end = pos + HEADER_SIZE + length
            if length < 0 or end > n:
                break
            self._frame(c, data[pos + HEADER_SIZE : end], t_us)
            pos = end
        return data[pos:]

    def _frame(self, c: Client, payload: bytes, t_us: int) -> None:
        if payload == ACK_TEXT:
            c.acks += 1
            return
        fields = payload[-FIELDS_LEN:]
        if self.payload_len and len(payload) == self.payload_len and fields.isdigit():
            self._check(c, (fields[:3],), [int(fields[3:13])], 1)
            self._latency(t_us - int(fields[13:]))
            self.stats.last_delivery_us = t_us
            return
        if c.nick is None:
            match = WELCOME.match(payload)
            if match:
                c.nick = (match.group(1) or match.group(2)).decode()
                return
        if payload.startswith(b"* ") and b" left (" in payload:
            if not self.cut_seen[0]:
                self.cut_seen[0] = t_us
            if len(self.stats.left_notices) < 50:
                self.stats.left_notices.append(payload.decode(errors="replace"))
            return
        if payload.startswith(b"* "):
            return  # joins, user lists, other welcomes
        self._other(payload[:80].decode(errors="replace"))

    def _other(self, text: str) -> None:
        self.stats.other_frames += 1
        if len(self.stats.other_samples) < MAX_SAMPLES:
            self.stats.other_samples.append(text)

    # --- sending -------------------------------------------------------------------------------

    def publish_progress(self) -> None:
        """Tell the other workers how far this worker's slowest receiver is for each sender."""
        progress = self.progress
        for slot, getter, dicts in self.watch:
            progress[slot] = min(map(getter, dicts)) if dicts else NO_RECEIVER

    def in_flight(self, sender: Sender) -> int:
        received = min(self.progress[sender.sid :: self.spec.total_senders])
        return sender.seq - received

    def top_up(self) -> bool:
        """Flat-out: fill every sender's window; True if some sender is waiting for room."""
        waiting = False
        window, min_batch = self.spec.window, self.spec.min_batch
        for sender in self.senders:
            if sender.client.out:
                continue
            room = window - self.in_flight(sender)
            if room < min_batch:
                waiting = True
                continue
            self.send_batch(sender, room)
        return waiting

    def send_batch(self, sender: Sender, count: int) -> None:
        t = now_us()
        prefix, sid, first = sender.prefix, sender.sid, sender.seq
        frames = b"".join(
            [prefix + self.FIELDS_FORMAT % (sid, q, t) for q in range(first, first + count)]
        )
        sender.seq = first + count
        self.sent[sid] = sender.seq
        tls = sender.client.tls
        self.write(sender.client, frames if tls is None else tls.encrypt(frames))

    def send_paced(self, now: float) -> float:
        """Paced: send what is due; returns the time of the next message."""
        next_due = now + 0.05
        for sender in self.senders:
            due = 0
            while sender.next_due <= now and due < 100:
                sender.next_due += sender.interval
                due += 1
            if due and not sender.client.out:
                self.send_batch(sender, due)
            next_due = min(next_due, sender.next_due)
        return next_due

    # --- phases --------------------------------------------------------------------------------

    def run(self, t_start: float, t_end: float) -> None:
        """Send from ``t_start`` until ``t_end`` (monotonic seconds), receiving all along."""
        spec = self.spec
        while time.monotonic() < t_start:
            self.poll(max(0.0, t_start - time.monotonic()))
        paced = spec.rate_per_sender > 0
        for sender in self.senders:
            sender.interval = 1.0 / spec.rate_per_sender if paced else 0.0
            offset = sender.sid / max(1, spec.total_senders)
            sender.next_due = t_start + offset * sender.interval
        now = time.monotonic()
        hard_end = t_end + spec.wait_for_cut
        while now < t_end or (now < hard_end and not self.cut_seen[0]):
            if paced:
                timeout = max(0.0, min(self.send_paced(now), t_end) - time.monotonic())
                self.poll(timeout)
            else:
                self.flat_out_round()
            now = time.monotonic()
        self.done[spec.index] = 1

    def flat_out_round(self) -> None:
        """Fill the windows, receive, publish progress. When reads come in small pieces
        (a server that writes frame by frame), pause a moment so that each recv gets more:
        the generator's CPU per delivery otherwise starves the server it measures."""
        before = self.stats.deliveries
        reads = self.poll(0.001 if self.top_up() else 0.0)
        self.publish_progress()  # only flat-out senders look at it
        if reads and self.stats.deliveries - before < SMALL_READS * reads:
            time.sleep(COALESCE_S)

    def drain(self) -> bool:
        """Receive until every local receiver has every message sent; False on timeout."""
        spec = self.spec
        deadline = time.monotonic() + spec.drain_timeout
        while time.monotonic() < deadline:
            self.publish_progress()
            if all(self.done) and self.complete():
                return True
            self.poll(0.01)
        return False

    def complete(self) -> bool:
        """Every local receiver has every message, every local sender every ack."""
        base = self.spec.index * self.spec.total_senders
        return (
            all(self.progress[base + s] >= self.sent[s] for s in range(self.spec.total_senders))
            and self.acked()
        )

    def acked(self) -> bool:
        """Every local sender got the server's ack of every message it sent."""
        return all(s.client.acks >= s.seq for s in self.senders)

    def lost(self) -> int:
        """Messages some local receiver never got (counted per receiver)."""
        total = 0
        for c in self.clients:
            for key, e in c.exp.items():
                final = self.sent[int(key)]
                total += max(0, final - e) + len(c.missing.get(key, ()))
        return total

    def check_stalled(self, timeout: float = 5.0) -> dict[str, Any]:
        """Read the stalled client's socket: did the server close it?"""
        if self.stalled is None:
            return {}
        sock = self.stalled.sock
        sock.setblocking(True)
        deadline = time.monotonic() + timeout
        received = 0
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(RECV_SIZE)
            except TimeoutError:
                break
            except OSError as exc:
                return {"stalled_cut": True, "stalled_end": f"error: {exc}", "bytes": received}
            if not data:
                return {"stalled_cut": True, "stalled_end": "eof", "bytes": received}
            received += len(data)
        return {"stalled_cut": False, "stalled_end": "still open", "bytes": received}

    def result(self, cpu_s: list[float], drained: bool) -> dict[str, Any]:
        stats = self.stats
        return {
            "worker": self.spec.index,
            "deliveries": stats.deliveries,
            "duplicated": stats.duplicated,
            "reordered": stats.reordered,
            "unknown": stats.unknown,
            "lost": self.lost(),
            # latency histogram: upper edge of each bucket in µs -> count
            "hist": {(k + 1) * LATENCY_BUCKET_US: v for k, v in stats.hist.items()},
            "last_delivery_us": stats.last_delivery_us,
            "cpu_s": sum(cpu_s),
            "sys_s": cpu_s[1],
            "drained": drained,
            "sent": {s.sid: s.seq for s in self.senders},
            "acks": self.acks(),
            "left_notices": stats.left_notices,
            "other_frames": stats.other_frames,
            "other_samples": stats.other_samples,
            "disconnected": stats.disconnected,
            "fallbacks": stats.fallbacks,
            "cut_seen_us": self.cut_seen[0],
            "batches": stats.batches,
        }

    def acks(self) -> dict[int, int]:
        """Acks received per sender id (compared with "sent" by the coordinator)."""
        return {s.sid: s.client.acks for s in self.senders}

    def wait_control(self, timeout: float) -> dict[str, Any]:
        """Keep receiving until the coordinator sends the next message."""
        deadline = time.monotonic() + timeout
        while not self.control_msgs:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no word from the coordinator")
            self.poll(min(left, 0.05))
        return self.control_msgs.pop(0)

    def close(self) -> None:
        for c in [*self.clients, *([self.stalled] if self.stalled else [])]:
            c.sock.close()
        self.poller.close()


# --- IRC -----------------------------------------------------------------------------------------

IRC_CHANNEL = b"#bench"
IRC_PRIVMSG = b" PRIVMSG " + IRC_CHANNEL + b" :"
#: The text of an IRC chat line: the same as a framed chat line's (one pad byte, the fields).
IRC_TEXT_LEN = FIELDS_LEN + 1
#: End of the MOTD, or no MOTD: registration is complete.
IRC_REGISTERED = (b"376", b"422")
#: Lines that mean a client or a member is gone or refused (reported as problems).
IRC_TROUBLE = (b"ERROR", b"KICK", b"PART", b"QUIT", b"KILL")
IRC_NAME_PREFIXES = b"~&@%+"


def irc_nick(k: int) -> bytes:
    """Client ``k``'s nick, zero-padded: every chat line a server delivers has the same length."""
    return b"n%04d" % k


def irc_member(who: bytes) -> int | None:
    """The client number in a ``:nick!user@host`` prefix or a NAMES entry; None if not ours."""
    nick = who.lstrip(b":").lstrip(IRC_NAME_PREFIXES).split(b"!", 1)[0]
    return int(nick[1:]) if nick[:1] == b"n" and nick[1:].isdigit() else None


class IrcClient(Client):
    """An IRC client: registration, and the members of #bench it has seen."""

    __slots__ = ("members", "n_members", "registered")

    def __init__(self, sock: socket.socket, total_clients: int) -> None:
        super().__init__(sock)
        self.registered = False  # 376 or 422 seen
        self.members = bytearray(total_clients)  # 1: seen in #bench (NAMES or JOIN)
        self.n_members = 0


class IrcWorker(Worker):
    """The event loop of a worker whose clients speak IRC (``WorkerSpec.irc``).

    Setup: connect in waves of ``connect_wave`` (ngIRCd listens with a backlog of 10), each
    client sending ``NICK nK`` and ``USER u 0 * :r`` and waiting for the end of registration
    (376 or 422); then every client sends ``JOIN #bench``, and the worker waits until each of
    its clients has seen every client of every worker in the channel (NAMES, then JOIN lines):
    everybody has joined and the join traffic is over before the measurement starts.

    Senders send ``PRIVMSG #bench :TEXT``; receivers get ``:nick!user@host PRIVMSG #bench :TEXT``
    and answer ``PING`` with ``PONG``. A sender does not get its own line back, and no
    acknowledgement either (``echo-message`` would be one, but ngIRCd does not have it), so
    the flat-out window is the framed one's: a message is in flight until every receiver in
    every worker has it (the shared progress counters), which holds whatever the server.

    Every delivered chat line has the same length (same-length nicks, one user and host), so
    the hot path (:meth:`_fast`) proves a buffer is a run of such lines with a few strided
    counts and unpacks it like framed chat; anything else goes line by line (:meth:`_generic`).
    """

    FIELDS_FORMAT = Worker.FIELDS_FORMAT + b"\r\n"

    def __init__(self, spec: WorkerSpec, shared: Shared, control: Connection) -> None:
        super().__init__(spec, shared, control)
        self.irc_clients: list[IrcClient] = []
        self.deadline = 0.0  # end of the setup
        self.line_len = 0  # length of every chat line (CRLF included), from the first one
        self.text_col = 0  # where the text starts in a chat line

    # --- setup ------------------------------------------------------------------------------

    def connect_all(self) -> None:
        """Connect and register every client, a wave at a time."""
        spec = self.spec
        keys = [b"%03d" % s for s in range(spec.total_senders)]
        self.deadline = time.monotonic() + spec.setup_timeout
        self.poller.register(self.control.fileno(), None)
        for first in range(0, spec.n_clients, spec.connect_wave):
            wave = range(first, min(spec.n_clients, first + spec.connect_wave))
            clients = [self.connect_one(i, keys) for i in wave]
            self.wait_for(clients, lambda c: c.registered, "registration")

    def connect_one(self, i: int, keys: list[bytes]) -> IrcClient:
        sock = socket.create_connection(self.spec.address, timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"NICK %s\r\nUSER u 0 * :r\r\n" % irc_nick(self.spec.first_client + i))
        sock.setblocking(False)
        client = IrcClient(sock, self.spec.total_clients)
        self.poller.register(sock.fileno(), client)
        self.irc_clients.append(client)
        self.add_reader(i, client, keys)
        return client

    def wait_for(
        self, clients: list[IrcClient], ready: Callable[[IrcClient], bool], what: str
    ) -> None:
        """Receive until every one of ``clients`` is ``ready`` (bounded by the setup timeout)."""
        while not all(map(ready, clients)):
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"IRC setup: no {what} within the setup timeout")
            self.poll(0.05)

    def register_all(self) -> dict[int, str]:
        """Join every client to #bench; wait until each has seen all clients there."""
        for c in self.irc_clients:
            self.write(c, c.out + b"JOIN " + IRC_CHANNEL + b"\r\n")
        total = self.spec.total_clients
        self.wait_for(self.irc_clients, lambda c: c.n_members >= total, "full #bench")
        return {s.sid: s.client.nick or "" for s in self.senders}

    def start(self, payload_len: int) -> None:
        """``payload_len`` is the length of every chat line's text."""
        self.payload_len = payload_len
        for sender in self.senders:
            sender.prefix = b"PRIVMSG " + IRC_CHANNEL + b" :" + PAD * (payload_len - FIELDS_LEN)
        self.watch_senders()

    def acked(self) -> bool:
        return True  # IRC has no acknowledgements: drain() waits for every receiver instead

    def acks(self) -> dict[int, int]:
        return {}

    # --- receiving ---------------------------------------------------------------------------

    # (Worker.receive: the fast path once the chat lines' length is known, else line by line)

    def _fast(self, c: Client, data: bytes, t_us: int) -> bytes | None:
        """Handle a run of whole chat lines; None (nothing done) if anything else is there.

        There must be exactly one LF per ``line_len`` bytes, each at the end of its line (so
        every line has this length), each line must hold `` PRIVMSG #bench :`` with the text
        starting where it does in a chat line, and the number fields must be numbers.
        Returns the bytes of an incomplete line at the end.
        """
        assert self.unpack is not None
        n = self.line_len
        k = len(data) // n
        if data.count(b"\n") != k:
            return None
        if not k:
            return data
        body = data[: k * n]
        if (
            body[n - 1 :: n].count(b"\n") != k
            or body.count(IRC_PRIVMSG) != k
            or body[self.text_col - 1 :: n].count(b":") != k
            or not self._record(c, self.unpack, body, t_us, k)
        ):
            return None
        return data[k * n :]

    def _generic(self, c: Client, data: bytes, t_us: int) -> bytes:
        """Exact line-by-line handling; returns the incomplete tail."""
        lines = data.split(b"\n")
        tail = lines.pop()
        for raw in lines:
            self._line(c, raw.rstrip(b"\r"), len(raw) + 1, t_us)
        return tail

    def _line(self, c: Client, line: bytes, raw_len: int, t_us: int) -> None:
        """One line from the server (without its CR LF, which were ``raw_len - len(line)``)."""
        if line.startswith(b"PING"):
            self.write(c, c.out + b"PONG" + line[4:] + b"\r\n")
            return
        parts = line.split(b" ", 3)
        command = parts[1] if len(parts) > 1 else b""
        if command == b"PRIVMSG" and len(parts) == 4 and parts[2] == IRC_CHANNEL:
            self._chat(c, parts[3][1:], raw_len, t_us)
        elif command == b"JOIN":
            self._member(c, irc_member(parts[0]))
        elif command == b"353" and len(parts) == 4:
            for name in parts[3].rsplit(b":", 1)[-1].split():
                self._member(c, irc_member(name))
        elif command == b"001" and len(parts) > 2:
            c.nick = parts[2].decode()
        elif command in IRC_REGISTERED:
            assert isinstance(c, IrcClient)
            c.registered = True
        elif parts[0] in IRC_TROUBLE or command in IRC_TROUBLE or command[:1] in (b"4", b"5"):
            self._other(line[:80].decode(errors="replace"))
        # anything else (other numerics, MODE, NOTICE, PONG) is not the benchmark's business

    def _chat(self, c: Client, text: bytes, raw_len: int, t_us: int) -> None:
        fields = text[-FIELDS_LEN:]
        if not self.payload_len or len(text) != self.payload_len or not fields.isdigit():
            self._other(text[:80].decode(errors="replace"))
            return
        self._check(c, (fields[:3],), [int(fields[3:13])], 1)
        self._latency(t_us - int(fields[13:]))
        self.stats.last_delivery_us = t_us
        if not self.line_len:
            self.learn_line_len(raw_len)

    def learn_line_len(self, n: int) -> None:
        """Every chat line is ``n`` bytes long: from now on the fast path can take them."""
        self.line_len = n
        self.text_col = n - 2 - self.payload_len
        self.unpack = struct.Struct(f"{n - 2 - FIELDS_LEN}x3s10s16s2x")

    def _member(self, c: Client, k: int | None) -> None:
        assert isinstance(c, IrcClient)
        if k is not None and k < len(c.members) and not c.members[k]:
            c.members[k] = 1
            c.n_members += 1


def cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process."""
    t = os.times()
    return t.user, t.system


def worker_main(spec: WorkerSpec, shared: Shared, control: Connection) -> None:
    """Process entry point: setup, report nicks, run on command, report results, close."""
    worker = (IrcWorker if spec.irc else Worker)(spec, shared, control)
    try:
        worker.connect_all()
        control.send({"nicks": worker.register_all()})
        start = worker.wait_control(spec.setup_timeout * 2)
        worker.start(start["payload_len"])
        cpu0 = cpu_seconds()
        worker.run(start["t_start"], start["t_end"])
        drained = worker.drain()
        cpu = [b - a for a, b in zip(cpu0, cpu_seconds(), strict=True)]
        result = worker.result(cpu, drained)
        result.update(worker.check_stalled())
        control.send(result)
        worker.wait_control(60.0)  # "close": everybody is done receiving
    except Exception:
        control.send({"error": traceback.format_exc()})
    finally:
        worker.close()
        control.close()
