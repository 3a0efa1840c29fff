"""What the message log shows: one :class:`LogLine` per message or notice. No pygame here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class LineKind:
    CHAT = "chat"  # someone's message: "nick: text"
    ACTION = "action"  # "/me waves": "* nick waves"
    SYSTEM = "system"  # joins, leaves, nick changes, connection state: muted
    ERROR = "error"  # refused input, failed sends: muted, error colour
    NOTICE = "notice"  # the server speaking: command replies, help, operator announcements


class Delivery:
    """State of one's own message: shown pending until the server's ack arrives."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(eq=False)
class LogLine:
    """One entry of the log. Mutable only in ``delivery`` (pending -> sent or failed).

    ``version`` changes whenever something that affects rendering changes, so renderers can
    cache by ``(id(line), version)``.
    """

    kind: str
    text: str
    nick: str | None = None
    ts: float = field(default_factory=time.time)
    own: bool = False
    delivery: str | None = None
    mention: bool = False
    version: int = 0
    #: Replayed from the server's history (on join, or paged in by scrolling up): shown dimmed.
    history: bool = False

    def set_delivery(self, delivery: str) -> None:
        if delivery != self.delivery:
            self.delivery = delivery
            self.version += 1
