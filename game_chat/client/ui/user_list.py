"""The panel of who is here, on the right of the chat window; it can be hidden.

It lists the members of the room shown: operators marked "@", people who are away dimmed and
marked "(away)", muted ones marked "(muted)". It is drawn once per change, not once per frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pygame

from ..rooms import Member
from .message_log import mix
from .text_safety import MAX_DISPLAY_NICK, clean_display_text
from .theme import Color, Theme


def member_label(member: Member, own_nick: str) -> str:
    """How a member is listed: "@alice (you)", "bob (away)"."""
    label = ("@" if member.oper else "") + clean_display_text(member.nick, MAX_DISPLAY_NICK)
    if member.nick == own_nick:
        label += " (you)"
    if member.away:
        label += " (away)"
    if member.muted:
        label += " (muted)"
    return label


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
        #: Nicks listed, sorted case-insensitively.
        self.users: list[str] = []
        self.members: list[Member] = []
        self.own_nick = ""
        self.title = "Users"
        self._surface: pygame.Surface | None = None

    def set_rect(self, rect: pygame.Rect) -> None:
        self.rect = pygame.Rect(rect)
        self._surface = None

    def set_users(self, users: Iterable[str], own_nick: str) -> None:
        """List plain nicks (no marks)."""
        self.set_members([Member(nick) for nick in users], own_nick)

    def set_members(self, members: Iterable[Member], own_nick: str, title: str = "Users") -> None:
        """List these members (drawn again by the next ``update`` if anything changed)."""
        ordered = sorted(members, key=lambda m: (m.nick.casefold(), m.nick))
        if ordered != self.members or own_nick != self.own_nick or title != self.title:
            # Copies: the caller's Member objects change in place (away, renames).
            self.members = [Member(m.nick, m.away, m.oper, m.muted) for m in ordered]
            self.users = [m.nick for m in ordered]
            self.own_nick = own_nick
            self.title = title
            self._surface = None

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
        title = self.font.render(f"{self.title} — {len(self.members)}", True, theme.muted)
        panel.blit(title, (x, y))
        y += title.get_height() + theme.padding
        for member in self.members:
            if y > size[1]:
                break
            color = self.color_of(member.nick)
            if member.away:
                color = mix(color, theme.panel, 0.5)
            line = self.font.render(member_label(member, self.own_nick), True, color)
            panel.blit(line, (x, y))
            y += line.get_height()
        return panel
