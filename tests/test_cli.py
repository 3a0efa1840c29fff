"""The headless launch: run_server.py as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wire import rich_client

ROOT = Path(__file__).resolve().parent.parent


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_server.py"), "--host", "127.0.0.1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def read_port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("game_chat server listening on 127.0.0.1:"), line
    return int(line.rsplit(":", 1)[1])


def stop(process: subprocess.Popen[str], signum: int) -> tuple[int, float]:
    started = time.monotonic()
    process.send_signal(signum)
    code = process.wait(timeout=5)
    return code, time.monotonic() - started


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_tells_clients_and_exits_0_within_2_s(signum: int) -> None:
    process = launch("--port", "0")
    try:
        port = read_port(process)
        client, _ = rich_client(("127.0.0.1", port), "alice")
        code, elapsed = stop(process, signum)
        assert code == 0
        assert elapsed < 2
        bye = client.recv_until(lambda m: m["type"] == "bye")
        assert bye["reason"] == "server shutting down"
    finally:
        process.kill()
        process.wait()


def test_never_imports_pygame(tmp_path: Path) -> None:
    # A pygame that explodes on import shadows the real one: the server must not notice.
    (tmp_path / "pygame.py").write_text("raise ImportError('the server imported pygame')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    process = launch("--port", "0", env=env)
    try:
        port = read_port(process)
        rich_client(("127.0.0.1", port), "alice")
        code, _ = stop(process, signal.SIGTERM)
        assert code == 0
    finally:
        process.kill()
        process.wait()


def test_busy_port_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = launch("--port", str(port))
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert f"port {port} is already in use" in lines[0]
    assert "Traceback" not in stderr


def test_help_lists_the_flags() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_server.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=10,
        cwd=ROOT,
    )
    for flag in ("--host", "--port", "--max-clients", "--max-frame-bytes", "--log-level"):
        assert flag in result.stdout


def test_module_launch_works() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "game_chat.server", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        read_port(process)
        code, _ = stop(process, signal.SIGTERM)
        assert code == 0
    finally:
        process.kill()
        process.wait()
