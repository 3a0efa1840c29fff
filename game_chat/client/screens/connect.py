"""The connect screen: nickname, server address, password, Join and "Host a server" buttons.

It only collects input and shows state; the app does the connecting and reports back through
:meth:`ConnectScreen.show_error` and :meth:`ConnectScreen.set_busy`. Given a ``servers``
source (the LAN discovery listener's snapshot), a live server list sits under the form and a
click on a row fills in the server address.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pygame

from ...discovery import ServerEntry
from ..ui.button import Button
from ..ui.clipboard import Clipboard
from ..ui.input_box import InputBox
from ..ui.server_list import ServerList
from ..ui.theme import Theme

#: on_join / on_host receive (nick, server address text, password or None).
FormHandler = Callable[[str, str, "str | None"], None]

FIELD_WIDTH = 420


class ConnectScreen:
    def __init__(
        self,
        size: tuple[int, int],
        theme: Theme,
        font: pygame.font.Font,
        title_font: pygame.font.Font,
        clipboard: Clipboard,
        nick: str,
        server: str,
        on_join: FormHandler,
        on_host: FormHandler,
        servers: Callable[[], Sequence[ServerEntry]] | None = None,
        servers_note: str = "",
    ) -> None:
        self.theme = theme
        self.font = font
        self.title_font = title_font
        self.on_join = on_join
        self.on_host = on_host
        self.error = ""
        self.busy = ""

        def field(text: str, placeholder: str, mask: bool = False) -> InputBox:
            box = InputBox(
                pygame.Rect(0, 0, 10, 10),
                theme,
                font,
                clipboard,
                on_submit=lambda _line: None,
                max_chars=200,
                placeholder=placeholder,
                focused=False,
                mask="•" if mask else "",
            )
            box.text = text
            return box

        self.nick_box = field(nick, "your nickname")
        self.server_box = field(server, "host:port, e.g. localhost:5050")
        self.password_box = field("", "only if the server has one", mask=True)
        self.fields = [self.nick_box, self.server_box, self.password_box]
        self.labels = ["Nickname", "Server", "Password (optional)"]
        self.join_button = Button(pygame.Rect(0, 0, 10, 10), "Join", theme, font, self.join)
        self.host_button = Button(
            pygame.Rect(0, 0, 10, 10), "Host a server on this machine", theme, font, self.host
        )
        self.buttons = [self.join_button, self.host_button]
        # LAN discovery: the list is read from ``servers`` in update (never in draw).
        self.servers = servers
        self.server_list: ServerList | None = None
        if servers is not None:
            self.server_list = ServerList(pygame.Rect(0, 0, 10, 10), theme, font, self.pick)
            if servers_note:
                self.server_list.set_status(servers_note)
        self._focus(0)  # the nickname first, as every chat asks it (Enter joins either way)
        self._message: pygame.Surface | None = None
        self._message_key: tuple[str, str] | None = None
        self._servers_seen: object = None  # the servers found, as last shown
        self._render_static()
        self.resize(size)

    # --- app interface ------------------------------------------------------------------

    def show_error(self, text: str) -> None:
        self.error, self.busy = text, ""
        for button in self.buttons:
            button.enabled = True

    def set_busy(self, text: str) -> None:
        self.busy, self.error = text, ""
        for button in self.buttons:
            button.enabled = not text

    def form(self) -> tuple[str, str, str | None]:
        password = self.password_box.text
        return self.nick_box.text.strip(), self.server_box.text.strip(), password or None

    def join(self) -> None:
        if not self.busy:
            self.on_join(*self.form())

    def host(self) -> None:
        if not self.busy:
            self.on_host(*self.form())

    def pick(self, entry: ServerEntry) -> None:
        """A server chosen from the LAN list: its address goes into the form."""
        self.server_box.text = entry.address
        self.error = ""
        if entry.password:
            self._focus(2)
        elif not self.nick_box.text.strip():
            self._focus(0)

    # --- layout and frame ---------------------------------------------------------------

    def resize(self, size: tuple[int, int]) -> None:
        """Lay the form out; a window too small for it (down to 400x300) gets a compact form:
        narrower fields, no labels above them (their placeholders say what they are), tighter
        spacing, and a shorter Host button, so that Join and Host stay on screen."""
        width, height = size
        line = self.font.get_linesize()
        field_h = line + 2 * self.theme.padding
        field_w = min(FIELD_WIDTH, width - 20)
        title_h = self.title_font.get_linesize()
        full = title_h + 2 * line + 3 * (line + 2 + field_h + line // 2) + line // 2 + field_h
        compact = full + line + 20 > height
        gap = line // 4 if compact else line // 2
        x = max(10, (width - field_w) // 2)
        y = 10 if compact else max(10, height // 2 - 4 * (field_h + line))
        if self.server_list is not None and not compact:
            y = max(10, y - 3 * line)  # room for the server list under the form
        self.title_pos = (x, y)
        y += title_h + (gap if compact else 2 * line)
        self.label_pos: list[tuple[int, int]] = []
        for box in self.fields:
            if not compact:
                self.label_pos.append((x, y))
                y += line + 2
            box.set_rect(pygame.Rect(x, y, field_w, field_h))
            y += field_h + gap
        y += gap
        join_w = min(120, field_w // 3)
        self.join_button.rect = pygame.Rect(x, y, join_w, field_h)
        self.host_button.rect = pygame.Rect(x + join_w + 10, y, field_w - join_w - 10, field_h)
        host_label = "Host a server on this machine"
        if self.font.size(host_label)[0] > self.host_button.rect.width - 2 * self.theme.padding:
            host_label = "Host a server"
        self.host_button.label = host_label
        self.message_pos = (x, y + field_h + gap)
        if self.server_list is not None:
            list_w = min(width - 20, max(field_w, 640))
            top = self.message_pos[1] + (line + gap if compact else 2 * line)
            self.server_list.set_rect(
                pygame.Rect((width - list_w) // 2, top, list_w, max(0, height - top - 10))
            )
        self.size = size

    def handle_event(self, event: pygame.event.Event) -> bool:
        if event.type == pygame.KEYDOWN:
            if event.key == pygame.K_TAB:
                backwards = bool(event.mod & pygame.KMOD_SHIFT)
                self._focus((self._focused_index() + (-1 if backwards else 1)) % len(self.fields))
                return True
            if event.key in (pygame.K_RETURN, pygame.K_KP_ENTER):
                self.join()
                return True
        if event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            for i, box in enumerate(self.fields):
                if box.rect.collidepoint(event.pos):
                    self._focus(i)
        for button in self.buttons:
            if button.handle_event(event):
                return True
        if self.server_list is not None and self.server_list.handle_event(event):
            return True
        return any(box.handle_event(event) for box in self.fields if box.focused)

    def update(self, dt: float) -> bool:
        """Lay out; True if the screen needs drawing again (a message, a caret blink, the
        list of servers found)."""
        changed = False
        key = (self.error, self.busy)
        if key != self._message_key:  # rendered here, not in draw: draw changes nothing
            changed = True
            self._message_key = key
            text, color = (
                (self.error, self.theme.error) if self.error else (self.busy, self.theme.muted)
            )
            self._message = self.font.render(text, True, color) if text else None
        for box in self.fields:
            changed = box.update(dt) or changed
        for button in self.buttons:
            button.update(dt)
        if self.server_list is not None and self.servers is not None:
            servers = self.servers()
            changed = changed or servers != self._servers_seen
            self._servers_seen = servers
            self.server_list.set_servers(servers)
            changed = self.server_list.update(dt) or changed
        return changed

    def draw(self, surface: pygame.Surface) -> None:
        theme = self.theme
        surface.fill(theme.background)
        surface.blit(self._title, self.title_pos)
        for pos, label in zip(self.label_pos, self._labels, strict=False):  # none when compact
            surface.blit(label, pos)
        for box in self.fields:
            box.draw(surface)
        for button in self.buttons:
            button.draw(surface)
        if self._message is not None:
            surface.blit(self._message, self.message_pos)
        if self.server_list is not None:
            self.server_list.draw(surface)

    # --- internals ---------------------------------------------------------------------

    def _focused_index(self) -> int:
        return next((i for i, box in enumerate(self.fields) if box.focused), 0)

    def _focus(self, index: int) -> None:
        for i, box in enumerate(self.fields):
            box.focused = i == index

    def _render_static(self) -> None:
        theme = self.theme
        self._title = self.title_font.render("game_chat", True, theme.text)
        self._labels = [self.font.render(label, True, theme.muted) for label in self.labels]
