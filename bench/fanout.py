#!/usr/bin/env python3
"""Fan-out benchmark: N real socket clients, S of them sending, against a running chat server.

    python bench/fanout.py --scenario all --runs 3

Starts the servers itself (``run_server.py`` and ``bench/baseline_server.py``, each on port 0,
a fresh one per run) unless ``--address HOST:PORT`` is given. The clients are spread over
``--workers`` processes, each a selector loop over its sockets (``bench/loadgen.py``); every
payload carries the sender id, a sequence number and ``time.monotonic()`` in microseconds, and
every receiver checks exactly-once, in-order delivery per sender and records the latency.

Prints one JSON line per scenario (the median of ``--runs`` runs; lost, duplicated and
reordered are the worst run) and a summary line with game_chat's deliveries/s in scenario a as
a ratio to the baseline's. Scenarios:

  a  100 clients, 10 sending flat out (closed loop: --window messages in flight per sender)
  b  100 clients, 200 messages/s in total, paced
  c  1,000 clients, 100 messages/s in total
  d  50 clients, one never reads, 10 sending flat out: the stalled one must be cut
  e  5,000 idle connections held open while b runs

With ``--tls`` each chosen scenario (default a, b, c) runs twice in one go, in clear text and
over TLS (the server with ``--tls-self-signed``, made once in a temporary data directory; the
load generator's clients accept any certificate), and the summary compares the server's CPU
per delivery: the target is TLS within 2x of clear text.

With ``--irc`` the clients speak IRC (scenarios a, b, c; all three by default), against
game_chat's IRC port (``run_server.py --irc-port 0 --no-history --no-flood-limits ...``) and,
for comparison, against ngIRCd (if installed: a generated configuration with no connection or
join limits and its flood penalties off, ``MaxPenaltyTime = 0``), the runs interleaved::

    python bench/fanout.py --irc --scenario a,b,c --runs 3
    python bench/fanout.py --irc --no-ngircd --scenario a --clients 10 --senders 2 --duration 1

Each client registers (``NICK nK``, ``USER u 0 * :r``, then 376 or 422), joins ``#bench``, and
once every client has seen every other one there, the senders send ``PRIVMSG #bench :TEXT``
(the same text as a framed chat line) and the receivers check the ``:nick!user@host PRIVMSG``
lines (and answer PING). IRC has no acknowledgement (``echo-message`` would be one, but ngIRCd
does not offer it), so a's closed loop is the framed one: a message is in flight until every
receiver has it. One JSON line per scenario and server (medians of ``--runs``), then a summary
with the servers side by side and game_chat's CPU per delivery as a ratio to ngIRCd's; the
exit status is 0 if every run delivered exactly once, in order (the targets above are the
framed protocol's and are not checked). Without ngIRCd only game_chat runs (the summary says
so).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import psutil
from loadgen import FIELDS_LEN, IRC_TEXT_LEN, Shared, WorkerSpec, worker_main

ROOT = Path(__file__).resolve().parent.parent
#: The server's lines that say where it listens (a non-digit after the port: all of it came).
LISTENING = re.compile(r"listening on (?P<host>\S+):(?P<port>\d+)(?=\D)")
IRC_LISTENING = re.compile(r"IRC clients \(no TLS\) on port (?P<port>\d+)(?=\D)")
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Scenario:
    """One load shape and its targets."""

    name: str
    clients: int  # reading clients (senders included)
    senders: int
    rate: float = 0.0  # messages/s in total; 0 means flat out (closed loop)
    stalled: bool = False
    idle: int = 0  # extra connections that never send anything
    max_clients: int = 1000
    max_duration: float = 1e9
    min_dps: float = 0.0  # target deliveries/s
    max_p99_ms: float = 1e9
    max_rss_mb: float = 1e9
    #: Extra flags for the game_chat server.
    server_args: tuple[str, ...] = ()
    #: Keep the server's flood limits (off by default: these senders are far faster than
    #: people; bench/flood.py keeps them for its clients typing a line a second).
    flood_limits: bool = False


SCENARIOS = {
    "a": Scenario("a", 100, 10, min_dps=600_000),
    "b": Scenario("b", 100, 10, rate=200, max_p99_ms=2),
    "c": Scenario("c", 1000, 10, rate=100, max_clients=1100, max_p99_ms=25, max_rss_mb=100),
    "d": Scenario("d", 49, 10, stalled=True, max_rss_mb=100),
    # The idle connections never register: with the default --plain-grace they would become
    # 5,000 lobby guests listening like tutorial clients (a load of its own), so not here.
    "e": Scenario("e", 100, 10, rate=200, idle=5000, max_clients=6000, max_duration=12,
                  max_p99_ms=5, server_args=("--plain-grace", "0")),
}  # fmt: skip


# --- servers -----------------------------------------------------------------------------------


@dataclass
class ServerProcess:
    """A server we started (or an external one: ``proc`` is None)."""

    kind: str
    address: tuple[str, int]
    proc: subprocess.Popen[bytes] | None = None
    log_path: str = ""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self) -> str:
        if not self.log_path:
            return ""
        return Path(self.log_path).read_text(errors="replace")[-2000:]


def history_path() -> str:
    """The game_chat server's history file for this benchmark process (removed after each run)."""
    return str(Path(tempfile.gettempdir()) / f"fanout-history-{os.getpid()}.sqlite3")


