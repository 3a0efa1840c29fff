"""Bans kept in Redis/Valkey: one ban list for every node of a cluster.

A hash ``{ns}:bans``, target (nick key or address) -> the ban as JSON. It is the store behind
each node's :class:`~game_chat.server.moderation.BanList` (which every node reloads at each
heartbeat, so a ban made on one node holds on all of them within a second). Failures raise
HistoryError, as the SQLite store's do: the ban list keeps working from memory meanwhile.
"""

from __future__ import annotations

import json

import redis

from ..server.history import HistoryError
from ..server.moderation import BanEntry
from .room_log import redis_errors


class RedisBanStore:
    """The cluster's bans (see the module doc)."""

    def __init__(self, client: redis.Redis, namespace: str = "gc") -> None:
        self._redis = client
        self._key = f"{namespace}:bans"

    def add_ban(self, target: str, kind: str, reason: str, by: str, expires: float | None) -> None:
        ban = {"kind": kind, "reason": reason, "by": by, "expires": expires}
        with redis_errors("store a ban in the cluster", HistoryError):
            self._redis.hset(self._key, target, json.dumps(ban))

    def remove_ban(self, target: str) -> bool:
        with redis_errors("lift a ban in the cluster", HistoryError):
            return bool(self._redis.hdel(self._key, target))

    def active_bans(self, now: float) -> list[BanEntry]:
        with redis_errors("read the cluster's bans", HistoryError):
            found = self._redis.hgetall(self._key)
        bans = []
        for raw_target, raw in found.items():  # type: ignore[union-attr]
            try:
                target = raw_target.decode("utf-8")
                ban = json.loads(raw)
                expires = ban["expires"]
                entry = BanEntry(target, str(ban["kind"]), str(ban["reason"]), str(ban["by"]),
                                 None if expires is None else float(expires))  # fmt: skip
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                continue  # not one of ours: ignored rather than trusted
            if entry.expires is None or entry.expires > now:
                bans.append(entry)
        return bans
