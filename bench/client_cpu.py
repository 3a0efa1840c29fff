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

Frames: the client runs under bench/frame_probe.py, which records when its loop looks at
input (``pygame.event.get``) and when each frame is flipped; each phase's frames are those
whose look fell in it. For each frame:

* ``frame_ms``: its look to its flip done, the work of one iteration: events, the network
  queue drained, update, draw, flip;
* ``latency_ms``: the loop's previous look to this frame's flip done. A key pressed or a line
  that arrived just after one look is seen at the next and shown by this frame: the longest
  anything waited to be shown.

A frame is **late** if its latency is over ``LATENCY_DEADLINE`` (50 ms). Why 50 ms: the
window looks every 25 ms (app.POLL_SECONDS; the lobby game, idle, every 30 ms: IDLE_POLL),
which leaves 20-25 ms for a frame's work and the machine's scheduling; then come the
compositor and the display (up to 17 ms at 60 Hz), and the whole stays well inside the ~100
ms beyond which typing and chat stop feeling instant. A frame's work over 20 ms, or a loop
that falls behind the lines, shows as late frames. As the chat screen takes up to 400 events
a frame and the overlay 200 (MAX_EVENTS_PER_FRAME), lines could only pile up behind frames
slower than 0.2 s at 1,000 lines/s, which are late anyway: no line waits unseen behind a
frame on time.

Prints one JSON line per phase (median of ``--runs``): the CPU as % of one core, and the
frames (count, p99 and max of frame_ms and latency_ms, late frames; each the median of the
runs, with the late counts of every run in ``late_runs``; null if the client had to be
killed, as then the probe wrote nothing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from bisect import bisect_right
from pathlib import Path
from typing import Any

import psutil
from fanout import stop_process

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from game_chat.protocol.framing import FrameDecoder, encode_frame  # noqa: E402

LISTENING = re.compile(rb"listening on (\S+):(\d+)")
PROBE = Path(__file__).resolve().parent / "frame_probe.py"
#: A frame is late if it is flipped more than this long after the loop's previous look at
#: input (see the module's docstring).
LATENCY_DEADLINE = 0.050
PHASES = ("idle", "lines_200_per_s", "lines_1000_per_s")
FRAME_KEYS = ("frames", "frame_ms_p99", "frame_ms_max", "latency_ms_p99", "latency_ms_max", "late")


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


def cpu_percent(
    proc: psutil.Process, seconds: float, during: Any = None
) -> tuple[float, tuple[float, float]]:
    """The CPU % of one core over a phase, and the phase's (start, end) in time.monotonic()."""
    t0, c0 = time.monotonic(), sum(proc.cpu_times()[:2])
    if during is None:
        time.sleep(seconds)
    else:
        during()
    t1 = time.monotonic()
    return round(100 * (sum(proc.cpu_times()[:2]) - c0) / (t1 - t0), 1), (t0, t1)


def frames_in(looks: list[float], flips: list[float], start: float, end: float) -> dict[str, Any]:
    """Frames whose look fell in [start, end): count, p99 and max of frame and latency (ms),
    and how many were late (see the docstring)."""
    work, latency = [], []
    for k in range(1, len(looks)):
        if not start <= looks[k] < end:
            continue
        i = bisect_right(flips, looks[k])
        following = looks[k + 1] if k + 1 < len(looks) else math.inf
        if i == len(flips) or flips[i] >= following:
            continue  # nothing changed: this look drew nothing
        work.append(flips[i] - looks[k])
        latency.append(flips[i] - looks[k - 1])
    return {
        "frames": len(work),
        "frame_ms_p99": _ms(_p99(work)),
        "frame_ms_max": _ms(max(work, default=0.0)),
        "latency_ms_p99": _ms(_p99(latency)),
        "latency_ms_max": _ms(max(latency, default=0.0)),
        "late": sum(1 for value in latency if value > LATENCY_DEADLINE),
    }


def _p99(values: list[float]) -> float:
    """The nearest-rank 99th percentile (the largest value below 100 samples)."""
    if not values:
        return 0.0
    return sorted(values)[math.ceil(0.99 * len(values)) - 1]


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 1)


def run_once(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """One run: per phase, the CPU % and the frames."""
    with tempfile.TemporaryDirectory(prefix="client-cpu-") as tmp:
        frame_log = Path(tmp) / "frames.json"
        cpu, spans = measure(args, frame_log)
        try:
            times = json.loads(frame_log.read_text())
        except (OSError, ValueError):  # the client did not end normally: no frame times
            print("no frame times: the client was killed", file=sys.stderr)
            return {phase: {"cpu": cpu[phase], **dict.fromkeys(FRAME_KEYS)} for phase in PHASES}
    return {
        phase: {"cpu": cpu[phase], **frames_in(times["looks"], times["flips"], *spans[phase])}
        for phase in PHASES
    }


def measure(
    args: argparse.Namespace, frame_log: Path
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Run the client (under the frame probe) through the phases: CPU % and span of each."""
    server, port = start_server()
    env = dict(os.environ, GAME_CHAT_CONFIG_DIR=str(Path(args.config_dir)))
    if not env.get("DISPLAY"):
        env["SDL_VIDEODRIVER"] = "dummy"
    env.setdefault("SDL_AUDIODRIVER", "dummy")
    root = Path(args.root) if args.root else ROOT
    command = [sys.executable, str(PROBE), str(frame_log)]
    if args.overlay:  # the example game with the chat overlay, closed, the game idle
        command += [str(root / "examples" / "lobby_game.py")]
        command += ["--server", f"127.0.0.1:{port}", "--nick", "watcher"]
    else:
        command += [str(root / "run_client.py"), "--server", f"127.0.0.1:{port}"]
        command += ["--nick", "watcher", "--no-discovery"]
    client = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        bot = Bot(port)
        bot.wait_for_member("watcher")
        time.sleep(args.settle)  # the window settles (history, layout; the overlay's fading)
        proc = psutil.Process(client.pid)
        results = [
            cpu_percent(proc, args.seconds),
            cpu_percent(proc, 0, lambda: bot.say_at(200, args.seconds)),
            cpu_percent(proc, 0, lambda: bot.say_at(1000, args.seconds)),
        ]
        cpu = {phase: result[0] for phase, result in zip(PHASES, results, strict=True)}
        spans = {phase: result[1] for phase, result in zip(PHASES, results, strict=True)}
        return cpu, spans
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
    for phase in PHASES:
        values = [r[phase]["cpu"] for r in runs]
        line = {"phase": phase, "cpu_percent_of_one_core": statistics.median(values),
                "runs": values, "display": display, "root": args.root or str(ROOT),
                "window": "lobby_game overlay" if args.overlay else "chat window"}  # fmt: skip
        for key in FRAME_KEYS:
            got = [r[phase][key] for r in runs if r[phase][key] is not None]
            line[key] = statistics.median(got) if got else None
        line["late_runs"] = [r[phase]["late"] for r in runs]
        line["deadline_ms"] = LATENCY_DEADLINE * 1e3
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
