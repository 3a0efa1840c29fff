"""Reconnecting to Redis: how long to wait, and saying so in the log once, not on every try."""

from __future__ import annotations

import logging
import random
import threading

log = logging.getLogger("game_chat.cluster")


class Reconnect:
    """Exponential backoff with jitter between ``first`` and ``most`` seconds, and two log
    lines per outage: one when Redis goes away, one when it answers again."""

    def __init__(self, what: str, first: float = 0.1, most: float = 2.0) -> None:
        self.what = what
        self.first = first
        self.most = most
        self._delay = 0.0
        self.failures = 0  # consecutive

    @property
    def down(self) -> bool:
        return self.failures > 0

    def failed(self, exc: Exception, stop: threading.Event) -> bool:
        """Note a failure and wait before the next try; False if ``stop`` was set meanwhile."""
        if self.failures == 0:
            log.warning("%s: Redis unreachable (%s); retrying", self.what, exc)
        self.failures += 1
        self._delay = min(self.most, max(self.first, self._delay * 2))
        return not stop.wait(self._delay * random.uniform(0.8, 1.2))

    def worked(self) -> None:
        if self.failures:
            log.warning("%s: Redis is back after %d failed tries", self.what, self.failures)
        self.failures = 0
        self._delay = 0.0
