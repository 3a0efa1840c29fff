"""The connect screen: nickname, server address, password, Join and "Host a server" buttons.

It only collects input and shows state; the app does the connecting and reports back through
:meth:`ConnectScreen.show_error` and :meth:`ConnectScreen.set_busy`. Given a ``servers``
source (the LAN discovery listener's snapshot), a live server list sits under the form and a
click on a row fills in the server address.

"Secure (TLS)" beside the address is a view of its ``tls://`` prefix: ticking it writes the
prefix, typing it ticks it. A TLS server picked from the list also shows the start of its
certificate's fingerprint. When a server's certificate has changed, the app calls
:meth:`ConnectScreen.offer_certificate`: the refusal in full under the form, and a "Trust the
new certificate" button in Host's place that accepts it deliberately.
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

TLS_SCHEME = "tls://"

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
        self.note = ""  # shown when there is no error and nothing under way
        self._on_trust: Callable[[], None] | None = None  # the certificate on offer

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
        self._tls_word = "Secure (TLS)"
        self.tls_button = Button(
            pygame.Rect(0, 0, 10, 10), self._tls_label(), theme, font, self.toggle_tls
        )
        self.trust_button = Button(
            pygame.Rect(0, 0, 10, 10), "Trust the new certificate", theme, font, self.trust
        )
        self.buttons = [self.join_button, self.host_button, self.tls_button]
        # LAN discovery: the list is read from ``servers`` in update (never in draw).
        self.servers = servers
        self.server_list: ServerList | None = None
        if servers is not None:
            self.server_list = ServerList(pygame.Rect(0, 0, 10, 10), theme, font, self.pick)
            if servers_note:
                self.server_list.set_status(servers_note)
        self._focus(0)  # the nickname first, as every chat asks it (Enter joins either way)
        self._message: list[pygame.Surface] = []
        self.message_width = FIELD_WIDTH
        self._message_key: tuple[str, str, str, int] | None = None
        self._servers_seen: object = None  # the servers found, as last shown
        self._render_static()
        self.resize(size)

    # --- app interface ------------------------------------------------------------------

    def show_error(self, text: str) -> None:
        self.error, self.busy = text, ""
        self._on_trust = None
        for button in self.buttons:
            button.enabled = True

    def set_busy(self, text: str) -> None:
        self.busy, self.error = text, ""
        self._on_trust = None
        for button in self.buttons:
            button.enabled = not text

    def offer_certificate(self, text: str, on_trust: Callable[[], None]) -> None:
        """A refused certificate: ``text`` says why (both fingerprints), and the "Trust the
        new certificate" button calls ``on_trust``."""
        self.show_error(text)
        self._on_trust = on_trust

    @property
    def offering(self) -> bool:
        """The "Trust the new certificate" button is on screen."""
        return self._on_trust is not None

    def trust(self) -> None:
        on_trust, self._on_trust = self._on_trust, None
        if on_trust is not None and not self.busy:
            on_trust()

    @property
    def secure(self) -> bool:
        return self.server_box.text.strip().lower().startswith(TLS_SCHEME)

    def toggle_tls(self) -> None:
        """Tick or untick "Secure (TLS)": the address gains or loses its tls:// prefix."""
        text = self.server_box.text.strip()
        if self.secure:
            self.server_box.text = text[len(TLS_SCHEME) :]
        else:
            self.server_box.text = TLS_SCHEME + text
        self.note = ""

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
        """A server chosen from the LAN list: its address goes into the form (tls:// in
        front for a TLS server, whose fingerprint's start is shown to compare)."""
        self.server_box.text = entry.url
        self.error = ""
        self.note = ""
        if entry.tls and entry.fingerprint:
            start = ":".join(entry.fingerprint[i : i + 2] for i in range(0, 16, 2)).upper()
            self.note = f"Encrypted. Certificate SHA-256 {start}… (compare with the host's)"
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
        self._place_tls_button()
        below = y + field_h + gap
        # While a certificate is on offer, its button takes Host's place (on screen even in
        # the smallest window; hosting is not what the person is doing then).
        self.trust_button.rect = pygame.Rect(self.host_button.rect)
        trust_label = "Trust the new certificate"
        if self.font.size(trust_label)[0] > self.trust_button.rect.width - 2 * self.theme.padding:
            trust_label = "Trust it"
        self.trust_button.label = trust_label
        self.message_pos = (x, below)
        self.message_width = field_w
        below += max(1, len(self._message)) * line
        if self.server_list is not None:
            list_w = min(width - 20, max(field_w, 640))
            top = below + (gap if compact else line)
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
        if self._on_trust is not None and self.trust_button.handle_event(event):
            return True
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
        key = (self.error, self.busy, self.note, id(self._on_trust))
        if key != self._message_key:  # rendered here, not in draw: draw changes nothing
            changed = True
            self._message_key = key
            self._render_message()
            self.resize(self.size)  # the lines under the form, and the list under them
        label = self._tls_label()
        if label != self.tls_button.label:
            self.tls_button.label = label
            changed = True
        for box in self.fields:
            changed = box.update(dt) or changed
        for button in [*self.buttons, self.trust_button]:
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
            if button is not self.host_button or self._on_trust is None:
                button.draw(surface)
        x, y = self.message_pos
        for line in self._message:
            surface.blit(line, (x, y))
            y += self.font.get_linesize()
        if self._on_trust is not None:
            self.trust_button.draw(surface)  # in Host's place
        if self.server_list is not None:
            self.server_list.draw(surface)

    # --- internals ---------------------------------------------------------------------

    def _focused_index(self) -> int:
        return next((i for i, box in enumerate(self.fields) if box.focused), 0)

    def _focus(self, index: int) -> None:
        for i, box in enumerate(self.fields):
            box.focused = i == index

    def _tls_label(self) -> str:
        return ("[x] " if self.secure else "[ ] ") + self._tls_word

    def _place_tls_button(self) -> None:
        """The "Secure (TLS)" box, right of the address field, which gives it the room (a
        narrow form says "TLS" only)."""
        box = self.server_box.rect
        pad = 2 * self.theme.padding
        self._tls_word = "Secure (TLS)"
        if self.font.size("[x] Secure (TLS)")[0] + pad > box.width // 3:
            self._tls_word = "TLS"
        width = self.font.size(f"[x] {self._tls_word}")[0] + pad
        self.server_box.set_rect(pygame.Rect(box.x, box.y, box.width - width - 6, box.height))
        self.tls_button.rect = pygame.Rect(box.right - width, box.y, width, box.height)
        self.tls_button.label = self._tls_label()

    def _render_message(self) -> None:
        """The error, what is under way or the note, cut into lines of the form's width."""
        if self.error:
            text, color = self.error, self.theme.error
        else:
            text, color = self.busy or self.note, self.theme.muted
        width = self.message_width
        lines = wrap_words(self.font, text, width) if text else []
        self._message = [self.font.render(line, True, color) for line in lines]

    def _render_static(self) -> None:
        theme = self.theme
        self._title = self.title_font.render("game_chat", True, theme.text)
        self._labels = [self.font.render(label, True, theme.muted) for label in self.labels]


def wrap_words(font: pygame.font.Font, text: str, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels: broken at spaces, and a word wider
    than a line (a fingerprint) broken where it must."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.size(candidate)[0] <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while font.size(word)[0] > width and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and font.size(word[:cut])[0] > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines
