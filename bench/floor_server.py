"""The floor of a CPython fan-out, for issue 10's measurements: what any Python server pays.

One thread, one epoll loop, the tutorial's framing, and per recipient nothing but
``sock.send``: no acks, no store, no limits, no slow-consumer handling (a full socket loses
what it could not take, so use it only for paced loads such as peer-bench's b and c, where no
socket fills; the load generator reports any loss). ``--every-ms L`` coalesces: lines read
within L ms go to each member in one ``send`` at the end of the window, as ngIRCd's event
loop ends up doing (about three deliveries per ``write`` in shape c, by ``perf stat``).

    python3 ../shared/peer-bench/run_one.py --server cmd --name floor --mode frame \\
        --server-cmd "python3 bench/floor_server.py --port {port}" --scenario c

It never runs in the product; the figures it gives are in the README (issue 10).
"""

from __future__ import annotations

import argparse
import selectors
import socket
import time

HEADER = 64


def _frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Whole frames at the head of ``buf``, and what is left of it."""
    out = []
    while len(buf) >= HEADER:
        size = int(buf[:HEADER])
        if len(buf) < HEADER + size:
            break
        out.append(buf[: HEADER + size])
        buf = buf[HEADER + size :]
    return out, buf


def serve(host: str, port: int, every: float) -> None:
    listener = socket.create_server((host, port), backlog=1024)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    members: list[socket.socket] = []
    partial: dict[socket.socket, bytes] = {}
    window: list[tuple[socket.socket, bytes]] = []  # (sender, its frames) read in this window
    due: float | None = None

    def broadcast(lines: list[tuple[socket.socket, bytes]]) -> None:
        senders = {sender for sender, _ in lines}
        everyone = b"".join(blob for _, blob in lines)
        for member in members:
            if member in senders:  # nobody gets its own lines back
                blob = b"".join(b for sender, b in lines if sender is not member)
            else:
                blob = everyone
            if blob:
                try:
                    member.send(blob)
                except OSError:
                    pass

    while True:
        timeout = None if due is None else max(0.0, due - time.monotonic())
        for key, _ in selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data is None:
                conn, _ = listener.accept()
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                members.append(conn)
                partial[conn] = b""
                selector.register(conn, selectors.EVENT_READ, 1)
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                members.remove(sock)
                del partial[sock]
                sock.close()
                continue
            frames, partial[sock] = _frames(partial[sock] + data)
            if not frames:
                continue
            if every <= 0:
                broadcast([(sock, b"".join(frames))])
            else:
                window.append((sock, b"".join(frames)))
                if due is None:
                    due = time.monotonic() + every
        if due is not None and time.monotonic() >= due:
            broadcast(window)
            window.clear()
            due = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--every-ms", type=float, default=0.0, help="coalescing window (0: none)")
    args = parser.parse_args()
    serve(args.host, args.port, args.every_ms / 1000)


if __name__ == "__main__":
    main()
