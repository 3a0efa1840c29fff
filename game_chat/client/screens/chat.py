"""The chat screen: status line on top, message log, user list on the right, input at the bottom.

Frame order (see app.py): handle_event for each pygame event, then update (which drains the
network queue, a bounded number of events per frame so a flood never freezes input), then draw.
"""

from __future__ import annotations

from collections.abc import Callable

import pygame

from ..conversation import COMMANDS, Conversation, Status, parse_input
from ..model import LogLine
from ..net import ChatClient
from ..ui.clipboard import Clipboard
from ..ui.input_box import InputBox
from ..ui.message_log import MessageLog, nick_color
from ..ui.theme import Theme
from ..ui.user_list import UserList

#: Network events handled per frame at most; the rest wait for the next frame.
MAX_EVENTS_PER_FRAME = 400
USER_LIST_WIDTH = 190


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
        self.log = MessageLog(pygame.Rect(0, 0, 10, 10), theme, font)
        self.conversation = Conversation(client.nick, self._add_line)
        self.input = InputBox(
            pygame.Rect(0, 0, 10, 10),
            theme,
            font,
            clipboard,
            on_submit=self._submit,
            completions=lambda: self.conversation.users,
            commands=COMMANDS,
            placeholder="Type a message, /help for commands",
        )
        self.users = UserList(pygame.Rect(0, 0, 10, 10), theme, font, self._color_of)
        self._status_surface: pygame.Surface | None = None
        self._status_key: tuple[object, ...] | None = None
        self.resize(size)

    # --- layout ------------------------------------------------------------------------

    def resize(self, size: tuple[int, int]) -> None:
        width, height = size
        pad = self.theme.padding
        line = self.font.get_linesize()
        status_h = line + 2 * pad
        input_h = line + 3 * pad
        users_w = USER_LIST_WIDTH if self.users.visible and width > 2.5 * USER_LIST_WIDTH else 0
        body = pygame.Rect(0, status_h, width - users_w, height - status_h - input_h)
        self.status_rect = pygame.Rect(0, 0, width, status_h)
        self.log.set_rect(body)
        self.users.set_rect(pygame.Rect(body.right, status_h, users_w, body.height))
        self.input.set_rect(pygame.Rect(pad, body.bottom + pad, width - 2 * pad, input_h - 2 * pad))
        self.input_strip = pygame.Rect(0, body.bottom, width, height - body.bottom)
        self.size = size

    def toggle_user_list(self) -> None:
        self.users.visible = not self.users.visible
        self.resize(self.size)

    # --- frame -------------------------------------------------------------------------

    def handle_event(self, event: pygame.event.Event) -> bool:
        if event.type == pygame.KEYDOWN and event.key == pygame.K_F2:
            self.toggle_user_list()
            return True
        if self.input.handle_event(event):
            return True
        return self.log.handle_event(event) or self.users.handle_event(event)

    def update(self, dt: float) -> None:
        for event in self.client.poll(MAX_EVENTS_PER_FRAME):
            self.conversation.apply(event)
        conversation = self.conversation
        self.log.own_nick = conversation.nick
        self.input.max_chars = conversation.max_text_chars
        self.users.set_users(conversation.users, conversation.nick)
        self.log.update(dt)
        self.input.update(dt)
        self.users.update(dt)
        self._update_status()

    def draw(self, surface: pygame.Surface) -> None:
        # Each part paints its own area; only the strip around the input is left to fill.
        surface.fill(self.theme.background, self.input_strip)
        self.log.draw(surface)
        self.users.draw(surface)
        pygame.draw.rect(surface, self.theme.panel, self.status_rect)
        if self._status_surface is not None:
            surface.blit(self._status_surface, (self.theme.padding, self.theme.padding))
        self.input.draw(surface)

    def close(self, reason: str = "") -> None:
        self.client.close(reason)

    # --- internals ---------------------------------------------------------------------

    def _add_line(self, line: LogLine) -> None:
        self.log.append(line)

    def _color_of(self, nick: str) -> tuple[int, int, int]:
        return nick_color(nick, self.theme)

    def _submit(self, text: str) -> None:
        result = parse_input(text)
        if result.quit:
            self.client.close("quit")
            self.on_leave()
        elif result.chat_text is not None:
            self.conversation.add_own(self.client.send_chat(result.chat_text), result.chat_text)
        elif result.nick is not None:
            self.client.change_nick(result.nick)
        elif result.list_users:
            self.client.request_users()
        elif result.local_line is not None:
            self._add_line(result.local_line)

    def _update_status(self) -> None:
        c = self.conversation
        rtt = f"{c.rtt_ms:.0f} ms" if c.rtt_ms is not None else "–"
        key = (c.status, c.status_detail, c.server_name, c.nick, rtt, self.address)
        if key == self._status_key:
            return
        self._status_key = key
        if c.status == Status.CONNECTED:
            text = f"● Connected to {c.server_name} ({self.address}) as {c.nick} · ping {rtt}"
            color = self.theme.text
        elif c.status in (Status.CONNECTING, Status.RECONNECTING):
            text = f"○ {c.status.capitalize()} to {self.address}… {c.status_detail}"
            color = self.theme.muted
        else:
            text = f"✕ Disconnected from {self.address}: {c.status_detail}"
            color = self.theme.error
        hint = "   F2: users"
        self._status_surface = self.font.render(text + hint, True, color)
