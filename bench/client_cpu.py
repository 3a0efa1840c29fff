#!/usr/bin/env python3
"""The chat window's CPU (or the example game's with its overlay): idle, and while lines arrive.

    python bench/client_cpu.py                 # under Xvfb/X11 when DISPLAY is set
    python bench/client_cpu.py --seconds 10 --runs 3

Starts a server (``run_server.py``, flood limits off) and the real window
(``run_client.py --server ... --nick watcher``) as processes, then samples the window
process's CPU time (user + system, psutil) over each phase: idle in the chat screen, 200
lines a second, 1,000 lines a second (sent by a bot on another connection). With ``DISPLAY``
set the window is a real X11 window (run it under ``xvfb-run`` on a machine with no screen);
otherwise SDL's dummy video driver (no presenting at all: drawing costs only). ``--root``
runs another checkout's client (e.g. the commit before a change) for a before/after.

Prints one JSON line per phase (median of ``--runs``) with the CPU as % of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from fanout import stop_process

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from game_chat.protocol.framing import FrameDecoder, encode_frame  # noqa: E402

LISTENING = re.compile(rb"listening on (\S+):(\d+)")


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run_server.py"), "--host", "127.0.0.1", "--port", "0",
         "--no-history", "--no-announce", "--no-flood-limits", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = LISTENING.search(line)
    if not match:
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, int(match.group(2))


class Bot:
    """A rich client that says lines (and reads whatever comes, so it never stalls)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.decoder = FrameDecoder(1 << 22)
        self.send({"type": "hello", "nick": "bot", "version": 1})
        self.sock.setblocking(False)

    def send(self, message: dict[str, Any]) -> None:
        self.sock.setblocking(True)
        self.sock.sendall(encode_frame(json.dumps(message).encode()))
        self.sock.setblocking(False)

    def drain(self) -> list[dict[str, Any]]:
        got = []
        try:
            while data := self.sock.recv(65536):
                self.decoder.receive_data(data)
                if len(data) < 65536:
                    break
        except BlockingIOError:
            pass
        while isinstance(frame := self.decoder.next_frame(), bytes):
            got.append(json.loads(frame))
        return got

    def wait_for_member(self, nick: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send({"type": "users"})
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                for message in self.drain():
                    if message.get("type") == "users" and nick in message.get("users", ()):
                        return
                time.sleep(0.01)  # a poll of our own socket; the window is another process
        raise TimeoutError(f"{nick} never joined")

    def say_at(self, rate: float, seconds: float) -> int:
        """Lines at ``rate`` a second for ``seconds`` (paced, bounded); how many."""
        start, sent = time.monotonic(), 0
        total = int(rate * seconds)
        while sent < total:
            due = start + sent / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.send({"type": "chat", "text": f"line {sent} " + "x" * 40, "id": str(sent)})
            sent += 1
            if sent % 50 == 0:
                self.drain()
        return sent


def cpu_percent(proc: psutil.Process, seconds: float, during: Any = None) -> float:
    t0, c0 = time.monotonic(), sum(proc.cpu_times()[:2])
    if during is None:
        time.sleep(seconds)
    else:
        during()
    wall = time.monotonic() - t0
    return round(100 * (sum(proc.cpu_times()[:2]) - c0) / wall, 1)


def run_once(args: argparse.Namespace) -> dict[str, float]:
    server, port = start_server()
    env = dict(os.environ, GAME_CHAT_CONFIG_DIR=str(Path(args.config_dir)))
    if not env.get("DISPLAY"):
        env["SDL_VIDEODRIVER"] = "dummy"
    env.setdefault("SDL_AUDIODRIVER", "dummy")
    root = Path(args.root) if args.root else ROOT
    if args.overlay:  # the example game with the chat overlay, closed, the game idle
        command = [sys.executable, str(root / "examples" / "lobby_game.py")]
        command += ["--server", f"127.0.0.1:{port}", "--nick", "watcher"]
    else:
        command = [sys.executable, str(root / "run_client.py"), "--server", f"127.0.0.1:{port}"]
        command += ["--nick", "watcher", "--no-discovery"]
    client = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        bot = Bot(port)
        bot.wait_for_member("watcher")
        time.sleep(args.settle)  # the window settles (history, layout; the overlay's fading)
        proc = psutil.Process(client.pid)
        idle = cpu_percent(proc, args.seconds)
        at_200 = cpu_percent(proc, 0, lambda: bot.say_at(200, args.seconds))
        at_1000 = cpu_percent(proc, 0, lambda: bot.say_at(1000, args.seconds))
        return {"idle": idle, "lines_200_per_s": at_200, "lines_1000_per_s": at_1000}
    finally:
        for proc_ in (client, server):
            stop_process(proc_)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--runs", type=int, default=1, help="runs (median printed)")
    parser.add_argument("--root", help="another checkout whose run_client.py to measure")
    parser.add_argument(
        "--overlay", action="store_true", help="measure examples/lobby_game.py (the overlay)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        help="seconds before measuring (default 1; 12 with --overlay: its lines fade out "
        "11 s after they came, and fading is drawing)",
    )
    parser.add_argument("--config-dir", default="/tmp/client-cpu-config", help="client settings")
    args = parser.parse_args(argv)
    if args.settle is None:
        args.settle = 12.0 if args.overlay else 1.0
    runs = [run_once(args) for _ in range(args.runs)]
    display = os.environ.get("DISPLAY") or "dummy driver"
    for phase in runs[0]:
        values = [r[phase] for r in runs]
        line = {"phase": phase, "cpu_percent_of_one_core": statistics.median(values),
                "runs": values, "display": display, "root": args.root or str(ROOT),
                "window": "lobby_game overlay" if args.overlay else "chat window"}  # fmt: skip
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
