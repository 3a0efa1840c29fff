"""A connection's bounded outbound queue.

Producers (any thread, usually while holding the chat state's lock) :meth:`Outbox.put`
frames; that never blocks and never touches a socket. The connection's sender thread sends
everything queued as one buffer with :meth:`Outbox.send_to`, so many frames leave in one
system call. Going over the byte limit
marks the outbox overflowed, drops what it held and calls ``on_overflow`` once.

Write-through: the thread that fans a batch of lines out (server/fanout.py) queues with
:meth:`Outbox.put_held`, which does not wake the sender thread, and then, out of the chat
state's lock and of the commit, sends itself with :meth:`Outbox.write_through`: at low load
a line costs one ``send`` per recipient and no thread hop, and while it sends, the next batch
can be committed by another thread. Only what the socket does not take goes to the sender
thread. One thread at a time sends from an outbox (``_sending``), so frames never overtake
each other whoever sends them.

TLS: frames are queued as plaintext (the limit and the overflow count them as before) and
encrypted at send time by the thread that sends, through the connection's
:class:`~game_chat.protocol.tls.TlsChannel`. Since only the thread holding ``_sending``
encrypts and sends, ciphertext leaves in the order it was made. What a send leaves of the
ciphertext waits in ``_left`` (counted in :attr:`size`) and goes before anything new is
encrypted, so a peer that stops reading holds at most one encrypted batch beyond its queue.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .stream import Follower, RoomStream, Variant

if TYPE_CHECKING:
    from ..protocol.tls import TlsChannel

Buffer = bytes | memoryview


def _nothing() -> None:
    pass


#: Results of :meth:`Outbox.send_to`.
#: BUSY: another thread is sending from this outbox right now (it sees what is left).
DRAINED, MORE, BLOCKED, BUSY = 0, 1, 2, 3


class Outbox(Follower):
    """A connection's queue, and its cursors in its rooms' streams (server/stream.py): room
    lines are taken from the streams when something is queued or sent, so they keep their
    place among the connection's other frames."""

    __slots__ = (
        "_failure",
        "_frames",
        "_left",
        "_lock",
        "_on_overflow",
        "_on_ready",
        "_sending",
        "_size",
        "closed",
        "limit_bytes",
        "overflowed",
        "sock",
        "tls",
    )

    def __init__(
        self,
        limit_bytes: int,
        on_ready: Callable[[], None],
        on_overflow: Callable[[], None],
        sock: socket.socket | None = None,
        tls: TlsChannel | None = None,
    ) -> None:
        super().__init__()
        self.limit_bytes = limit_bytes
        self._on_ready = on_ready  # called when the outbox goes from empty to non-empty
        self._on_overflow = on_overflow
        self.sock = sock  # non-blocking, for write_through (None: the sender thread sends all)
        self._lock = threading.Lock()
        self._frames: deque[Buffer] = deque()
        self._size = 0  # bytes queued plus bytes taken by a sending thread, not yet sent
        self._sending = False  # a thread is in send_to: the others leave the outbox to it
        self.closed = False  # no more puts are accepted
        self.overflowed = False
        #: TLS: the channel that encrypts what is sent (None: plaintext).
        self.tls = tls
        self._left: Buffer = b""  # TLS: ciphertext a send did not take yet
        self._failure: OSError | None = None  # TLS: encryption failed; every send raises it

    @property
    def size(self) -> int:
        return self._size

    @property
    def sending(self) -> bool:
        """A thread is in the middle of a send from this outbox (its socket must stay open)."""
        return self._sending

    def put(self, frame: bytes) -> None:
        """Queue a frame; never blocks. Dropped silently once closed."""
        if self.put_held(frame):
            self._on_ready()

    def put_held(self, frame: bytes) -> bool:
        """:meth:`put` without waking the sender thread: True if the outbox was empty, and
        the caller must then call :meth:`write_through` (or the frame would wait there)."""
        with self._lock:
            if self.closed:
                return False
            if self._follows:  # room lines before it: they came first
                tails = self._tails()
                if tails:
                    frame = tails + frame
            was_empty = self._size == 0
            if self._counted(len(frame)):
                self._frames.append(frame)
        if self.overflowed:
            self._on_overflow()
            return False
        return was_empty

    def write_through(self) -> None:
        """After :meth:`put_held` returned True, out of any lock: one non-blocking ``send``
        now, from the calling thread; whatever is left (the socket took only part, or more
        came meanwhile) and any error go to the sender thread, which alone parks sockets
        and breaks connections."""
        sock = self.sock
        if sock is not None:
            try:
                if self.send_to(sock) in (DRAINED, BUSY):  # BUSY: the other one sends it
                    return
            except OSError:
                pass  # put back by send_to: the sender thread meets the error again
        self._on_ready()

    def peer_closed(self) -> bool:
        """The peer has closed (or reset) the connection, whether or not its reader thread
        has seen it yet: a peek at the socket, which takes nothing from the reader. (Bytes
        still unread, such as a TLS close_notify, hide a close until the reader takes them.)"""
        sock = self.sock
        if self.closed or sock is None:
            return self.closed
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # reset, or closed meanwhile
            return True

    def close(self) -> None:
        """Accept no more frames; what is queued still goes out."""
        with self._lock:
            self.closed = True

    def follow(self, wanted: dict[RoomStream, Variant]) -> None:
        """Follow exactly these room streams; what the others held for this connection is
        queued first (the chat state calls this when the member's rooms change)."""
        with self._lock:
            data = self._refollow(wanted)
            if not data or self.closed:
                return
            was_empty = self._size == 0
            self._size += len(data)
            self._frames.append(data)
        if was_empty:
            self._on_ready()

    def check_behind(self) -> None:
        """Cut the connection if its queue and what its rooms hold for it exceed the limit
        (a reader that stopped: the streams cannot drop what it has not taken)."""
        with self._lock:
            if self.closed or not self._follows:
                return
            if self._size + self._behind() <= self.limit_bytes:
                return
            self._overflow_locked()
        self._on_overflow()

    def _gather(self) -> bool:
        """Lock held, about to send: what the streams hold for this connection joins the
        queue. True if that is more than the limit: the outbox overflowed (the caller calls
        ``_on_overflow`` once it has let the lock go)."""
        data = self._tails()
        if not data:
            return False
        if self._counted(len(data)):
            self._frames.append(data)
            return False
        return True

    def _counted(self, size: int) -> bool:
        """Lock held: ``size`` more bytes are queued. False if that is over the limit: the
        outbox overflowed (the caller calls ``_on_overflow`` once it has let the lock go)."""
        self._size += size
        if self._size <= self.limit_bytes:
            return True
        self._overflow_locked()
        return False

    def _overflow_locked(self) -> None:
        """Lock held: over the limit. Everything is dropped and nothing more is taken (the
        caller calls ``_on_overflow`` once it has let the lock go)."""
        self.closed = self.overflowed = True
        self._frames.clear()
        self._left = b""
        self._size = 0
        self._unfollow_all()

    def detach(self) -> None:
        """The connection is closed: forget the callbacks, which point back at it, so that
        it is freed at once rather than by the cycle collector (a server with many short
        connections otherwise holds their garbage, and fragments its heap, in between)."""
        with self._lock:
            self.closed = True
            self._on_ready = self._on_overflow = _nothing
            self._unfollow_all()

    def send_to(self, sock: socket.socket) -> int:
        """Sender only: one non-blocking ``send`` of everything queued.

        Returns :data:`DRAINED` (nothing left), :data:`MORE` (more arrived meanwhile),
        :data:`BLOCKED` (the socket took only part; the rest waits at the head of the queue)
        or :data:`BUSY` (another thread is sending from it: nothing was done). Raises OSError
        if the connection is broken. Taking and sending in one, because it runs once per
        recipient per burst: the hottest path of a broadcast.
        """
        if self.tls is not None:
            return self._send_tls(sock, self.tls)
        with self._lock:
            frames = self._frames
            if self._sending:  # another thread sends: it sees what is left
                return BUSY
            cut = bool(self._follows) and self._gather()
            if not cut:
                if not frames:
                    return DRAINED
                data = frames[0] if len(frames) == 1 else b"".join(frames)
                frames.clear()
                self._sending = True
        if cut:
            self._on_overflow()
            return DRAINED
        return self._send(sock, data)

    def _send(self, sock: socket.socket, data: Buffer) -> int:
        """``_sending`` taken, ``data`` counted in the size and out of the queue: one
        ``send``, and what it left back at the head of the queue. send_to's result."""
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            with self._lock:
                self._sending = False
                if not self.overflowed:
                    self._frames.appendleft(data)
            raise
        with self._lock:
            self._sending = False
            if self.overflowed:  # everything was dropped while we were sending
                return DRAINED
            self._size -= sent
            if sent < len(data):
                self._frames.appendleft(memoryview(data)[sent:])
                return BLOCKED
            # (owed: a room line came while we sent; its flush saw us BUSY and left it to us)
            return MORE if self._size or self._owed() else DRAINED

    def flush_room(self, stream: RoomStream) -> None:
        """A flush of ``stream`` (server/stream.py) reached this member: send what it owes
        us now, as :meth:`write_through`. The common case (in this room only, nothing else
        queued, the room's lines as the others at our place get them) is kept short: it runs
        once per member per flush, and the sooner one member's send follows the last one's,
        the more of them the receiving side takes per wake-up."""
        lock = self._lock
        lock.acquire()
        if self._sending or self._frames or self._left:
            # Somebody sends already, or the socket is full and parked with the sender
            # thread: they take the room's lines along when they next send (_owed). (Trying
            # here would copy the whole queue for nothing at every flush.)
            lock.release()
            return
        follows = self._follows
        sock = self.sock
        if len(follows) != 1 or self.tls or sock is None:
            lock.release()
            self.write_through()
            return
        cursor = stream.cursors.get(self)
        end = stream._end
        if cursor is None or cursor >= end:
            lock.release()
            return
        # (the stream reads its entries once per flush: the others at our place share them)
        _, data, stream.cursors[self] = stream.read(cursor, follows[stream], self)
        if not data:
            lock.release()
            return
        if not self._counted(len(data)):
            lock.release()
            self._on_overflow()
            return
        self._sending = True
        lock.release()
        try:
            if self._send(sock, data) in (DRAINED, BUSY):
                return
        except OSError:
            pass  # put back by _send: the sender thread meets the error again
        self._on_ready()

    # --- TLS ----------------------------------------------------------------------------------

    def put_ciphertext(self, data: bytes) -> None:
        """TLS, before any frame: bytes of the handshake the accept thread could not send
        yet; they go first."""
        if data:
            with self._lock:
                self._left = bytes(self._left) + data
                self._size += len(data)
            self._on_ready()

    def wake_sender(self) -> None:
        """The TLS channel has bytes of its own to send (the reader saw a key update or
        caused an alert): the sender thread sends them, with or without frames."""
        self._on_ready()

    def _send_tls(self, sock: socket.socket, tls: TlsChannel) -> int:
        """:meth:`send_to` over TLS: the ciphertext a send left goes first, alone; otherwise
        everything queued is encrypted at once (with whatever the channel has waiting) and
        sent in one ``send``. Sizes: :attr:`size` counts queued plaintext plus ``_left``."""
        with self._lock:
            if self._sending:
                return BUSY
            if self._failure is not None:
                raise self._failure
            cut = bool(self._follows) and not self.overflowed and self._gather()
            if not cut:
                left, frames = self._left, self._frames
                if left or self.overflowed:
                    plain: Buffer = b""
                elif frames:
                    plain = frames[0] if len(frames) == 1 else b"".join(frames)
                    frames.clear()
                elif tls.output_waiting:
                    plain = b""
                else:
                    return DRAINED
                self._sending = True
        if cut:
            self._on_overflow()
            return DRAINED
        data = left
        try:
            if not left:
                data = tls.wrap(plain)
            sent = sock.send(data) if data else 0
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            with self._lock:
                self._sending = False
                if data is left and not left:  # the encryption failed: the channel is done
                    self._failure = exc
                self._keep_left(data, 0, plain, left)
            raise
        with self._lock:
            self._sending = False
            if self.overflowed:  # everything was dropped while we were sending
                self._left = b""
                return DRAINED
            if self._keep_left(data, sent, plain, left):
                return BLOCKED
            # (owed: a room line came while we sent; its flush saw us BUSY and left it to us)
            return MORE if self._size or self._owed() else DRAINED

    def _keep_left(self, data: Buffer, sent: int, plain: Buffer, left: Buffer) -> bool:
        """Lock held: what ``send`` did not take of ``data`` waits for the next send, and the
        size trades ``plain`` (now encrypted) and ``left`` (now sent) for it. True if some
        is left."""
        if self.overflowed:
            return False
        rest = memoryview(data)[sent:] if sent < len(data) else b""
        self._size += len(rest) - len(plain) - len(left)
        self._left = rest
        return bool(rest)

    def close_tls(self, sock: socket.socket) -> None:
        """Closing: our TLS close_notify, when everything queued has gone and no other
        thread sends (best effort, never blocks; nothing to do without TLS)."""
        tls = self.tls
        if tls is None:
            return
        with self._lock:
            if self._sending or self._left or self._frames or self._failure is not None:
                return
            if self._owed():
                return
            self._sending = True
        try:
            data = tls.close_notify()
            if data:
                sock.send(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sending = False