#: The kind of server that runs with TLS.
TLS_KIND = "game_chat+tls"
TLS_RATIO_TARGET = 2.0
#: The kinds of server that --irc runs: game_chat's IRC port, and ngIRCd for comparison.
IRC_KIND = "game_chat-irc"
NGIRCD_KIND = "ngircd"
IRC_KINDS = (IRC_KIND, NGIRCD_KIND)
#: IRC scenarios: the shapes with no stalled or idle clients.
IRC_SCENARIOS = "abc"

#: ngIRCd's configuration: no connection, channel or penalty limits (MaxPenaltyTime 0 turns
#: its flood penalties off), no DNS or ident lookups, no system configuration snippets.
NGIRCD_CONF = """[Global]
\tName = bench.local
\tInfo = fanout benchmark
\tListen = {host}
\tPorts = {port}
\tMotdPhrase = "bench"
[Limits]
\tMaxConnections = 0
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\tMaxPenaltyTime = 0
\tPingTimeout = 600
\tPongTimeout = 120
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
\tIncludeDir = {dir}/conf.d
"""


def tls_data_dir() -> str:
    """The data directory of the TLS server runs: its self-signed certificate is made once."""
    path = Path(tempfile.gettempdir()) / f"fanout-tls-{os.getpid()}"
    path.mkdir(exist_ok=True)
    return str(path)


def server_command(kind: str, scenario: Scenario, args: argparse.Namespace) -> list[str]:
    if kind == "baseline":
        return [sys.executable, str(ROOT / "bench" / "baseline_server.py"), "--port", "0"]
    if kind == IRC_KIND:
        return irc_server_command(scenario, args)
    return [
        sys.executable, str(ROOT / "run_server.py"), "--host", HOST, "--port", "0",
        "--log-level", "WARNING", "--max-clients", str(scenario.max_clients),
        "--send-queue-bytes", str(args.send_queue_bytes),
        "--sender-threads", str(args.sender_threads),
        "--history-db", history_path(),
        "--history-days", "1",
        *(() if scenario.flood_limits else ("--no-flood-limits",)),
        *(("--tls-self-signed",) if kind == TLS_KIND else ()),
        *scenario.server_args,
    ]  # fmt: skip


def irc_server_command(scenario: Scenario, args: argparse.Namespace) -> list[str]:
    """game_chat with an IRC port (both ports on 0: free ones), unbuffered stdout."""
    return [
        sys.executable, "-u", str(ROOT / "run_server.py"), "--host", HOST, "--port", "0",
        "--irc-port", "0", "--no-history", "--no-announce",
        "--max-clients", str(max(2000, scenario.max_clients)), "--no-flood-limits",
        "--log-level", "WARNING", "--send-queue-bytes", str(args.send_queue_bytes),
        "--sender-threads", str(args.sender_threads),
    ]  # fmt: skip


