"""A client connection: its socket, its reader thread, its outbox.

The reader thread moves bytes: socket -> :class:`FrameDecoder` -> :class:`Session`. It
writes to other connections' sockets only when it commits a batch of lines (group_commit.py)
and then only with non-blocking sends of idle outboxes (outbox.py: what a socket refuses goes
to the sender thread); it never closes a socket (the sender does that after flushing), so a
slow or dead peer only ever blocks its own reader.

Over TLS the reader feeds what it receives to the connection's
:class:`~game_chat.protocol.tls.TlsChannel` and reads the plaintext out; it never sends (bytes
the channel makes while reading wake the sender thread, which alone sends them, see
outbox.py). The handshake was done before, in the accept thread's selector (server.py).
"""

from __future__ import annotations

import functools
import logging
import select
import socket
import threading
import time
from typing import TYPE_CHECKING

from ..irc.lines import LineDecoder
from ..protocol.errors import ConnectionLost, ErrorCode, RemoteProtocolError
from ..protocol.framing import SELECT_HEADER_SIZE, FrameDecoder
from ..protocol.tls import TlsChannel, TlsError
from .members import Dialect
from .outbox import Outbox
from .session import Session

if TYPE_CHECKING:
    from ..irc.session import IrcSession
    from .server import ChatServer

log = logging.getLogger("game_chat.server")

_RECV_SIZE = 65536


def tune_keepalive(sock: socket.socket, idle: int, interval: int, count: int) -> None:
    """TCP keepalive that notices a vanished peer (lid closed, cable pulled) within
    ``idle + interval * count`` seconds, also while data to it waits unacknowledged."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = [
        ("TCP_KEEPIDLE", idle),  # Linux, Windows 10+
        ("TCP_KEEPALIVE", idle),  # macOS
        ("TCP_KEEPINTVL", interval),
        ("TCP_KEEPCNT", count),
        ("TCP_USER_TIMEOUT", (idle + interval * count) * 1000),  # Linux, milliseconds
    ]
    for name, value in options:
        option = getattr(socket, name, None)
        if option is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:  # not on this system: the defaults stay
                pass


def format_address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


class _ReadWaiter:
    """Waits until one socket is readable: poll() where it exists (no FD_SETSIZE limit)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._poll = select.poll() if hasattr(select, "poll") else None
        if self._poll is not None:
            self._poll.register(sock, select.POLLIN)

    def wait(self, timeout: float | None) -> bool:
        if self._poll is not None:
            return bool(self._poll.poll(None if timeout is None else timeout * 1000))
        return bool(select.select([self._sock], [], [], timeout)[0])


