"""The chat screen: status line, tab bar, topic, message log, user list, input line.

One message log per tab (room or private conversation); the one shown is :attr:`ChatScreen.log`.
Ctrl+Tab / Ctrl+Shift+Tab and Ctrl+PageDown / Ctrl+PageUp switch tabs, as does a click on one.
Scrolling up to the oldest line of a room asks the server for the page of history above it.

Frame order (see app.py): handle_event for each pygame event, then update (which drains the
network queue, a bounded number of events per frame so a flood never freezes input), then draw.
"""

from __future__ import annotations

import threading
import time
import webbrowser
from collections.abc import Callable

import pygame

from ...protocol.messages import SetAway
from ...protocol.names import nick_key
from ..conversation import Conversation, Status
from ..events import Connected
from ..model import LogLine
from ..net import ChatClient
from ..rooms import Member, Tab
from ..submit import COMMAND_NAMES, submit_line
from ..ui.clipboard import Clipboard
from ..ui.colors import nick_color
from ..ui.fonts import fit
from ..ui.input_box import InputBox
from ..ui.message_log import MessageLog, copies_log
from ..ui.tabs import TabBar, TabItem
from ..ui.text_safety import clean_display_text
from ..ui.theme import Theme
from ..ui.user_list import UserList

#: Network events handled per frame at most; the rest wait for the next frame.
MAX_EVENTS_PER_FRAME = 400
USER_LIST_WIDTH = 190
#: Keys that switch tabs with Ctrl held: key -> step.
_TAB_KEYS = {pygame.K_PAGEDOWN: 1, pygame.K_PAGEUP: -1}


def open_link(address: str) -> None:
    """A link clicked in the log: the system's browser, on a thread of its own (starting a
    browser can take a moment, and the window must not wait for it)."""
    threading.Thread(target=webbrowser.open, args=(address, 2), daemon=True).start()


