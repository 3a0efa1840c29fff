"""The live list of servers found on the LAN, under the connect form; a click picks one.

Each row shows the server's name, address (``tls://`` in front when it speaks TLS), players, a
lock (drawn, not a glyph) when it asks for a password, and the ping. The names are already
cleaned by the discovery code and are cut again here to the column's width. The panel is
rendered once per change, not per frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pygame

from ...discovery import ServerEntry
from ...protocol.messages import PROTOCOL_VERSION
from .fonts import fit
from .theme import Color, Theme

SEARCHING = "Looking for servers on your network…"
#: After this many seconds with nothing found, the list says so (and what to do instead).
NOTHING_FOUND_AFTER = 5.0
NOTHING_FOUND = "No servers found on your network yet: host one, or type an address above"


def ping_text(entry: ServerEntry) -> str:
    return "–" if entry.ping_ms is None else f"{max(1, round(entry.ping_ms))} ms"


def draw_lock(surface: pygame.Surface, color: Color, center: tuple[int, int], size: int) -> None:
    """A padlock: a filled body and a shackle arc above it, ``size`` pixels high."""
    cx, cy = center
    body_w, body_h = max(6, size * 2 // 3), max(4, size // 2)
    body = pygame.Rect(0, 0, body_w, body_h)
    body.midbottom = (cx, cy + size // 2)
    pygame.draw.rect(surface, color, body, border_radius=2)
    shackle = pygame.Rect(0, 0, body_w - 2 * max(1, body_w // 6), body_h + 2)
    shackle.midbottom = (cx, body.top + body_h // 2)
    pygame.draw.arc(surface, color, shackle, 0, math.pi, max(1, size // 8))
    for x in (shackle.left, shackle.right - max(1, size // 8)):
        pygame.draw.line(surface, color, (x, shackle.centery), (x, body.top))


class ServerList:
    """``set_servers`` each frame (cheap when nothing changed); ``on_pick`` gets a clicked row."""

    def __init__(
        self,
        rect: pygame.Rect,
        theme: Theme,
        font: pygame.font.Font,
        on_pick: Callable[[ServerEntry], None],
    ) -> None:
        self.rect = pygame.Rect(rect)
        self.theme = theme
        self.font = font
        self.on_pick = on_pick
        self.servers: tuple[ServerEntry, ...] = ()
        self.status = SEARCHING  # shown while the list is empty
        self.hovered: int | None = None  # index into servers
        self.scroll = 0  # rows hidden above
        self._surface: pygame.Surface | None = None
        self._searched = 0.0  # seconds the list has been empty while searching

    # --- state -------------------------------------------------------------------------

    @property
    def row_height(self) -> int:
        return self.font.get_linesize() + self.theme.padding

    @property
    def visible_rows(self) -> int:
        return max(0, (self.rect.height - self.row_height) // self.row_height)

    def set_rect(self, rect: pygame.Rect) -> None:
        self.rect = pygame.Rect(rect)
        self._clamp_scroll()
        self._surface = None

    def set_servers(self, servers: Sequence[ServerEntry]) -> None:
        servers = tuple(servers)
        if servers != self.servers:
            self.servers = servers
            if self.hovered is not None and self.hovered >= len(servers):
                self.hovered = None
            self._clamp_scroll()
            self._surface = None

    def set_status(self, text: str) -> None:
        if text != self.status:
            self.status = text
            self._surface = None

    def row_rect(self, index: int) -> pygame.Rect:
        """Screen rectangle of ``servers[index]`` (outside the panel when scrolled away)."""
        top = self.rect.top + self.row_height * (1 + index - self.scroll)
        return pygame.Rect(self.rect.left, top, self.rect.width, self.row_height)

    def row_at(self, pos: tuple[int, int]) -> int | None:
        if not self.rect.collidepoint(pos):
            return None
        index = (pos[1] - self.rect.top) // self.row_height - 1 + self.scroll
        shown = range(self.scroll, min(len(self.servers), self.scroll + self.visible_rows))
        return index if index in shown else None

    # --- frame -------------------------------------------------------------------------

    def handle_event(self, event: pygame.event.Event) -> bool:
        if event.type == pygame.MOUSEMOTION:
            self.hovered = self.row_at(event.pos)
            return False
        if event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            index = self.row_at(event.pos)
            if index is None:
                return False
            self.on_pick(self.servers[index])
            return True
        if event.type == pygame.MOUSEWHEEL and self.rect.collidepoint(pygame.mouse.get_pos()):
            self.scroll -= event.y
            self._clamp_scroll()
            self._surface = None
            return True
        return False

    def update(self, dt: float) -> bool:
        """Lay out; True if the list looks different now (so the screen draws again)."""
        changed = False
        if self.servers or self.status not in (SEARCHING, NOTHING_FOUND):
            self._searched = 0.0
        else:
            self._searched += dt
            wanted = SEARCHING if self._searched < NOTHING_FOUND_AFTER else NOTHING_FOUND
            if wanted != self.status:
                self.set_status(wanted)
                changed = True
        if self._surface is None or self._surface.get_size() != self.rect.size:
            self._surface = self._render()
            changed = True
        return changed

    def draw(self, surface: pygame.Surface) -> None:
        if self._surface is None:
            return
        surface.blit(self._surface, self.rect)
        if self.hovered is not None:
            pygame.draw.rect(
                surface, self.theme.accent, self.row_rect(self.hovered), width=1, border_radius=3
            )

    # --- internals ---------------------------------------------------------------------

    def _clamp_scroll(self) -> None:
        self.scroll = max(0, min(self.scroll, len(self.servers) - self.visible_rows))

    def _columns(self, width: int) -> tuple[int, int, int, int, int]:
        """x of the name, address, players, lock and ping columns."""
        pad = self.theme.padding
        ping_x = width - pad - self.font.size("9999 ms")[0]
        lock_x = ping_x - pad - self.font.get_linesize()
        players_x = lock_x - pad - self.font.size("Players")[0]
        address_x = players_x - pad - self.font.size("255.255.255.255:65535")[0]
        return pad, max(pad + 40, address_x), players_x, lock_x, ping_x

    def _render(self) -> pygame.Surface:
        theme, font = self.theme, self.font
        surface = pygame.Surface(self.rect.size)
        surface.fill(theme.panel)
        name_x, address_x, players_x, lock_x, ping_x = self._columns(self.rect.width)
        row_h, pad = self.row_height, theme.padding // 2
        for x, label in ((name_x, "Servers on your network"), (players_x, "Players")):
            surface.blit(font.render(label, True, theme.muted), (x, pad))
        surface.blit(font.render("Ping", True, theme.muted), (ping_x, pad))
        if not self.servers:
            surface.blit(font.render(self.status, True, theme.muted), (name_x, row_h + pad))
        shown = self.servers[self.scroll : self.scroll + self.visible_rows]
        for row, entry in enumerate(shown, start=1):
            y = row * row_h + pad
            name_color = theme.text if entry.protocol == PROTOCOL_VERSION else theme.muted
            name = fit(font, entry.name or "(no name)", address_x - name_x - theme.padding)
            cells = (
                (name_x, name, name_color),
                # A TLS server shows as tls://HOST:PORT: what joining it will use.
                (address_x, fit(font, entry.url, players_x - address_x - pad), theme.muted),
                (players_x, str(entry.players), theme.text),
                (ping_x, ping_text(entry), theme.muted),
            )
            for x, text, color in cells:
                surface.blit(font.render(text, True, color), (x, y))
            if entry.password:
                size = font.get_height() * 2 // 3
                center = (lock_x + font.get_linesize() // 2, y + font.get_height() // 2)
                draw_lock(surface, theme.text, center, size)
        return surface
