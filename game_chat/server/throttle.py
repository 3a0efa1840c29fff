"""A log line at most once per interval: a failing disk or an accept loop out of descriptors
must not write a line per message or per connection."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """Says when it is time to speak again, and how many times it kept quiet meanwhile.

    >>> throttle = Throttle(60.0)
    >>> if (quiet := throttle.due()) is not None:
    ...     log.warning("history write failed (%d more since the last report)", quiet)
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._quiet = 0

    def due(self) -> int | None:
        """None while quiet (the call is counted); else the number of quiet calls since the
        last time it was due, and the interval starts again."""
        now = self._clock()
        if now < self._next:
            self._quiet += 1
            return None
        quiet, self._quiet = self._quiet, 0
        self._next = now + self.interval
        return quiet

    def reset(self) -> None:
        """The trouble is over: the next problem is reported at once."""
        self._next = float("-inf")
        self._quiet = 0