class ChatScreen:
    """Chat with one server through ``client``. ``on_leave`` is called after /quit."""

    def __init__(
        self,
        size: tuple[int, int],
        client: ChatClient,
        theme: Theme,
        font: pygame.font.Font,
        clipboard: Clipboard,
        on_leave: Callable[[], None] = lambda: None,
        address: str = "",
    ) -> None:
        self.client = client
        self.theme = theme
        self.font = font
        self.on_leave = on_leave
        self.address = address or f"{client.host}:{client.port}"
        self.logs: dict[int, MessageLog] = {}  # tab id -> its log
        self.log_rect = pygame.Rect(0, 0, 10, 10)
        self.conversation = Conversation(client.nick, self._add_line, self._add_older)
        self.tabs = TabBar(
            pygame.Rect(0, 0, 10, 10), theme, font, self._select_tab, on_close=self._close_tab
        )
        self.input = InputBox(
            pygame.Rect(0, 0, 10, 10),
            theme,
            font,
            clipboard,
            on_submit=self._submit,
            completions=self.conversation.known_nicks,
            commands=COMMAND_NAMES,
            placeholder="Type a message, /help for commands",
            keep_focus=True,  # keys go to the line wherever you click (the log, the list...)
        )
        self.users = UserList(
            pygame.Rect(0, 0, 10, 10), theme, font, self._color_of, on_open=self._open_private
        )
        self._shown: Tab = self.conversation.current
        self._tabs_key: tuple[object, ...] | None = None
        self._users_key: tuple[object, ...] | None = None
        self._status_surface: pygame.Surface | None = None
        self._status_key: tuple[object, ...] | None = None
        self._topic_surface: pygame.Surface | None = None
        self._topic_key: tuple[object, ...] | None = None
        self.resize(size)

    @property
    def log(self) -> MessageLog:
        """The log of the tab shown."""
        return self._log_for(self.conversation.current)

    # --- layout ------------------------------------------------------------------------

    def resize(self, size: tuple[int, int]) -> None:
        width, height = size
        pad = self.theme.padding
        line = self.font.get_linesize()
        status_h = line + 2 * pad
        tabs_h = line + pad
        topic_h = line + pad
        input_h = line + 3 * pad
        top = status_h + tabs_h + topic_h
        users_w = USER_LIST_WIDTH if self.users.visible and width > 2.5 * USER_LIST_WIDTH else 0
        body = pygame.Rect(0, top, width - users_w, height - top - input_h)
        self.status_rect = pygame.Rect(0, 0, width, status_h)
        self.tabs.set_rect(pygame.Rect(0, status_h, width, tabs_h))
        self.topic_rect = pygame.Rect(0, status_h + tabs_h, width, topic_h)
        self.log_rect = body
        self.log.set_rect(body)
        self.users.set_rect(pygame.Rect(body.right, top, users_w, body.height))
        self.input.set_rect(pygame.Rect(pad, body.bottom + pad, width - 2 * pad, input_h - 2 * pad))
        self.input_strip = pygame.Rect(0, body.bottom, width, height - body.bottom)
        self.size = size

    def toggle_user_list(self) -> None:
        self.users.visible = not self.users.visible
        self.resize(self.size)

    # --- frame -------------------------------------------------------------------------

    def handle_event(self, event: pygame.event.Event) -> bool:
        if event.type == pygame.KEYDOWN:
            if event.key == pygame.K_F2:
                self.toggle_user_list()
                return True
            if event.mod & pygame.KMOD_CTRL:
                if self._switch_key(event.key, event.mod):
                    return True
                if event.key in (pygame.K_HOME, pygame.K_END):  # the log's, not the input's
                    return self.log.handle_event(event)
                if copies_log(event, self.input.selection) and self.log.copy_selection():
                    return True
        if self.tabs.handle_event(event) or self.input.handle_event(event):
            return True
        return self.log.handle_event(event) or self.users.handle_event(event)

    def update(self, dt: float) -> bool:
        """Apply what the network brought and lay out; True if the window needs drawing
        again (new events, or the caret blinked): idle, nothing changes and nothing is drawn."""
        conversation = self.conversation
        events = self.client.poll(MAX_EVENTS_PER_FRAME)
        away = conversation.away
        for event in events:
            conversation.apply(event)
            if isinstance(event, Connected) and away:
                # A new session starts not away: say it again, as you left it.
                self.client.send(SetAway(away))
        settled = conversation.settle(time.monotonic())
        tab = conversation.current
        if tab is not self._shown:
            self._show(tab)
        log = self.log
        log.set_rect(self.log_rect)
        self.input.max_chars = conversation.max_text_chars
        self._update_tabs()
        self._update_users(tab)
        log.update(dt)
        if log.at_top:
            request = conversation.request_older(tab)
            if request is not None:
                self.client.send(request)
        self.tabs.update(dt)
        blinked = self.input.update(dt)
        self.users.update(dt)
        self._update_status()
        self._update_topic(tab)
        return bool(events) or settled or blinked

    def draw(self, surface: pygame.Surface) -> None:
        # Each part paints its own area; only the strip around the input is left to fill.
        surface.fill(self.theme.background, self.input_strip)
        self.log.draw(surface)
        self.users.draw(surface)
        pygame.draw.rect(surface, self.theme.panel, self.status_rect)
        if self._status_surface is not None:
            surface.blit(self._status_surface, (self.theme.padding, self.theme.padding))
        self.tabs.draw(surface)
        surface.fill(self.theme.background, self.topic_rect)
        if self._topic_surface is not None:
            pad = self.theme.padding
            surface.blit(self._topic_surface, (pad, self.topic_rect.top + pad // 2))
        self.input.draw(surface)

    def close(self, reason: str = "") -> None:
        self.client.close(reason)

    # --- tabs --------------------------------------------------------------------------

    def _log_for(self, tab: Tab) -> MessageLog:
        log = self.logs.get(tab.id)
        if log is None:
            log = self.logs[tab.id] = MessageLog(
                self.log_rect,
                self.theme,
                self.font,
                own_nick=self._own_nick,
                on_link=open_link,
                clipboard=self.input.clipboard,
            )
        return log

    def _own_nick(self) -> str:
        return self.conversation.nick

    def _switch_key(self, key: int, mod: int) -> bool:
        if key == pygame.K_TAB:
            self.conversation.cycle(-1 if mod & pygame.KMOD_SHIFT else 1)
        elif key in _TAB_KEYS:
            self.conversation.cycle(_TAB_KEYS[key])
        else:
            return False
        return True

    def _select_tab(self, key: int) -> None:
        for tab in self.conversation.tabs:
            if tab.id == key:
                self.conversation.switch_to(tab)

    def _close_tab(self, key: int) -> None:
        """Middle click on a tab: close it as /close would (a room is left)."""
        shown = self.conversation.current
        self._select_tab(key)
        self._submit("/close")
        if shown in self.conversation.tabs and shown is not self.conversation.current:
            self.conversation.switch_to(shown)  # closing another tab does not move you

    def _open_private(self, nick: str) -> None:
        """Double click on a member: a private chat with them, shown."""
        self.conversation.open_private(nick, switch=True)

    def _show(self, tab: Tab) -> None:
        """``tab`` is shown now: the previous one's rendered lines are let go."""
        previous = self.logs.get(self._shown.id)
        if previous is not None:
            previous.forget_rendered()
        self._shown = tab
        self._log_for(tab).set_rect(self.log_rect)

    def _update_tabs(self) -> None:
        conversation = self.conversation
        key = (conversation.revision, conversation.current.id)
        if key == self._tabs_key:
            return
        self._tabs_key = key
        tabs = conversation.tabs
        for gone in set(self.logs) - {tab.id for tab in tabs}:
            del self.logs[gone]  # closed: its lines go with it
        items = [TabItem(tab.id, tab.name, tab.unread, tab.mention) for tab in tabs]
        self.tabs.set_tabs(items, conversation.current.id)

    def _update_users(self, tab: Tab) -> None:
        nick = self.conversation.nick
        online = self.conversation.status == Status.CONNECTED
        key = (tab.id, tab.revision, tab.name, nick, online)
        if key == self._users_key:
            return
        self._users_key = key
        self.users.dimmed = not online  # while disconnected, nobody is really "here"
        if tab.is_room:
            title = clean_display_text(tab.name, 64)
            self.users.set_members(tab.members, nick, title)
        else:
            self.users.set_members([Member(tab.name), Member(nick)], nick, "Private")

    # --- internals ---------------------------------------------------------------------

    def _add_line(self, tab: Tab, line: LogLine) -> None:
        self._log_for(tab).append(line)

    def _add_older(self, tab: Tab, lines: list[LogLine]) -> None:
        self._log_for(tab).prepend(lines)

    def _color_of(self, nick: str) -> tuple[int, int, int]:
        return nick_color(nick, self.theme, own=nick_key(nick) == nick_key(self.conversation.nick))

    def _submit(self, text: str) -> None:
        goodbye = submit_line(text, self.client, self.conversation)
        if goodbye is not None:
            self.client.close(goodbye.reason or "quit")
            self.on_leave()

    def _update_status(self) -> None:
        c = self.conversation
        rtt = f"{c.rtt_ms:.0f} ms" if c.rtt_ms is not None else "–"
        width = self.status_rect.width - 2 * self.theme.padding
        key = (c.status, c.status_detail, c.server_name, c.nick, rtt, self.address, c.away, width)
        if key == self._status_key:
            return
        self._status_key = key
        away = " (away)" if c.away else ""
        if c.status == Status.CONNECTED:
            text = f"● Connected to {c.server_name} ({self.address}) as {c.nick}{away} · ping {rtt}"
            color = self.theme.text
        elif c.status in (Status.CONNECTING, Status.RECONNECTING):
            text = f"○ {c.status.capitalize()} to {self.address}… {c.status_detail}"
            color = self.theme.muted
        else:
            text = f"✕ Disconnected from {self.address}: {c.status_detail}"
            color = self.theme.error
        hint = "   F2: users · Ctrl+Tab: next tab"
        shown = fit(self.font, text + hint, width)  # cut with "…", never mid-word silently
        self._status_surface = self.font.render(shown, True, color)

    def _update_topic(self, tab: Tab) -> None:
        key = (tab.id, tab.name, tab.topic, tab.joined, tab.is_room)
        if key == self._topic_key:
            return
        self._topic_key = key
        color = self.theme.text
        if not tab.is_room:
            text, color = f"Private conversation with {tab.name}", self.theme.muted
        elif not tab.joined:
            text, color = f"You are not in {tab.name}", self.theme.error
        elif tab.topic:
            text = f"{tab.name}: {tab.topic}"
        else:
            text, color = f"{tab.name}: no topic (/topic TEXT sets one)", self.theme.muted
        self._topic_surface = self.font.render(clean_display_text(text, 300), True, color)
