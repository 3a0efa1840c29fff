"""Limits from the OS: --max-clients against the open-files limit, and accept() out of
descriptors. Real server processes under a low ``ulimit -n``, real sockets on loopback."""

from __future__ import annotations

import json
import logging
import re
import selectors
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wire import WireClient, rich_client

from game_chat.server import server as server_module
from game_chat.server.server import (
    SPARE_DESCRIPTORS,
    ChatServer,
    ClientBudget,
    ServerConfig,
    fit_max_clients,
    server_descriptors,
)

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 256  # the child's ulimit -n
needs_rlimit = pytest.mark.skipif(resource is None, reason="no RLIMIT_NOFILE on this platform")


def _low_open_files_limit() -> None:
    """preexec_fn: the child runs under ``ulimit -n 256`` (soft and hard)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


@pytest.fixture
def open_files() -> Iterator[None]:
    """The test process itself may hold a few hundred sockets (its soft limit is put back)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1024 if hard == resource.RLIM_INFINITY else min(1024, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def read_address(process: subprocess.Popen[str], prefix: str) -> tuple[str, int]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith(prefix), line
    return "127.0.0.1", int(line.rsplit(":", 1)[1])


def accept_failures(log: str) -> list[str]:
    return [line for line in log.splitlines() if "accept failed" in line]


def expect_server_full(client: WireClient) -> dict[str, Any]:
    """The one frame a refused connection gets before the server closes it."""
    frames = client.expect_closed()
    assert len(frames) == 1, frames
    error = json.loads(frames[0])
    assert (error["type"], error["code"], error["fatal"]) == ("error", "server_full", True)
    return error


# --- the effective limit, computed ---------------------------------------------------------

OWN = 20


@pytest.mark.parametrize(
    ("wanted", "soft", "hard", "expected"),
    [
        # Enough already: nothing changes.
        (1000, 20_000, 20_000, ClientBudget(1000, 20_000)),
        (1000, 1000 + OWN + SPARE_DESCRIPTORS, 4096, ClientBudget(1000, 1084)),
        # Too low, but the hard limit has room: raised as far as needed, no further.
        (1000, 256, 4096, ClientBudget(1000, 1084)),
        (1000, 256, None, ClientBudget(1000, 1084)),
        # Raised to the hard limit, and what still does not fit is lowered.
        (1000, 256, 512, ClientBudget(512 - OWN - SPARE_DESCRIPTORS, 512)),
        (1000, 256, 256, ClientBudget(256 - OWN - SPARE_DESCRIPTORS, 256)),
        (100, 256, 256, ClientBudget(100, 256)),
        # Too small even for the spare: half of what is left, at least one client.
        (1000, 64, 64, ClientBudget((64 - OWN) // 2, 64)),
        (1000, 10, 10, ClientBudget(1, 10)),
        # A hard limit below the soft one is never "raised" to.
        (1000, 256, 100, ClientBudget(256 - OWN - SPARE_DESCRIPTORS, 256)),
    ],
)
def test_fit_max_clients(wanted: int, soft: int, hard: int | None, expected: ClientBudget) -> None:
    assert fit_max_clients(wanted, OWN, soft, hard) == expected


def test_server_descriptors_counts_what_is_opened() -> None:
    plain = server_descriptors(ServerConfig(sender_threads=2))
    assert plain == 3 + 1 + 3 + 1 + 2 * 3  # stdio, listener, accept thread, reserve, senders
    assert server_descriptors(ServerConfig(sender_threads=4)) == plain + 2 * 3
    assert server_descriptors(ServerConfig(history_db="chat.sqlite3")) == plain + 6
    assert server_descriptors(ServerConfig(announce=True)) == plain + 4


# --- the check at start, with the OS's answers faked ----------------------------------------


class FakeResource:
    """Stands in for the resource module: RLIMIT_NOFILE only."""

    RLIMIT_NOFILE = 7
    RLIM_INFINITY = -1

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.limits = (soft, hard)
        self.refuse = refuse
        self.asked: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == self.RLIMIT_NOFILE
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        assert which == self.RLIMIT_NOFILE
        self.asked.append(limits)
        if self.refuse:
            raise ValueError("not allowed")
        self.limits = limits


def started(monkeypatch: pytest.MonkeyPatch, fake: FakeResource, **settings: Any) -> ChatServer:
    monkeypatch.setattr(server_module, "resource", fake)
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, **settings))
    server.start()
    return server


def lowered_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "lowered" in r.getMessage()
    ]


def test_a_low_limit_lowers_max_clients_and_the_accept_loop_keeps_to_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    own = server_descriptors(ServerConfig())
    soft = own + SPARE_DESCRIPTORS + 3
    with caplog.at_level(logging.INFO, logger="game_chat.server"):
        server = started(monkeypatch, FakeResource(soft, soft))
    clients: list[WireClient] = []
    try:
        assert server.max_clients == 3
        assert server.config.max_clients == 1000
        assert lowered_warnings(caplog) == [
            f"--max-clients 1000 lowered to 3: the open-files limit is {soft} (ulimit -n; "
            f"hard limit {soft}) and the server keeps {own + SPARE_DESCRIPTORS} descriptors "
            "for itself"
        ]
        clients = [WireClient(server.address) for _ in range(3)]  # silent: they hold a slot
        clients.append(WireClient(server.address))
        error = expect_server_full(clients[-1])
        assert error["message"] == "server full (3 clients), try again later"
    finally:
        for client in clients:
            client.close()
        server.shutdown()


