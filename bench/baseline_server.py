#!/usr/bin/env python3
"""The straightforward thread-per-client chat server, for comparison in bench/fanout.py.

    python bench/baseline_server.py --port 0

The classic tutorial design: one thread per client; each received line is ``sendall()``'d to
every other client from the sender's own thread while holding the clients lock, then the sender
gets ``Message was Sent!``. Same 64-byte length header framing and plain dialect as game_chat
(server-assigned ``guest-N`` nicks, ``NAME: TEXT`` lines, ``Client Disconnected`` ends the
session). Lines starting with ``/`` are commands and are not broadcast: ``/who`` answers
``* Users: ...`` and ``* You are NICK`` (how the bench clients learn their nick), ``/quit`` ends
the session, others are ignored. TCP_NODELAY is on, as in game_chat. A client that stops reading
stalls every sender: that is the design being compared against.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import socket
import sys
import threading

HEADER_SIZE = 64
MAX_PAYLOAD = 8 * 1024
SENT_REPLY = b"Message was Sent!"
DISCONNECT = frozenset({"Client Disconnected", "!DISCONNECT", "/quit"})


def encode_frame(payload: bytes) -> bytes:
    return b"%-64d" % len(payload) + payload


def recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """Read exactly ``size`` bytes; None if the peer closed first."""
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> bytes | None:
    """The next frame's payload; None at end of stream or on a bad header."""
    header = recv_exact(sock, HEADER_SIZE)
    if header is None:
        return None
    digits = header.strip(b" \x00")
    if not digits.isdigit() or int(digits) > MAX_PAYLOAD:
        return None
    return recv_exact(sock, int(digits))


class BaselineServer:
    """Thread per client; broadcast from the sender's thread under one lock."""

    def __init__(self, host: str, port: int) -> None:
        self.listener = socket.create_server((host, port), backlog=1024)
        self.clients: dict[socket.socket, str] = {}
        self.lock = threading.Lock()
        self.numbers = itertools.count(1)
        self.stopping = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return host, port

    def serve(self) -> None:
        """Accept until :meth:`stop`; each client gets its own daemon thread."""
        self.listener.settimeout(0.5)
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                raise
            threading.Thread(target=self.handle, args=(sock,), daemon=True).start()
        self.listener.close()

    def stop(self) -> None:
        self.stopping.set()

    def handle(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        nick = f"guest-{next(self.numbers)}"
        with self.lock:
            self.clients[sock] = nick
        try:
            self.read_loop(sock, nick)
        except OSError:
            pass
        finally:
            with self.lock:
                self.clients.pop(sock, None)
            sock.close()

    def read_loop(self, sock: socket.socket, nick: str) -> None:
        while (payload := recv_frame(sock)) is not None:
            text = payload.decode("utf-8", errors="replace").strip()
            if text in DISCONNECT:
                return
            if text == "/who":
                self.who(sock, nick)
            if not text or text.startswith("/"):
                continue
            self.broadcast(sock, encode_frame(f"{nick}: {text}".encode()))

    def broadcast(self, sender: socket.socket, frame: bytes) -> None:
        """The classic design: sendall to everyone else, then the ack, all under the lock."""
        with self.lock:
            for sock in list(self.clients):
                if sock is not sender:
                    self.send_locked(sock, frame)
            self.send_locked(sender, encode_frame(SENT_REPLY))

    def who(self, sock: socket.socket, nick: str) -> None:
        with self.lock:
            users = ", ".join(self.clients.values())
            self.send_locked(sock, encode_frame(f"* Users: {users}".encode()))
            self.send_locked(sock, encode_frame(f"* You are {nick}".encode()))

    def send_locked(self, sock: socket.socket, frame: bytes) -> None:
        """sendall with the lock held; a failed client is dropped (its reader ends on EOF)."""
        try:
            sock.sendall(frame)
        except OSError:
            self.clients.pop(sock, None)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Thread-per-client baseline chat server.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default 0: any free)")
    args = parser.parse_args(argv)
    server = BaselineServer(args.host, args.port)
    host, port = server.address
    print(f"baseline server listening on {host}:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
