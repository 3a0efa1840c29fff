"""The panel of who is here, on the right of the chat window; it can be hidden."""

from __future__ import annotations

from collections.abc import Callable

import pygame

from .theme import Color, Theme


class UserList:
    def __init__(
        self,
        rect: pygame.Rect,
        theme: Theme,
        font: pygame.font.Font,
        color_of: Callable[[str], Color],
    ) -> None:
        self.rect = pygame.Rect(rect)
        self.theme = theme
        self.font = font
        self.color_of = color_of
        self.visible = True
        self.users: list[str] = []
        self.own_nick = ""
        self._surface: pygame.Surface | None = None

    def set_rect(self, rect: pygame.Rect) -> None:
        self.rect = pygame.Rect(rect)
        self._surface = None

    def set_users(self, users: list[str], own_nick: str) -> None:
        ordered = sorted(users, key=str.casefold)
        if ordered != self.users or own_nick != self.own_nick:
            self.users = ordered
            self.own_nick = own_nick
            self._surface = None  # drawn again by the next update

    def handle_event(self, event: pygame.event.Event) -> bool:
        return False

    def update(self, dt: float) -> None:
        size = self.rect.size
        if self._surface is None or self._surface.get_size() != size:
            self._surface = self._render(size)

    def draw(self, surface: pygame.Surface) -> None:
        if self.visible and self._surface is not None:
            surface.blit(self._surface, self.rect)

    def _render(self, size: tuple[int, int]) -> pygame.Surface:
        """The whole panel, drawn once per change of the list (not once per frame)."""
        theme = self.theme
        panel = pygame.Surface(size)
        panel.fill(theme.panel)
        x = y = theme.padding
        title = self.font.render(f"Users — {len(self.users)}", True, theme.muted)
        panel.blit(title, (x, y))
        y += title.get_height() + theme.padding
        for nick in self.users:
            if y > size[1]:
                break
            label = f"{nick} (you)" if nick == self.own_nick else nick
            line = self.font.render(label, True, self.color_of(nick))
            panel.blit(line, (x, y))
            y += line.get_height()
        return panel
