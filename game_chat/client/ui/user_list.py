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
        self._rendered: dict[tuple[str, bool], pygame.Surface] = {}
        self._title: pygame.Surface | None = None

    def set_rect(self, rect: pygame.Rect) -> None:
        self.rect = pygame.Rect(rect)

    def set_users(self, users: list[str], own_nick: str) -> None:
        self.users = sorted(users, key=str.casefold)
        self.own_nick = own_nick

    def handle_event(self, event: pygame.event.Event) -> bool:
        return False

    def update(self, dt: float) -> None:
        self._title = self.font.render(f"Users — {len(self.users)}", True, self.theme.muted)
        wanted = {(u, u == self.own_nick) for u in self.users}
        for key in wanted - self._rendered.keys():
            nick, own = key
            label = f"{nick} (you)" if own else nick
            self._rendered[key] = self.font.render(label, True, self.color_of(nick))
        if len(self._rendered) > 4 * max(16, len(wanted)):  # forget people long gone
            self._rendered = {k: v for k, v in self._rendered.items() if k in wanted}

    def draw(self, surface: pygame.Surface) -> None:
        if not self.visible:
            return
        theme = self.theme
        pygame.draw.rect(surface, theme.panel, self.rect)
        x, y = self.rect.x + theme.padding, self.rect.y + theme.padding
        clip = surface.get_clip()
        surface.set_clip(self.rect)
        if self._title is not None:
            surface.blit(self._title, (x, y))
            y += self._title.get_height() + theme.padding
        for nick in self.users:
            if y > self.rect.bottom:
                break
            line = self._rendered.get((nick, nick == self.own_nick))
            if line is not None:
                surface.blit(line, (x, y))
                y += line.get_height()
        surface.set_clip(clip)
