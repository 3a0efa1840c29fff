"""irctest, the IRC daemons' conformance suite, against game_chat's IRC port (issue 14).

Starts ``run_server.py --irc-port`` on free ports as docs/IRC.md says (the server name and
operator password irctest's tests expect, no history, no flood limits), runs the issue's
selection of the vendored suite (third_party/irctest) with its external-server controller,
prints its summary and the counts, and fails if fewer tests pass than ``--at-least`` (the
count docs/IRC.md quotes, less a small margin), if a server died, or if a test of a server with
a password (run apart, on a server started with the password irctest expects) fails. Each
pytest-xdist worker gets a server of its own (tests/irctest_servers.py): the suite's tests
use fixed nicks and channels, which collide on a shared server. ``.ci/run`` runs it; about
four minutes on two cores.

    python3 -m pip install ecdsa filelock websockets pytest-xdist
    python3 tests/irctest_selection.py [--at-least N] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "third_party" / "irctest"
MARKERS = "not services and not implementation-specific and not deprecated and not strict"
#: docs/IRC.md says what fails and why.
AT_LEAST = 255


def start_server(log: Path, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen[str], int]:
    """``run_server.py`` as docs/IRC.md runs it for irctest, its IRC listener on a port the
    kernel picks (read back from what the server prints: no window for another process to
    take a port picked beforehand); its log goes to ``log``."""
    server = subprocess.Popen(
        [
            sys.executable, "-u", str(ROOT / "run_server.py"), "--host", "127.0.0.1",
            "--port", "0", "--irc-port", "0", "--name", "My.Little.Server",
            "--oper-password", "operpassword", "--no-history", "--no-announce",
            "--no-flood-limits", *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )  # fmt: skip
    assert server.stdout is not None
    for line in server.stdout:  # ends when the server exits
        found = re.search(r"IRC clients .* on port (\d+)", line)
        if found:
            # Keep reading what it prints (so it never blocks on a full pipe).
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server, int(found.group(1))
    server.wait()
    raise SystemExit(
        f"the server exited with {server.returncode} before listening:\n" + log.read_text()[-2000:]
    )


def stop_servers(servers: list[subprocess.Popen[str]]) -> None:
    """SIGTERM each (they stop together), then wait for each; a SIGKILL after 10 s."""
    for server in servers:
        server.terminate()
    for server in servers:
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def counts(summary: str) -> dict[str, int]:
    """pytest's last line (``59 failed, 248 passed, 155 skipped, 3 errors in 255.18s``)."""
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}


#: irctest's tests of a server with a password (``PASS``): run on a server of their own,
#: started with the password they expect; the rest run on servers without one.
PASSWORDED = "PasswordedConnectionRegistrationTestCase"
PASSWORD = "testpassword"
#: irctest's tests that count what a server has seen since it started (LUSERS' highest user
#: count; ``-k`` matches lusers.py): a server for each, as irctest's own controllers run them.
FRESH = "Lusers"


@dataclass
class Run:
    """What one pytest run of irctest said."""

    counts: dict[str, int]
    failed: list[str]
    summary: str
    alive: bool  # every server lived to the end

    def line(self) -> str:
        c = self.counts
        return (
            f"{c.get('passed', 0)} passed, {c.get('failed', 0)} failed, "
            f"{c.get('skipped', 0)} skipped, {c.get('errors', c.get('error', 0))} errors"
        )


def run_suite(
    workers: int,
    logs: Path,
    select: str,
    server_args: tuple[str, ...] = (),
    fresh: bool = False,
) -> Run:
    """irctest's tests chosen by ``-k select`` (and the markers), ``workers`` pytest workers,
    each against a server of its own started with ``server_args``; ``fresh``: a server for
    each test instead (tests/irctest_servers.py)."""
    servers: list[subprocess.Popen[str]] = []
    irc_ports: list[int] = []
    try:
        for _ in range(0 if fresh else workers):
            log = logs / f"server{len(list(logs.iterdir()))}.log"
            server, port = start_server(log, server_args)
            servers.append(server)
            irc_ports.append(port)
        env = dict(
            os.environ,
            IRCTEST_SERVER_HOSTNAME="127.0.0.1",
            IRCTEST_SERVER_PORT=str(irc_ports[0] if irc_ports else 0),
            GAME_CHAT_IRCTEST_PORTS=",".join(map(str, irc_ports)),
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])
            ),
        )
        if fresh:
            env["GAME_CHAT_IRCTEST_FRESH"] = json.dumps(server_args)
        run = subprocess.run(
            [
                sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                "-p", "irctest_servers",
                "--controller", "irctest.controllers.external_server", "-m", MARKERS,
                "-k", select, "-n", str(workers), "-o", "addopts=",
            ],
            cwd=SUITE,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )  # fmt: skip
        alive = all(server.poll() is None for server in servers)
    finally:
        stop_servers(servers)
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    summary = lines[-1] if lines else run.stderr.strip()[-500:]
    return Run(counts(summary), failed, summary, alive)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at-least", type=int, default=AT_LEAST, help="passes required")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="irctest-servers-"))
    main_run = run_suite(args.workers, logs, f"not {PASSWORDED} and not {FRESH}")
    with_password = run_suite(1, logs, PASSWORDED, ("--password", PASSWORD))
    each_fresh = run_suite(1, logs, FRESH, fresh=True)
    apart = (with_password, each_fresh)
    for run in (main_run, *apart):
        print("\n".join(run.failed))
        print(run.summary)
    print(
        f"irctest selection on game_chat's IRC port: {main_run.line()} "
        f"(required: {args.at_least} passed); on a server with --password {PASSWORD}: "
        f"{with_password.line()}; {FRESH}, a server for each test: {each_fresh.line()}"
    )
    ok = main_run.counts.get("passed", 0) >= args.at_least
    ok = ok and all(run.counts.get("passed", 0) > 0 and not run.failed for run in apart)
    if not all(run.alive for run in (main_run, *apart)):
        print(f"a server died during the run (logs in {logs})", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