def test_a_soft_limit_below_the_hard_one_is_raised_without_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeResource(256, 100_000)
    with caplog.at_level(logging.INFO, logger="game_chat.server"):
        server = started(monkeypatch, fake)
    server.shutdown()
    need = 1000 + server_descriptors(ServerConfig()) + SPARE_DESCRIPTORS
    assert fake.asked == [(need, 100_000)]
    assert server.max_clients == 1000
    assert lowered_warnings(caplog) == []
    assert any(f"raised from 256 to {need}" in r.getMessage() for r in caplog.records)


def test_a_refused_raise_lowers_max_clients_to_the_soft_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeResource(256, 100_000, refuse=True)
    with caplog.at_level(logging.INFO, logger="game_chat.server"):
        server = started(monkeypatch, fake)
    server.shutdown()
    own = server_descriptors(ServerConfig())
    assert server.max_clients == 256 - own - SPARE_DESCRIPTORS
    assert len(lowered_warnings(caplog)) == 1
    assert "the open-files limit is 256" in lowered_warnings(caplog)[0]


def test_no_limit_no_check(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeResource(FakeResource.RLIM_INFINITY, FakeResource.RLIM_INFINITY)
    server = started(monkeypatch, fake)
    server.shutdown()
    assert (server.max_clients, fake.asked) == (1000, [])
    monkeypatch.setattr(server_module, "resource", None)  # Windows: nothing to check
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, max_clients=5))
    server.start()
    server.shutdown()
    assert server.max_clients == 5


# --- real processes under ulimit -n 256 -----------------------------------------------------


@needs_rlimit
def test_under_ulimit_256_every_connection_is_served_or_told_server_full(
    tmp_path: Path, open_files: None
) -> None:
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run_server.py"), "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            cwd=ROOT,
            preexec_fn=_low_open_files_limit,
        )
    clients: list[WireClient] = []
    try:
        address = read_address(process, "game_chat server listening on 127.0.0.1:")
        # Logged before the banner is printed: it is in the file already.
        warnings = re.findall(
            rf"WARNING .*--max-clients 1000 lowered to (\d+): the open-files limit is {LIMIT} "
            rf"\(ulimit -n; hard limit {LIMIT}\)",
            log_path.read_text(),
        )
        assert len(warnings) == 1, log_path.read_text()
        limit = int(warnings[0])
        assert 0 < limit < 300

        clients = [WireClient(address) for _ in range(300)]
        # Those over the limit are told at once, before they say anything; the others are
        # silent until they do (the server waits for their hello).
        refused: set[WireClient] = set()
        with selectors.DefaultSelector() as selector:
            for client in clients:
                selector.register(client.sock, selectors.EVENT_READ, client)
            while len(refused) < 300 - limit:
                events = selector.select(timeout=5)
                assert events, f"silence: {300 - limit - len(refused)} refusals missing"
                for key, _ in events:
                    selector.unregister(key.fileobj)
                    expect_server_full(key.data)
                    refused.add(key.data)
        served = [client for client in clients if client not in refused]
        assert len(served) == limit
        for n, client in enumerate(served):
            client.send_json(type="hello", nick=f"player{n}", version=1)
            assert client.recv_json()["type"] == "welcome"
    finally:
        for client in clients:
            client.close()
        process.terminate()
        code = process.wait(timeout=10)
    log = log_path.read_text()
    assert code == 0, log
    assert accept_failures(log) == [], log
    # A crowd over the limit is logged once a second, not once per connection.
    assert 1 <= log.count("refused: server full") <= 10, log


# A server that starts normally, then finds every descriptor taken (by a leak, a library,
# another thread...) until the test tells it to give them back.
STARVED_SERVER = textwrap.dedent(
    """
    import logging, os, sys
    from game_chat.server import ChatServer, ServerConfig

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, max_clients=100))
    server.start()
    taken = []
    while True:
        try:
            taken.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            break
    print("starved, listening on %s:%d" % server.address, flush=True)
    sys.stdin.readline()
    for fd in taken:
        os.close(fd)
    print("released", flush=True)
    sys.stdin.readline()
    server.shutdown()
    """
)


@needs_rlimit
def test_out_of_descriptors_answers_server_full_and_recovers(tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", STARVED_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            cwd=ROOT,
            preexec_fn=_low_open_files_limit,
        )
    assert process.stdin is not None and process.stdout is not None
    clients: list[WireClient] = []
    try:
        address = read_address(process, "starved, listening on 127.0.0.1:")
        clients = [WireClient(address) for _ in range(30)]
        for client in clients:  # none is left in the backlog unanswered
            error = expect_server_full(client)
            assert error["message"] == "server full (out of file descriptors), try again later"
        process.stdin.write("release\n")
        process.stdin.flush()
        assert process.stdout.readline() == "released\n"
        alice, _ = rich_client(address, "alice")  # descriptors again: served again
        clients.append(alice)
    finally:
        for client in clients:
            client.close()
        try:
            process.stdin.write("stop\n")
            process.stdin.close()
            code = process.wait(timeout=10)
        finally:
            process.kill()
            process.wait()
    log = log_path.read_text()
    assert code == 0, log
    failures = accept_failures(log)
    # At most one line a second (the test takes less than a few), the first one at once.
    assert 1 <= len(failures) <= 3, log
    assert "Too many open files: told 127.0.0.1:" in failures[0], log
    assert "the server is full" in failures[0]
