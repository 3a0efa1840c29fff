#!/usr/bin/env python3
"""The classic tutorial's listen-first client against run_server.py, for minutes.

    python bench/listen_first.py --minutes 3

Starts ``run_server.py`` with its defaults (127.0.0.1, port 0, a fresh history file) and
connects the tutorial's client as it is written: connect, then only ``recv`` (64-byte header,
then the payload) until its user types, which here is never. A rich client says a line every
``--interval`` seconds. Every line must reach the listener, in order, and nothing else may:
no error frame, no disconnection. Prints a line every 30 s and a JSON summary; exits 1 on any
miss.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fanout

ROOT = Path(__file__).resolve().parent.parent
HEADER = 64


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def recv_frame(sock: socket.socket) -> bytes:
    """The tutorial's receive: a 64-byte header, then that many bytes."""
    length = int(recv_exact(sock, HEADER).strip())
    return recv_exact(sock, length)


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(b"%-64d" % len(payload) + payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between lines")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, str(ROOT / "run_server.py"), "--host", "127.0.0.1", "--port", "0",
            "--history-db", str(Path(tmp) / "history.sqlite3"), "--no-announce",
        ]  # fmt: skip
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE)
        try:
            address = fanout.read_address(proc, 15.0)
            return run(address, args)
        finally:
            fanout.stop_process(proc)


def run(address: tuple[str, int], args: argparse.Namespace) -> int:
    listener = socket.create_connection(address, timeout=30)  # connects, then only listens
    speaker = socket.create_connection(address, timeout=30)
    send_frame(speaker, b'{"type":"hello","nick":"speaker","version":1}')
    start = time.monotonic()
    end = start + args.minutes * 60
    said = got = 0
    other: list[str] = []
    next_report = start + 30
    while time.monotonic() < end:
        said += 1
        send_frame(speaker, json.dumps({"type": "chat", "text": f"line {said}"}).encode())
        line = recv_frame(listener).decode()
        while line != f"speaker: line {said}":  # joins of the speaker: announced, fine
            if not line.startswith("* "):
                other.append(line)
            line = recv_frame(listener).decode()
        got += 1
        drain(speaker)
        if time.monotonic() >= next_report:
            print(f"[{time.monotonic() - start:5.0f}s] said {said}, heard {got}", flush=True)
            next_report += 30
        time.sleep(args.interval)
    summary = {"minutes": args.minutes, "said": said, "heard": got, "other_frames": other[:5]}
    print(json.dumps(summary), flush=True)
    return 0 if said == got and not other else 1


_pending = bytearray()  # the speaker's bytes not yet a whole frame


def drain(sock: socket.socket) -> None:
    """The speaker's acks and pings (answered: it is a well-behaved rich client)."""
    sock.setblocking(False)
    buffer = bytes(_pending)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    while len(buffer) >= HEADER and len(buffer) >= HEADER + int(buffer[:HEADER].strip()):
        length = int(buffer[:HEADER].strip())
        payload, buffer = buffer[HEADER : HEADER + length], buffer[HEADER + length :]
        if b'"ping"' in payload:
            token = json.loads(payload)["token"]
            send_frame(sock, json.dumps({"type": "pong", "token": token}).encode())
    _pending[:] = buffer


if __name__ == "__main__":
    sys.exit(main())