def read_address(
    proc: subprocess.Popen[bytes], timeout: float, pattern: re.Pattern[str] = LISTENING
) -> tuple[str, int]:
    """Wait (bounded) for the line of the server's stdout that ``pattern`` matches (its groups:
    the port, and the host if it names one)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    seen = b""
    match = None
    while match is None and time.monotonic() < deadline:
        ready = wait([fd], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk
        match = pattern.search(seen.decode(errors="replace"))
    if not match:
        raise RuntimeError(f"server did not report its address: {seen!r}")
    return match.groupdict().get("host") or HOST, int(match.group("port"))


@contextlib.contextmanager
def launched_server(
    kind: str, scenario: Scenario, args: argparse.Namespace
) -> Iterator[ServerProcess]:
    """Start a server subprocess; always stopped (by its PID) on exit."""
    if args.address:
        host, port = args.address.rsplit(":", 1)
        yield ServerProcess("external", (host, int(port)))
        return
    if kind == NGIRCD_KIND:
        with launched_ngircd() as server:
            yield server
        return
    with tempfile.NamedTemporaryFile(prefix=f"fanout-{kind}-", suffix=".log", delete=False) as f:
        log_path = f.name
    env = {**os.environ, "GAME_CHAT_DATA_DIR": tls_data_dir()} if kind == TLS_KIND else None
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            server_command(kind, scenario, args),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
    try:
        pattern = IRC_LISTENING if kind == IRC_KIND else LISTENING
        yield ServerProcess(kind, read_address(proc, 15.0, pattern), proc, log_path)
    finally:
        stop_process(proc)
        os.unlink(log_path)
        for suffix in ("", "-wal", "-shm"):  # each run starts with an empty history
            with contextlib.suppress(FileNotFoundError):
                os.unlink(history_path() + suffix)


def ngircd_path() -> str | None:
    """The ngIRCd binary, if installed."""
    return shutil.which("ngircd") or next(
        (p for p in ("/usr/sbin/ngircd", "/usr/local/sbin/ngircd") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    """A port free on HOST now (ngIRCd cannot listen on port 0 and say which it got)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def launched_ngircd() -> Iterator[ServerProcess]:
    """ngIRCd in the foreground with a generated configuration in a temporary directory;
    always stopped (by its PID) and the directory removed on exit."""
    binary = ngircd_path()
    if binary is None:
        raise RuntimeError("ngircd is not installed")
    work = Path(tempfile.mkdtemp(prefix="fanout-ngircd-"))
    (work / "conf.d").mkdir()
    port = free_port()
    conf = work / "ngircd.conf"
    conf.write_text(NGIRCD_CONF.format(host=HOST, port=port, dir=work))
    log_path = work / "ngircd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, "--nodaemon", "--passive", "--config", str(conf)],
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(proc, port, 15.0)
        yield ServerProcess(NGIRCD_KIND, (HOST, port), proc, str(log_path))
    finally:
        stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Wait (polling, bounded) until the process listens on ``port``: no probe connection."""
    watched = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in watched.net_connections("tcp")
            ):
                return
        time.sleep(0.05)
    raise RuntimeError(f"the server (exit code {proc.poll()}) is not listening on {port}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout:
        proc.stdout.close()


class ServerMonitor:
    """CPU and peak RSS of the server process (RSS sampled every ``interval`` seconds)."""

    def __init__(self, pid: int | None, interval: float = 0.02) -> None:
        self.proc = psutil.Process(pid) if pid else None
        self.interval = interval
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._cpu0 = 0.0

    def __enter__(self) -> ServerMonitor:
        if self.proc:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _sample(self) -> None:
        assert self.proc is not None
        while not self._stop.wait(self.interval):
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)

    def cpu(self) -> float:
        if not self.proc:
            return 0.0
        t = self.proc.cpu_times()
        return t.user + t.system

    def sys_cpu(self) -> float:
        return self.proc.cpu_times().system if self.proc else 0.0

    def num_threads(self) -> int:
        return self.proc.num_threads() if self.proc else 0

    def peak_rss_mb(self) -> float | None:
        if not self.proc:
            return None
        with contextlib.suppress(psutil.Error, OSError, ValueError):
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
            if hwm:
                self.peak_rss = max(self.peak_rss, int(hwm.group(1)) * 1024)
        return round(self.peak_rss / 2**20, 1)


# --- idle connections (scenario e) -----------------------------------------------------------


@dataclass
class IdleSet:
    """Connections that never send anything (scenario e)."""

    socks: list[socket.socket]
    started: float  # monotonic time before the first connect
    open_s: float = 0.0  # how long opening them all took


@contextlib.contextmanager
def idle_connections(count: int, address: tuple[str, int]) -> Iterator[IdleSet]:
    """Open ``count`` plain TCP connections that never send; closed on exit."""
    idle = IdleSet([], time.monotonic())
    try:
        for _ in range(count):
            idle.socks.append(socket.create_connection(address, timeout=10))
        idle.open_s = time.monotonic() - idle.started
        yield idle
    finally:
        for sock in idle.socks:
            sock.close()


def wait_for_threads(monitor: ServerMonitor, count: int, timeout: float = 20.0) -> None:
    """Wait (polling: there is no event to wait on) until the server runs ``count`` threads."""
    deadline = time.monotonic() + timeout
    while monitor.proc and monitor.num_threads() < count and time.monotonic() < deadline:
        time.sleep(0.05)


def idle_dropped(socks: list[socket.socket]) -> int:
    """How many idle connections the server already closed or wrote to."""
    dropped = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            if sock.recv(1, socket.MSG_PEEK) is not None:
                dropped += 1
        except BlockingIOError:
            pass
        except OSError:
            dropped += 1
    return dropped


# --- workers ---------------------------------------------------------------------------------

#: IRC clients connecting at once, over all workers (ngIRCd listens with a backlog of 10).
IRC_CONNECT_WAVE = 8


def worker_specs(
    scenario: Scenario,
    args: argparse.Namespace,
    address: tuple[str, int],
    tls: bool = False,
    irc: bool = False,
) -> list[WorkerSpec]:
    """Spread clients and senders evenly over the workers."""
    n = max(1, min(args.workers, scenario.clients))
    specs = []
    first = 0
    for w in range(n):
        clients = scenario.clients // n + (1 if w < scenario.clients % n else 0)
        sender_ids = list(range(w, scenario.senders, n))
        specs.append(
            WorkerSpec(
                index=w,
                address=address,
                n_clients=clients,
                sender_ids=sender_ids,
                total_senders=scenario.senders,
                n_workers=n,
                window=args.window,
                min_batch=max(1, args.window // args.batch_divisor),
                rate_per_sender=scenario.rate / scenario.senders if scenario.rate else 0.0,
                stalled=scenario.stalled and w == 0,
                wait_for_cut=3 * args.duration if scenario.stalled else 0.0,
                tls=tls,
                irc=irc,
                first_client=first,
                total_clients=scenario.clients,
                connect_wave=max(1, IRC_CONNECT_WAVE // n),
            )
        )
        first += clients
    return specs


class Workers:
    """The worker processes of one run and their control pipes."""

    def __init__(self, specs: list[WorkerSpec]) -> None:
        n, s = len(specs), specs[0].total_senders
        self.shared = Shared(
            mp.RawArray("q", n * s), mp.RawArray("q", s), mp.RawArray("q", n), mp.RawArray("q", 1)
        )
        self.pipes: list[Connection] = []
        self.procs: list[mp.Process] = []
        for spec in specs:
            ours, theirs = mp.Pipe()
            proc = mp.Process(target=worker_main, args=(spec, self.shared, theirs), daemon=True)
            self.pipes.append(ours)
            self.procs.append(proc)

    def __enter__(self) -> Workers:
        for proc in self.procs:
            proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send({"close": True})
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for pipe in self.pipes:
            pipe.close()

    def gather(self, timeout: float) -> list[dict[str, Any]]:
        """One message from every worker (bounded wait); raises if a worker failed."""
        replies: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(replies) < len(self.pipes):
            left = deadline - time.monotonic()
            pending = [p for i, p in enumerate(self.pipes) if i not in replies]
            ready = wait(pending, max(0.0, left))
            if not ready:
                raise TimeoutError(f"{len(pending)} workers did not answer in {timeout:g} s")
            for pipe in ready:
                message = pipe.recv()  # type: ignore[union-attr]
                if "error" in message:
                    raise RuntimeError("worker failed:\n" + message["error"])
                replies[self.pipes.index(pipe)] = message  # type: ignore[arg-type]
        return [replies[i] for i in range(len(self.pipes))]

    def broadcast(self, message: dict[str, Any]) -> None:
        for pipe in self.pipes:
            pipe.send(message)


def payload_len(nicks: list[str]) -> int:
    """Text length that makes every sender's "NICK: TEXT" frame the same size."""
    return max(len(n.encode()) for n in nicks) + 2 + 1 + FIELDS_LEN


