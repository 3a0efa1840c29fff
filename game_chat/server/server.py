"""The chat server: listening socket, accept thread, connections, shutdown."""

from __future__ import annotations

import errno
import ipaddress
import itertools
import logging
import os
import secrets
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

try:
    import resource
except ImportError:  # Windows: no RLIMIT_NOFILE to check
    resource = None  # type: ignore[assignment]

from ..discovery import Announcement, Announcer
from ..discovery.interfaces import DEFAULT_GROUP, ipv4_interfaces
from ..discovery.interfaces import DEFAULT_PORT as DEFAULT_ANNOUNCE_PORT
from ..irc.lines import format_line
from ..protocol.errors import ErrorCode, RemoteProtocolError
from ..protocol.framing import encode_frame
from ..protocol.limits import Limits
from ..protocol.messages import PROTOCOL_VERSION, ErrorReply, Goodbye, encode_message
from ..protocol.tls import TlsChannel, TlsError, looks_like_frame, looks_like_tls
from .connection import Connection, format_address
from .heap import HeapTrimmer
from .history import HistoryStore
from .moderation import BanList, host_of, is_loopback
from .sender import SendLoop
from .state import Access, ChatState
from .throttle import Throttle
from .tls import ServerTls

log = logging.getLogger("game_chat.server")

DEFAULT_PORT = 5050

#: Descriptors kept free beyond those counted in :func:`server_descriptors`: SQLite temporary
#: files, the netlink socket of an interface listing, a log handler reopening its file...
SPARE_DESCRIPTORS = 64

#: TLS connections refused at accept (banned, server full) that are in their handshake at once,
#: to be told why inside TLS; more are closed before it (server_descriptors counts these).
MAX_TLS_REFUSALS = 16

#: accept() errors that mean "no descriptor left" (for this process, or for the whole system).
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server can be told; the defaults are the documented ones."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    server_name: str = "game_chat"
    max_clients: int = 1000
    limits: Limits = field(default_factory=Limits)
    send_queue_bytes: int = 1024 * 1024
    hello_timeout: float = 30.0
    #: A connection silent this long becomes a plain guest, as the classic tutorial clients
    #: expect (they listen first and speak when their user types). None: never (it must
    #: register within hello_timeout). Servers with a password never do it (/pass comes first).
    plain_grace: float | None = 2.0
    #: Connections at once from one address (loopback, this machine itself, not counted).
    max_per_address: int = 16
    #: Rooms one member may be in at once, and rooms on the server in all.
    max_rooms_per_member: int = 20
    max_rooms: int = 1000
    #: After an excess-flood kick, the nick (and a remote address) is banned this long.
    flood_ban_minutes: float = 1.0
    #: A rich member silent this long gets a ping; silent ping_timeout more, it is dropped
    #: ("ping timeout"). 0 turns pings off.
    ping_interval: float = 60.0
    ping_timeout: float = 30.0
    #: TCP keepalive on every connection: first probe after keepalive_idle seconds of
    #: silence, then every keepalive_interval, dropped after keepalive_count unanswered (and
    #: data unacknowledged as long is given up on): a vanished peer goes within 2 minutes.
    keepalive_idle: int = 60
    keepalive_interval: int = 10
    keepalive_count: int = 6
    #: How long queued frames may still go out after a connection ends (goodbyes, errors).
    linger: float = 1.0
    backlog: int = 1024
    #: Threads that write to client sockets; connections are dealt out between them.
    sender_threads: int = 2
    #: Kernel send buffer per client (SO_SNDBUF), so a stalled client pins little memory
    #: beyond its outbox; None leaves the system's autotuning alone.
    socket_send_buffer: int | None = 256 * 1024
    #: SQLite file for history and bans; None keeps them in memory only.
    history_db: str | None = None
    history_replay: int = 100  # lines replayed when joining a room
    history_days: float | None = 30
    history_room_cap: int | None = 10_000
    #: "normal": a commit survives the server being killed; "full": also a power cut
    #: (an fsync per commit: slower on most disks).
    history_sync: str = "normal"
    store_private: bool = False
    #: Redis/Valkey URL: this server is one node of a cluster whose room lines live there
    #: (docs/SCALING.md, in progress); None: a server of its own.
    cluster: str | None = None
    cluster_namespace: str = "gc"
    #: A node silent this long is dead to the others: its nicks free, its members unlisted.
    cluster_ttl: float = 10.0
    password: str | None = None  # server password (plain or a hash_password() hash)
    oper_password: str | None = None  # operator password (plain or hash)
    #: LAN discovery (docs/DISCOVERY.md): announce this server by UDP every interval to each
    #: address (a multicast group goes out of every interface). Off unless asked for;
    #: run_server.py turns it on when it listens on a non-loopback address.
    announce: bool = False
    announce_addresses: tuple[str, ...] = (DEFAULT_GROUP,)
    announce_port: int = DEFAULT_ANNOUNCE_PORT
    announce_interval: float = 1.5
    #: TLS on ``port`` (docs/PROTOCOL.md section 1): the certificate file (PEM, its chain
    #: after it) and its key (None: in the certificate file). None: plaintext on ``port``.
    tls_cert: str | None = None
    tls_key: str | None = None
    #: With TLS: plaintext too, on this port (0: any free one). None: TLS only.
    plain_port: int | None = None
    #: IRC clients on this port (0: any free one; docs/IRC.md). None: no IRC listener.
    irc_port: int | None = None
    #: The address the IRC port listens on (None: ``host``).
    irc_host: str | None = None
    #: With TLS: IRC clients over TLS on this port, on ``irc_host`` with the chat port's
    #: certificate (0: any free one; 6697 is the usual one). None: no IRC over TLS.
    irc_tls_port: int | None = None


