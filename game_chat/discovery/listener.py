"""The client side of discovery: a background thread that keeps a live list of servers.

:class:`ServerTable` is the bookkeeping without sockets or clocks (times are passed in), so
tests drive expiry and ping directly. :class:`DiscoveryListener` wraps it in one daemon thread
and two UDP sockets; it never touches pygame. A UI reads :meth:`DiscoveryListener.servers`
(an immutable snapshot, replaced on every change) from its own loop.
"""

from __future__ import annotations

import errno
import logging
import secrets
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .interfaces import DEFAULT_GROUP, DEFAULT_PORT, ipv4_interfaces, is_multicast
from .packet import MAX_PACKET_BYTES, Announcement, BadPacket, Pong, Probe, decode, encode
from .worker import StoppableThread

log = logging.getLogger("game_chat.discovery")

#: Announcements a server may miss before its entry disappears.
MISSED_ANNOUNCEMENTS = 5
#: Seconds between two pings of one server.
PROBE_EVERY = 2.0
#: A pong later than this does not count (the probe is forgotten).
PROBE_TIMEOUT = 2.0
#: Servers listed at most: a flood of made-up servers cannot grow the list without end.
MAX_SERVERS = 64
#: Datagrams read per wake-up at most.
MAX_READS = 64
#: Longest sleep of the thread, so expiry shows within this time.
TICK = 0.25
INTERFACE_REFRESH = 10.0

Source = tuple[str, int]


@dataclass(frozen=True)
class DiscoveryConfig:
    """Where a client listens: a multicast group (the default) or a unicast address such as
    127.0.0.1 (tests), and the UDP port. Servers it hosts announce to the same place."""

    address: str = DEFAULT_GROUP
    port: int = DEFAULT_PORT


@dataclass(frozen=True)
class ServerEntry:
    """One server in the list. ``host`` is the announcement's source IP, ``port`` the
    announced TCP port; ``ping_ms`` is the last UDP probe round trip (None until measured)."""

    server_id: str
    name: str
    host: str
    port: int
    players: int
    password: bool
    protocol: int
    ping_ms: float | None = None
    #: The chat port speaks TLS; ``fingerprint`` is its certificate's announced SHA-256
    #: (64 lower-case hex digits, or ""). Anyone on the LAN can announce anything: a client
    #: only holds a first connection's certificate against it (docs/SECURITY.md).
    tls: bool = False
    fingerprint: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The address to connect to, ``tls://`` in front for a TLS server."""
        return f"tls://{self.address}" if self.tls else self.address


@dataclass
class _Record:
    entry: ServerEntry
    source: Source  # where the announcement came from: probes go there
    last_seen: float
    expires: float
    next_probe: float
    probe: tuple[str, float] | None = None  # (nonce, sent at) of the probe in flight


@dataclass
class ServerTable:
    """The servers heard recently, keyed by server id (one server heard on several
    interfaces is listed once, at the address it was first heard from)."""

    missed: int = MISSED_ANNOUNCEMENTS
    probe_every: float = PROBE_EVERY
    max_servers: int = MAX_SERVERS
    _records: dict[str, _Record] = field(default_factory=dict)

    def heard(self, a: Announcement, source: Source, now: float) -> bool:
        """Record an announcement; True if the list changed."""
        record = self._records.get(a.server_id)
        expires = now + self.missed * a.interval
        if record is None:
            if len(self._records) >= self.max_servers or source[1] == 0:
                return False
            entry = ServerEntry(
                a.server_id,
                a.name,
                source[0],
                a.port,
                a.players,
                a.password,
                a.protocol,
                tls=a.tls,
                fingerprint=a.fingerprint,
            )
            self._records[a.server_id] = _Record(entry, source, now, expires, next_probe=now)
            return True
        old = record.entry
        record.entry = replace(
            old,
            name=a.name,
            players=a.players,
            password=a.password,
            protocol=a.protocol,
            tls=a.tls,
            fingerprint=a.fingerprint,
        )
        if record.source[0] == source[0]:
            record.entry = replace(record.entry, port=a.port)
            record.source = source
        record.last_seen, record.expires = now, max(record.expires, expires)
        return record.entry != old

    def expire(self, now: float) -> bool:
        """Forget servers not heard from in ``missed`` intervals; True if any went."""
        gone = [key for key, record in self._records.items() if now > record.expires]
        for key in gone:
            del self._records[key]
        return bool(gone)

    def probes_due(self, now: float) -> list[tuple[Probe, Source]]:
        """The probes to send now (each server every ``probe_every`` seconds)."""
        due = []
        for record in self._records.values():
            if record.probe is not None and now - record.probe[1] > PROBE_TIMEOUT:
                record.probe = None
            if record.probe is None and now >= record.next_probe:
                nonce = secrets.token_hex(8)
                record.probe = (nonce, now)
                record.next_probe = now + self.probe_every
                due.append((Probe(nonce), record.source))
        return due

    def pong(self, pong: Pong, source: Source, now: float) -> bool:
        """Match a pong with its probe; True if a ping changed."""
        for record in self._records.values():
            if record.probe is not None and record.probe[0] == pong.nonce:
                if record.source != source:
                    return False
                ping = round((now - record.probe[1]) * 1000, 1)
                record.probe = None
                changed = record.entry.ping_ms != ping
                record.entry = replace(record.entry, ping_ms=ping)
                return changed
        return False

    def next_deadline(self) -> float:
        """When something is next due (an expiry or a probe); inf with no servers."""
        times = [r.expires for r in self._records.values()]
        times += [r.next_probe for r in self._records.values() if r.probe is None]
        return min(times, default=float("inf"))

    def entries(self) -> tuple[ServerEntry, ...]:
        records = sorted(self._records.values(), key=lambda r: (r.entry.name.casefold(), r.source))
        return tuple(r.entry for r in records)


