"""The tabs of a chat: one per room and one per private conversation. No pygame here.

A :class:`Tab` holds what the window shows around a log: the room's members (with their away,
operator and muted marks), its topic, how many lines arrived while it was not shown, whether
one of them mentions you, and the ids bounding the chat lines it holds (for history paging).
The log lines themselves live with whoever draws them (a MessageLog per tab, or stdout).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..protocol.names import nick_key
from .model import LogLine


class TabKind:
    ROOM = "room"
    PRIVATE = "private"


@dataclass
class Member:
    """Someone in a room, as the server described them."""

    nick: str
    #: Why they are away; "" while they are here.
    away: str = ""
    oper: bool = False
    muted: bool = False
    #: An operator of this room (whoever made it, or whom one of its operators made one).
    op: bool = False
    #: The key-value pairs this member set in the room (ready, team, ...): lobby member data.
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Member | None:
        """A member from the server's ``{"nick", "away", "oper", "muted", "op"?, "data"?}``;
        None if malformed."""
        nick = data.get("nick") if isinstance(data, Mapping) else None
        if not isinstance(nick, str) or not nick:
            return None
        away = data.get("away")
        reason = away if isinstance(away, str) else ("away" if away else "")
        pairs = data.get("data")
        return cls(
            nick,
            reason,
            data.get("oper") is True,
            data.get("muted") is True,
            data.get("op") is True,
            dict(pairs) if isinstance(pairs, Mapping) else {},
        )


@functools.lru_cache(maxsize=4096)  # every chat line looks its room and sender up
def tab_key(name: str) -> str:
    """The key a tab is filed under: room names and nicks compare alike (NFKC, case-folded);
    a room name starts with "#", which no nick does."""
    return nick_key(name)


@dataclass
class Tab:
    """One room or private conversation. ``id`` stays the same when a private peer is renamed."""

    id: int
    kind: str
    #: "#room", or the peer's nick as last seen.
    name: str
    topic: str = ""
    unread: int = 0
    mention: bool = False
    #: Rooms: False once we left it (the last tab stays open to show where we were).
    joined: bool = True
    #: Lowest and highest server id of the chat lines shown (for FetchHistory and replays).
    oldest_id: int | None = None
    newest_id: int | None = None
    #: Older history may exist on the server / a FetchHistory is on its way.
    history_more: bool = True
    history_pending: bool = False
    #: Changes whenever members or topic change, so views can cache what they drew.
    revision: int = 0
    #: Lines shown before the server stored them (a cluster node whose store was away), by
    #: origin, until their id comes (PROTOCOL.md 4.2).
    early: dict[str, LogLine] = field(default_factory=dict, repr=False)
    _members: dict[str, Member] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        return tab_key(self.name)

    @property
    def is_room(self) -> bool:
        return self.kind == TabKind.ROOM

    # --- members ---------------------------------------------------------------------------

    @property
    def members(self) -> list[Member]:
        """Members sorted by nick, case-insensitively."""
        return sorted(self._members.values(), key=lambda m: (m.nick.casefold(), m.nick))

    def member(self, nick: str) -> Member | None:
        return self._members.get(nick_key(nick))

    def has(self, nick: str) -> bool:
        return nick_key(nick) in self._members

    def set_members(self, members: Iterable[Member]) -> None:
        self._members = {nick_key(m.nick): m for m in members}
        self.revision += 1

    def add_member(self, member: Member) -> None:
        key = nick_key(member.nick)
        if self._members.get(key) != member:  # a join of someone known changes nothing
            self._members[key] = member
            self.revision += 1

    def remove_member(self, nick: str) -> bool:
        """Forget ``nick``; False if it was not here."""
        if self._members.pop(nick_key(nick), None) is None:
            return False
        self.revision += 1
        return True

    def rename_member(self, old: str, new: str) -> bool:
        member = self._members.pop(nick_key(old), None)
        if member is None:
            return False
        member.nick = new
        self._members[nick_key(new)] = member
        self.revision += 1
        return True

    def set_away(self, nick: str, reason: str) -> bool:
        """Mark ``nick`` away (``reason``) or back (""); False if not here."""
        member = self.member(nick)
        if member is None:
            return False
        member.away = reason
        self.revision += 1
        return True

    def set_data(self, nick: str, data: Mapping[str, Any]) -> bool:
        """Replace ``nick``'s member data; False if not here."""
        member = self.member(nick)
        if member is None:
            return False
        member.data = dict(data)
        self.revision += 1
        return True

    def set_topic(self, topic: str) -> None:
        self.topic = topic
        self.revision += 1

    # --- ids and unread lines --------------------------------------------------------------

    def saw_id(self, message_id: int) -> None:
        """A chat line with this server id is in the log now."""
        if self.oldest_id is None or message_id < self.oldest_id:
            self.oldest_id = message_id
        if self.newest_id is None or message_id > self.newest_id:
            self.newest_id = message_id

    def forget_ids(self) -> None:
        """The server's ids now count in another history: nothing shown compares with them."""
        self.oldest_id = self.newest_id = None
        self.history_more = True

    def knows(self, message_id: int) -> bool:
        """True if a line with this id is (or was) between the oldest and newest shown."""
        return (
            self.oldest_id is not None
            and self.newest_id is not None
            and self.oldest_id <= message_id <= self.newest_id
        )

    def mark_read(self) -> None:
        self.unread = 0
        self.mention = False

    @property
    def label(self) -> str:
        """What its tab says: the name, and the unread count when there is one."""
        return f"{self.name} ({self.unread})" if self.unread else self.name
