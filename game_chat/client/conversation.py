"""What the chat shows, worked out from ChatClient events: tabs, their lines, status. No pygame.

The window, the terminal chat and the in-game overlay all use a :class:`Conversation`; they
differ only in how they draw it. Each event goes to the tab it belongs to: a room's chat line
to that room, a private message to the conversation with its sender, a nick change or an away
mark to every room the nick is in, a notice to its room (or the tab shown), an error to the tab
shown. Lines are handed to ``on_line(tab, line)``; older lines paged in from the server's
history to ``on_history(tab, lines)``, to be put above what the tab holds.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from ..protocol.commands import LOBBY
from ..protocol.errors import ErrorCode
from ..protocol.messages import (
    AwayChanged,
    ChatMessage,
    ErrorReply,
    FetchHistory,
    HistoryPage,
    LineSettled,
    MemberData,
    NickChanged,
    Notice,
    PrivateMessage,
    RoomJoined,
    RoomList,
    RoomModeChanged,
    RoomOpChanged,
    TopicChanged,
    UserJoined,
    UserLeft,
    UserList,
    UserParted,
    WhoReply,
    page_messages,
)
from ..protocol.names import mentions
from .events import (
    ChatFailed,
    ChatSent,
    Connected,
    Connecting,
    Disconnected,
    Reconnecting,
    RoundTrip,
)
from .model import Delivery, LineKind, LogLine
from .rooms import Member, Tab, TabKind, tab_key

#: Lines counted as unread on a tab that is not shown.
_UNREAD_KINDS = frozenset({LineKind.CHAT, LineKind.ACTION})
#: Errors after which no answer to a pending history request will come.
_HISTORY_ERRORS = frozenset({ErrorCode.NOT_IN_ROOM, ErrorCode.BAD_ROOM, ErrorCode.NO_SUCH_ROOM})
#: Seconds without a replayed line after which the replay is taken to be over.
REPLAY_QUIET = 0.25
#: Lines asked for per history page.
HISTORY_PAGE = 100

LineSink = Callable[[Tab, LogLine], None]
HistorySink = Callable[[Tab, list[LogLine]], None]


class Status:
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"


def _same_nick(a: str, b: str) -> bool:
    return a == b or tab_key(a) == tab_key(b)


def _member_label(member: Member) -> str:
    mark = "@" if member.oper else ""
    away = " (away)" if member.away else ""
    return f"{mark}{member.nick}{away}"


class Conversation:
    """Tabs, their lines and the connection status, fed by ChatClient events.

    There is always at least one tab: the lobby until others are opened.
    """

    def __init__(
        self,
        nick: str,
        on_line: LineSink,
        on_history: HistorySink | None = None,
        lobby: str = LOBBY,
    ) -> None:
        self.nick = nick
        self.on_line = on_line
        self.on_history = on_history
        self.lobby = lobby
        self.status = Status.CONNECTING
        self.status_detail = ""
        self.server_name = ""
        self.rtt_ms: float | None = None
        self.max_text_chars = 1000
        #: Our away reason ("" while here).
        self.away = ""
        #: Everyone on the server, as the welcome listed them (rooms keep their own members).
        self.server_users: list[str] = []
        #: Every tab, in the order they were opened.
        self.tabs: list[Tab] = []
        #: Changes whenever a tab opens, closes, is renamed or its unread state changes.
        self.revision = 0
        self._by_key: dict[str, Tab] = {}
        self._ids = itertools.count(1)
        self._own: dict[int, tuple[Tab, LogLine]] = {}  # local id -> our line awaiting its ack
        self._switch_on_join: set[str] = set()  # rooms we asked to join and want to look at
        # The "Connected to ..." line, held back while the server replays history after the
        # welcome so that it lands below the replayed lines, not among them (see settle()).
        self._held: tuple[Tab, LogLine] | None = None
        self._held_since: float | None = None  # when settle() last saw the replay go on
        self._replayed = False  # a history line came since the last settle()
        self._early_at_connect: list[tuple[Tab, str]] = []  # (see _release_held)
        self.current = self.open_room(lobby)

    # --- tabs --------------------------------------------------------------------------------

    def tab(self, name: str | None) -> Tab | None:
        """The tab of a room ("#room") or of a private conversation (a nick), if open."""
        return None if name is None else self._by_key.get(tab_key(name))

    def open_room(self, room: str) -> Tab:
        """The room's tab, opened (not shown) if needed."""
        return self.tab(room) or self._open(TabKind.ROOM, room)

    def open_private(self, nick: str, switch: bool = False) -> Tab:
        """The private conversation with ``nick``, opened if needed; shown if ``switch``."""
        tab = self.tab(nick) or self._open(TabKind.PRIVATE, nick)
        if switch:
            self.switch_to(tab)
        return tab

    def switch_to(self, tab: Tab) -> None:
        """Show ``tab``: its unread count and mention mark are cleared."""
        if tab not in self.tabs:
            return
        if tab is not self.current or tab.unread or tab.mention:
            self.revision += 1
        self.current = tab
        tab.mark_read()

    def cycle(self, step: int) -> None:
        """Show the next (``step`` 1) or previous (-1) tab, wrapping around."""
        index = self.tabs.index(self.current)
        self.switch_to(self.tabs[(index + step) % len(self.tabs)])

    def close(self, tab: Tab) -> bool:
        """Close a tab (not the last one). For rooms, send a PartRoom instead: the tab closes
        when the server confirms. False if it stays open."""
        if tab not in self.tabs or len(self.tabs) == 1:
            return False
        index = self.tabs.index(tab)
        self.tabs.remove(tab)
        if self._by_key.get(tab.key) is tab:
            del self._by_key[tab.key]
        if tab is self.current:
            self.switch_to(self.tabs[max(0, index - 1)])
        self.revision += 1
        return True

    def expect_join(self, room: str) -> bool:
        """The user asked to join ``room``: show its tab once joined. True if already in it
        (then it is shown now and nothing needs sending)."""
        tab = self.tab(room)
        if tab is not None and tab.is_room and tab.joined:
            self.switch_to(tab)
            return True
        self._switch_on_join.add(tab_key(room))
        return False

    def request_older(self, tab: Tab) -> FetchHistory | None:
        """The request for the page of history above ``tab``'s oldest line, or None when none
        is due (not a joined room, nothing older, one already on its way, disconnected)."""
        if (
            not tab.is_room
            or not tab.joined
            or not tab.history_more
            or tab.history_pending
            or self.status != Status.CONNECTED
        ):
            return None
        tab.history_pending = True
        return FetchHistory(tab.name, before=tab.oldest_id, limit=HISTORY_PAGE)

    @property
    def users(self) -> list[str]:
        """Nicks in the tab shown: the room's members, or the peer and you."""
        tab = self.current
        if tab.is_room:
            return [m.nick for m in tab.members]
        return [tab.name, self.nick]

    def known_nicks(self) -> list[str]:
        """Every nick in any open tab (for completion)."""
        nicks = {self.nick, *self.server_users}
        for tab in self.tabs:
            if tab.is_room:
                nicks.update(m.nick for m in tab.members)
            else:
                nicks.add(tab.name)
        return sorted(nicks, key=str.casefold)

    def _open(self, kind: str, name: str) -> Tab:
        tab = Tab(next(self._ids), kind, name)
        self.tabs.append(tab)
        self._by_key[tab.key] = tab
        self.revision += 1
        return tab

    # --- our own lines and local notes ------------------------------------------------------

    def add_own(
        self, local_id: int, text: str, tab: Tab | None = None, action: bool = False
    ) -> LogLine:
        """Show a line we sent (pending until its ack) in ``tab`` (default: the one shown)."""
        tab = tab or self.current
        kind = LineKind.ACTION if action else LineKind.CHAT
        line = LogLine(kind, text, self.nick, own=True, delivery=Delivery.PENDING)
        self._own[local_id] = (tab, line)
        self.on_line(tab, line)
        return line

    def system(self, text: str, kind: str = LineKind.SYSTEM, tab: Tab | None = None) -> None:
        """A line of our own making (connection state, command replies) in ``tab`` or the one
        shown."""
        self._emit(tab or self.current, LogLine(kind, text))

    def settle(self, now: float | None = None) -> bool:
        """Call after applying each batch of events, with the time (``time.monotonic()``):
        the "Connected" line held back during the history replay is shown once a live line
        or event comes, or once no replayed line has come for :data:`REPLAY_QUIET` seconds.
        ``now=None`` shows it at once (e.g. before quitting). True if it was shown now."""
        if self._held is None:
            return False
        if now is not None and (self._held_since is None or self._replayed):
            self._held_since, self._replayed = now, False
            return False
        if now is None or now - (self._held_since or now) >= REPLAY_QUIET:
            self._release_held()
            return True
        return False

    def _release_held(self, replay_over: bool = True) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._emit(*held)
        lingering, self._early_at_connect = self._early_at_connect, []
        if replay_over:
            # Lines shown early before this connection that the replay did not bring: their
            # node went before storing them. Shown as not sent (still matched if they come).
            for tab, origin in lingering:
                line = tab.early.get(origin)
                if line is not None:
                    line.set_delivery(Delivery.FAILED)

    def _emit(self, tab: Tab, line: LogLine) -> None:
        if self._held is not None and line is not self._held[1]:
            self._replayed = self._replayed or line.history
            if not line.history:
                self._release_held()  # the replay is over: something live came
        if tab is not self.current and not line.history and line.kind in _UNREAD_KINDS:
            tab.unread += 1
            if line.mention or tab.kind == TabKind.PRIVATE:
                tab.mention = True
            self.revision += 1
        self.on_line(tab, line)

    def _rooms_with(self, nick: str) -> list[Tab]:
        return [tab for tab in self.tabs if tab.is_room and tab.has(nick)]

    # --- events ------------------------------------------------------------------------------

    def apply(self, event: Any) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    def _on_Connecting(self, event: Connecting) -> None:
        self.status = Status.CONNECTING
        self.status_detail = f"{event.host}:{event.port}"
        if event.attempt == 1:
            self.system(f"Connecting to {event.host}:{event.port}…")

    def _on_Connected(self, event: Connected) -> None:
        self.status = Status.CONNECTED
        self.nick = event.nick
        self.server_name = event.server
        self.server_users = list(event.users)
        self.max_text_chars = event.limits.max_text_chars
        self._history_settled()
        if event.history_reset:  # ids from now on are another numbering than what is shown
            for tab in self.tabs:
                tab.forget_ids()
        # Until the lobby's RoomJoined (which follows) says who is in it.
        lobby = self.tab(self.lobby)
        if lobby is not None:
            lobby.set_members(Member(nick) for nick in event.users)
        others = [u for u in event.users if not _same_nick(u, event.nick)]
        here = ", ".join(others) if others else "nobody else yet"
        self._release_held(replay_over=False)  # (a welcome after a welcome: its line first)
        self._early_at_connect = [(tab, origin) for tab in self.tabs for origin in tab.early]
        line = LogLine(
            LineKind.SYSTEM, f"Connected to {event.server} as {event.nick}. Here: {here}"
        )
        self._held, self._held_since, self._replayed = (self.current, line), None, False

    def _on_Disconnected(self, event: Disconnected) -> None:
        self._release_held(replay_over=False)
        was_connected = self.status == Status.CONNECTED
        self.status = Status.RECONNECTING if event.will_retry else Status.DISCONNECTED
        self.status_detail = event.reason
        self._history_settled()
        # One line when the connection goes, one if we give up; the retries in between
        # live in the status line (which updates), not in the log.
        if was_connected or not event.will_retry:
            kind = (
                LineKind.SYSTEM if event.will_retry or event.reason == "closed" else LineKind.ERROR
            )
            self.system(f"Disconnected: {event.reason}", kind)

    def _on_Reconnecting(self, event: Reconnecting) -> None:
        self.status = Status.RECONNECTING
        self.status_detail = f"retrying in {event.delay:.1f} s (attempt {event.attempt})"

    def _on_RoundTrip(self, event: RoundTrip) -> None:
        self.rtt_ms = event.ms

    def _on_ChatSent(self, event: ChatSent) -> None:
        tab, line = self._own.pop(event.local_id, (None, None))
        if tab is not None and line is not None:
            line.set_delivery(Delivery.SENT)
            tab.saw_id(event.message_id)

    def _on_ChatFailed(self, event: ChatFailed) -> None:
        tab, line = self._own.pop(event.local_id, (None, None))
        if line is not None:
            line.set_delivery(Delivery.FAILED)
        target = tab if tab is not None and tab in self.tabs else None
        self.system(f"Not sent: {event.reason}", LineKind.ERROR, target)

    def _on_ChatMessage(self, event: ChatMessage) -> None:
        tab = self.open_room(event.room)
        line = self._chat_line(event, tab)
        if line is not None:
            self._emit(tab, line)

    def _chat_line(self, event: ChatMessage | PrivateMessage, tab: Tab) -> LogLine | None:
        """The line for a chat or private message; None if it is a replay already shown.

        A replayed line older than every line shown is put above them at once.
        """
        if event.history and tab.knows(event.id):
            return None  # replayed after a reconnection: already shown
        early = isinstance(event, ChatMessage) and event.pending
        if not early and tab.early and self._settled(tab, event):
            return None  # shown early: now it has its id
        own = _same_nick(event.nick, self.nick)
        line = LogLine(
            LineKind.ACTION if event.action else LineKind.CHAT,
            event.text,
            event.nick,
            ts=event.ts,
            mention=not own and mentions(event.text, self.nick),
            history=event.history,
            delivery=Delivery.PENDING if early else None,
        )
        if early:  # not stored yet (PROTOCOL.md 4.2): no id until it is
            if isinstance(event, ChatMessage) and event.origin:
                tab.early[event.origin] = line
            return line
        older = tab.oldest_id is not None and event.id < tab.oldest_id
        tab.saw_id(event.id)
        if event.history and older:
            self._prepend(tab, [line])
            return None
        return line

    def _settled(self, tab: Tab, event: ChatMessage | PrivateMessage) -> bool:
        """Whether ``event`` is a line ``tab`` showed early: if so it is marked stored now.

        Matched by origin; a replay (after a reconnection) carries none: by sender and text."""
        origin = getattr(event, "origin", None)
        line = tab.early.pop(origin, None) if origin else None
        if line is None and event.history:
            for key, early in tab.early.items():
                if early.text == event.text and _same_nick(early.nick or "", event.nick):
                    line = tab.early.pop(key)
                    break
        if line is None:
            return False
        line.set_delivery(Delivery.SENT)
        tab.saw_id(event.id)
        return True

    def _on_LineSettled(self, event: LineSettled) -> None:
        tab = self.tab(event.room)
        line = tab.early.pop(event.origin, None) if tab is not None else None
        if tab is None or line is None:
            return
        if event.id:
            line.set_delivery(Delivery.SENT)
            tab.saw_id(event.id)
        else:  # it could not be stored: said here only, in no history
            line.set_delivery(Delivery.FAILED)

    def _on_PrivateMessage(self, event: PrivateMessage) -> None:
        peer = event.to if _same_nick(event.nick, self.nick) else event.nick
        tab = self.open_private(peer)
        line = self._chat_line(event, tab)
        if line is not None:
            self._emit(tab, line)

    def _on_RoomJoined(self, event: RoomJoined) -> None:
        tab = self.tab(event.room)
        asked = tab_key(event.room) in self._switch_on_join
        # Announced when new to us or asked for; silent for the lobby on connecting and for
        # the rooms rejoined after a reconnection.
        announce = tab is None or asked or not tab.joined
        if tab is None:
            tab = self._open(TabKind.ROOM, event.room)
        tab.joined = True
        tab.history_more, tab.history_pending = True, False
        tab.set_members(m for m in map(Member.from_dict, event.members) if m is not None)
        changed = event.topic != tab.topic
        if changed:
            tab.set_topic(event.topic)
        if announce:
            self.system(f"You joined {event.room} ({len(tab.members)} here)", tab=tab)
        if event.topic and (announce or changed):
            self.system(f"Topic: {event.topic}", tab=tab)
        if asked:
            self._switch_on_join.discard(tab.key)
            self.switch_to(tab)

    def _on_UserJoined(self, event: UserJoined) -> None:
        tab = self.tab(event.room)
        if tab is None or not tab.is_room:
            return
        tab.add_member(Member(event.nick))
        self._emit(tab, LogLine(LineKind.SYSTEM, f"{event.nick} joined", ts=event.ts))

    def _on_UserParted(self, event: UserParted) -> None:
        tab = self.tab(event.room)
        if tab is None or not tab.is_room:
            return
        reason = f" ({event.reason})" if event.reason else ""
        if _same_nick(event.nick, self.nick):
            tab.joined = False
            self._switch_on_join.discard(tab.key)
            left = f"were removed from {tab.name} by {event.by}" if event.by else f"left {tab.name}"
            if self.close(tab):
                self.system(f"You {left}{reason}")
            else:
                self.system(f"You {left}{reason}; /join a room to talk", tab=tab)
            return
        tab.remove_member(event.nick)
        left = f"was removed from {tab.name} by {event.by}" if event.by else f"left {tab.name}"
        self._emit(tab, LogLine(LineKind.SYSTEM, f"{event.nick} {left}{reason}", ts=event.ts))

    def _on_RoomOpChanged(self, event: RoomOpChanged) -> None:
        tab = self.tab(event.room)
        member = tab.member(event.nick) if tab is not None else None
        if tab is None or member is None:
            return
        member.op = event.op
        tab.revision += 1
        what = "made {} an operator of {}" if event.op else "took {}'s operator status in {}"
        text = f"{event.by} " + what.format(event.nick, tab.name)
        self._emit(tab, LogLine(LineKind.SYSTEM, text, ts=event.ts))

    def _on_RoomModeChanged(self, event: RoomModeChanged) -> None:
        tab = self.tab(event.room)
        if tab is None:
            return
        what = _MODE_WORDS.get(event.mode, f"set {event.mode}")
        text = f"{event.by} {what}" + (f" {event.arg}" if event.arg else "") + f" in {tab.name}"
        self._emit(tab, LogLine(LineKind.SYSTEM, text, ts=event.ts))

    def _on_UserLeft(self, event: UserLeft) -> None:
        reason = f" ({event.reason})" if event.reason else ""
        text = f"{event.nick} left{reason}"
        if event.nick in self.server_users:
            self.server_users.remove(event.nick)
        for tab in self._rooms_with(event.nick):
            tab.remove_member(event.nick)
            self._emit(tab, LogLine(LineKind.SYSTEM, text, ts=event.ts))
        private = self.tab(event.nick)
        if private is not None and not private.is_room:
            self._emit(private, LogLine(LineKind.SYSTEM, text, ts=event.ts))

    def _on_NickChanged(self, event: NickChanged) -> None:
        self.server_users = [event.new if u == event.old else u for u in self.server_users]
        rooms = self._rooms_with(event.old)
        for tab in rooms:
            tab.rename_member(event.old, event.new)
        if _same_nick(event.old, self.nick):
            self.nick = event.new
            self.system(f"You are now known as {event.new}")
            return
        text = f"{event.old} is now known as {event.new}"
        private = self.tab(event.old)
        if private is not None and not private.is_room:
            self._rename(private, event.new)
            rooms.append(private)
        for tab in rooms:
            self._emit(tab, LogLine(LineKind.SYSTEM, text, ts=event.ts))

    def _rename(self, tab: Tab, name: str) -> None:
        if self._by_key.get(tab.key) is tab:
            del self._by_key[tab.key]
        tab.name = name
        self._by_key[tab.key] = tab
        self.revision += 1

    def _on_AwayChanged(self, event: AwayChanged) -> None:
        away = bool(event.reason)
        rooms = self._rooms_with(event.nick)
        for tab in rooms:
            tab.set_away(event.nick, event.reason)
        if _same_nick(event.nick, self.nick):
            self.away = event.reason
            self.system(f"You are away: {event.reason}" if away else "You are back")
            return
        text = f"{event.nick} is away: {event.reason}" if away else f"{event.nick} is back"
        private = self.tab(event.nick)
        if private is not None and not private.is_room:
            rooms.append(private)
        for tab in rooms:
            self._emit(tab, LogLine(LineKind.SYSTEM, text, ts=event.ts))

    def _on_MemberData(self, event: MemberData) -> None:
        """Lobby member data changed: kept on the room's member, no log line (it can change
        many times a second in a game)."""
        tab = self.tab(event.room)
        if tab is not None and tab.is_room:
            tab.set_data(event.nick, event.data)

    def _on_TopicChanged(self, event: TopicChanged) -> None:
        tab = self.tab(event.room)
        if tab is None or not tab.is_room:
            return
        tab.set_topic(event.topic)
        if event.topic:
            text = f"{event.nick} set the topic: {event.topic}"
        else:
            text = f"{event.nick} cleared the topic"
        self._emit(tab, LogLine(LineKind.SYSTEM, text, ts=event.ts))

    def _on_WhoReply(self, event: WhoReply) -> None:
        members = [m for m in map(Member.from_dict, event.members) if m is not None]
        tab = self.tab(event.room)
        if tab is not None and tab.is_room:
            tab.set_members(members)
        where = event.room or "the server"
        labels = ", ".join(_member_label(m) for m in members) or "nobody"
        self.system(f"In {where} ({len(members)}): {labels}", LineKind.NOTICE)

    def _on_RoomList(self, event: RoomList) -> None:
        self.system(f"Rooms ({len(event.rooms)}):", LineKind.NOTICE)
        for room in event.rooms:
            if not isinstance(room, dict):
                continue
            topic = f" — {room['topic']}" if room.get("topic") else ""
            self.system(f"{room.get('room')} ({room.get('members', '?')}){topic}", LineKind.NOTICE)

    def _on_HistoryPage(self, event: HistoryPage) -> None:
        tab = self.tab(event.room)
        if tab is None or not tab.is_room:
            return
        older = [m for m in page_messages(event) if tab.oldest_id is None or m.id < tab.oldest_id]
        older.sort(key=lambda m: m.id)
        tab.history_pending = False
        tab.history_more = event.more and bool(older)
        lines = []
        for message in older:
            tab.saw_id(message.id)
            lines.append(
                LogLine(
                    LineKind.ACTION if message.action else LineKind.CHAT,
                    message.text,
                    message.nick,
                    ts=message.ts,
                    mention=mentions(message.text, self.nick),
                    history=True,
                )
            )
        if lines:
            self._prepend(tab, lines)

    def _prepend(self, tab: Tab, lines: list[LogLine]) -> None:
        if self.on_history is not None:
            self.on_history(tab, lines)

    def _on_Notice(self, event: Notice) -> None:
        tab = self.tab(event.room)
        self.system(event.text, LineKind.NOTICE, tab)

    def _on_UserList(self, event: UserList) -> None:
        self.server_users = list(event.users)
        self.system(f"Users here ({len(event.users)}): " + ", ".join(event.users))

    def _on_ErrorReply(self, event: ErrorReply) -> None:
        if event.code in _HISTORY_ERRORS:
            self._history_settled()
        self.system(event.message, LineKind.ERROR)

    def _history_settled(self) -> None:
        """No history page is on its way any more (disconnected, or the request failed)."""
        for tab in self.tabs:
            tab.history_pending = False


def format_line(line: LogLine) -> str:
    """A log line as one line of plain text (terminal chat, logs)."""
    stamp = time.strftime("%H:%M", time.localtime(line.ts))
    if line.kind == LineKind.CHAT:
        text = f"{line.nick}: {line.text}"
    elif line.kind == LineKind.ACTION:
        text = f"* {line.nick} {line.text}"
    elif line.kind == LineKind.NOTICE:
        text = f"-!- {line.text}"
    else:
        text = f"-- {line.text}"
    return f"[{stamp}] {text}"


#: How the log tells a room's mode change (PROTOCOL.md 4.6).
_MODE_WORDS = {
    "+m": "made the room moderated (only operators and voiced members talk)",
    "-m": "made the room unmoderated",
    "+t": "let only operators set the topic",
    "-t": "let everyone in the room set the topic",
    "+s": "made the room secret",
    "-s": "made the room public",
    "+n": "closed the room to lines from outside",
    "-n": "opened the room to lines from outside",
    "+b": "banned",
    "-b": "lifted the ban on",
    "+v": "gave a voice to",
    "-v": "took the voice of",
}
