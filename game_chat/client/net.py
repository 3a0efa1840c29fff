"""The client's network layer: a :class:`ChatClient` that any program can use. No pygame here.

One background daemon thread owns the socket: it connects, says hello, reads frames and puts
typed events on :attr:`ChatClient.events` (a ``queue.Queue``), writes what the owner queued,
pings, and reconnects with exponential backoff after an unexpected drop. The owner calls
:meth:`ChatClient.poll` from its own loop; nothing the owner calls waits on the network.

Chat lines and private messages get a local id. Lines typed while disconnected, or sent but not
yet acknowledged when the connection dropped, go out again after reconnecting (the server
delivers a resent line only once). Each line ends as :class:`ChatSent` or :class:`ChatFailed`.
Other commands (:meth:`ChatClient.send`) typed while disconnected go out after the next welcome,
in the order they were given.

With ``tls=True`` (or :class:`~game_chat.client.tls.TlsOptions`) the connection is TLS: the
handshake runs on the network thread before the hello, trust is decided as client/tls.py
says (the system's CAs, else trust on first use), and the same thread then encrypts what it
sends and decrypts what it reads through a :class:`~game_chat.protocol.tls.TlsChannel`.

A reconnection resumes: the hello carries the session token of the last welcome (so a ghost of
our own connection that the server has not noticed yet is taken over, nick and all) and, per
room, the last message id we have (:class:`~game_chat.client.resume.ResumeTracker`). The server
puts us back in those rooms and sends what we missed; a gap too large for its replay is paged
in before the room's newer lines are handed over, so the owner sees every line exactly once.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import random
import secrets
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol.errors import ConnectionLost, ErrorCode, LocalProtocolError, RemoteProtocolError
from ..protocol.framing import FrameDecoder, encode_frame
from ..protocol.limits import DEFAULT_CLIENT_MAX_FRAME_BYTES, Limits
from ..protocol.messages import (
    Ack,
    ChangeNick,
    ChatMessage,
    ClientMessage,
    ErrorReply,
    Goodbye,
    Hello,
    HistoryPage,
    LineSettled,
    ListUsers,
    NickChanged,
    Notice,
    Ping,
    Pong,
    PrivateMessage,
    RoomJoined,
    SendChat,
    SendPrivate,
    SetMemberData,
    UserParted,
    Welcome,
    encode_message,
    parse_server_message,
)
from ..protocol.names import nick_key
from ..protocol.tls import TlsChannel, TlsError, fingerprint
from .events import (
    ChatFailed,
    ChatSent,
    Connected,
    Connecting,
    Disconnected,
    Reconnecting,
    RoundTrip,
)
from .resume import ResumeTracker
from .tls import (
    CERTIFICATE_CHANGED,
    TlsOptions,
    Trust,
    TrustRefused,
    describe_tls_error,
    handshake,
    pinned_notice,
)

log = logging.getLogger("game_chat.client")

#: Refusals that a retry with the same settings cannot fix.
FINAL_REFUSALS = frozenset(
    {
        ErrorCode.NICK_INVALID,
        ErrorCode.BAD_VERSION,
        ErrorCode.BAD_PASSWORD,
        ErrorCode.BANNED,
        ErrorCode.KICKED,
        ErrorCode.REPLACED,  # our session goes on in a newer connection (another window)
        ErrorCode.TLS_REQUIRED,  # the port speaks TLS: clear text will not do
    }
)
#: Seconds before pages of a gap are asked for again after a rate_limited refusal.
_REFILL_DELAY = 1.0
#: Errors after which a history request will not be answered.
_HISTORY_REFUSALS = frozenset(
    {ErrorCode.UNAVAILABLE, ErrorCode.NOT_IN_ROOM, ErrorCode.NO_SUCH_ROOM, ErrorCode.BAD_ROOM}
)
#: Messages the client sends on its own: :meth:`ChatClient.send` refuses them.
_INTERNAL = (Hello, Ping, Pong, Goodbye)

#: What goes out with a local id and ends as ChatSent or ChatFailed.
Tracked = SendChat | SendPrivate


@dataclass(frozen=True)
class _Outcome:
    """How one connection attempt ended."""

    reason: str
    retry: bool
    code: str | None = None


def describe_socket_error(exc: OSError) -> str:
    """A connection error in plain words."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, socket.gaierror):
        return "unknown host name"
    return exc.strerror or str(exc)