def server_descriptors(config: ServerConfig) -> int:
    """File descriptors the server holds open besides its clients' sockets, counted from what
    the code opens (readers wait with poll(), which holds none)."""
    count = 3  # stdin, stdout, stderr
    count += 1  # the listening socket
    if config.plain_port is not None:
        count += 1  # the plaintext one beside TLS
    if config.irc_port is not None:
        count += 1  # the IRC one
    if config.irc_tls_port is not None:
        count += 1  # the IRC one over TLS
    if config.tls_cert is not None:
        count += MAX_TLS_REFUSALS  # refused connections told why inside TLS
    count += 2 + 1  # the accept thread's wake-up socket pair and its selector (epoll, kqueue)
    count += 1  # the reserve that lets accept() answer "server full" when out of descriptors
    count += 3 * max(1, config.sender_threads)  # each sender: wake-up socket pair and selector
    if config.history_db is not None:
        count += 6  # SQLite's writer and reader: the database, its -wal and -shm (at most)
    if config.announce:
        count += 4  # the announcer: its UDP socket, wake-up socket pair and selector
    return count


@dataclass(frozen=True)
class ClientBudget:
    """What :func:`fit_max_clients` decided."""

    max_clients: int  # clients served at once
    soft_limit: int  # the soft RLIMIT_NOFILE wanted: the current one when it is high enough


