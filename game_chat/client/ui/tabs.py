"""The tab bar above the chat log: one tab per room and per private conversation.

Each tab shows its label, the number of lines that arrived while it was not shown and, when
one of them mentions you (or it is a private message), a "!" on a highlighted background.
A click on a tab calls ``on_select(key)``. Tabs are rendered when they change, not per frame;
``draw`` only blits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pygame

from .fonts import TextFont
from .text_safety import MAX_DISPLAY_NICK, clean_display_text
from .theme import Theme

#: Longest label drawn (a room name or a nick).
MAX_LABEL_CHARS = MAX_DISPLAY_NICK
MENTION_MARK = " !"


@dataclass(frozen=True)
class TabItem:
    """What one tab shows."""

    key: int
    label: str
    unread: int = 0
    mention: bool = False


class TabBar:
    """A row of tabs; ``handle_event`` / ``update`` / ``draw``, and ``draw`` changes nothing."""

    def __init__(
        self,
        rect: pygame.Rect | tuple[int, int, int, int],
        theme: Theme,
        font: TextFont,
        on_select: Callable[[int], None] = lambda key: None,
        on_close: Callable[[int], None] | None = None,
    ) -> None:
        self.rect = pygame.Rect(rect)
        self.theme = theme
        self.font = font
        self.on_select = on_select
        self.on_close = on_close
        self.items: tuple[TabItem, ...] = ()
        self.active: int | None = None
        self._rendered: dict[int, tuple[TabItem, bool, pygame.Surface]] = {}
        # (key, screen rect, surface) of every tab, left to right, after ``update``.
        self._layout: list[tuple[int, pygame.Rect, pygame.Surface]] = []
        self._dirty = True

    # --- content ------------------------------------------------------------------------

    def set_tabs(self, items: Sequence[TabItem], active: int | None) -> None:
        """The tabs to show, left to right, and the key of the one shown below."""
        items = tuple(items)
        if items != self.items or active != self.active:
            self.items, self.active = items, active
            self._dirty = True

    def set_rect(self, rect: pygame.Rect | tuple[int, int, int, int]) -> None:
        rect = pygame.Rect(rect)
        if rect != self.rect:
            self.rect = rect
            self._dirty = True

    def tab_at(self, pos: tuple[int, int]) -> int | None:
        """The key of the tab under ``pos`` (as of the last ``update``), if any."""
        if not self.rect.collidepoint(pos):
            return None
        for key, rect, _ in self._layout:
            if rect.collidepoint(pos):
                return key
        return None

    def tab_rect(self, key: int) -> pygame.Rect | None:
        """Where the tab ``key`` is on screen (as of the last ``update``)."""
        for tab, rect, _ in self._layout:
            if tab == key:
                return rect
        return None

    # --- frame --------------------------------------------------------------------------

    def handle_event(self, event: pygame.event.Event) -> bool:
        """A left click on a tab selects it; a middle click closes it (as in a browser),
        when ``on_close`` is set. True if consumed."""
        if event.type == pygame.MOUSEBUTTONDOWN and event.button in (1, 2):
            key = self.tab_at(event.pos)
            if key is not None and event.button == 1:
                self.on_select(key)
                return True
            if key is not None and self.on_close is not None:
                self.on_close(key)
                return True
            return self.rect.collidepoint(event.pos)
        return False

    def update(self, dt: float = 0.0) -> None:
        """Render the tabs that changed and lay the row out, if anything changed."""
        if not self._dirty:
            return
        self._dirty = False
        keys = {item.key for item in self.items}
        for key in [k for k in self._rendered if k not in keys]:
            del self._rendered[key]
        surfaces = [self._surface(item, item.key == self.active) for item in self.items]
        gap = max(1, self.theme.padding // 2)
        x, boxes = 0, []
        for surface in surfaces:
            boxes.append(pygame.Rect(x, 0, surface.get_width(), self.rect.height))
            x += surface.get_width() + gap
        # Too many tabs for the width: scroll the row so the active tab is in view.
        shift = 0
        for item, box in zip(self.items, boxes, strict=True):
            if item.key == self.active and box.right > self.rect.width:
                shift = box.right - self.rect.width
        self._layout = [
            (item.key, box.move(self.rect.left - shift, self.rect.top), surface)
            for item, box, surface in zip(self.items, boxes, surfaces, strict=True)
        ]

    def draw(self, surface: pygame.Surface) -> None:
        clip = surface.get_clip()
        surface.set_clip(self.rect.clip(clip))
        surface.fill(self.theme.panel, self.rect)
        surface.blits([(s, rect.topleft) for _, rect, s in self._layout], doreturn=False)
        surface.set_clip(clip)

    # --- rendering ----------------------------------------------------------------------

    def _surface(self, item: TabItem, active: bool) -> pygame.Surface:
        cached = self._rendered.get(item.key)
        if cached is not None and cached[0] == item and cached[1] == active:
            return cached[2]
        theme = self.theme
        pad = theme.padding
        if active:
            background = theme.background
        elif item.mention:
            background = theme.highlight
        else:
            background = theme.panel
        label = clean_display_text(item.label, MAX_LABEL_CHARS)
        parts = [self.font.render(label, True, theme.text if active else theme.muted, background)]
        if item.unread:
            count = f" {item.unread}" + (MENTION_MARK if item.mention else "")
            color = theme.error if item.mention else theme.accent
            parts.append(self.font.render(count, True, color, background))
        width = sum(p.get_width() for p in parts) + 2 * pad
        surface = pygame.Surface((width, self.rect.height))
        surface.fill(background)
        x = pad
        for part in parts:
            surface.blit(part, (x, (self.rect.height - part.get_height()) // 2))
            x += part.get_width()
        if active:
            surface.fill(theme.accent, (0, self.rect.height - 2, width, 2))
        self._rendered[item.key] = (item, active, surface)
        return surface
