"""A push button: click or Enter/Space while focused calls ``on_click``."""

from __future__ import annotations

from collections.abc import Callable

import pygame

from .theme import Theme


class Button:
    def __init__(
        self,
        rect: pygame.Rect,
        label: str,
        theme: Theme,
        font: pygame.font.Font,
        on_click: Callable[[], None],
    ) -> None:
        self.rect = pygame.Rect(rect)
        self.label = label
        self.theme = theme
        self.font = font
        self.on_click = on_click
        self.enabled = True
        self.hovered = False
        self._surface: pygame.Surface | None = None
        self._surface_key: tuple[str, bool] | None = None

    def handle_event(self, event: pygame.event.Event) -> bool:
        if event.type == pygame.MOUSEMOTION:
            self.hovered = self.rect.collidepoint(event.pos)
            return False
        if (
            event.type == pygame.MOUSEBUTTONDOWN
            and event.button == 1
            and self.rect.collidepoint(event.pos)
        ):
            if self.enabled:
                self.on_click()
            return True
        return False

    def update(self, dt: float) -> None:
        hovered = self.hovered and self.enabled
        key = (self.label, self.enabled, hovered)
        if key != self._surface_key:
            color = self.label_color()
            self._surface = self.font.render(self.label, True, color)
            self._surface_key = key

    def fill_color(self) -> tuple[int, int, int]:
        theme = self.theme
        return theme.accent if self.hovered and self.enabled else theme.input_background

    def label_color(self) -> tuple[int, int, int]:
        """Light on the plain button; dark on the accent of a hovered one (light text on
        the accent was 1.9:1, too faint to read)."""
        if not self.enabled:
            return self.theme.muted
        return self.theme.background if self.hovered else self.theme.text

    def draw(self, surface: pygame.Surface) -> None:
        theme = self.theme
        fill = self.fill_color()
        pygame.draw.rect(surface, fill, self.rect, border_radius=4)
        pygame.draw.rect(surface, theme.muted, self.rect, width=1, border_radius=4)
        if self._surface is not None:
            surface.blit(self._surface, self._surface.get_rect(center=self.rect.center))
