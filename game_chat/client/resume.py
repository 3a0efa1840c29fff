"""What the client has of each room, so that a reconnection misses nothing. No sockets here.

The server delivers every line in the order of its ids, on each connection. So once a live id
``M`` arrived (a chat line of any room, a private line, an ack), the client holds every line
up to ``M`` of every room it was in: :class:`ResumeTracker` keeps that number per room and
the next hello asks to resume after it (``Hello.resume``).

When more lines were missed than the server replays, its ``joined`` names the gap. The
tracker then asks for the missing lines page by page (``history`` with ``after``) and holds
back the room's other lines (the replay and new live lines) until the gap is filled, so the
owner gets the room's lines exactly once and in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..protocol.messages import (
    Ack,
    ChatMessage,
    FetchHistory,
    HistoryPage,
    PrivateMessage,
    RoomJoined,
    page_messages,
)
from ..protocol.names import nick_key

#: Lines asked for per page while filling a gap (the server's most).
FILL_PAGE = 500


@dataclass
class _Gap:
    room: str
    after: int  # every line up to this id is with the owner
    before: int  # lines from this id on came with the replay (held until the gap is filled)
    held: list[ChatMessage] = field(default_factory=list)

    def request(self) -> FetchHistory:
        return FetchHistory(self.room, before=self.before, limit=FILL_PAGE, after=self.after)


class ResumeTracker:
    """Per room: the last id the owner has without a hole. Fed by the network thread."""

    def __init__(self) -> None:
        self._last: dict[str, int | None] = {}  # room key -> last id held (None: none yet)
        self._names: dict[str, str] = {}  # room key -> name as the server spells it
        self._gaps: dict[str, _Gap] = {}  # room key -> the gap being filled
        self._watermark = 0  # highest live id on this connection

    def points(self) -> dict[str, int | None]:
        """The ``resume`` of the next hello: each room we are in, and its last id."""
        return {self._names[key]: last for key, last in self._last.items()}

    def forget_ids(self) -> None:
        """The server has another store now: our ids mean nothing there (rooms stay)."""
        self._last = dict.fromkeys(self._last)

    def connection_lost(self) -> None:
        """Lines held for a gap are dropped: the resume asks for them again."""
        self._gaps.clear()
        self._watermark = 0

    def joined(self, message: RoomJoined) -> list[FetchHistory]:
        """We are in a room (again): a gap in what was replayed is asked for at once."""
        key = nick_key(message.room)
        self._names[key] = message.room
        self._last.setdefault(key, None)
        gap = message.gap
        if not isinstance(gap, dict):
            return []
        after, before = gap.get("after"), gap.get("before")
        if type(after) is not int or type(before) is not int or after + 1 >= before:
            return []
        filling = self._gaps[key] = _Gap(message.room, after, before)
        self._last[key] = after
        return [filling.request()]

    def left(self, room: str) -> None:
        key = nick_key(room)
        for table in (self._last, self._names, self._gaps):
            table.pop(key, None)

    def chat(self, message: ChatMessage) -> list[ChatMessage]:
        """A room's line: what to hand to the owner now ([] while its room has a gap)."""
        key = nick_key(message.room)
        gap = self._gaps.get(key)
        if gap is not None:
            gap.held.append(message)
            return []
        if message.history:
            self._raise(key, message.id)
        else:
            self.live(message.id)
        return [message]

    def live(self, message_id: int) -> None:
        """A live id arrived (chat, private line, ack): every room without a gap has all of
        its lines up to it."""
        self._watermark = max(self._watermark, message_id)
        for key in self._last:
            if key not in self._gaps:
                self._raise(key, message_id)

    def other(self, message: PrivateMessage | Ack) -> None:
        if isinstance(message, PrivateMessage) and not message.history:
            self.live(message.id)
        elif isinstance(message, Ack):
            self.live(message.msg_id)

    def page(self, message: HistoryPage) -> tuple[list[ChatMessage], list[FetchHistory]] | None:
        """A history page: None if it is not one of ours (the owner asked for it); else the
        lines to hand over and the next request."""
        if message.after is None:
            return None
        key = nick_key(message.room)
        gap = self._gaps.get(key)
        if gap is None or message.after != gap.after:
            return [], []  # an answer to a request of a connection that is gone
        lines = [
            replace(m, history=True)
            for m in page_messages(message)
            if gap.after < m.id < gap.before
        ]
        lines.sort(key=lambda m: m.id)
        if lines:
            gap.after = self._last[key] = lines[-1].id
        if message.more and lines and gap.after + 1 < gap.before:
            return lines, [gap.request()]
        return lines + self._close(key), []

    @property
    def filling(self) -> bool:
        """True while some gap waits for its pages."""
        return bool(self._gaps)

    def requests(self) -> list[FetchHistory]:
        """The page each open gap waits for (to ask again after a refusal)."""
        return [gap.request() for gap in self._gaps.values()]

    def give_up(self) -> list[ChatMessage]:
        """A gap cannot be filled (the server refused the request): hand over what was held,
        with the hole in it."""
        released: list[ChatMessage] = []
        for key in list(self._gaps):
            released += self._close(key)
        return released

    def _close(self, key: str) -> list[ChatMessage]:
        gap = self._gaps.pop(key)
        released: list[ChatMessage] = []
        for held in gap.held:
            released += self.chat(held)
        self._raise(key, self._watermark)
        return released

    def _raise(self, key: str, message_id: int) -> None:
        last = self._last.get(key)
        if key in self._last and message_id > 0 and (last is None or message_id > last):
            self._last[key] = message_id
