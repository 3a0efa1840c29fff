"""The chat server: listening socket, accept thread, connections, shutdown."""

from __future__ import annotations

import ipaddress
import itertools
import logging
import secrets
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from ..discovery import Announcement, Announcer
from ..discovery.interfaces import DEFAULT_GROUP, ipv4_interfaces
from ..discovery.interfaces import DEFAULT_PORT as DEFAULT_ANNOUNCE_PORT
from ..protocol.errors import ErrorCode, RemoteProtocolError
from ..protocol.framing import encode_frame
from ..protocol.limits import Limits
from ..protocol.messages import PROTOCOL_VERSION, ErrorReply, Goodbye, encode_message
from .connection import Connection, format_address
from .history import HistoryStore
from .moderation import BanList
from .sender import SendLoop
from .state import Access, ChatState

log = logging.getLogger("game_chat.server")

DEFAULT_PORT = 5050


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
    password: str | None = None  # server password (plain or a hash_password() hash)
    oper_password: str | None = None  # operator password (plain or hash)
    #: LAN discovery (docs/DISCOVERY.md): announce this server by UDP every interval to each
    #: address (a multicast group goes out of every interface). Off unless asked for;
    #: run_server.py turns it on when it listens on a non-loopback address.
    announce: bool = False
    announce_addresses: tuple[str, ...] = (DEFAULT_GROUP,)
    announce_port: int = DEFAULT_ANNOUNCE_PORT
    announce_interval: float = 1.5


class ChatServer:
    """A threaded chat server: one reader thread per client, one sender thread for all.

    Use ``start()`` (binds and returns; raises OSError if the port is busy) and ``shutdown()``,
    or ``with ChatServer(config) as server: ...``. ``address`` is the bound (host, port).
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config = config or ServerConfig()
        self._announcer = self._make_announcer() if config.announce else None  # ValueError
        self.history = HistoryStore(
            config.history_db,
            retention_days=config.history_days,
            room_cap=config.history_room_cap,
            sync=config.history_sync,
        )
        self.state = ChatState(
            config.server_name,
            config.limits,
            history=self.history,
            replay=config.history_replay,
            store_private=config.store_private,
            access=Access(config.password, config.oper_password),
            bans=BanList(self.history),
        )
        self.senders = [
            SendLoop(f"chat-sender-{n}") for n in range(max(1, self.config.sender_threads))
        ]
        self._next_sender = itertools.count()
        self._connections: set[Connection] = set()
        self._conn_lock = threading.Lock()
        self._listener: socket.socket | None = None
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
        self._waiting: dict[socket.socket, tuple[object, float]] = {}
        self._tcp_port = 0
        self._server_id = secrets.token_hex(8)  # one per run: a listener lists a server once

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        self._listener = socket.create_server(
            (self.config.host, self.config.port), family=family, backlog=self.config.backlog
        )
        self._listener.setblocking(False)
        for sender in self.senders:
            sender.start()
        self._accept_thread.start()
        host, port = self.address
        log.info("listening on %s", format_address((host, port)))
        self._start_announcer(port)

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "server not started"
        host, port = self._listener.getsockname()[:2]
        return host, port

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
        )

    # --- connections ---------------------------------------------------------------------

    def assign_sender(self) -> SendLoop:
        """The sender thread for a new connection (round robin)."""
        return self.senders[next(self._next_sender) % len(self.senders)]

    def forget(self, conn: Connection) -> None:
        with self._conn_lock:
            self._connections.discard(conn)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            try:
                while not self._stopping.is_set():
                    for key, _ in selector.select(self._next_expiry()):
                        if key.fileobj is self._listener:
                            self._accept_pending(selector)
                        elif key.fileobj is not self._wake_r:
                            self._first_bytes(selector, key.fileobj)  # type: ignore[arg-type]
                    self._expire_waiting(selector)
            finally:
                self._listener.close()
                self._close_waiting(Goodbye(self._shutdown_reason))

    def _accept_pending(self, selector: selectors.BaseSelector) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving the others
                log.error("accept failed: %s", exc)
                time.sleep(0.05)
                return
            refusal = self._refusal(address)
            if refusal is None:
                with self._conn_lock:
                    busy = len(self._connections) + len(self._waiting)
                if busy >= self.config.max_clients:
                    limit = self.config.max_clients
                    refusal = RemoteProtocolError(
                        ErrorCode.SERVER_FULL,
                        f"server full ({limit} clients), try again later",
                        fatal=True,
                    )
            if refusal is not None:
                self._refuse(sock, address, refusal)
                continue
            sock.setblocking(False)
            self._waiting[sock] = (address, time.monotonic() + self.config.hello_timeout)
            selector.register(sock, selectors.EVENT_READ)
            log.debug("%s: connected", format_address(address))

    def _first_bytes(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        """A waiting socket has something to say: from now on it has a reader thread."""
        selector.unregister(sock)
        address, deadline = self._waiting.pop(sock)
        conn = Connection(sock, address, self, registration_deadline=deadline)
        with self._conn_lock:
            self._connections.add(conn)
        conn.start()

    def _next_expiry(self) -> float | None:
        if not self._waiting:
            return None
        soonest = min(deadline for _, deadline in self._waiting.values())
        return max(0.0, soonest - time.monotonic())

    def _expire_waiting(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        expired = [sock for sock, (_, deadline) in self._waiting.items() if deadline <= now]
        for sock in expired:
            address, _ = self._waiting.pop(sock)
            selector.unregister(sock)
            limit = self.config.hello_timeout
            error = RemoteProtocolError(
                ErrorCode.HELLO_TIMEOUT, f"not registered within {limit:g} s", fatal=True
            )
            log.warning("%s: %s: %s", format_address(address), error.code, error.message)
            _send_and_close(sock, ErrorReply.from_exception(error))

    def _close_waiting(self, farewell: Goodbye) -> None:
        for sock in list(self._waiting):
            _send_and_close(sock, farewell)
        self._waiting.clear()

    def _refusal(self, address: object) -> RemoteProtocolError | None:
        try:
            self.state.check_address(format_address(address))
        except RemoteProtocolError as exc:
            return exc
        return None

    def _refuse(self, sock: socket.socket, address: object, refusal: RemoteProtocolError) -> None:
        log.warning("%s: refused: %s", format_address(address), refusal.message)
        _send_and_close(sock, ErrorReply.from_exception(refusal))


def _send_and_close(sock: socket.socket, message: ErrorReply | Goodbye) -> None:
    """One small frame to a socket nobody reads from yet, then close it (never blocks)."""
    try:
        sock.setblocking(False)
        sock.send(encode_frame(encode_message(message)))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