class Connection:
    """One accepted socket. Created and started by :class:`ChatServer`."""

    def __init__(
        self,
        sock: socket.socket,
        address: object,
        server: ChatServer,
        registration_deadline: float | None = None,
        tls: TlsChannel | None = None,
        unsent: bytes = b"",
        irc: bool = False,
    ) -> None:
        """``tls``: the connection's TLS channel, its handshake done (None: plaintext);
        ``unsent``: handshake bytes the accept thread could not send yet; ``irc``: an IRC
        client (lines, not frames: docs/IRC.md)."""
        config = server.config
        self.sock = sock
        self.address = format_address(address)
        self._server = server
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see PERFORMANCE.md
        tune_keepalive(
            sock, config.keepalive_idle, config.keepalive_interval, config.keepalive_count
        )
        if config.socket_send_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, config.socket_send_buffer)
        self.sender = sender = server.assign_sender()
        # partial, not lambda: on_ready runs once per recipient of every broadcast.
        self.outbox = Outbox(
            config.send_queue_bytes,
            on_ready=functools.partial(sender.ready, self),
            on_overflow=functools.partial(sender.cut, self),
            sock=sock,
            tls=tls,
        )
        self.tls = tls
        self.outbox.put_ciphertext(unsent)
        self._decoder: FrameDecoder | LineDecoder
        self.session: Session | IrcSession
        if irc:
            # (imported here: game_chat.irc.session imports the server package, which
            # imports this module)
            from ..irc.session import IrcSession

            self.session = IrcSession(server.state, self.outbox, self.address, self.kick)
            self._decoder = LineDecoder()
        else:
            self.session = Session(server.state, self.outbox, self.address, self.kick)
            # 64-byte headers, or the select tutorial's 10: the first bytes tell (framing.py).
            self._decoder = FrameDecoder(config.limits.max_frame_bytes, header_size=None)
        self._hello_timeout = config.hello_timeout
        self._ping_interval = config.ping_interval
        self._ping_timeout = config.ping_timeout
        #: time.monotonic() by which the peer must be a member (counted from accept).
        self._deadline = registration_deadline
        self.thread = threading.Thread(target=self._run, name=f"chat-{self.address}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop_reading(self) -> None:
        """Make the reader thread see end-of-input (used at server shutdown)."""
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def kick(self, reason: str) -> None:
        """An operator removed this client: what is queued (the error) goes out, then close."""
        log.info("%s: %s", self.address, reason)
        self.stop_reading()

    def closed_by_sender(self) -> None:
        self._server.forget(self)
        # Nothing will use them again: break the cycles through this connection (see
        # Outbox.detach) so that refcounting frees it now.
        self.outbox.detach()
        self.session.detach()

    # --- reader thread -------------------------------------------------------------------

    def _run(self) -> None:
        reason = None
        try:
            reason = self._read_loop()
        except Exception:  # a bug of ours: log it here, once, and drop only this client
            log.exception("%s: internal error in connection handler", self.address)
            reason = "internal server error"
        finally:
            if self.outbox.overflowed:
                reason = "send queue exceeded"
            try:
                self.session.end(reason)
            except Exception:
                log.exception("%s: internal error while leaving", self.address)
            finally:
                # Whatever happened above, the socket must be flushed, closed and forgotten.
                self.outbox.close()
                self.sender.finish(self, self._server.config.linger)

    def _read_loop(self) -> str | None:
        """Read until the session ends; returns the leave reason when it is not the session's."""
        waiter = _ReadWaiter(self.sock)
        deadline = self._deadline or time.monotonic() + self._hello_timeout
        decoder, session, tls = self._decoder, self.session, self.tls
        recv = self.sock.recv if tls is None else functools.partial(self._recv_tls, tls)
        liveness = _Liveness(self._ping_interval, self._ping_timeout)
        while True:
            if session.registered:
                timeout = liveness.check(session) if session.pinged else None
                if timeout is not None and timeout < 0:
                    return "ping timeout"
            else:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    session.reject(
                        RemoteProtocolError(
                            ErrorCode.HELLO_TIMEOUT,
                            f"not registered within {self._hello_timeout:g} s",
                            fatal=True,
                        )
                    )
                    return None
            if not (tls is not None and tls.more) and not waiter.wait(timeout):
                continue
            try:
                data = recv(min(decoder.room, _RECV_SIZE))
            except (BlockingIOError, InterruptedError):
                continue
            except TlsError as exc:
                log.info("%s: connection lost: TLS: %s", self.address, exc)
                return "connection lost"
            except OSError as exc:
                log.info("%s: connection lost: %s", self.address, exc.strerror or exc)
                return "connection lost"
            liveness.heard()
            decoder.receive_data(data)
            if (
                isinstance(decoder, FrameDecoder)
                and decoder.header_size == SELECT_HEADER_SIZE
                and session.dialect != Dialect.SELECT
            ):
                session.use_select_framing()  # type: ignore[union-attr]
            try:
                for frame in decoder.frames():
                    if not session.handle_frame(frame):
                        return None
            except RemoteProtocolError as exc:
                session.settle()
                session.reject(exc)
                return None
            except ConnectionLost as exc:
                log.info("%s: %s", self.address, exc)
                return "connection lost"
            finally:
                # Our lines of this read are answered before we read more: a client can have
                # at most one read's worth of lines waiting for the store.
                session.settle()
            if decoder.closed:
                log.debug("%s: peer closed the connection", self.address)
                return None

    def _recv_tls(self, tls: TlsChannel, size: int) -> bytes:
        """``sock.recv`` over TLS: at most ``size`` bytes of plaintext (``b""``: closed).
        Raises BlockingIOError while no whole record has come (or OSError, TlsError)."""
        data = tls.read(size) if tls.more else None
        if data is None:
            received = self.sock.recv(_RECV_SIZE)
            if not received:  # the end (the channel is not told: it may still send)
                return b""
            tls.receive(received)
            data = tls.read(size)
        if tls.output_waiting:  # never sent from here: the sender thread does it
            self.outbox.wake_sender()
        if data is None:
            raise BlockingIOError
        return data


class _Liveness:
    """Pings a silent rich member, and gives up on one that stays silent (reader thread)."""

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval, self.timeout = interval, timeout
        self._heard = time.monotonic()
        self._pinged: float | None = None

    def heard(self) -> None:
        """Bytes arrived: the peer is alive."""
        self._heard = time.monotonic()
        self._pinged = None

    def check(self, session: Session) -> float | None:
        """Seconds until the next check (None: never); negative once the ping timed out, after
        the peer was told with a fatal ``ping_timeout`` error."""
        if not self.interval:
            return None
        now = time.monotonic()
        if self._pinged is None:
            silent = now - self._heard
            if silent < self.interval:
                return self.interval - silent
            session.ping()
            self._pinged = now
        left = self._pinged + self.timeout - now
        if left <= 0:
            session.reject(
                RemoteProtocolError(
                    ErrorCode.PING_TIMEOUT,
                    f"no answer to a ping within {self.timeout:g} s",
                    fatal=True,
                )
            )
            return -1.0
        return left
