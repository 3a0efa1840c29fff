"""The certificates of servers trusted on first use, like SSH's known_hosts.

One line per server in ``known_servers`` in the client's config directory::

    # comments and blank lines are kept out of the way
    192.168.1.20:5050 3F:0A:...:9C
    [fe80::1]:5050 A1:B2:...:00

The address is as the user gave it (host lower-cased, IPv6 in brackets), the fingerprint the
SHA-256 of the certificate (docs/SECURITY.md). A person may edit the file: deleting a line
forgets a server. Lines that do not parse are skipped (and kept when the file is written,
unless a new pin replaces a line of the same address).
Reads and writes go through one lock, and a write replaces the file whole.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ..protocol.tls import normalize_fingerprint
from .config import config_dir

log = logging.getLogger("game_chat.client")

KNOWN_SERVERS_FILE = "known_servers"

_lock = threading.Lock()  # one process: its clients may share the file


def server_key(host: str, port: int) -> str:
    """``host:port`` as the file writes it."""
    host = host.strip().lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KnownServers:
    """The pinned certificates in ``path`` (default: ``known_servers`` in the config dir,
    looked up when used, not when made)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._path = Path(path) if path is not None else None

    @property
    def path(self) -> Path:
        return self._path or config_dir() / KNOWN_SERVERS_FILE

    def get(self, host: str, port: int) -> str | None:
        """The fingerprint pinned for ``host:port``, or None."""
        with _lock:
            return self._read().get(server_key(host, port))

    def pin(self, host: str, port: int, fingerprint: str) -> None:
        """Remember ``fingerprint`` for ``host:port`` (replacing what was there). OSError if
        the file cannot be written: the caller says so, the connection may go on."""
        key, value = server_key(host, port), normalize_fingerprint(fingerprint)
        with _lock:
            lines = self._lines()
            kept = [line for line in lines if _address(line) != key]
            kept.append(f"{key} {value}")
            self._write(kept)

    def _read(self) -> dict[str, str]:
        pins: dict[str, str] = {}
        for line in self._lines():
            key, value = _parse(line)
            if key is not None and value is not None:
                pins[key] = value
        return pins

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return []

    def _write(self, lines: list[str]) -> None:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".new")
        temporary.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        os.replace(temporary, path)


def _address(line: str) -> str | None:
    """The address a line is about (even one with a bad fingerprint), or None."""
    parts = line.split()
    return parts[0].lower() if parts and not parts[0].startswith("#") else None


def _parse(line: str) -> tuple[str | None, str | None]:
    """(address, fingerprint) of a line; (None, None) for a comment, blank or bad line."""
    parts = line.split()
    if len(parts) != 2 or parts[0].startswith("#"):
        return None, None
    try:
        return parts[0].lower(), normalize_fingerprint(parts[1])
    except ValueError:
        return None, None
