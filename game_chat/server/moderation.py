"""Access control without sockets: passwords, operator logins (failures wait), bans and mutes.

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
    """Failed password attempts (``oper``) per key, answered with a growing wait, never a
    lock-out. The first ``free`` failures in a row cost nothing (typos, a stale saved
    password); after each one beyond them the next try must wait ``base``, then twice as long,
    at most ``cap`` seconds (1, 2, 4, 8, 16, 32, then 60 s). A success forgets the key, and so
    do ``forget`` seconds without a failure. Tries refused for waiting are no failures.

    Keys are addresses (:func:`address_key`: an IPv6 address counts as its /64, which one
    machine usually has whole) or anything else (a connection's own limiter uses one key).
    Someone guessing from the same address as the real operator can make it wait, but never
    longer than ``cap`` after a guess.
    """

    def __init__(
        self,
        base: float = 1.0,
        cap: float = 60.0,
        free: int = 4,
        forget: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base, self.cap, self.free, self.forget = base, cap, free, forget
        self._clock = clock
        self._entries: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def blocked(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        with self._lock:
            entry = self._current(address_key(key))
            return 0.0 if entry is None else max(0.0, entry.until - self._clock())

    def failed(self, key: str) -> float:
        """Count a failure; returns the seconds the next try must wait."""
        key = address_key(key)
        now = self._clock()
        with self._lock:
            entry = self._current(key) or _Failures()
            entry.count += 1
            beyond = entry.count - self.free
            wait = 0.0 if beyond <= 0 else min(self.cap, self.base * 2 ** min(beyond - 1, 64))
            entry.until, entry.last = now + wait, now
            self._entries[key] = entry
            if len(self._entries) > _MAX_KEYS:
                self._prune(now)
            return wait

    def succeeded(self, key: str) -> None:
        """The right password: ``key`` starts afresh."""
        with self._lock:
            self._entries.pop(address_key(key), None)

    def _current(self, key: str) -> _Failures | None:
        """Lock held: the entry of ``key``, unless it is forgotten by now."""
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry.last >= self.forget:
            del self._entries[key]
            return None
        return entry

    def _prune(self, now: float) -> None:
        """Lock held: forget keys quiet for ``forget`` seconds, else every key free to try."""
        for key in [k for k, e in self._entries.items() if now - e.last >= self.forget]:
            del self._entries[key]
        if len(self._entries) > _MAX_KEYS:
            for key in [k for k, e in self._entries.items() if e.until <= now]:
                del self._entries[key]


#: Keys a FailureLimiter keeps before it forgets some (each costs about 200 bytes).
_MAX_KEYS = 10_000


@dataclass
class _Failures:
    count: int = 0  # failures in a row
    until: float = 0.0  # no try before this (clock time)
    last: float = 0.0  # the last failure (clock time)


def address_key(host: str) -> str:
    """What one party's address is counted as: an IPv4 address (also written IPv4-mapped,
    ``::ffff:a.b.c.d``) as itself, an IPv6 address as its /64 network; anything else as is."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


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


def is_loopback(host: str) -> bool:
    """True for an address of this machine itself (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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

    def reload(self) -> None:
        """The store's bans replace ours (a cluster node: bans made on other nodes).
        HistoryError if the store cannot be read: ours stay as they are."""
        if self._store is None:
            return
        bans = {
            ban.target: BanEntry(ban.target, ban.kind, ban.reason, ban.by, ban.expires)
            for ban in self._store.active_bans(self._clock())
        }
        with self._lock:
            self._bans = bans

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
