"""Who is on which node: heartbeats, cluster-wide nicks and member lists in Redis/Valkey.

Keys (``ns`` is the cluster's namespace):

* ``{ns}:alive:{node}``: set with an expiry (``ttl``) and refreshed by each heartbeat. A node
  whose key has expired is dead, whatever it still holds.
* ``{ns}:nodes``: the ids of the nodes that have not been reaped yet.
* ``{ns}:members:{node}``: hash, nick key -> the member's public info (JSON): what ``who``,
  ``users`` and room member lists show for members on that node.
* ``{ns}:nick:{skeleton}``: which node holds a nick (by its look-alike skeleton, so
  two nodes cannot hand out confusable nicks either). A claim is taken by one atomic script:
  free, or held by a dead node -> taken; held by a live node -> refused. Two nodes asking for
  one nick at the same instant: exactly one wins.

A node killed with ``kill -9`` stops refreshing its alive key; within ``ttl`` seconds its nicks
are free again and :meth:`Presence.reap` (run by every node's heartbeat; the first to see the
death wins, atomically) hands back the dead node's member list so that their departures can
be announced once.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from typing import Any

import redis

from .room_log import ClusterDataError, redis_errors

#: KEYS nick claim; ARGV node, alive-key prefix. 1: this node holds it now (it was free, held
#: by a dead node, or ours already: which member of the node has it is the node's business);
#: 0: a live node holds it.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. held) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

#: KEYS nick claim; ARGV node: drop the claim only if this node still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: KEYS nodes set, dead node's alive key, its members hash; ARGV node. Returns the members
#: hash (flat) to the one caller that reaps the node, else false (alive, or reaped already).
_REAP = """
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return false end
local members = redis.call('HGETALL', KEYS[3])
redis.call('DEL', KEYS[3])
return members
"""


class Presence:
    """One node's view of the cluster's members (no thread: the node calls :meth:`beat`)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "gc",
        node_id: str | None = None,
        ttl: float = 10.0,
    ) -> None:
        self._redis = client
        self._ns = namespace
        self.node_id = node_id or secrets.token_hex(6)
        self.ttl = ttl
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._reap = client.register_script(_REAP)

    # --- keys -----------------------------------------------------------------------------

    def _alive(self, node: str) -> str:
        return f"{self._ns}:alive:{node}"

    def _members(self, node: str) -> str:
        return f"{self._ns}:members:{node}"

    def _nick(self, skeleton: str) -> str:
        return f"{self._ns}:nick:{skeleton}"

    @property
    def _nodes(self) -> str:
        return f"{self._ns}:nodes"

    # --- this node --------------------------------------------------------------------------

    def beat(self) -> None:
        """Say this node is alive for another ``ttl`` seconds (call every second or so)."""
        with redis_errors("send the heartbeat"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(self._alive(self.node_id), "1", px=int(self.ttl * 1000))
            pipe.sadd(self._nodes, self.node_id)
            pipe.execute()

    def leave(self) -> None:
        """A clean stop: this node and everything it holds are gone at once."""
        with redis_errors("leave the cluster"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(self._alive(self.node_id), self._members(self.node_id))
            pipe.srem(self._nodes, self.node_id)
            pipe.execute()

    def claim_nick(self, skeleton: str) -> bool:
        """Take the nick whose skeleton is ``skeleton`` for this node: True if it is this
        node's now, False if another live node holds it. (Which of its members has it is
        the node's own business: its chat state keeps nicks unique within it.)"""
        with redis_errors("claim a nick"):
            args = [self.node_id, self._alive("")]
            return int(self._claim(keys=[self._nick(skeleton)], args=args)) == 1

    def release_nick(self, skeleton: str) -> None:
        with redis_errors("release a nick"):
            self._release(keys=[self._nick(skeleton)], args=[self.node_id])

    def publish(self, members: dict[str, dict[str, Any]], gone: Iterable[str] = ()) -> None:
        """Set (nick key -> info) and remove (``gone``) this node's members in the lists."""
        with redis_errors("publish members"):
            pipe = self._redis.pipeline(transaction=False)
            if members:
                encoded = {k: json.dumps(v, separators=(",", ":")) for k, v in members.items()}
                pipe.hset(self._members(self.node_id), mapping=encoded)  # type: ignore[arg-type]
            gone = list(gone)
            if gone:
                pipe.hdel(self._members(self.node_id), *gone)
            pipe.execute()

    # --- the whole cluster ------------------------------------------------------------------

    def live_nodes(self) -> list[str]:
        """Nodes whose heartbeat has not expired."""
        alive, _dead = self._survey()
        return alive

    def _survey(self) -> tuple[list[str], list[str]]:
        """The nodes not reaped yet, sorted: those whose heartbeat holds, and the others."""
        with redis_errors("list nodes"):
            nodes = sorted(n.decode() for n in self._redis.smembers(self._nodes))  # type: ignore[union-attr]
            pipe = self._redis.pipeline(transaction=False)
            for n in nodes:
                pipe.exists(self._alive(n))
            up = pipe.execute() if nodes else []
        alive = [n for n, beat in zip(nodes, up, strict=True) if beat]
        return alive, [n for n, beat in zip(nodes, up, strict=True) if not beat]

    def members(self) -> dict[str, dict[str, Any]]:
        """Every member of every live node: nick key -> info (with ``node``)."""
        nodes = self.live_nodes()
        with redis_errors("list members"):
            pipe = self._redis.pipeline(transaction=False)
            for n in nodes:
                pipe.hgetall(self._members(n))
            lists = pipe.execute()
        found: dict[str, dict[str, Any]] = {}
        for node, entries in zip(nodes, lists, strict=True):
            for key, info in entries.items():
                found[key.decode()] = {**_info(info), "node": node}
        return found

    def reap(self) -> dict[str, list[dict[str, Any]]]:
        """Dead nodes this call took over: node -> its members' info (each dead node is
        handed to exactly one caller in the whole cluster, which announces their leaving)."""
        _alive, dead = self._survey()  # the script checks again: only one caller reaps a node
        reaped: dict[str, list[dict[str, Any]]] = {}
        with redis_errors("reap dead nodes"):
            for node in dead:
                if node == self.node_id:
                    continue
                keys = [self._nodes, self._alive(node), self._members(node)]
                flat = self._reap(keys=keys, args=[node])
                if flat:
                    reaped[node] = [_info(v) for v in flat[1::2]]
        return reaped


def _info(raw: bytes) -> dict[str, Any]:
    try:
        info = json.loads(raw)
    except ValueError as exc:
        raise ClusterDataError("a member entry is damaged") from exc
    if not isinstance(info, dict):
        raise ClusterDataError("a member entry is damaged")
    return info
