"""Size and rate limits shared by the server, the client and the codec."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Frame payload a server accepts from a client by default.
DEFAULT_MAX_FRAME_BYTES = 8 * 1024
#: Frame payload a client accepts from a server by default (a welcome lists every user).
DEFAULT_CLIENT_MAX_FRAME_BYTES = 4 * 1024 * 1024

#: What each request takes from a connection's budget, by the ``type`` of the rich message
#: (a plain line counts as ``chat``, a plain /command as the message it stands for), in chat
#: lines. ``set_data`` is taken from the member-data budget, everything else from the request
#: budget. ``invalid``: a frame that is no request at all (bad UTF-8, bad JSON, a malformed
#: message, an unknown or misused /command). 0: free (answering the server, leaving).
DEFAULT_COSTS: Mapping[str, float] = MappingProxyType(
    {
        "chat": 1,
        "msg": 1,
        "nick": 4,  # announced to everyone sharing a room: nick floods are a classic
        "join": 2,  # replays the room's history
        "part": 1,
        "topic": 4,
        "away": 2,
        "room_mode": 2,  # told to the whole room
        "who": 0.5,
        "users": 0.5,
        "rooms": 0.5,
        "history": 0.5,  # a resume fills its gaps with these: at most 20 rooms at once
        "help": 0.5,
        "ping": 0.25,
        "pong": 0,
        "bye": 0,
        "hello": 1,
        "oper": 1,  # failures also wait (server/moderation.py)
        "kick": 1,  # operators are not limited: these count for the others' tries
        "ban": 1,
        "unban": 1,
        "mute": 1,
        "unmute": 1,
        "set_data": 1,
        "invalid": 1,
    }
)

#: The fields a welcome carries in ``limits``: what a client needs to pace itself.
SENT_FIELDS = (
    "max_frame_bytes",
    "max_text_chars",
    "max_nick_chars",
    "chat_burst",
    "chat_per_minute",
    "data_burst",
    "data_per_second",
)


@dataclass(frozen=True)
class Limits:
    """What a server enforces on its clients; :data:`SENT_FIELDS` go to rich clients in the
    welcome. The rate limits are documented in docs/PROTOCOL.md section 6.5."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_text_chars: int = 1000
    max_nick_chars: int = 24
    #: Each connection's request budget, counted in chat lines: ``chat_burst`` at once, then
    #: refilled at ``chat_per_minute`` (0: no limit). Other requests cost what ``costs`` says.
    chat_burst: int = 20
    chat_per_minute: int = 120
    #: Member data (``set_data``) has a budget of its own: a game may send a position 10-20
    #: times a second. 0 per second: no limit.
    data_burst: int = 60
    data_per_second: int = 30
    #: A connection that goes on sending while refused is disconnected (fatal rate_limited,
    #: "excess flood") once either budget is more than this many seconds of refill in debt.
    #: 0: refused requests are free and nobody is disconnected.
    flood_seconds: int = 20
    #: A failed ``oper`` makes the next try (from the connection and from its address) wait
    #: 1 s, then 2, 4, ... up to this many seconds.
    oper_wait_max: int = 60
    #: Cost per request type; those given replace the ones of :data:`DEFAULT_COSTS`. A cost
    #: over its budget's burst counts as the burst (a request is never impossible).
    costs: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_COSTS), hash=False)

    def __post_init__(self) -> None:
        if self.max_frame_bytes < 64:
            raise ValueError("max_frame_bytes must be at least 64")
        if self.max_text_chars < 1 or self.max_nick_chars < 1:
            raise ValueError("text and nick limits must be positive")
        if self.chat_burst < 1 or self.data_burst < 1:
            raise ValueError("chat_burst and data_burst must be at least 1")
        if min(self.chat_per_minute, self.data_per_second, self.flood_seconds) < 0:
            raise ValueError("rates and flood_seconds must not be negative (0: off)")
        if self.oper_wait_max < 1:
            raise ValueError("oper_wait_max must be at least 1")
        # A plain dict (copied, never changed): a Limits must copy and pickle like its fields.
        object.__setattr__(self, "costs", self._merged_costs())

    def _merged_costs(self) -> dict[str, float]:
        costs = dict(DEFAULT_COSTS)
        for kind, cost in self.costs.items():
            if kind not in DEFAULT_COSTS:
                known = ", ".join(sorted(DEFAULT_COSTS))
                raise ValueError(f"no request type {kind!r} to give a cost to (known: {known})")
            cost = float(cost)
            if not (math.isfinite(cost) and cost >= 0):
                raise ValueError(f"the cost of {kind} must be a number of 0 or more")
            costs[kind] = cost
        return costs

    def to_dict(self) -> dict[str, int]:
        """The welcome's ``limits``."""
        return {name: getattr(self, name) for name in SENT_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        """Build limits from a welcome's ``limits`` object, ignoring unknown keys."""
        known = {k: int(v) for k, v in data.items() if k in SENT_FIELDS}
        return cls(**known)