class ChatClient:
    """A rich-dialect chat client running on a background thread.

    >>> client = ChatClient("localhost", 5050, "alice")
    >>> client.start()
    >>> local_id = client.send_chat("hi")      # never blocks
    >>> client.send(JoinRoom("#team"))          # any other command
    >>> client.send_private("bob", "psst")      # acked like a chat line
    >>> for event in client.poll(): ...         # from your own loop
    >>> client.close()
    """

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        password: str | None = None,
        *,
        reconnect: bool = True,
        connect_timeout: float = 5.0,
        ping_interval: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        random_source: Callable[[], float] = random.random,
        alternates: Sequence[tuple[str, int]] = (),
        tls: bool | TlsOptions = False,
    ) -> None:
        """``alternates``: other servers of the same cluster (docs/SCALING.md). When a
        connection fails or drops, the next one in the list is tried at once (the first
        again after the last); only when a whole round fails does the client back off. It
        resumes on whichever server answers.

        ``tls``: connect with TLS (True, or :class:`TlsOptions` for a CA file, the
        known-servers file, a fingerprint to accept); every server of the list speaks it."""
        self.host, self.port = host, port
        #: Every server this client may use: (host, port) first, then the alternates.
        self.servers: list[tuple[str, int]] = [(host, port), *alternates]
        self.nick = nick
        self.password = password
        self.reconnect = reconnect
        #: TLS settings (None: clear text).
        self.tls = TlsOptions() if tls is True else (tls or None)
        self._trust = Trust(self.tls) if self.tls is not None else None
        #: SHA-256 fingerprint of the server's certificate on the current (or last) TLS
        #: connection.
        self.tls_fingerprint: str | None = None
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self._random = random_source
        #: Events for the owner, oldest first. Prefer :meth:`poll`.
        self.events: queue.Queue[Any] = queue.Queue()
        self.limits: Limits | None = None
        self.server_name: str | None = None
        self.rtt_ms: float | None = None
        self.connected = False
        #: True once a hello was accepted: from then on, drops are followed by reconnections.
        self.connected_before = False
        self._lock = threading.Lock()
        # local id -> the line (without its id), in send order
        self._unacked: OrderedDict[int, Tracked] = OrderedDict()
        # Network thread only: the rooms we are in and what we have of each (the resume of
        # the next hello); the session token and store of the last welcome.
        self._resume = ResumeTracker()
        self._session: str | None = None
        self._store: str | None = None
        # Commands given while disconnected: (sequence number, frame); sent once, after welcome.
        self._deferred: list[tuple[int, bytes]] = []
        self._transmitted: set[int] = set()  # unacked local ids already sent once
        self._local_ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)  # makes our ids unique across clients
        self._sendbuf = bytearray()  # frames for the socket; the network thread sends them
        self._closing = threading.Event()
        self._goodbye_reason = ""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="chat-client", daemon=True)

    # --- owner's API (any thread, never blocks on the network) ----------------------------

    def start(self) -> None:
        self._thread.start()

    def poll(self, limit: int | None = None) -> list[Any]:
        """Every event waiting now (at most ``limit``), without blocking."""
        out: list[Any] = []
        while limit is None or len(out) < limit:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                break
        return out

    def send_chat(self, text: str, room: str | None = None, action: bool = False) -> int:
        """Queue a chat line to ``room`` (None: the lobby); returns its local id (see ChatSent /
        ChatFailed). ``action``: a "/me" line."""
        return self._track(SendChat(text, room=room, action=action))

    def send_private(self, to: str, text: str, action: bool = False) -> int:
        """Queue a private message to ``to``; returns its local id, like :meth:`send_chat`."""
        return self._track(SendPrivate(to, text, action=action))

    def send(self, message: ClientMessage) -> int | None:
        """Send any command message (JoinRoom, SetAway, Kick, ...): now, or after the next
        welcome if disconnected. Chat lines and private messages are tracked as by
        :meth:`send_chat` and their local id returned; None for the others. Use :meth:`close`
        to leave (a Goodbye sent here would only be followed by a reconnection)."""
        if isinstance(message, SendChat | SendPrivate):
            return self._track(dataclasses.replace(message, id=None, retry=False))
        if isinstance(message, _INTERNAL):
            raise LocalProtocolError(f"{type(message).__name__} is sent by the client itself")
        self._send_now(message)
        return None

    def set_member_data(self, room: str, data: dict[str, Any]) -> None:
        """Set your key-value pairs in ``room`` (merged; a None value removes a key). Everyone
        in the room gets a MemberData event with the result."""
        self._send_now(SetMemberData(room, data))

    def change_nick(self, nick: str) -> None:
        self._send_now(ChangeNick(nick))

    def request_users(self) -> None:
        self._send_now(ListUsers())

    @property
    def pending_count(self) -> int:
        """Chat lines not yet confirmed by the server."""
        with self._lock:
            return len(self._unacked)

    def close(self, reason: str = "", timeout: float = 1.0) -> None:
        """Say goodbye, stop the thread (waits at most ``timeout`` seconds)."""
        self._goodbye_reason = reason
        self._closing.set()
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # --- internals: any thread --------------------------------------------------------------

    def _track(self, message: Tracked) -> int:
        with self._lock:
            local_id = next(self._local_ids)
            self._unacked[local_id] = message
            if self.connected:
                self._sendbuf += self._chat_frame(local_id, message)
        self._wake()
        return local_id

    def _send_now(self, message: Any) -> None:
        """Send a non-chat message now, or after the next welcome, in the order it was given."""
        frame = encode_frame(encode_message(message))
        with self._lock:
            if self.connected:
                self._sendbuf += frame
            else:
                self._deferred.append((next(self._local_ids), frame))
        self._wake()

    def _chat_frame(self, local_id: int, message: Tracked) -> bytes:
        """The frame for a tracked line; one sent before on an earlier connection is a retry."""
        retry = local_id in self._transmitted
        self._transmitted.add(local_id)
        client_id = f"{self._id_prefix}-{local_id}"
        return encode_frame(encode_message(dataclasses.replace(message, id=client_id, retry=retry)))

    def _forget(self, local_id: int) -> bool:
        """The server answered for this line: stop tracking it. False if it was not ours."""
        with self._lock:
            self._transmitted.discard(local_id)
            return self._unacked.pop(local_id, None) is not None

    def _local_id(self, client_id: object) -> int | None:
        if isinstance(client_id, str) and client_id.startswith(self._id_prefix + "-"):
            tail = client_id[len(self._id_prefix) + 1 :]
            if tail.isdigit():
                return int(tail)
        return None

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):  # full (already awake) or closed (stopped)
            pass

    def _emit(self, event: Any) -> None:
        self.events.put(event)

    # --- network thread -----------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        tries = 0  # connections tried in all: the next server of the list is servers[tries % n]
        failed = 0  # failures since the last welcome (the drop of a welcomed connection counts)
        try:
            while not self._closing.is_set():
                attempt += 1
                self.host, self.port = self.servers[tries % len(self.servers)]
                tries += 1
                self._emit(Connecting(self.host, self.port, attempt))
                outcome, welcomed = self._connect_once()
                self.connected_before = self.connected_before or welcomed
                if welcomed:
                    attempt, failed = 1, 1
                else:
                    failed += 1
                if self._closing.is_set():
                    break
                # A server of the list not tried since the last welcome is tried at once, even
                # before the first welcome (the first of the list may be the one that is down).
                untried = failed < len(self.servers)
                retry = self.reconnect and outcome.retry and (self.connected_before or untried)
                self._emit(Disconnected(outcome.reason, retry, outcome.code))
                if not retry:
                    self._fail_unacked(f"not sent: {outcome.reason}")
                    return
                delay = 0.0 if untried else self._backoff(max(1, failed // len(self.servers)))
                self._emit(Reconnecting(attempt, delay))
                if self._closing.wait(delay):
                    break
            self._emit(Disconnected("closed", will_retry=False))
            self._fail_unacked("not sent: the chat was closed")
        finally:
            self._wake_r.close()
            self._wake_w.close()

    def _tcp(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            raise
        return sock

    def _open(self) -> tuple[socket.socket | None, TlsChannel | None]:
        """A connected socket, and its TLS channel with the handshake done and the server's
        certificate trusted (client/tls.py). A server the system does not vouch for is tried
        again for its pin; a pinned one showing another certificate gets one try against the
        system's CAs before it is refused (TrustRefused). (None, None): closed meanwhile."""
        trust = self._trust
        if trust is None:
            return self._tcp(), None
        host, port = self.host, self.port
        mode, verify_failed = trust.first_mode(host, port), False
        mismatch: TrustRefused | None = None
        while True:
            sock = self._tcp()
            try:
                channel = TlsChannel(trust.context(mode), server_side=False, server_hostname=host)
                deadline = time.monotonic() + self.connect_timeout
                if not handshake(sock, channel, deadline, self._wake_r, self._closing.is_set):
                    sock.close()
                    return None, None
            except TlsError as exc:
                sock.close()
                if not (exc.verify_failed and mode == Trust.VERIFY):
                    raise
                verify_failed = True
                trust.unverified(host, port)
                if mismatch is not None:
                    raise mismatch from None
                mode = Trust.PIN
                continue
            except BaseException:
                sock.close()
                raise
            der = channel.peer_certificate()
            try:
                pinned = trust.accept(host, port, der, verified=mode == Trust.VERIFY)
            except TrustRefused as exc:
                sock.close()
                if verify_failed or exc.code != CERTIFICATE_CHANGED:
                    raise
                mismatch, mode = exc, Trust.VERIFY
                continue
            self.tls_fingerprint = fingerprint(der or b"")
            if pinned is not None:
                self._emit(pinned)
                self._emit(Notice(pinned_notice(pinned)))
            return sock, channel

    def _backoff(self, attempt: int) -> float:
        """0.5 s doubling, each with +-25 % jitter so clients don't reconnect in step, and
        never more than ``backoff_max`` (10 s), jitter included."""
        base = min(self.backoff_max, self.backoff_initial * 2 ** max(0, attempt - 1))
        return min(self.backoff_max, base * (0.75 + 0.5 * self._random()))

    def _fail_unacked(self, reason: str) -> None:
        with self._lock:
            failed = list(self._unacked)
            self._unacked.clear()
            self._transmitted.clear()
        for local_id in failed:
            self._emit(ChatFailed(local_id, reason))

    def _connect_once(self) -> tuple[_Outcome, bool]:
        """One connection: connect, hello, chat until it ends. Returns (outcome, welcomed)."""
        try:
            sock, channel = self._open()
        except TrustRefused as exc:
            log.warning("%s", exc.message)
            self._emit(exc.event)
            return _Outcome(exc.message, retry=False, code=exc.code), False
        except TlsError as exc:
            return _Outcome(describe_tls_error(exc), retry=True), False
        except OSError as exc:
            return _Outcome(describe_socket_error(exc), retry=True), False
        if sock is None:  # closed during the TLS handshake
            return _Outcome("closed", retry=False), False
        try:
            return _Connection(self, sock, channel).run()
        finally:
            with self._lock:
                self.connected = False
                self._sendbuf.clear()
            self._resume.connection_lost()
            sock.close()


class _Connection:
    """The life of one socket, on the network thread."""

    def __init__(
        self, client: ChatClient, sock: socket.socket, tls: TlsChannel | None = None
    ) -> None:
        self.client = client
        self.sock = sock
        self.tls = tls
        self._cipher = bytearray()  # TLS: encrypted bytes not sent yet (go before new ones)
        self.decoder = FrameDecoder(DEFAULT_CLIENT_MAX_FRAME_BYTES)
        self.welcomed = False
        self.last_received = time.monotonic()
        self.ping_sent_at: float | None = None
        self.next_ping = time.monotonic() + client.ping_interval
        #: When to ask again for the pages of open gaps (a request was refused: too fast).
        self.refill_gaps_at: float | None = None

    def run(self) -> tuple[_Outcome, bool]:
        client = self.client
        hello = Hello(
            client.nick,
            password=client.password,
            session=client._session,
            store=client._store,
            resume=client._resume.points() if client.connected_before else None,
        )
        self.sock.settimeout(client.connect_timeout)
        try:
            frame = encode_frame(encode_message(hello))
            self.sock.sendall(frame if self.tls is None else self.tls.wrap(frame))
        except OSError as exc:
            return _Outcome(describe_socket_error(exc), retry=True), False
        self.sock.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            selector.register(client._wake_r, selectors.EVENT_READ)
            try:
                return self._loop(selector), self.welcomed
            except RemoteProtocolError as exc:
                return _Outcome(f"the server sent bad data: {exc.message}", retry=True), (
                    self.welcomed
                )

    def _loop(self, selector: selectors.BaseSelector) -> _Outcome:
        client = self.client
        deadline = time.monotonic() + client.connect_timeout
        writing = False
        while True:
            if client._closing.is_set():
                return self._say_goodbye()
            now = time.monotonic()
            if not self.welcomed and now > deadline:
                return _Outcome("the server did not answer in time", retry=True)
            if self.welcomed:
                outcome = self._keepalive(now)
                if outcome is not None:
                    return outcome
            with client._lock:
                want_write = bool(client._sendbuf)
            if self.tls is not None:
                want_write = want_write or bool(self._cipher) or self.tls.output_waiting
            if want_write != writing:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
                selector.modify(self.sock, events)
                writing = want_write
            timeout = max(
                0.0, min(deadline if not self.welcomed else self.next_ping, now + 1) - now
            )
            for key, mask in selector.select(timeout):
                if key.fileobj is client._wake_r:
                    self._drain_wakeups()
                    continue
                if mask & selectors.EVENT_WRITE:
                    outcome = self._write()
                    if outcome is not None:
                        return outcome
                if mask & selectors.EVENT_READ:
                    outcome = self._read()
                    if outcome is not None:
                        return outcome

    def _drain_wakeups(self) -> None:
        try:
            while self.client._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _keepalive(self, now: float) -> _Outcome | None:
        interval = self.client.ping_interval
        if now - self.last_received > 3 * interval:
            return _Outcome("the server stopped answering", retry=True)
        if self.refill_gaps_at is not None and now >= self.refill_gaps_at:
            self.refill_gaps_at = None
            self._request(self.client._resume.requests())
        if now >= self.next_ping:
            self.next_ping = now + interval
            self.ping_sent_at = now
            with self.client._lock:
                self.client._sendbuf += encode_frame(encode_message(Ping(round(now * 1000))))
        return None

    def _write(self) -> _Outcome | None:
        client = self.client
        if self.tls is not None:
            return self._write_tls(self.tls)
        with client._lock:
            try:
                sent = self.sock.send(client._sendbuf)
            except BlockingIOError:
                return None
            except OSError as exc:
                return _Outcome(describe_socket_error(exc), retry=True)
            del client._sendbuf[:sent]
        return None

    def _write_tls(self, tls: TlsChannel) -> _Outcome | None:
        """Encrypt what is queued, once what was encrypted before has gone, and send."""
        client = self.client
        try:
            if not self._cipher:
                with client._lock:
                    plain = bytes(client._sendbuf)
                    client._sendbuf.clear()
                self._cipher += tls.wrap(plain)
            sent = self.sock.send(self._cipher)
        except BlockingIOError:
            return None
        except OSError as exc:
            return _Outcome(describe_socket_error(exc), retry=True)
        del self._cipher[:sent]
        return None

    def _read(self) -> _Outcome | None:
        size = 65536 if self.tls is not None else min(self.decoder.room, 65536)
        try:
            data = self.sock.recv(size)
        except BlockingIOError:
            return None
        except OSError as exc:
            return _Outcome(describe_socket_error(exc), retry=True)
        self.last_received = time.monotonic()
        if self.tls is None or not data:  # the end: the channel is not told
            return self._take(data)
        try:
            self.tls.receive(data)
            while (plain := self.tls.read(self.decoder.room)) is not None:
                outcome = self._take(plain)
                if outcome is not None or not plain:
                    return outcome
        except TlsError as exc:
            return _Outcome(f"connection lost: TLS: {exc.message}", retry=True)
        return None

    def _take(self, data: bytes) -> _Outcome | None:
        """Frames out of ``data`` (plaintext; ``b""``: the server closed)."""
        self.decoder.receive_data(data)
        try:
            for payload in self.decoder.frames():
                outcome = self._handle(payload)
                if outcome is not None:
                    return outcome
        except ConnectionLost:
            return _Outcome("connection lost", retry=True)
        if self.decoder.closed:
            return _Outcome("the server closed the connection", retry=True)
        return None

    def _handle(self, payload: bytes) -> _Outcome | None:
        if not payload:
            return None
        if not self.welcomed and not payload.lstrip().startswith(b"{"):
            # Plain lines a slow hello can be sent as a quiet guest (PROTOCOL.md 5.3).
            return None
        message = parse_server_message(payload)
        client = self.client
        if isinstance(message, Welcome):
            self._welcome(message)
        elif isinstance(message, ChatMessage):
            for line in client._resume.chat(message):
                client._emit(line)
        elif isinstance(message, Ack):
            client._resume.other(message)
            local_id = client._local_id(message.id)
            if local_id is not None and client._forget(local_id):
                client._emit(ChatSent(local_id, message.msg_id, message.ts))
        elif isinstance(message, ErrorReply):
            return self._error(message)
        elif isinstance(message, Pong):
            if self.ping_sent_at is not None:
                client.rtt_ms = (time.monotonic() - self.ping_sent_at) * 1000
                self.ping_sent_at = None
                client._emit(RoundTrip(client.rtt_ms))
        elif isinstance(message, Ping):
            with client._lock:
                client._sendbuf += encode_frame(encode_message(Pong(message.token)))
        elif isinstance(message, Goodbye):
            return _Outcome(message.reason or "the server said goodbye", retry=True)
        elif isinstance(message, HistoryPage):
            self._history_page(message)
        else:
            if isinstance(message, NickChanged) and message.old == client.nick:
                client.nick = message.new
            elif isinstance(message, RoomJoined):
                self._request(client._resume.joined(message))
            elif isinstance(message, UserParted) and nick_key(message.nick) == nick_key(
                client.nick
            ):
                client._resume.left(message.room)
            elif isinstance(message, PrivateMessage):
                client._resume.other(message)
            elif isinstance(message, LineSettled):
                client._resume.live(message.id)  # stored in its place among the live lines
            client._emit(message)
        return None

    def _history_page(self, page: HistoryPage) -> None:
        """A page we asked for to fill a gap goes out as the room's lines; the owner's own
        pages (scrolling up) go to the owner as they are."""
        ours = self.client._resume.page(page)
        if ours is None:
            self.client._emit(page)
            return
        lines, requests = ours
        for line in lines:
            self.client._emit(line)
        self._request(requests)

    def _request(self, messages: list[Any]) -> None:
        if messages:
            with self.client._lock:
                for message in messages:
                    self.client._sendbuf += encode_frame(encode_message(message))

    def _welcome(self, welcome: Welcome) -> None:
        client = self.client
        self.welcomed = True
        self.next_ping = time.monotonic()  # a first round trip right away, for the status line
        client.nick = welcome.nick
        client.server_name = welcome.server
        client.limits = Limits.from_dict(welcome.limits)
        # The rooms we were in come back through the hello's resume (their "joined" follows).
        # Ids from another store (a server that lost or changed its history) mean nothing.
        history_reset = client._store is not None and welcome.store != client._store
        if history_reset:
            client._resume.forget_ids()
        client._session, client._store = welcome.session or None, welcome.store or None
        with client._lock:
            client.connected = True
            # Everything not yet confirmed goes (again), in the order it was typed, with the
            # commands given meanwhile in their place.
            queued = [(n, client._chat_frame(n, line)) for n, line in client._unacked.items()]
            queued += client._deferred
            client._deferred = []
            for _, frame in sorted(queued, key=lambda item: item[0]):
                client._sendbuf += frame
        client._emit(
            Connected(welcome.nick, welcome.server, client.limits, welcome.users, history_reset)
        )

    def _error(self, error: ErrorReply) -> _Outcome | None:
        client = self.client
        if error.code in _HISTORY_REFUSALS:  # a gap we asked to fill will not be filled
            for line in client._resume.give_up():
                client._emit(line)
        elif error.code == ErrorCode.RATE_LIMITED and not error.fatal and client._resume.filling:
            # Maybe a page of a gap was refused for coming too fast: ask again in a while
            # (pages that were answered meanwhile are asked twice; the second is ignored).
            self.refill_gaps_at = time.monotonic() + _REFILL_DELAY
        local_id = client._local_id(error.id)
        if local_id is not None:
            client._forget(local_id)
            client._emit(ChatFailed(local_id, error.message))
            return None
        if not self.welcomed:  # our hello was refused
            retry = error.code not in FINAL_REFUSALS and error.code != ErrorCode.NICK_TAKEN
            if error.code == ErrorCode.NICK_TAKEN and client.connected_before:
                retry = True  # most likely our own ghost, not yet noticed by the server
            return _Outcome(error.message, retry=retry, code=error.code)
        client._emit(error)
        if error.fatal:
            return _Outcome(error.message, retry=error.code not in FINAL_REFUSALS, code=error.code)
        return None

    def _say_goodbye(self) -> _Outcome:
        """We are closing: send what is queued plus a goodbye, for at most half a second."""
        client = self.client
        with client._lock:
            # The hello is out (this loop runs only after it): the goodbye follows it, welcome
            # or not yet, so the server hears why even when we close before reading the
            # welcome (it handles the hello, then the goodbye).
            client._sendbuf += encode_frame(encode_message(Goodbye(client._goodbye_reason)))
            data = bytes(client._sendbuf)
        self.sock.settimeout(0.5)
        try:
            if self.tls is not None:  # after what is half sent; then our close_notify
                data = bytes(self._cipher) + self.tls.wrap(data) + self.tls.close_notify()
            self.sock.sendall(data)
            # Close gracefully: stop sending, then read until the server closes its side
            # (it does once it has the goodbye). Closing with unread bytes would send a reset
            # instead, and the server could lose the goodbye and see "connection lost".
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and self.sock.recv(65536):
                pass
        except OSError:
            pass
        return _Outcome("closed", retry=False)
