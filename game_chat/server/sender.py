"""Sender threads: they write whatever the fan-out could not send at once (outbox.py).

Each :class:`SendLoop` is one thread serving many connections (the server runs a few and deals
connections out between them, so the kernel half of ``send`` runs on more than one core while
the GIL is released). Outboxes tell their loop when they have data; the loop sends each
connection's whole queue in one non-blocking ``send`` (a burst of frames costs one system call,
not one per frame) and parks connections whose socket buffer is full in a selector until they
can take more. A client that stops reading therefore costs nothing but its own bounded outbox,
and no other connection ever waits for it.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections import deque
from typing import Protocol

from .outbox import BLOCKED, BUSY, MORE, Outbox

log = logging.getLogger("game_chat.server")


class Sendable(Protocol):
    """What the sender needs from a connection."""

    sock: socket.socket
    outbox: Outbox
    address: str

    def closed_by_sender(self) -> None:
        """Called once, on the sender thread, after the socket was closed."""


class SendLoop:
    """Drains outboxes into sockets on one background thread."""

    def __init__(self, name: str = "chat-sender") -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        # Requests from other threads. deque.append/popleft are atomic, so producers never
        # take a lock; they only write to the wake-up socket when the thread is asleep.
        self._ready: deque[Sendable] = deque()
        self._cut: deque[Sendable] = deque()  # outbox overflowed: disconnect now
        self._finishing: deque[tuple[Sendable, float]] = deque()  # (conn, linger seconds)
        self._sleeping = False
        self._stop = False
        # Sender-thread-only state:
        self._blocked: set[Sendable] = set()  # registered for EVENT_WRITE
        self._closing: dict[Sendable, float] = {}  # conn -> monotonic deadline for close
        self._dead: set[Sendable] = set()  # socket broken or cut: never send again
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    # --- called from any thread ----------------------------------------------------------

    def ready(self, conn: Sendable) -> None:
        """``conn``'s outbox went from empty to non-empty."""
        self._ready.append(conn)
        if self._sleeping:
            self._wake()

    def cut(self, conn: Sendable) -> None:
        """Disconnect ``conn`` now, dropping what it has queued (its outbox overflowed)."""
        self._cut.append(conn)
        self._wake()

    def finish(self, conn: Sendable, linger: float) -> None:
        """The reader is done with ``conn``: send what is queued (for at most ``linger``
        seconds), then close the socket."""
        self._finishing.append((conn, linger))
        self._wake()

    def stop(self, timeout: float) -> None:
        """Close what is still open once its linger ends, then end the thread."""
        self._stop = True
        self._wake()
        self._thread.join(timeout)

    def _wake(self) -> None:
        self._sleeping = False
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full: the thread is awake anyway; closed: it has stopped
            pass

    # --- sender thread ---------------------------------------------------------------------

    def _run(self) -> None:
        busy: set[Sendable] = set()  # connections that still had data after their last send
        try:
            while True:
                work = busy
                busy = set()
                ready = self._ready
                while ready:
                    work.add(ready.popleft())
                if not (work or self._cut or self._finishing):
                    self._sleeping = True
                    # A producer that saw _sleeping still False has appended already.
                    if self._ready or self._cut or self._finishing:
                        self._sleeping = False
                        continue
                    if self._stop and not self._closing:
                        return
                    timeout = self._select_timeout()
                else:
                    timeout = 0
                for key, _ in self._selector.select(timeout):
                    if key.data is None:
                        self._drain_wakeups()
                    else:
                        self._selector.unregister(key.fileobj)
                        self._blocked.discard(key.data)
                        work.add(key.data)
                self._sleeping = False
                while self._cut:
                    self._break(self._cut.popleft(), "send queue exceeded")
                now = time.monotonic()
                while self._finishing:
                    conn, linger = self._finishing.popleft()
                    self._closing[conn] = now + (0 if conn in self._dead else linger)
                    work.add(conn)
                for conn in work:
                    if conn not in self._blocked and self._flush(conn):
                        busy.add(conn)
                self._close_expired()
        finally:
            for conn in list(self._closing):
                self._close(conn)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _select_timeout(self) -> float | None:
        if not self._closing:
            return None
        return max(0.0, min(self._closing.values()) - time.monotonic())

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _flush(self, conn: Sendable) -> bool:
        """One send of everything queued; True if more is waiting afterwards."""
        if conn in self._dead:
            return False
        sock = conn.sock  # a socket closed meanwhile fails in send: handled like a break
        try:
            result = conn.outbox.send_to(sock)
        except OSError as exc:
            self._break(conn, f"send failed: {exc.strerror or exc}")
            return False
        if result in (MORE, BUSY):  # BUSY: a write-through is under way; look
            return True  # again next round (never close a socket another thread sends on)
        if result == BLOCKED:
            self._selector.register(sock, selectors.EVENT_WRITE, conn)
            self._blocked.add(conn)
            return False
        if conn in self._closing:
            self._close(conn)
        return False

    def _break(self, conn: Sendable, reason: str) -> None:
        """Stop sending to ``conn`` and wake its reader (which then calls finish)."""
        if conn in self._dead:
            return
        self._dead.add(conn)
        if conn.outbox.overflowed:
            log.warning("%s: disconnected: %s", conn.address, reason)
        if conn in self._blocked:
            self._selector.unregister(conn.sock)
            self._blocked.discard(conn)
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if conn in self._closing:
            self._close(conn)

    def _close_expired(self) -> None:
        if not self._closing:
            return
        now = time.monotonic()
        for conn in [c for c, deadline in self._closing.items() if deadline <= now]:
            if conn.outbox.sending:  # a write-through is in its send: close after it
                continue
            self._close(conn)

    def _close(self, conn: Sendable) -> None:
        del self._closing[conn]
        self._dead.discard(conn)
        if conn in self._blocked:
            self._selector.unregister(conn.sock)
            self._blocked.discard(conn)
        conn.outbox.close_tls(conn.sock)  # TLS: a close_notify after the last frame
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.sock.close()
        conn.closed_by_sender()