def fit_max_clients(wanted: int, own: int, soft: int, hard: int | None) -> ClientBudget:
    """How many clients fit in the open-files limit (RLIMIT_NOFILE ``soft``/``hard``; ``hard``
    None is unlimited). Each client costs one descriptor; the server keeps ``own``
    (:func:`server_descriptors`) and :data:`SPARE_DESCRIPTORS` more for itself.

    A soft limit too low is raised as far as needed and the hard limit allows; only what still
    does not fit lowers ``wanted``. Under a limit too small even for the spare, half of what is
    left after the server's own descriptors is served (at least one client).

    >>> fit_max_clients(1000, 24, 256, 256)
    ClientBudget(max_clients=168, soft_limit=256)
    >>> fit_max_clients(1000, 24, 256, None)
    ClientBudget(max_clients=1000, soft_limit=1088)
    """
    need = wanted + own + SPARE_DESCRIPTORS
    if soft >= need:
        return ClientBudget(wanted, soft)
    limit = need if hard is None else max(soft, min(need, hard))
    room = limit - own - SPARE_DESCRIPTORS
    if room < 1:
        room = max(1, (limit - own) // 2)
    return ClientBudget(min(wanted, room), limit)


class ChatServer:
    """A threaded chat server: one reader thread per client, one sender thread for all.

    Use ``start()`` (binds and returns; raises OSError if the port is busy) and ``shutdown()``,
    or ``with ChatServer(config) as server: ...``. ``address`` is the bound (host, port).
    ``max_clients`` is the number of clients served at once: ``config.max_clients``, lowered by
    ``start()`` when the open-files limit cannot hold that many (see :func:`fit_max_clients`).
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config = config or ServerConfig()
        if config.plain_port is not None and config.tls_cert is None:
            raise ValueError("a plaintext port beside the chat port needs TLS on the chat port")
        if config.irc_tls_port is not None and config.tls_cert is None:
            raise ValueError("an IRC port over TLS needs TLS on the chat port (its certificate)")
        #: The certificate new TLS handshakes use (None: no TLS); TlsSetupError, a ValueError.
        self.tls = ServerTls(config.tls_cert, config.tls_key) if config.tls_cert else None
        self._announcer = self._make_announcer() if config.announce else None  # ValueError
        self.history = HistoryStore(
            config.history_db,
            retention_days=config.history_days,
            room_cap=config.history_room_cap,
            sync=config.history_sync,
        )
        cluster = self._cluster_client() if config.cluster else None
        self.state = ChatState(
            config.server_name,
            config.limits,
            history=self.history,
            replay=config.history_replay,
            store_private=config.store_private,
            access=Access(config.password, config.oper_password),
            bans=BanList(self._cluster_bans(cluster) if cluster else self.history),
            max_rooms_per_member=config.max_rooms_per_member,
            max_rooms=config.max_rooms,
            flood_ban_minutes=config.flood_ban_minutes,
            pipeline=self._cluster_pipeline(cluster) if cluster else None,
        )
        self.senders = [
            SendLoop(f"chat-sender-{n}") for n in range(max(1, self.config.sender_threads))
        ]
        self._next_sender = itertools.count()
        self._connections: set[Connection] = set()
        self._conn_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._plain_listener: socket.socket | None = None  # with TLS and plain_port only
        self._irc_listener: socket.socket | None = None  # with irc_port only
        self._irc_tls_listener: socket.socket | None = None  # with TLS and irc_tls_port only
        self._selector: selectors.BaseSelector | None = None  # the accept thread's
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="chat-accept", daemon=True
        )
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._shutdown_reason = "server shutting down"
        # Accepted sockets that have sent nothing yet: they wait in the accept thread's
        # selector and get a reader thread only when their first bytes arrive, so a crowd of
        # idle or half-open connections costs no threads. Accept thread only.
        self._waiting: dict[socket.socket, _Waiting] = {}
        # Plain guests that have not said a word yet (they became members by waiting out the
        # plain grace): registered, with an outbox, but no reader thread until their first
        # bytes arrive, so a crowd of listen-only clients costs no threads. Accept thread only.
        self._quiet: dict[socket.socket, Connection] = {}
        self._refusing = 0  # waiting sockets that are TLS refusals (not clients; accept thread)
        self._per_host: Counter[str] = Counter()  # open connections per remote host (conn lock)
        self._tcp_port = 0
        self._server_id = secrets.token_hex(8)  # one per run: a listener lists a server once
        self.max_clients = config.max_clients  # start() lowers it to what the OS allows
        # A descriptor held back for the day accept() fails for want of one: closing it lets
        # the connection be taken and told "server full" (accept thread only once started).
        self._reserve: int | None = None
        # Out of descriptors, accept() fails for every connection, and a crowd over the limit
        # is refused one by one: a log line a second for each, not one per connection.
        self._accept_errors = Throttle(1.0)
        self._full_refusals = Throttle(1.0)
        self._heap = HeapTrimmer()

    # --- lifecycle ---------------------------------------------------------------------

    def _cluster_client(self) -> Any:
        """The Redis client of a cluster node (redis is imported only for one)."""
        from ..cluster.client import connect

        return connect(self.config.cluster)  # type: ignore[arg-type]

    def _cluster_bans(self, client: Any) -> Any:
        """A cluster node's bans are the cluster's (kept in Redis)."""
        from ..cluster.bans import RedisBanStore

        return RedisBanStore(client, self.config.cluster_namespace)

    def _cluster_pipeline(self, client: Any) -> Callable[..., Any]:
        """What makes the line pipeline of a cluster node (imported only for one)."""
        from ..cluster.pipeline import ClusterPipeline

        config = self.config
        room_cap = config.history_room_cap or 10_000
        return lambda deliver, delivery_for: ClusterPipeline(
            client,
            deliver,
            delivery_for,
            namespace=config.cluster_namespace,
            room_cap=room_cap,
            ttl=config.cluster_ttl,
            beat_interval=min(1.0, config.cluster_ttl / 5),
            retention_days=config.history_days,
        )

    def start(self) -> None:
        self._fit_open_files_limit()
        self._listener = self._listen(self.config.port)
        # Every descriptor the server keeps is open when start() returns (or it raised): the
        # accept thread's selector too, so that a shortage now is an error now, not a dead
        # accept thread later.
        try:
            if self.config.plain_port is not None:
                self._plain_listener = self._listen(self.config.plain_port)
            if self.config.irc_port is not None:
                self._irc_listener = self._listen(self.config.irc_port, self.config.irc_host)
            if self.config.irc_tls_port is not None:
                irc_host = self.config.irc_host
                self._irc_tls_listener = self._listen(self.config.irc_tls_port, irc_host)
            self._selector = selectors.DefaultSelector()
        except BaseException:
            for listener in self._listeners():
                listener.close()
            raise
        for listener in self._listeners():
            self._selector.register(listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._take_reserve()
        for sender in self.senders:
            sender.start()
        self._accept_thread.start()
        host, port = self.address
        secure = " (TLS)" if self.tls is not None else ""
        log.info("listening on %s%s", format_address((host, port)), secure)
        if self._plain_listener is not None:
            log.info("plaintext on %s", format_address(self.plain_address))
        if self._irc_listener is not None:
            log.info("IRC on %s", format_address(self.irc_address))
        if self._irc_tls_listener is not None:
            log.info("IRC over TLS on %s", format_address(self.irc_tls_address))
        self._start_announcer(port)

    def _listen(self, port: int, host: str | None = None) -> socket.socket:
        host = self.config.host if host is None else host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=self.config.backlog)
        listener.setblocking(False)
        return listener

    def _listeners(self) -> list[socket.socket]:
        listeners = (
            self._listener,
            self._plain_listener,
            self._irc_listener,
            self._irc_tls_listener,
        )
        return [s for s in listeners if s is not None]

    def _speaks_tls(self, listener: socket.socket) -> bool:
        """Whether connections to ``listener`` start with a TLS handshake."""
        if self.tls is None:
            return False
        return listener is self._listener or listener is self._irc_tls_listener

    def _speaks_irc(self, listener: socket.socket) -> bool:
        """Whether ``listener`` is one of the IRC ports (clear text or TLS)."""
        return listener is self._irc_listener or listener is self._irc_tls_listener

    def _fit_open_files_limit(self) -> None:
        """Check ``max_clients`` against RLIMIT_NOFILE: raise a soft limit that is too low up
        to the hard limit, and when even that cannot hold them all, lower ``self.max_clients``
        with one warning. Nothing to do where the resource module does not exist."""
        if resource is None:
            return
        wanted = self.config.max_clients
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        except (OSError, ValueError):
            return
        infinity = resource.RLIM_INFINITY
        if soft == infinity:
            return
        own = server_descriptors(self.config)
        budget = fit_max_clients(wanted, own, soft, None if hard == infinity else hard)
        if budget.soft_limit > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (budget.soft_limit, hard))
            except (OSError, ValueError) as exc:  # e.g. macOS caps it below an unlimited hard
                log.debug("cannot raise the open-files limit to %d: %s", budget.soft_limit, exc)
                budget = fit_max_clients(wanted, own, soft, soft)
            else:
                log.info(
                    "open-files limit raised from %d to %d for %d clients",
                    soft,
                    budget.soft_limit,
                    budget.max_clients,
                )
        self.max_clients = budget.max_clients
        if budget.max_clients < wanted:
            log.warning(
                "--max-clients %d lowered to %d: the open-files limit is %d (ulimit -n; hard "
                "limit %s) and the server keeps %d descriptors for itself",
                wanted,
                budget.max_clients,
                budget.soft_limit,
                "unlimited" if hard == infinity else hard,
                own + SPARE_DESCRIPTORS,
            )

    def _take_reserve(self) -> bool:
        """Hold the reserve descriptor (if not held yet); False if none is left to hold."""
        if self._reserve is None:
            try:
                self._reserve = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                return False
        return True

    def _release_reserve(self) -> None:
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None

    @property
    def address(self) -> tuple[str, int]:
        return _bound(self._listener, "server not started")

    @property
    def irc_address(self) -> tuple[str, int]:
        """The IRC port's (host, port) (``irc_port``)."""
        return _bound(self._irc_listener, "no IRC port")

    @property
    def irc_tls_address(self) -> tuple[str, int]:
        """The IRC over TLS port's (host, port) (``irc_tls_port``)."""
        return _bound(self._irc_tls_listener, "no IRC over TLS port")

    @property
    def plain_address(self) -> tuple[str, int]:
        """The plaintext port's (host, port) beside TLS (``plain_port``)."""
        return _bound(self._plain_listener, "no plaintext port")

    def reload_tls(self) -> bool:
        """Read the certificate and key again (SIGHUP): new handshakes use them, connections
        keep theirs. False, logged, if there is no TLS or the files cannot be used (the
        certificate in use stays)."""
        if self.tls is None:
            log.info("no TLS certificate to reload")
            return False
        try:
            self.tls.reload()
        except ValueError as exc:
            log.error("TLS certificate not reloaded, the one in use stays: %s", exc)
            return False
        log.info("TLS certificate reloaded: SHA-256 fingerprint %s", self.tls.fingerprint)
        return True

    @property
    def client_count(self) -> int:
        with self._conn_lock:
            return len(self._connections)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has shut down; True if it has."""
        return self._stopped.wait(timeout)

    def shutdown(self, reason: str = "server shutting down", timeout: float = 1.5) -> None:
        """Tell every client goodbye, close every connection, stop the threads."""
        if self._stopping.is_set():
            self._stopped.wait(timeout)
            return
        self._shutdown_reason = reason
        self._stopping.set()
        deadline = time.monotonic() + timeout
        if self._announcer is not None:
            self._announcer.stop(0.2)
        self._wake_w.send(b"\0")
        self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        self.state.close_all(reason)
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:  # those still saying hello are told too
            conn.session.say_goodbye(reason)
        log.info("shutting down: %d clients told", len(connections))
        for conn in connections:
            conn.stop_reading()
        for conn in connections:
            conn.thread.join(max(0.0, deadline - time.monotonic()))
        for sender in self.senders:
            sender.stop(max(0.0, deadline - time.monotonic()))
        self._wake_r.close()
        self._wake_w.close()
        self.state.close()  # the line pipeline: nothing is left in it after close_all
        self.history.close()
        self._stopped.set()

    def __enter__(self) -> ChatServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    # --- LAN discovery -------------------------------------------------------------------

    @property
    def announcer(self) -> Announcer | None:
        return self._announcer

    def _make_announcer(self) -> Announcer:
        config = self.config
        try:  # a server on one IPv4 address announces from it, out of its interface only
            bind = str(ipaddress.IPv4Address(config.host))
        except ValueError:
            bind = "0.0.0.0"
        return Announcer(
            self._announcement,
            config.announce_addresses,
            config.announce_port,
            config.announce_interval,
            bind_address=bind,
            interfaces=ipv4_interfaces if bind == "0.0.0.0" else lambda: [bind],
        )

    def _start_announcer(self, tcp_port: int) -> None:
        self._tcp_port = tcp_port
        if self._announcer is None:
            return
        try:
            self._announcer.start()
        except OSError as exc:  # the chat works without it
            log.warning("cannot announce on the LAN: %s", exc)
            return
        targets = ", ".join(self._announcer.targets)
        log.info("announcing to %s port %d", targets, self._announcer.port)

    def _announcement(self) -> Announcement:
        config = self.config
        return Announcement(
            server_id=self._server_id,
            name=config.server_name,
            port=self._tcp_port,
            players=len(self.state),
            password=config.password is not None,
            protocol=PROTOCOL_VERSION,
            interval=config.announce_interval,
            tls=self.tls is not None,
            fingerprint=self.tls.compact_fingerprint if self.tls is not None else "",
        )

    # --- connections ---------------------------------------------------------------------

    def assign_sender(self) -> SendLoop:
        """The sender thread for a new connection (round robin)."""
        return self.senders[next(self._next_sender) % len(self.senders)]

    def forget(self, conn: Connection) -> None:
        with self._conn_lock:
            if conn in self._connections:
                self._connections.discard(conn)
                self._uncount(conn.address)

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._selector is not None
        listeners = self._listeners()
        with self._selector as selector:
            try:
                while not self._stopping.is_set():
                    for key, mask in selector.select(self._next_wakeup()):
                        if key.fileobj in listeners:
                            self._accept_pending(selector, key.fileobj)  # type: ignore[arg-type]
                        elif key.fileobj is not self._wake_r:
                            self._ready(selector, key.fileobj, mask)  # type: ignore[arg-type]
                    self._expire_waiting(selector)
                    self._heap.tick()  # the accept thread is the server's housekeeper
            finally:
                farewell = Goodbye(self._shutdown_reason)
                for listener in listeners:
                    self._close_backlog(listener, farewell)
                    listener.close()
                self._release_reserve()
                self._close_waiting(farewell)
                for conn in self._quiet.values():  # members: they end as the others do
                    conn.start()
                self._quiet.clear()

    def _accept_pending(self, selector: selectors.BaseSelector, listener: socket.socket) -> None:
        """Take every connection waiting in ``listener``'s backlog: a slot in ``_waiting`` for
        each (on a TLS port with its TLS channel), or a refusal (banned, ``server_full``).
        Accept thread only."""
        self._take_reserve()  # given back after an earlier shortage, if there is one again
        secure = self._speaks_tls(listener)
        irc = self._speaks_irc(listener)
        while True:
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if self._accept_failed(listener, exc):
                    continue
                return
            refusal = self._refusal(address) or self._over_capacity(format_address(address))
            if refusal is not None:
                self._refuse(sock, address, refusal, selector if secure else None, irc)
                continue
            sock.setblocking(False)
            now = time.monotonic()
            grace = self.config.plain_grace
            grace = None if self.config.password or irc else grace  # (IRC clients speak first)
            deadline = now + self.config.hello_timeout
            if secure:  # the grace starts once the handshake is done
                assert self.tls is not None
                channel = self.tls.channel()
                waiting = _Waiting(address, deadline, None, time.time(), channel, grace, irc=irc)
            else:
                quiet_at = None if grace is None else now + grace
                waiting = _Waiting(address, deadline, quiet_at, time.time(), irc=irc)
            self._waiting[sock] = waiting
            selector.register(sock, selectors.EVENT_READ)
            log.debug("%s: connected", format_address(address))

    def _over_capacity(self, address: str) -> RemoteProtocolError | None:
        """Accept thread: refuse a connection over max_clients or over max_per_address;
        else count it in."""
        host = host_of(address)
        with self._conn_lock:
            busy = len(self._connections) + len(self._waiting) - self._refusing
            if busy >= self.max_clients:
                message = f"server full ({self.max_clients} clients), try again later"
            elif self._per_host[host] >= self.config.max_per_address and not is_loopback(host):
                limit = self.config.max_per_address
                message = f"too many connections from your address ({limit}), try again later"
            else:
                self._per_host[host] += 1
                return None
        return RemoteProtocolError(ErrorCode.SERVER_FULL, message, fatal=True)

    def _uncount(self, address: str) -> None:
        """Connection lock held: one connection less from ``address``'s host."""
        host = host_of(address)
        self._per_host[host] -= 1
        if self._per_host[host] <= 0:
            del self._per_host[host]

    def _ready(self, selector: selectors.BaseSelector, sock: socket.socket, mask: int) -> None:
        """A socket in the selector can be read (or written): a TLS handshake goes on, or
        the connection's first bytes have come."""
        waiting = self._waiting.get(sock)
        if waiting is not None and waiting.tls is not None:
            self._tls_ready(selector, sock, waiting, mask)
        else:
            self._first_bytes(selector, sock)

    def _first_bytes(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        """A waiting socket has something to say: from now on it has a reader thread."""
        selector.unregister(sock)
        quiet = self._quiet.pop(sock, None)
        if quiet is not None:  # a guest that listened until now: its reader starts
            quiet.start()
            return
        waiting = self._waiting.pop(sock)
        conn = Connection(
            sock,
            waiting.address,
            self,
            registration_deadline=waiting.deadline,
            tls=waiting.tls,
            unsent=waiting.unsent,
            irc=waiting.irc,
        )
        with self._conn_lock:
            self._connections.add(conn)
        conn.start()

    def _tls_ready(
        self, selector: selectors.BaseSelector, sock: socket.socket, waiting: _Waiting, mask: int
    ) -> None:
        """The TLS handshake, a step each time the socket is ready (accept thread, never
        blocks: a peer that stalls costs no thread, and the registration deadline ends it).
        Once it is done, the first plaintext bytes start the connection as for anyone."""
        tls = waiting.tls
        assert tls is not None
        if mask & selectors.EVENT_WRITE and not self._send_unsent(selector, sock, waiting):
            return
        if not mask & selectors.EVENT_READ:
            return
        if tls.established:  # its first bytes after the handshake
            self._first_bytes(selector, sock)
            return
        try:
            data = sock.recv(_HANDSHAKE_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._end_handshake(selector, sock, f"connection lost: {exc.strerror or exc}")
            return
        if not waiting.heard and data and not looks_like_tls(data):
            self._not_tls(selector, sock, waiting, data)
            return
        if not waiting.heard and not data:
            self._end_handshake(selector, sock, "closed before saying anything", logging.DEBUG)
            return
        waiting.heard = True
        try:
            done = tls.handshake(data)
        except TlsError as exc:
            waiting.unsent += tls.take_output()  # the alert that tells the peer why
            self._send_unsent(selector, sock, waiting, last=True)
            why = "closed by the peer" if not data else exc.message
            if exc.reason in _CERTIFICATE_ALERTS:
                why += " (the client does not trust our certificate; with a self-signed one "
                why += "it may connect again to trust it on first use)"
            self._end_handshake(selector, sock, why)
            return
        waiting.unsent += tls.take_output()
        if not self._send_unsent(selector, sock, waiting):
            return
        if done:
            self._tls_established(selector, sock, waiting, tls)

    def _tls_established(
        self,
        selector: selectors.BaseSelector,
        sock: socket.socket,
        waiting: _Waiting,
        tls: TlsChannel,
    ) -> None:
        log.debug("%s: TLS established (%s)", format_address(waiting.address), tls.version)
        if waiting.refusal is not None:  # now it can be told why it is refused
            self._forget_waiting(selector, sock)
            _send_and_close(sock, waiting.refusal, tls, waiting.unsent, irc=waiting.irc)
            return
        if waiting.grace is not None:  # a silent peer becomes a plain guest from now on
            waiting.quiet_at = min(waiting.deadline, time.monotonic() + waiting.grace)
        if tls.more:  # its first data came with its last handshake message
            self._first_bytes(selector, sock)

    def _send_unsent(
        self,
        selector: selectors.BaseSelector,
        sock: socket.socket,
        waiting: _Waiting,
        last: bool = False,
    ) -> bool:
        """Send what the handshake has for the peer, as far as the socket takes it; wait for
        it to be writable when it does not take it all. False if the connection is gone
        (dropped here, unless ``last``: the caller ends it)."""
        if waiting.unsent:
            try:
                sent = sock.send(waiting.unsent)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                if not last:
                    self._end_handshake(selector, sock, f"connection lost: {exc.strerror or exc}")
                return False
            waiting.unsent = waiting.unsent[sent:]
        if not last:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if waiting.unsent else 0)
            if events != waiting.events:
                selector.modify(sock, events)
                waiting.events = events
        return True

    def _not_tls(
        self, selector: selectors.BaseSelector, sock: socket.socket, waiting: _Waiting, data: bytes
    ) -> None:
        """Something else than TLS came to a TLS port: on the chat port a frame of ours in
        clear text is answered (in clear text: it reads nothing else) with ``tls_required``;
        anything else, and anything on the IRC over TLS port (a frame would mean nothing to
        an IRC client), is closed."""
        if waiting.irc:
            why = f"not TLS on the IRC over TLS port (first bytes {data[:8]!r})"
            self._end_handshake(selector, sock, why)
            return
        if not looks_like_frame(data):
            self._end_handshake(selector, sock, f"not TLS (first bytes {data[:8]!r})")
            return
        message = "this port speaks TLS: connect with TLS (tls://HOST:PORT)"
        if self._plain_listener is not None:
            message += f", or in clear text to port {self.plain_address[1]}"
        error = RemoteProtocolError(ErrorCode.TLS_REQUIRED, message, fatal=True)
        why = "a clear-text frame on the TLS port (told to use TLS)"
        self._end_handshake(selector, sock, why, close=False)
        _send_and_close(sock, ErrorReply.from_exception(error))

    def _end_handshake(
        self,
        selector: selectors.BaseSelector,
        sock: socket.socket,
        why: str,
        level: int = logging.INFO,
        close: bool = True,
    ) -> None:
        """A TLS handshake ends without a connection: one log line, the socket forgotten and
        (unless ``close`` is False) closed."""
        waiting = self._forget_waiting(selector, sock)
        log.log(level, "%s: TLS handshake failed: %s", format_address(waiting.address), why)
        if close:
            sock.close()

    def _forget_waiting(self, selector: selectors.BaseSelector, sock: socket.socket) -> _Waiting:
        """Take ``sock`` out of the waiting ones (and of the count of its address)."""
        waiting = self._waiting.pop(sock)
        selector.unregister(sock)
        if waiting.refusal is not None:
            self._refusing -= 1
        else:
            with self._conn_lock:
                self._uncount(format_address(waiting.address))
        return waiting

    def _next_wakeup(self) -> float | None:
        """Seconds until a waiting socket is due (a guest or expired) or the heap a trim."""
        times = [] if (trim := self._heap.due_in()) is None else [trim]
        if self._waiting:
            soonest = min(waiting.due for waiting in self._waiting.values())
            times.append(max(0.0, soonest - time.monotonic()))
        return min(times, default=None)

    def _expire_waiting(self, selector: selectors.BaseSelector) -> None:
        """Waiting sockets past their plain grace become quiet guests; past their
        registration deadline (a password server, or a TLS handshake not done) they are
        told (if they can be) and closed."""
        now = time.monotonic()
        for sock in [sock for sock, waiting in self._waiting.items() if waiting.due <= now]:
            waiting = self._waiting[sock]
            if waiting.quiet_at is not None:
                del self._waiting[sock]
                self._make_quiet_guest(selector, sock, waiting)
                continue
            limit = self.config.hello_timeout
            if waiting.tls is not None and not waiting.tls.established:
                late = limit if waiting.refusal is None else _REFUSAL_HANDSHAKE_SECONDS
                self._end_handshake(selector, sock, f"not done within {late:g} s", logging.WARNING)
                continue
            self._forget_waiting(selector, sock)
            error = RemoteProtocolError(
                ErrorCode.HELLO_TIMEOUT, f"not registered within {limit:g} s", fatal=True
            )
            log.warning("%s: %s: %s", format_address(waiting.address), error.code, error.message)
            reply = ErrorReply.from_exception(error)
            _send_and_close(sock, reply, waiting.tls, waiting.unsent, irc=waiting.irc)

    def _make_quiet_guest(
        self, selector: selectors.BaseSelector, sock: socket.socket, waiting: _Waiting
    ) -> None:
        """A silent connection joins as a plain guest and keeps waiting here for its first
        bytes (no thread); what it is sent goes out through its outbox as for anyone."""
        conn = Connection(sock, waiting.address, self, tls=waiting.tls, unsent=waiting.unsent)
        with self._conn_lock:
            self._connections.add(conn)
        if not conn.session.join_quietly(waiting.connected):  # refused: shutting down, banned
            selector.unregister(sock)
            conn.start()  # its reader sends nothing more and closes it
            return
        selector.modify(sock, selectors.EVENT_READ, conn)
        self._quiet[sock] = conn

    def _close_waiting(self, farewell: Goodbye) -> None:
        with self._conn_lock:
            for waiting in self._waiting.values():
                if waiting.refusal is None:
                    self._uncount(format_address(waiting.address))
        for sock, waiting in self._waiting.items():
            message = waiting.refusal or farewell
            _send_and_close(sock, message, waiting.tls, waiting.unsent, irc=waiting.irc)
        self._waiting.clear()
        self._refusing = 0

    def _close_backlog(self, listener: socket.socket, farewell: Goodbye) -> None:
        """Shutdown: connections still in the listen backlog get the goodbye too, rather than
        a reset (at most a backlog's worth; accept thread only). On a TLS port there is no
        handshake yet to say it with: they are closed. On the IRC port it is an IRC line."""
        secure = self._speaks_tls(listener)
        irc = self._speaks_irc(listener)
        for _ in range(self.config.backlog):
            try:
                sock, _ = listener.accept()
            except OSError:  # nothing left (or no descriptor for it: it gets the reset)
                return
            if secure:
                sock.close()
            else:
                _send_and_close(sock, farewell, irc=irc)

    def _refusal(self, address: object) -> RemoteProtocolError | None:
        try:
            self.state.check_address(format_address(address))
        except RemoteProtocolError as exc:
            return exc
        return None

    def _refuse(
        self,
        sock: socket.socket,
        address: object,
        refusal: RemoteProtocolError,
        selector: selectors.BaseSelector | None = None,
        irc: bool = False,
    ) -> None:
        """Tell ``sock`` why with a fatal error frame (``irc``: an IRC ``ERROR`` line), and
        close it. "Server full" is logged at most once a second (a crowd over the limit would
        write a line per connection).

        On a TLS port (``selector`` given) the frame can only go inside TLS: the handshake
        is done first, as for anyone but within :data:`_REFUSAL_HANDSHAKE_SECONDS`, for at
        most :data:`MAX_TLS_REFUSALS` connections at once (counted apart from the clients);
        beyond that, it is closed before the handshake (the log says so)."""
        busy = selector is not None and self._refusing >= MAX_TLS_REFUSALS
        closed = " (closed before the TLS handshake: too many refusals at once)" if busy else ""
        if refusal.code != ErrorCode.SERVER_FULL:
            log.warning("%s: refused: %s%s", format_address(address), refusal.message, closed)
        elif (quiet := self._full_refusals.due()) is not None:
            note = _quiet_note(quiet, "refused") + closed
            log.warning("%s: refused: %s%s", format_address(address), refusal.message, note)
        if selector is None:
            _send_and_close(sock, ErrorReply.from_exception(refusal), irc=irc)
        elif busy:
            sock.close()
        else:
            assert self.tls is not None
            sock.setblocking(False)
            deadline = time.monotonic() + _REFUSAL_HANDSHAKE_SECONDS
            self._waiting[sock] = _Waiting(
                address,
                deadline,
                None,
                time.time(),
                self.tls.channel(),
                refusal=ErrorReply.from_exception(refusal),
                irc=irc,
            )
            self._refusing += 1
            selector.register(sock, selectors.EVENT_READ)

    def _accept_failed(self, listener: socket.socket, exc: OSError) -> bool:
        """accept() failed with ``exc``; True if the next connection can be tried at once.

        Out of descriptors (EMFILE, ENFILE), the connection would wait in the backlog with no
        answer, and the listener would stay readable: the reserve descriptor is given back,
        the connection taken with it, told ``server_full`` and closed, and the reserve held
        again. Any other failure (or no reserve to give) is logged at most once a second, and
        the thread pauses a moment rather than spin on the listener.
        """
        if exc.errno in _OUT_OF_DESCRIPTORS and self._reserve is not None:
            self._release_reserve()
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                self._take_reserve()
                return False  # nothing was pending after all
            except OSError:
                self._take_reserve()  # the descriptor went to another thread meanwhile
            else:
                secure = self._speaks_tls(listener)
                irc = self._speaks_irc(listener)
                self._refuse_out_of_descriptors(sock, address, exc, secure, irc)
                self._take_reserve()  # the one sock had, now closed
                return True
        if (quiet := self._accept_errors.due()) is not None:
            log.error("accept failed: %s%s", exc, _quiet_note(quiet))
        time.sleep(0.05)
        return False

    def _refuse_out_of_descriptors(
        self, sock: socket.socket, address: object, exc: OSError, secure: bool, irc: bool = False
    ) -> None:
        if (quiet := self._accept_errors.due()) is not None:
            log.error(
                "accept failed: %s: told %s the server is full (raise ulimit -n or lower "
                "--max-clients)%s",
                exc,
                format_address(address),
                _quiet_note(quiet),
            )
        if secure:
            sock.close()
            return
        refusal = RemoteProtocolError(
            ErrorCode.SERVER_FULL,
            "server full (out of file descriptors), try again later",
            fatal=True,
        )
        _send_and_close(sock, ErrorReply.from_exception(refusal), irc=irc)


def _bound(listener: socket.socket | None, missing: str) -> tuple[str, int]:
    """The (host, port) ``listener`` listens on (AssertionError ``missing``: there is none)."""
    assert listener is not None, missing
    host, port = listener.getsockname()[:2]
    return host, port


def _quiet_note(quiet: int, what: str = "failed") -> str:
    """The tail of a throttled log line: how many were not logged since the last one."""
    return f" ({quiet} more {what} since the last report)" if quiet else ""


#: Bytes read at once from a peer in its TLS handshake (a ClientHello is far smaller).
_HANDSHAKE_READ = 16384
#: A connection refused at accept on the TLS port is told why inside TLS: the handshake may
#: take this long (then it is closed), for at most this many connections at once.
_REFUSAL_HANDSHAKE_SECONDS = 5.0
#: Alerts of a client that refused our certificate.
_CERTIFICATE_ALERTS = frozenset(
    {"TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN"}
)


@dataclass
class _Waiting:
    """An accepted socket that has sent nothing yet (accept thread only); on a TLS port,
    one whose handshake is under way or done."""

    address: object
    deadline: float  # monotonic time by which it must be registered
    quiet_at: float | None  # when it becomes a plain guest if still silent (None: never)
    connected: float  # Unix time of the accept
    tls: TlsChannel | None = None  # its TLS (None: plaintext)
    grace: float | None = None  # TLS: the plain grace, counted once the handshake is done
    heard: bool = False  # TLS: some bytes came
    unsent: bytes = b""  # TLS: handshake bytes the socket has not taken yet
    events: int = selectors.EVENT_READ  # what the selector waits for
    refusal: ErrorReply | None = None  # TLS: refused at accept, told once the handshake is done
    irc: bool = False  # came to an IRC port (clear text or TLS)

    @property
    def due(self) -> float:
        return self.deadline if self.quiet_at is None else min(self.quiet_at, self.deadline)


def _send_and_close(
    sock: socket.socket,
    message: ErrorReply | Goodbye,
    tls: TlsChannel | None = None,
    unsent: bytes = b"",
    irc: bool = False,
) -> None:
    """One small frame to a socket nobody reads from yet, then close it (never blocks).
    Over TLS: encrypted, after ``unsent``, with a close_notify; nothing if the handshake is
    not done (there is no way to say it). ``irc``: an IRC ``ERROR`` line instead."""
    try:
        sock.setblocking(False)
        if irc:
            reason = message.message if isinstance(message, ErrorReply) else message.reason
            frame = format_line("ERROR", f"Closing link: {reason}", trailing=True)
        else:
            frame = encode_frame(encode_message(message))
        if tls is None:
            sock.send(frame)
        elif tls.established:
            sock.send(unsent + tls.wrap(frame) + tls.close_notify())
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