# --- one run ---------------------------------------------------------------------------------


def run_once(scenario: Scenario, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start a server, run the scenario once, stop everything; return the measurements."""
    duration = min(args.duration, scenario.max_duration)
    with (
        launched_server(kind, scenario, args) as server,
        ServerMonitor(server.pid) as monitor,
        idle_connections(scenario.idle, server.address) as idle,
    ):
        if scenario.idle:
            wait_for_threads(monitor, scenario.idle)
        irc = kind in IRC_KINDS or (kind == "external" and args.irc)
        specs = worker_specs(scenario, args, server.address, tls=kind == TLS_KIND, irc=irc)
        with Workers(specs) as workers:
            measured = measure(workers, monitor, server, scenario, duration, args)
        measured["workers"] = len(specs)
        measured["window"] = None if scenario.rate else args.window
        extra = idle_report(idle) if scenario.idle else {}
        measured["server_peak_rss_mb"] = monitor.peak_rss_mb()
    if irc:
        extra["protocol"] = "irc"
    return summarize_run(scenario, server.kind, measured, duration) | extra


def measure(
    workers: Workers,
    monitor: ServerMonitor,
    server: ServerProcess,
    scenario: Scenario,
    duration: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Wait for every client to register, run, collect the workers' results and the CPU use."""
    setups = workers.gather(120.0)
    nicks = [n for setup in setups for n in setup["nicks"].values()]
    length = IRC_TEXT_LEN if args.irc else payload_len(nicks)
    t_start = time.monotonic() + 0.05  # every worker starts sending at this moment
    cpu0, sys0, own0 = monitor.cpu(), monitor.sys_cpu(), cpu_seconds()
    workers.broadcast({"payload_len": length, "t_start": t_start, "t_end": t_start + duration})
    with profiling(args.profile, server, scenario, duration):
        results = workers.gather(duration + 60.0)
    return {
        "results": results,
        "t_start": t_start,
        "server_cpu_s": round(monitor.cpu() - cpu0, 2),
        "server_sys_s": round(monitor.sys_cpu() - sys0, 2),
        "loadgen_cpu_s": round(cpu_seconds() - own0 + sum(r["cpu_s"] for r in results), 2),
        "loadgen_sys_s": round(sum(r["sys_s"] for r in results), 2),
    }


def idle_report(idle: IdleSet) -> dict[str, Any]:
    """How long the idle connections were held, and whether the server dropped any."""
    return {
        "idle": len(idle.socks),
        "idle_open_s": round(idle.open_s, 1),
        "idle_held_s": round(time.monotonic() - idle.started, 1),
        "idle_dropped": idle_dropped(idle.socks),
    }


@contextlib.contextmanager
def profiling(
    out_dir: str | None, server: ServerProcess, scenario: Scenario, duration: float
) -> Iterator[None]:
    """With --profile DIR: ``py-spy record`` the server during the run (collapsed stacks)."""
    if not out_dir or server.pid is None:
        yield
        return
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = Path(out_dir) / f"{scenario.name}-{server.kind}-{server.pid}.txt"
    seconds = max(1, int(duration) - 1)
    command = ["py-spy", "record", "--pid", str(server.pid), "--duration", str(seconds)]
    command += ["--rate", "100", "--nonblocking", "--gil", "--threads", "--format", "raw"]
    command += ["--output", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(seconds + 10)  # it writes its output when its duration is over
        stop_process(proc)


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def percentile(hist: Counter[int], fraction: float) -> float:
    """The latency (µs) below which ``fraction`` of the deliveries fall."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank, seen = fraction * total, 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return float(value)
    return float(max(hist))


def summarize_run(
    scenario: Scenario, kind: str, measured: dict[str, Any], duration: float
) -> dict[str, Any]:
    """One run's JSON line (before the targets are checked)."""
    results = measured.pop("results")
    t_start = measured.pop("t_start")
    hist: Counter[int] = Counter()
    for r in results:
        hist.update({int(k): v for k, v in r["hist"].items()})
    deliveries = sum(r["deliveries"] for r in results)
    last = max(r["last_delivery_us"] for r in results) / 1e6
    elapsed = max(last - t_start, 1e-9)
    out: dict[str, Any] = {
        "scenario": scenario.name,
        "server": kind,
        "clients": scenario.clients + (1 if scenario.stalled else 0),
        "senders": scenario.senders,
        "duration_s": round(duration, 2),
        "messages": sum(sum(r["sent"].values()) for r in results),
        "deliveries": deliveries,
        "deliveries_per_s": round(deliveries / elapsed),
        "p50_ms": round(percentile(hist, 0.50) / 1000, 3),
        "p99_ms": round(percentile(hist, 0.99) / 1000, 3),
        "max_ms": round(max(hist, default=0) / 1000, 3),
        "lost": sum(r["lost"] for r in results),
        "duplicated": sum(r["duplicated"] for r in results),
        "reordered": sum(r["reordered"] for r in results),
        "drained": all(r["drained"] for r in results),
        "loadgen_frames_per_recv": round(deliveries / max(1, sum(r["batches"] for r in results))),
        "loadgen_fallbacks": sum(r["fallbacks"] for r in results),
    }
    out |= measured
    out["server_us_per_delivery"] = round(out["server_cpu_s"] * 1e6 / max(1, deliveries), 3)
    problems = collect_problems(results)
    if problems:
        out["problems"] = problems
    if scenario.stalled:
        out |= stalled_report(results, t_start)
    return out


def stalled_report(results: list[dict[str, Any]], t_start: float) -> dict[str, Any]:
    """Was the client that never reads cut off, and when did the others hear of it?"""
    stalled = next(r for r in results if "stalled_cut" in r)
    seen = [r["cut_seen_us"] for r in results if r["cut_seen_us"]]
    return {
        "stalled_cut": stalled["stalled_cut"],
        "stalled_end": stalled["stalled_end"],
        "stalled_cut_after_s": round(min(seen) / 1e6 - t_start, 2) if seen else None,
        "left_notices": sorted({n for r in results for n in r["left_notices"]}),
    }


def collect_problems(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Anything odd the workers saw: unknown frames, disconnects, missing acks."""
    problems: dict[str, Any] = {}
    unknown = sum(r["unknown"] for r in results)
    if unknown:
        problems["unknown_chat_frames"] = unknown
    others = [s for r in results for s in r["other_samples"]]
    if others:
        problems["other_frames"] = others[:5]
    gone = [d for r in results for d in r["disconnected"]]
    if gone:
        problems["disconnected"] = gone[:5]
    missing_acks = sum(r["sent"][s] - r["acks"][s] for r in results for s in r["acks"])
    if missing_acks:
        problems["missing_acks"] = missing_acks
    return problems


# --- scenarios and output ----------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each performance number; worst case of each correctness count."""
    out = dict(runs[len(runs) // 2])
    for key, value in runs[0].items():
        values = [r.get(key) for r in runs]
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key in ("lost", "duplicated", "reordered", "idle_dropped"):
            out[key] = max(values)
        elif all(isinstance(v, int | float) for v in values):
            out[key] = statistics.median(values)
    for key in ("drained", "stalled_cut"):
        if key in runs[0]:
            out[key] = all(r[key] for r in runs)
    out["runs"] = len(runs)
    out["deliveries_per_s_runs"] = [r["deliveries_per_s"] for r in runs]
    out["p99_ms_runs"] = [r["p99_ms"] for r in runs]
    return out


def verdict(scenario: Scenario, line: dict[str, Any]) -> dict[str, bool]:
    """Which targets the (median) line meets (the baseline only has to be exact)."""
    checks = {
        "exact": line["lost"] == 0 and line["duplicated"] == 0 and line["reordered"] == 0,
        "drained": bool(line.get("drained")),
    }
    if line["server"] == "baseline" or line.get("protocol") == "irc":
        return checks  # the targets are the framed protocol's
    if scenario.min_dps:
        checks["deliveries_per_s"] = line["deliveries_per_s"] >= scenario.min_dps
    if scenario.max_p99_ms < 1e9:
        checks["p99"] = line["p99_ms"] <= scenario.max_p99_ms
    if scenario.max_rss_mb < 1e9 and line.get("server_peak_rss_mb") is not None:
        checks["rss"] = line["server_peak_rss_mb"] <= scenario.max_rss_mb
    if scenario.stalled:
        checks["stalled_cut"] = bool(line.get("stalled_cut"))
    if scenario.idle:
        checks["idle_held"] = line.get("idle_dropped") == 0
    return checks


def run_scenario(scenario: Scenario, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    return report(scenario, [run_once(scenario, kind, args) for _ in range(args.runs)])


def report(scenario: Scenario, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Print (and return) the JSON line of a scenario's runs on one server."""
    line = median_of(runs) if len(runs) > 1 else runs[0]
    checks = verdict(scenario, line)
    line["targets_met"] = all(checks.values())
    line["checks"] = checks
    print(json.dumps(line), flush=True)
    return line


def customized(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """Apply --clients / --senders / --rate overrides."""
    changes: dict[str, Any] = {}
    if args.clients:
        changes["clients"] = args.clients - (1 if scenario.stalled else 0)
    if args.senders:
        changes["senders"] = args.senders
    if args.rate is not None and scenario.rate:
        changes["rate"] = args.rate
    if args.idle is not None and scenario.idle:
        changes["idle"] = args.idle
    return replace(scenario, **changes)


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="all", help="a, b, c, d, e, all, or a list: a,d")
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario (median printed)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of sending per run")
    parser.add_argument("--address", help="HOST:PORT of a running server (no servers started)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--window", type=int, default=64, help="flat out: in flight per sender")
    parser.add_argument(
        "--batch-divisor", type=int, default=4, help="flat out: send when window/N slots are free"
    )
    parser.add_argument("--clients", type=int, help="override the scenario's client count")
    parser.add_argument("--senders", type=int, help="override the scenario's sender count")
    parser.add_argument("--rate", type=float, help="override a paced scenario's messages/s")
    parser.add_argument("--idle", type=int, help="override scenario e's idle connections")
    parser.add_argument(
        "--send-queue-bytes", type=int, default=1 << 20, help="game_chat server's per-client queue"
    )
    parser.add_argument(
        "--sender-threads", type=int, default=2, help="game_chat server's sender threads"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline in a")
    parser.add_argument("--profile", metavar="DIR", help="py-spy record each server into DIR")
    parser.add_argument(
        "--tls",
        action="store_true",
        help="run each scenario (default a,b,c) in clear text and over TLS, and compare",
    )
    parser.add_argument(
        "--irc",
        action="store_true",
        help="IRC clients (scenarios a, b, c) on game_chat's IRC port and on ngIRCd, compared",
    )
    parser.add_argument("--no-ngircd", action="store_true", help="--irc: game_chat only")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    every = IRC_SCENARIOS if args.irc else "abc" if args.tls else sorted(SCENARIOS)
    names = list(every) if args.scenario == "all" else args.scenario.split(",")
    raise_fd_limit(8192 + 2 * max(customized(SCENARIOS[n], args).idle for n in names))
    if args.irc:
        if args.tls or set(names) - set(IRC_SCENARIOS):
            parser.error(f"--irc runs scenarios {', '.join(IRC_SCENARIOS)} in clear text only")
        return run_irc(names, args)
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    for name in names:
        scenario = customized(SCENARIOS[name], args)
        lines[name, "game_chat"] = run_scenario(scenario, "game_chat", args)
        if args.tls:
            lines[name, TLS_KIND] = run_scenario(scenario, TLS_KIND, args)
        elif name == "a" and not args.no_baseline and not args.address:
            lines[name, "baseline"] = run_scenario(scenario, "baseline", args)
    if args.tls:
        shutil.rmtree(tls_data_dir(), ignore_errors=True)
        return print_tls_summary(lines)
    print_summary(lines)
    return 0 if all(line["targets_met"] for line in lines.values()) else 1


def irc_servers(args: argparse.Namespace) -> tuple[list[str], str]:
    """The servers --irc runs, and what became of ngIRCd (its version, or why not)."""
    if args.address:
        return ["external"], "not run (--address)"
    if args.no_ngircd:
        return [IRC_KIND], "not run (--no-ngircd)"
    binary = ngircd_path()
    if binary is None:
        print("ngircd is not installed: game_chat only", file=sys.stderr, flush=True)
        return [IRC_KIND], "not installed"
    return [IRC_KIND, NGIRCD_KIND], ngircd_version(binary)


def ngircd_version(binary: str) -> str:
    """ngIRCd's version line ("ngIRCd 26.1-...")."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return (out.stdout.splitlines() or ["unknown"])[0]


def run_irc(names: list[str], args: argparse.Namespace) -> int:
    """--irc: each scenario on each server, the runs interleaved (game_chat, ngIRCd, game_chat,
    ...) so that a noisy moment of the machine does not fall on one server only; a JSON line per
    scenario and server (medians of --runs), then the summary; 0 if every run was exact."""
    kinds, ngircd = irc_servers(args)
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    for name in names:
        scenario = customized(SCENARIOS[name], args)
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        for _ in range(args.runs):
            for kind in kinds:
                runs[kind].append(run_once(scenario, kind, args))
        for kind in kinds:
            lines[name, kind] = report(scenario, runs[kind])
    return print_irc_summary(lines, ngircd)


#: The figures of each server side by side in the --irc summary.
IRC_COMPARED = (
    "server_us_per_delivery", "deliveries_per_s", "p50_ms", "p99_ms",
    "lost", "duplicated", "reordered",
)  # fmt: skip


def print_irc_summary(lines: dict[tuple[str, str], dict[str, Any]], ngircd: str) -> int:
    """Per scenario, the servers side by side, and game_chat's CPU per delivery as a ratio to
    ngIRCd's (above 1: game_chat spends more)."""
    scenarios: dict[str, dict[str, Any]] = {}
    for (name, kind), line in lines.items():
        scenarios.setdefault(name, {})[kind] = {key: line[key] for key in IRC_COMPARED}
    for compared in scenarios.values():
        ours, theirs = compared.get(IRC_KIND), compared.get(NGIRCD_KIND)
        if ours and theirs and theirs["server_us_per_delivery"]:
            ratio = ours["server_us_per_delivery"] / theirs["server_us_per_delivery"]
            compared["us_per_delivery_ratio"] = round(ratio, 2)
    exact = all(line["checks"]["exact"] and line["checks"]["drained"] for line in lines.values())
    summary = {
        "summary": True,
        "protocol": "irc",
        "ngircd": ngircd,
        "scenarios": scenarios,
        "exact": exact,
    }
    print(json.dumps(summary), flush=True)
    return 0 if exact else 1


def print_tls_summary(lines: dict[tuple[str, str], dict[str, Any]]) -> int:
    """Server CPU per delivery, TLS against clear text, for each scenario; 0 if every run was
    exact and TLS is within the target ratio everywhere."""
    compared: dict[str, dict[str, Any]] = {}
    for (name, kind), line in lines.items():
        if kind != TLS_KIND:
            continue
        plain = lines[name, "game_chat"]["server_us_per_delivery"]
        ratio = round(line["server_us_per_delivery"] / plain, 2) if plain else None
        compared[name] = {
            "plain_us_per_delivery": plain,
            "tls_us_per_delivery": line["server_us_per_delivery"],
            "ratio": ratio,
            "plain_p99_ms": lines[name, "game_chat"]["p99_ms"],
            "tls_p99_ms": line["p99_ms"],
        }
    met = all(c["ratio"] is not None and c["ratio"] <= TLS_RATIO_TARGET for c in compared.values())
    exact = all(line["checks"]["exact"] and line["checks"]["drained"] for line in lines.values())
    summary = {
        "summary": True,
        "tls": compared,
        "ratio_target": TLS_RATIO_TARGET,
        "ratio_met": met,
        "exact": exact,
    }
    print(json.dumps(summary), flush=True)
    return 0 if met and exact else 1


def print_summary(lines: dict[tuple[str, str], dict[str, Any]]) -> None:
    ours, base = lines.get(("a", "game_chat")), lines.get(("a", "baseline"))
    ratio = None
    if ours and base and base["deliveries_per_s"]:
        ratio = round(ours["deliveries_per_s"] / base["deliveries_per_s"], 2)
    summary = {
        "summary": True,
        "scenario": "a",
        "game_chat_deliveries_per_s": ours and ours["deliveries_per_s"],
        "baseline_deliveries_per_s": base and base["deliveries_per_s"],
        "ratio": ratio,
        "ratio_target": 3.0,
        "ratio_met": ratio is not None and ratio >= 3.0,
        "targets_met": {f"{k[0]}/{k[1]}": v["targets_met"] for k, v in lines.items()},
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
