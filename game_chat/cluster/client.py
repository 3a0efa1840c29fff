"""The Redis/Valkey connection a node uses, from ``--cluster URL``."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: Seconds to wait for Redis to answer; a node whose Redis is slower than this counts it as
#: unreachable and retries with its own backoff (docs/SCALING.md), never inside a command.
COMMAND_TIMEOUT = 5.0


def connect(url: str, timeout: float = COMMAND_TIMEOUT) -> redis.Redis:
    """A client for ``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` for TLS,
    ``unix://`` for a socket). Nothing is sent until the first command. redis-py's own
    retries are off: a failed command raises at once, and the caller decides when to try
    again (so no command is sent twice behind its back)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 2.0),
        retry=Retry(NoBackoff(), 0),
    )