class DiscoveryListener:
    """Listens for announcements on ``address``:``port`` in a daemon thread.

    ``address`` is a multicast group (joined on every interface; the socket binds the
    wildcard address) or a unicast address to bind, such as 127.0.0.1 in tests. Port 0 binds
    a free port (see :attr:`address_bound`). ``start()`` raises OSError if it cannot bind.
    """

    def __init__(
        self,
        address: str = DEFAULT_GROUP,
        port: int = DEFAULT_PORT,
        *,
        clock: Callable[[], float] = time.monotonic,
        interfaces: Callable[[], list[str]] = ipv4_interfaces,
        table: ServerTable | None = None,
    ) -> None:
        self.group = address if is_multicast(address) else None  # ValueError if no IPv4
        self.bind_host = "0.0.0.0" if self.group else address
        self.port = port
        self._clock = clock
        self._interfaces = interfaces
        self._joined: set[str] = set()
        self._iface_read_at = float("-inf")
        self.table = table or ServerTable()
        self._cond = threading.Condition()
        self._snapshot: tuple[ServerEntry, ...] = ()
        self._version = 0
        self._sock: socket.socket | None = None
        self._probe_sock: socket.socket | None = None
        self._worker = StoppableThread(self._run, "chat-discovery")
        self._stop = self._worker.stopping
        self._wake_r = self._worker.wake_socket
        self._thread = self._worker.thread

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):  # BSD and macOS need it to share the port
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                except OSError:
                    pass
            sock.bind((self.bind_host, self.port))
            probe_sock.bind((self.bind_host, 0))  # pongs come back here, not to a shared port
            sock.setblocking(False)
            probe_sock.setblocking(False)
        except OSError:
            sock.close()
            probe_sock.close()
            raise
        self._sock, self._probe_sock = sock, probe_sock
        self._thread.start()

    @property
    def address_bound(self) -> tuple[str, int]:
        assert self._sock is not None, "listener not started"
        host, port = self._sock.getsockname()[:2]
        return host, port

    def stop(self, timeout: float = 1.0) -> None:
        self._worker.stop(timeout)

    def __enter__(self) -> DiscoveryListener:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what the UI reads (any thread) ---------------------------------------------------

    def servers(self) -> tuple[ServerEntry, ...]:
        """The current list: a new tuple after each change, the same one otherwise."""
        with self._cond:
            return self._snapshot

    @property
    def version(self) -> int:
        with self._cond:
            return self._version

    def wait_for_change(self, version: int, timeout: float) -> bool:
        """Block until :attr:`version` differs from ``version``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._version != version, timeout)

    # --- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        assert self._sock is not None and self._probe_sock is not None
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._sock, selectors.EVENT_READ)
                selector.register(self._probe_sock, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stop.is_set():
                    self._tick(selector)
        except Exception:
            log.exception("discovery listener stopped")
        finally:
            self._sock.close()
            self._probe_sock.close()
            self._wake_r.close()

    def _tick(self, selector: selectors.BaseSelector) -> None:
        now = self._clock()
        if self.group is not None and now - self._iface_read_at >= INTERFACE_REFRESH:
            self._iface_read_at = now
            self._join_group()
        changed = self.table.expire(now)
        for probe, destination in self.table.probes_due(now):
            self._send(encode(probe), destination)
        timeout = min(TICK, max(0.0, self.table.next_deadline() - now))
        for key, _ in selector.select(timeout):
            if key.fileobj is self._sock or key.fileobj is self._probe_sock:
                changed |= self._read(key.fileobj)  # type: ignore[arg-type]
        if changed:
            with self._cond:
                self._snapshot = self.table.entries()
                self._version += 1
                self._cond.notify_all()

    def _read(self, sock: socket.socket) -> bool:
        changed = False
        for _ in range(MAX_READS):
            try:
                data, source = sock.recvfrom(MAX_PACKET_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP port unreachable for a probe, on Windows
                continue
            try:
                packet = decode(data)
            except BadPacket as exc:
                log.debug("ignored a datagram from %s: %s", source[0], exc)
                continue
            now = self._clock()
            if isinstance(packet, Announcement):
                changed |= self.table.heard(packet, source[:2], now)
            elif isinstance(packet, Pong):
                changed |= self.table.pong(packet, source[:2], now)
        return changed

    def _send(self, data: bytes, destination: Source) -> None:
        assert self._probe_sock is not None
        try:
            self._probe_sock.sendto(data, destination)
        except OSError as exc:
            log.debug("probe to %s failed: %s", destination, exc)

    def _join_group(self) -> None:
        """Join the group on every interface not joined yet (interfaces may come up later)."""
        assert self._sock is not None and self.group is not None
        try:
            interfaces = self._interfaces()
        except Exception:
            log.exception("cannot list the network interfaces")
            interfaces = []
        for iface in interfaces or ["0.0.0.0"]:  # none listed: the system's default one
            if iface in self._joined:
                continue
            mreq = socket.inet_aton(self.group) + socket.inet_aton(iface)
            try:
                self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:  # EADDRINUSE: joined there already
                    log.debug("cannot join %s on %s: %s", self.group, iface, exc)
                    continue
            self._joined.add(iface)
