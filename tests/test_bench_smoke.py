"""Smoke tests of the benchmarks on tiny loads: bench/fanout.py (plus its checker) and
bench/listen_first.py.

The end-to-end tests run scenarios a and d with 10 clients, 2 senders and 1 s of sending
against a real game_chat server started by the bench itself, and a and b the same way with IRC
clients on its IRC port (``--irc --no-ngircd``).
"""

from __future__ import annotations

import importlib
import json
import multiprocessing as mp
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
loadgen = importlib.import_module("loadgen")

PAYLOAD_LEN = 40


def run_bench(
    script: str, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run bench/``script`` with ``args`` from the project's root; its output as text."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip


def run_fanout(*args: str) -> list[dict[str, Any]]:
    """Run bench/fanout.py and return its JSON lines."""
    proc = run_bench("fanout.py", *args)
    assert proc.stdout, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.timeout(90)
def test_tiny_scenarios_a_and_d_deliver_exactly_once_and_cut_the_stalled_client() -> None:
    lines = run_fanout(
        "--scenario", "a,d", "--clients", "10", "--senders", "2", "--duration", "1",
        "--no-baseline", "--send-queue-bytes", "131072",
    )  # fmt: skip
    a, d, summary = lines
    for line in (a, d):
        assert line["deliveries"] > 0, line
        assert (line["lost"], line["duplicated"], line["reordered"]) == (0, 0, 0), line
        assert line["drained"], line
        assert "problems" not in line, line
    assert a["deliveries"] == a["messages"] * 9  # each message reaches the 9 other clients
    assert d["deliveries"] == d["messages"] * 8  # ... the 8 others that read
    assert d["stalled_cut"] is True, d
    assert d["left_notices"] and "send queue exceeded" in d["left_notices"][0]
    assert summary["summary"] is True


@pytest.mark.timeout(60)
def test_tiny_irc_scenarios_a_and_b_deliver_exactly_once() -> None:
    """--irc, game_chat only: 10 IRC clients register and join #bench, and every PRIVMSG
    reaches the 9 others once, in order, flat out (a) and paced (b)."""
    lines = run_fanout(
        "--irc", "--no-ngircd", "--scenario", "a,b", "--clients", "10", "--senders", "2",
        "--duration", "1",
    )  # fmt: skip
    a, b, summary = lines
    for line in (a, b):
        assert (line["server"], line["protocol"]) == ("game_chat-irc", "irc"), line
        assert line["deliveries"] == line["messages"] * 9 > 0, line
        assert (line["lost"], line["duplicated"], line["reordered"]) == (0, 0, 0), line
        assert line["drained"], line
        assert "problems" not in line, line
    assert summary["exact"] is True and set(summary["scenarios"]) == {"a", "b"}, summary


@pytest.mark.timeout(60)
def test_the_listen_first_tutorial_client_hears_every_line() -> None:
    """bench/listen_first.py for 6 s: connect, then only recv; the lines said before the
    server made it a guest (2 s) and after, all of them, and nothing else."""
    proc = run_bench("listen_first.py", "--minutes", "0.1", "--interval", "0.25", timeout=50)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["said"] == summary["heard"] >= 10, summary
    assert summary["other_frames"] == []


# --- the checker, on made-up frames ------------------------------------------------------


def chat_frame(nick: bytes, sid: int, seq: int, sent_us: int) -> bytes:
    fields = b"%03d%010d%016d" % (sid, seq, sent_us)
    payload = nick + b": " + b"." * (PAYLOAD_LEN - len(nick) - 2 - len(fields)) + fields
    return b"%-64d" % len(payload) + payload


def notice_frame(text: bytes) -> bytes:
    return b"%-64d" % len(text) + text


def one_receiver(**extra: Any) -> tuple[Any, Any]:
    """The spec of a worker with one receiving client and one sender (not connected), and
    the counters its workers share."""
    spec = loadgen.WorkerSpec(
        index=0,
        address=("127.0.0.1", 9),
        n_clients=1,
        sender_ids=[],
        total_senders=1,
        n_workers=1,
        window=8,
        min_batch=1,
        rate_per_sender=0.0,
        **extra,
    )
    return spec, loadgen.Shared(*(mp.RawArray("q", 1) for _ in range(4)))


def one_receiver_worker() -> tuple[Any, Any]:
    spec, shared = one_receiver()
    worker = loadgen.Worker(spec, shared, control=None)
    client = loadgen.Client(sock=None)
    client.exp = {b"000": 0}
    worker.clients.append(client)
    worker.start(PAYLOAD_LEN)
    return worker, client


def check_the_five(worker: Any, client: Any, stream: bytes) -> None:
    """``stream`` (messages 0, 1, 3, 2, 2 of sender 0, after whatever the worker had) reaches
    the checker in two reads, split inside the last one; the sender sent 0..4: one came late,
    one twice, 4 never."""
    worker.receive(client, stream[:-10], 1_500)
    worker.receive(client, stream[-10:], 1_600)
    worker.sent[0] = 5
    stats = worker.stats
    assert (stats.deliveries, stats.reordered, stats.duplicated) == (4, 1, 1)
    assert worker.lost() == 1
    assert sum(stats.hist.values()) == 5


@pytest.mark.parametrize("with_notice", [False, True], ids=["fast-path", "exact-parser"])
def test_checker_counts_gaps_late_and_repeated_messages(with_notice: bool) -> None:
    worker, client = one_receiver_worker()
    frames = [chat_frame(b"guest-1", 0, seq, 1_000) for seq in (0, 1, 3, 2, 2)]
    if with_notice:  # anything but a chat frame sends the buffer to the exact parser
        frames.insert(2, notice_frame(b"* guest-2 joined"))
    stream = b"".join(frames)
    check_the_five(worker, client, stream)
    assert (worker.stats.fallbacks > 0) == with_notice


def irc_line(nick: bytes, sid: int, seq: int, sent_us: int) -> bytes:
    fields = b"%03d%010d%016d" % (sid, seq, sent_us)
    text = b"." * (loadgen.IRC_TEXT_LEN - len(fields)) + fields
    return b":" + nick + b"!~u@127.0.0.1 PRIVMSG #bench :" + text + b"\r\n"


@pytest.mark.parametrize("with_ping", [False, True], ids=["fast-path", "line-by-line"])
def test_irc_checker_counts_gaps_late_and_repeated_lines(with_ping: bool) -> None:
    spec, shared = one_receiver(irc=True, total_clients=2)
    worker = loadgen.IrcWorker(spec, shared, control=None)
    ours, server_side = socket.socketpair()
    with ours, server_side:
        client = loadgen.IrcClient(ours, spec.total_clients)
        client.exp = {b"000": 0}
        worker.clients.append(client)
        worker.start(loadgen.IRC_TEXT_LEN)
        lines = [irc_line(b"n0001", 0, seq, 1_000) for seq in (0, 1, 3, 2, 2)]
        worker.receive(client, lines[0], 1_200)  # the first chat line: its length is learnt
        if with_ping:  # anything but a chat line sends the buffer line by line
            lines.insert(2, b"PING :game_chat\r\n")
        stream = b"".join(lines[1:])
        check_the_five(worker, client, stream)
        stats = worker.stats
        # the two reads after the first line took the fast path, or with the PING the second one
        assert (stats.fallbacks, stats.batches) == ((1, 1) if with_ping else (0, 2))
        if with_ping:
            assert server_side.recv(100) == b"PONG :game_chat\r\n"


def test_cluster_bench_runs_two_nodes_on_a_real_redis() -> None:
    """bench/cluster.py, tiny: two nodes, clients split across them, nothing lost."""
    proc = run_bench(
        "cluster.py", "--scenario", "b", "--nodes", "2", "--duration", "1", "--clients", "10",
        "--senders", "2", "--rate", "20", timeout=90,
    )  # fmt: skip
    assert proc.stdout, proc.stderr
    (line,) = [json.loads(text) for text in proc.stdout.splitlines()]
    assert line["nodes"] == 2 and line["checks"]["exact"], line
    assert line["deliveries"] == line["messages"] * 9  # every other client, once
    assert line["redis_commands_per_message"] > 0


@pytest.mark.ui
def test_client_cpu_bench_measures_the_real_window() -> None:
    """bench/client_cpu.py, tiny: the real window (dummy driver here), a phase each."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "DISPLAY"}
    proc = run_bench("client_cpu.py", "--seconds", "0.5", timeout=90, env=env)
    assert proc.stdout, proc.stderr
    phases = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [p["phase"] for p in phases] == ["idle", "lines_200_per_s", "lines_1000_per_s"]
    assert all(p["cpu_percent_of_one_core"] >= 0 for p in phases)
    flood = phases[2]  # the probe's frame times reached the bench (the window ended cleanly)
    assert flood["frames"] > 0 and flood["late"] is not None, proc.stderr


def test_client_cpu_frames_late_by_the_previous_look() -> None:
    """A frame's latency runs from the look before its own; looks that drew nothing are no
    frames; only looks inside the phase count."""
    frames_in = importlib.import_module("client_cpu").frames_in
    looks = [0.0, 0.030, 0.060, 0.100, 0.200]
    flips = [0.035, 0.095, 0.205]  # the look at 0.100 drew nothing
    stats = frames_in(looks, flips, start=0.010, end=1.0)
    assert stats["frames"] == 3
    assert stats["latency_ms_max"] == 105.0  # 0.100 -> 0.205
    assert stats["frame_ms_max"] == 35.0  # 0.060 -> 0.095
    assert stats["late"] == 2  # 65 ms and 105 ms; the first, 35 ms, is on time


@pytest.mark.timeout(60)
def test_line_path_prints_its_four_figures() -> None:
    proc = run_bench("line_path.py", "--runs", "1", "--rounds", "5", timeout=50)
    assert proc.returncode == 0, proc.stderr
    figures = [line.rsplit(": ", 1)[1] for line in proc.stdout.splitlines()]
    assert len(figures) == 4, proc.stdout
    assert all(float(f.split()[0]) > 0 for f in figures), proc.stdout
