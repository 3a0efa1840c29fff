"""Access control without sockets: passwords, operator logins (rate-limited), bans and mutes.

Bans live in memory for fast checks and, when a store is given, in the history database so
they survive restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..protocol.names import nick_key

_HASH_SCHEME = "pbkdf2_sha256"
_HASH_ITERATIONS = 200_000


def hash_password(password: str, iterations: int = _HASH_ITERATIONS) -> str:
    """A salted PBKDF2 hash to put in a config file instead of the password itself."""
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), iterations)
    return f"{_HASH_SCHEME}${iterations}${salt}${digest.hex()}"


def verify_password(password: str, expected: str) -> bool:
    """Check ``password`` against a plain expected password or a :func:`hash_password` hash."""
    if expected.startswith(_HASH_SCHEME + "$"):
        try:
            _, iterations, salt, digest = expected.split("$")
            actual = hashlib.pbkdf2_hmac(
                "sha256", password.encode(), bytes.fromhex(salt), int(iterations)
            )
        except ValueError:
            return False
        return hmac.compare_digest(actual.hex(), digest)
    return hmac.compare_digest(password.encode(), expected.encode())


class FailureLimiter:
    """At most ``limit`` failures per ``window`` seconds per key (an address)."""

    def __init__(
        self, limit: int = 5, window: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        with self._lock:
            recent = self._prune(key)
            if len(recent) < self.limit:
                return 0.0
            return max(0.0, recent[0] + self.window - self._clock())

    def failed(self, key: str) -> None:
        with self._lock:
            self._prune(key).append(self._clock())

    def _prune(self, key: str) -> deque[float]:
        recent = self._failures.setdefault(key, deque())
        cutoff = self._clock() - self.window
        while recent and recent[0] <= cutoff:
            recent.popleft()
        if len(self._failures) > 10_000:  # forget quiet addresses rather than grow forever
            for stale in [k for k, v in self._failures.items() if not v and k != key]:
                del self._failures[stale]
        return recent


@dataclass(frozen=True)
class BanEntry:
    target: str  # a nick key, or an IP address
    kind: str  # "nick" or "address"
    reason: str
    by: str
    expires: float | None  # Unix time; None: for good


class BanStore(Protocol):
    """Where bans persist (the history database)."""

    def add_ban(
        self, target: str, kind: str, reason: str, by: str, expires: float | None
    ) -> None: ...

    def remove_ban(self, target: str) -> bool: ...

    def active_bans(self, now: float) -> list[BanEntry]: ...


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_of(address: str) -> str:
    """The IP of a "host:port" / "[v6]:port" peer address."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    return address.rpartition(":")[0] if address.count(":") == 1 else address


class BanList:
    """Active bans by nick key and by address, mirrored to a store when there is one."""

    def __init__(self, store: BanStore | None = None, clock: Callable[[], float] = time.time):
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._bans: dict[str, BanEntry] = {}
        if store is not None:
            for ban in store.active_bans(clock()):
                self._bans[ban.target] = BanEntry(
                    ban.target, ban.kind, ban.reason, ban.by, ban.expires
                )

    def add(self, target: str, reason: str, by: str, minutes: float | None) -> BanEntry:
        """Ban now; then store it (HistoryError if the store fails: the ban holds anyway)."""
        kind = "address" if is_address(target) else "nick"
        key = target if kind == "address" else nick_key(target)
        expires = None if minutes is None else self._clock() + minutes * 60
        entry = BanEntry(key, kind, reason, by, expires)
        with self._lock:
            self._bans[key] = entry
        if self._store is not None:
            self._store.add_ban(key, kind, reason, by, expires)
        return entry

    def remove(self, target: str) -> bool:
        """Lift now; then in the store (HistoryError if it fails: lifted anyway)."""
        key = target if is_address(target) else nick_key(target)
        with self._lock:
            found = self._bans.pop(key, None) is not None
        if self._store is not None:
            found = self._store.remove_ban(key) or found
        return found

    def find(self, *, nick: str | None = None, address: str | None = None) -> BanEntry | None:
        """The ban that applies to this nick or this peer address, if any."""
        keys = []
        if nick is not None:
            keys.append(nick_key(nick))
        if address is not None:
            keys.append(host_of(address))
        now = self._clock()
        with self._lock:
            for key in keys:
                ban = self._bans.get(key)
                if ban is not None and ban.expires is not None and ban.expires <= now:
                    del self._bans[key]
                    ban = None
                if ban is not None:
                    return ban
        return None


def describe_ban(ban: BanEntry, now: float) -> str:
    reason = f": {ban.reason}" if ban.reason else ""
    if ban.expires is None:
        return f"you are banned from this server{reason}"
    minutes = max(1, round((ban.expires - now) / 60))
    return f"you are banned from this server for {minutes} more minute(s){reason}"
