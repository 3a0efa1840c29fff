"""Flood limits of one connection, without sockets or threads (the clock is injectable).

Modelled on the IRC daemons' penalties (ngircd, InspIRCd: every command costs, a client too far
ahead is throttled, far beyond that it is disconnected with "Excess Flood") and Minecraft's
chat spam kick. Each connection has two budgets, counted in chat lines:

- the **request budget**: ``Limits.chat_burst`` (20) at once, refilled at
  ``Limits.chat_per_minute`` (120, i.e. 2 a second). Every request takes its cost
  (``Limits.costs``: a chat line 1, a nick change 4, a ``who`` 0.5, a ``pong`` nothing...);
- the **member-data budget** for ``set_data`` alone: ``Limits.data_burst`` (60) at once,
  ``Limits.data_per_second`` (30) after that, so a game's 10-20 position updates a second
  never touch the chat's budget nor are touched by it.

A request the budget cannot pay is refused with the non-fatal error ``rate_limited`` ("slow
down: too many messages; try again in N s", N the seconds after which the same request would
be taken). A refused request is charged all the same, so the budget goes into debt: whoever
keeps sending while refused sinks deeper, whoever stops is back in business after N seconds.
A budget more than ``Limits.flood_seconds`` (20) seconds of refill in debt means flooding: the
fatal ``rate_limited`` "excess flood" and the connection ends (one code for one cause, told
apart by ``fatal``, as ``bad_password`` and ``banned`` are). A person typing fast (a line a
second, bursts, a paste of 20 lines) is never refused; a script sending flat out is refused
after 20 lines and gone after about 40 more.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..protocol.errors import ErrorCode, RemoteProtocolError
from ..protocol.limits import Limits

#: The request type with a budget of its own.
DATA = "set_data"
#: Told to the others as the leave reason of a connection ended for flooding.
FLOOD_REASON = "excess flood: too many messages, too fast"


class Bucket:
    """A token bucket that may run into debt: ``burst`` tokens at most, ``rate`` more a second,
    and at most ``debt`` below zero before :meth:`take` reports a flood."""

    def __init__(self, burst: float, rate: float, debt: float, now: float) -> None:
        self.burst, self.rate, self.debt = burst, rate, debt
        self.level = float(burst)
        self._at = now

    def take(self, cost: float, now: float) -> float:
        """Take ``cost``: 0.0 if it could be paid, else the seconds until the same cost could
        be (it is charged anyway, down to the debt allowed: trying while refused costs)."""
        cost = min(cost, self.burst)  # never more than a full bucket: nothing is impossible
        self.level = min(self.burst, self.level + (now - self._at) * self.rate)
        self._at = now
        if self.level >= cost:
            self.level -= cost
            return 0.0
        if self.debt > 0:  # (with no debt allowed, refusals are free and nobody floods)
            self.level = max(self.level - cost, -self.debt - cost)  # bounded, just past it
        return (cost - self.level) / self.rate

    @property
    def flooding(self) -> bool:
        """The debt went beyond what is allowed."""
        return self.debt > 0 and self.level < -self.debt


class RequestLimiter:
    """The two budgets of one connection. :meth:`charge` before handling each request."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._costs = limits.costs
        now = clock()
        self._requests = _bucket(limits.chat_burst, limits.chat_per_minute / 60, limits, now)
        self._data = _bucket(limits.data_burst, limits.data_per_second, limits, now)

    def charge(self, kind: str) -> None:
        """Count one request of ``kind`` (a rich message ``type``, or ``invalid``).

        Raises RemoteProtocolError ``rate_limited``: not fatal when the budget cannot pay
        (the request must not be handled), fatal when the connection is flooding.
        """
        cost = self._costs.get(kind, 1.0)  # a type with no cost (a bug) counts as a line
        bucket = self._data if kind == DATA else self._requests
        if bucket is None or cost <= 0:
            return
        wait = bucket.take(cost, self._clock())
        if not wait:
            return
        if bucket.flooding:
            raise RemoteProtocolError(ErrorCode.RATE_LIMITED, FLOOD_REASON, fatal=True)
        what = "data updates" if bucket is self._data else "messages"
        raise RemoteProtocolError(
            ErrorCode.RATE_LIMITED,
            f"slow down: too many {what}; try again in {max(1, math.ceil(wait))} s",
        )


def _bucket(burst: int, rate: float, limits: Limits, now: float) -> Bucket | None:
    """A budget refilled at ``rate`` a second; None when the rate is 0 (no limit)."""
    if rate <= 0:
        return None
    return Bucket(burst, rate, limits.flood_seconds * rate, now)
