"""The panel of who is here, on the right of the chat window; it can be hidden.

It lists the members of the room shown: operators marked "@", people who are away dimmed and
marked "(away)", muted ones marked "(muted)". It is drawn once per change, not once per frame.
"""

from __future__ import annotations

import colorsys
import time
import zlib
from collections.abc import Callable, Iterable

import pygame

from ..rooms import Member
from .colors import mix
from .text_safety import MAX_DISPLAY_NICK, clean_display_text
from .theme import Color, Theme


def member_label(member: Member, own_nick: str) -> str:
    """How a member is listed: "@alice (you)", "bob (away)"."""
    marked = member.oper or member.op  # an operator of the server or of this room
    label = ("@" if marked else "") + clean_display_text(member.nick, MAX_DISPLAY_NICK)
    if member.nick == own_nick:
        label += " (you)"
    if member.away:
        label += " (away)"
    if member.muted:
        label += " (muted)"
    return label


#: Two clicks on one member within this many seconds are a double click.
DOUBLE_CLICK = 0.4


class UserList:
    def __init__(
        self,
        rect: pygame.Rect,
        theme: Theme,
        font: pygame.font.Font,
        color_of: Callable[[str], Color],
        on_open: Callable[[str], None] | None = None,
    ) -> None:
        self.rect = pygame.Rect(rect)
        self.theme = theme
        self.font = font
        self.color_of = color_of
        #: Called with a nick double-clicked in the list (not your own): a private chat.
        self.on_open = on_open
        self._rows: list[tuple[int, int, str]] = []  # (top, bottom, nick) in panel pixels
        self._last_click: tuple[str, float] | None = None
        self.visible = True
        #: Nicks listed, sorted case-insensitively.
        self.users: list[str] = []
        self.members: list[Member] = []
        self.own_nick = ""
        self.title = "Users"
        self._surface: pygame.Surface | None = None
        self._dimmed = False

    def set_rect(self, rect: pygame.Rect) -> None:
        self.rect = pygame.Rect(rect)
        self._surface = None

    @property
    def dimmed(self) -> bool:
        """Every name greyed (the connection is down: the list is only what it was)."""
        return self._dimmed

    @dimmed.setter
    def dimmed(self, value: bool) -> None:
        if value != self._dimmed:
            self._dimmed = value
            self._surface = None

    def set_users(self, users: Iterable[str], own_nick: str) -> None:
        """List plain nicks (no marks)."""
        self.set_members([Member(nick) for nick in users], own_nick)

    def set_members(self, members: Iterable[Member], own_nick: str, title: str = "Users") -> None:
        """List these members (drawn again by the next ``update`` if anything changed)."""
        ordered = sorted(members, key=lambda m: (m.nick.casefold(), m.nick))
        if ordered != self.members or own_nick != self.own_nick or title != self.title:
            # Copies: the caller's Member objects change in place (away, renames).
            self.members = [
                Member(m.nick, m.away, m.oper, m.muted, m.op, dict(m.data)) for m in ordered
            ]
            self.users = [m.nick for m in ordered]
            self.own_nick = own_nick
            self.title = title
            self._surface = None

    def handle_event(self, event: pygame.event.Event) -> bool:
        """A double click on a member opens a private chat with them (as in HexChat)."""
        if not (event.type == pygame.MOUSEBUTTONDOWN and event.button == 1 and self.visible):
            return False
        if not self.rect.collidepoint(event.pos):
            return False
        nick = self.nick_at(event.pos)
        now = time.monotonic()
        last, self._last_click = self._last_click, (nick, now) if nick else None
        if nick and last is not None and last[0] == nick and now - last[1] <= DOUBLE_CLICK:
            self._last_click = None
            if self.on_open is not None and nick != self.own_nick:
                self.on_open(nick)
        return True

    def nick_at(self, pos: tuple[int, int]) -> str | None:
        """The member listed at a screen position, if any."""
        y = pos[1] - self.rect.top
        return next((nick for top, bottom, nick in self._rows if top <= y < bottom), None)

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
        title = self.font.render(f"{self.title} — {len(self.members)}", True, theme.muted)
        panel.blit(title, (x, y))
        y += title.get_height() + theme.padding
        self._rows = []
        for member in self.members:
            if y > size[1]:
                break
            color = self.color_of(member.nick)
            if member.away or self._dimmed:
                color = mix(color, theme.panel, 0.5)
            line = self.font.render(member_label(member, self.own_nick), True, color)
            marker = self._team_marker(member, line.get_height())
            if marker is not None:  # member data "team": a square in the team's colour
                panel.blit(marker, (x, y))
            panel.blit(line, (x + line.get_height(), y))
            if member.data.get("ready") is True:  # member data "ready": a tick after the name
                self._draw_tick(panel, x + line.get_height() + line.get_width() + 6, y, line)
            self._rows.append((y, y + line.get_height(), member.nick))
            y += line.get_height()
        return panel

    def _team_marker(self, member: Member, height: int) -> pygame.Surface | None:
        team = member.data.get("team")
        if team is None or team == "":
            return None
        size = max(4, height // 2)
        square = pygame.Surface((size, size))
        square.fill(team_color(str(team)))
        return square

    def _draw_tick(self, panel: pygame.Surface, x: int, y: int, line: pygame.Surface) -> None:
        h = line.get_height()
        points = [(x, y + h // 2), (x + h // 5, y + h * 3 // 4), (x + h // 2, y + h // 4)]
        pygame.draw.lines(panel, (120, 220, 120), False, points, 2)


#: Colours of the usual team names; other names get a stable colour from their hash.
TEAM_COLORS = {
    "red": (230, 80, 80),
    "blue": (90, 140, 255),
    "green": (90, 200, 110),
    "yellow": (230, 200, 70),
    "1": (230, 80, 80),
    "2": (90, 140, 255),
}


def team_color(team: str) -> tuple[int, int, int]:
    """The colour that marks a team in the user list (and that games may use too)."""
    known = TEAM_COLORS.get(team.casefold())
    if known is not None:
        return known
    hue = zlib.crc32(team.encode()) % 360
    r, g, b = colorsys.hsv_to_rgb(hue / 360, 0.6, 0.9)
    return round(r * 255), round(g * 255), round(b * 255)
