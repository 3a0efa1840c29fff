"""The chat as a component of a game's own Pygame loop: :class:`ChatOverlay`.

::

    client = ChatClient("192.168.1.20", 5050, "alice")
    client.start()
    chat = ChatOverlay(client, pygame.Rect(10, 300, 420, 240))
    while running:
        for event in pygame.event.get():
            if not chat.handle_event(event):
                game.handle_event(event)        # the chat did not want it
        chat.update(dt)                         # drains the client's events
        game.draw(screen)
        chat.draw(screen)                       # last: on top of the game
        pygame.display.flip()

Closed, the overlay shows the lines of the last 10 seconds over the game, each fading out on
its own (as in Minecraft or Source games) and takes no input but its opening keys: T or Enter
open it, "/" opens it holding "/". Open, it is the chat window's message log (wheel and
PageUp/PageDown scroll back, scrolling to the top pages in history) and input line (editing,
history, Tab completion, /commands); Enter sends and closes, Esc closes.

Lobby member data (ready, team, ...): :meth:`ChatOverlay.set_member_data` sets ours in the
overlay's room, :meth:`ChatOverlay.members` lists everyone with theirs, and changes arrive
through :meth:`ChatOverlay.member_changes` or the ``on_member_data`` callback.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pygame

from ..protocol.commands import LOBBY
from ..protocol.messages import JoinRoom, MemberData
from .conversation import Conversation
from .model import LogLine
from .net import ChatClient
from .rooms import Member, Tab, tab_key
from .submit import COMMAND_NAMES, submit_line
from .ui.clipboard import Clipboard, make_clipboard
from .ui.fonts import TextFont, load_font
from .ui.input_box import InputBox
from .ui.message_log import WHEEL_ROWS, MessageLog, copies_log
from .ui.theme import Theme

__all__ = ["DEFAULT_OVERLAY_THEME", "FADE_AFTER", "ChatOverlay", "MemberChange"]

#: Seconds a line stays over the game while the chat is closed.
FADE_AFTER = 10.0
#: The last part of those seconds, during which the line fades out.
FADE_SECONDS = 1.0
#: Lines shown at most while the chat is closed.
MAX_FADING_LINES = 10
#: Network events handled per frame at most; the rest wait for the next frame.
MAX_EVENTS_PER_FRAME = 200
#: Member data changes kept for :meth:`ChatOverlay.member_changes` (oldest dropped first).
MAX_MEMBER_CHANGES = 1000
#: A translucent version of the window's theme.
DEFAULT_OVERLAY_THEME = Theme(opacity=210)

# Keys held with these never open the chat (Ctrl+T is the game's).
_NO_OPEN_MODS = pygame.KMOD_CTRL | pygame.KMOD_ALT | pygame.KMOD_META | pygame.KMOD_GUI
_ENTER = (pygame.K_RETURN, pygame.K_KP_ENTER)
_MOUSE = (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP, pygame.MOUSEMOTION)


@dataclass(frozen=True)
class MemberChange:
    """``nick`` set their member data in ``room``; ``data`` is all of it now."""

    room: str
    nick: str
    data: dict[str, Any]


@dataclass(frozen=True)
class _Strip:
    """One line shown while closed: its rows on the canvas and its opacity (0-255)."""

    area: pygame.Rect
    alpha: int
    line: LogLine


class ChatOverlay:
    """The chat inside a game's own loop: ``handle_event`` / ``update`` / ``draw``.

    ``client`` is a :class:`ChatClient` (start it yourself); ``rect`` is where the chat sits on
    the game's surface. ``theme`` sets font, size, colours and ``opacity`` (default
    :data:`DEFAULT_OVERLAY_THEME`). ``room`` is the room the overlay talks in, joined if it is
    not the lobby. ``on_member_data(change)`` is called from :meth:`update` for each member
    data change (:class:`MemberChange`) in any room we are in.
    """

    def __init__(
        self,
        client: ChatClient,
        rect: pygame.Rect | tuple[int, int, int, int],
        theme: Theme | None = None,
        *,
        room: str = LOBBY,
        font: TextFont | None = None,
        clipboard: Clipboard | None = None,
        on_member_data: Callable[[MemberChange], None] | None = None,
    ) -> None:
        self.client = client
        self.theme = theme or DEFAULT_OVERLAY_THEME
        self.font: TextFont = font or load_font(self.theme)
        self.room = room
        self.on_member_data = on_member_data
        self.rect = pygame.Rect(rect)
        #: Tabs, members and status, as in the chat window (one log shows every tab here).
        self.conversation = Conversation(client.nick, self._add_line, self._add_older)
        self.log = MessageLog((0, 0, 10, 10), self.theme, self.font, own_nick=self._own_nick)
        self.input = InputBox(
            (0, 0, 10, 10),
            self.theme,
            self.font,
            clipboard or make_clipboard(),
            on_submit=self.send,
            completions=self.conversation.known_nicks,
            commands=COMMAND_NAMES,
            placeholder="Say something, /help for commands",
            focused=False,
        )
        self.log.clipboard = self.input.clipboard  # Ctrl+C copies the log's selection
        self._open = False
        self._swallow = ""  # the opening key's own TEXTINPUT, expected in the same frame
        self._now = 0.0  # seconds of update() so far: the fading clock
        self._recent: deque[tuple[float, LogLine]] = deque(maxlen=MAX_FADING_LINES)
        self._strips: tuple[_Strip, ...] = ()
        self._row_counts: dict[tuple[LogLine, int, int], int] = {}
        self._changes: deque[MemberChange] = deque(maxlen=MAX_MEMBER_CHANGES)
        self._ime_rect: pygame.Rect | None = None
        self._canvas = pygame.Surface((1, 1))
        self.set_rect(self.rect)
        if tab_key(room) != tab_key(LOBBY) and not self.conversation.expect_join(room):
            client.send(JoinRoom(room))  # sent once connected

    # --- state for the game -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True while the chat takes the keyboard (the game should ignore its movement keys)."""
        return self._open

    @property
    def nick(self) -> str:
        """Our nickname as the server knows it."""
        return self.conversation.nick

    @property
    def status(self) -> str:
        """The connection: one of :class:`~game_chat.client.conversation.Status`."""
        return self.conversation.status

    def open(self, prefix: str = "") -> None:
        """Open the chat with ``prefix`` in the input line (already open: ``prefix``, if any,
        replaces the line)."""
        if not self._open:
            self._open = True
            self.input.focused = True
            self.log.scroll_to_bottom()
            try:
                pygame.key.start_text_input()
            except pygame.error:  # no video system: synthetic events still work
                pass
            self.input.text = prefix
        elif prefix:
            self.input.text = prefix

    def close(self) -> None:
        """Close the chat: the unsent line is dropped, the keyboard is the game's again."""
        self._open = False
        self._swallow = ""
        self.input.clear()
        self.input.focused = False
        self.log.scroll_to_bottom()

    def set_rect(self, rect: pygame.Rect | tuple[int, int, int, int]) -> None:
        """Move or resize the chat (e.g. when the game's window is resized)."""
        self.rect = pygame.Rect(rect)
        pad = self.theme.padding
        input_h = self.font.get_linesize() + 3 * pad
        width, height = self.rect.size
        # The widgets sit on a canvas of the overlay's size, drawn translucently onto the game.
        self.log.set_rect((0, 0, width, max(0, height - input_h)))
        self.input.set_rect((pad, height - input_h + pad, width - 2 * pad, input_h - 2 * pad))
        if self._canvas.get_size() != self.rect.size:
            self._canvas = pygame.Surface((max(1, width), max(1, height)))
            if pygame.display.get_surface() is not None:
                self._canvas = self._canvas.convert()

    def send(self, text: str) -> None:
        """Send ``text`` as if typed: a chat line to the overlay's room, or a /command
        ("//" starts a line with a slash). ``/quit`` closes the client."""
        goodbye = submit_line(text, self.client, self.conversation, follow_private=False)
        if goodbye is not None:
            self.client.close(goodbye.reason or "quit")

    # --- lobby member data ---------------------------------------------------------------

    def members(self, room: str | None = None) -> list[Member]:
        """Who is in ``room`` (default: the overlay's), by nick, each with its ``data``.

        The Members are the chat's own, kept up to date: read them, don't change them.
        """
        tab = self.conversation.tab(room or self.room)
        return tab.members if tab is not None and tab.is_room else []

    def set_member_data(self, data: Mapping[str, Any] | None = None, /, **pairs: Any) -> None:
        """Set our member data in the overlay's room, merged into what we set before; a None
        value removes a key. ``chat.set_member_data(ready=True, team=2)``; keys that are no
        Python names go in a mapping: ``chat.set_member_data({"skin.id": 3})``.

        Everyone in the room (us too) sees the change once the server has it.
        """
        change = {**(data or {}), **pairs}
        if change:
            self.client.set_member_data(self.room, change)

    def member_changes(self) -> list[MemberChange]:
        """The member data changes since the last call, oldest first (at most the last 1000)."""
        changes = list(self._changes)
        self._changes.clear()
        return changes

    # --- frame -------------------------------------------------------------------------

    def handle_event(self, event: pygame.event.Event) -> bool:
        """Give the chat one event; True if it used it (then the game should not).

        Closed, only T, Enter and "/" are used (and the text the T or "/" key types). Open,
        keys, text and clicks on the chat are used; keys it has no use for (F1-F12, other
        Ctrl shortcuts), key releases and clicks elsewhere are left to the game.
        """
        if not self._open:
            return self._handle_closed(event)
        if event.type == pygame.TEXTINPUT and self._swallow:
            swallow, self._swallow = self._swallow, ""
            if event.text.casefold() == swallow:
                return True
        if event.type == pygame.KEYDOWN:
            return self._handle_key(event)
        if event.type in (pygame.TEXTINPUT, pygame.TEXTEDITING):
            self.input.handle_event(event)
            return True
        if event.type == pygame.MOUSEWHEEL:
            if event.y and self._mouse_over():
                self.log.scroll_by(int(event.y) * WHEEL_ROWS)
                return True
            return False
        if event.type in _MOUSE:
            return self._handle_mouse(event)
        return False

    def update(self, dt: float) -> bool:
        """Handle what arrived from the server (at most 200 events a frame), advance the
        fading clock by ``dt`` seconds and lay out what :meth:`draw` shows.

        True if what :meth:`draw` paints changed (lines came, a line is fading, the caret
        blinked): a game that draws only when something changed asks this; an idle game with
        the chat closed and nothing fading gets False and may sleep."""
        self._now += max(0.0, dt)
        self._swallow = ""  # the opening key's text comes in the same frame as the key
        events = self.client.poll(MAX_EVENTS_PER_FRAME)
        for event in events:
            self.conversation.apply(event)
            if isinstance(event, MemberData):
                self._member_changed(MemberChange(event.room, event.nick, event.data))
        settled = self.conversation.settle(self._now)
        self.input.max_chars = self.conversation.max_text_chars
        self.log.update(dt)
        if self._open and self.log.at_top:
            request = self.conversation.request_older(self.conversation.current)
            if request is not None:
                self.client.send(request)
        blinked = self.input.update(dt)
        if self._open:
            self._place_ime_window()
        before = self._strips
        self._strips = () if self._open else self._fading_strips()
        changed = bool(events) or settled or (self._open and blinked)
        return changed or bool(before) or bool(self._strips)

    def draw(self, surface: pygame.Surface) -> None:
        """Draw the chat onto ``surface`` (the game's frame). Only paints: the chat's state,
        laid out by :meth:`update`, stays as it is."""
        canvas = self._canvas
        opacity = self.theme.opacity
        if self._open:
            canvas.fill(self.theme.background)
            self.log.draw(canvas)
            self.input.draw(canvas)
            canvas.set_alpha(None if opacity >= 255 else opacity)
            surface.blit(canvas, self.rect.topleft)
        elif self._strips:
            self.log.draw(canvas)
            for strip in self._strips:
                canvas.set_alpha(strip.alpha)
                surface.blit(canvas, self.rect.move(strip.area.topleft).topleft, strip.area)

    def visible_lines(self) -> list[LogLine]:
        """The lines the chat shows now, oldest first: open, those in the log's view; closed,
        the ones not yet faded out (as of the last :meth:`update`)."""
        if self._open:
            return self.log.visible_lines()[::-1]
        return [strip.line for strip in reversed(self._strips)]

    # --- events --------------------------------------------------------------------------

    def _handle_closed(self, event: pygame.event.Event) -> bool:
        if event.type != pygame.KEYDOWN or getattr(event, "mod", 0) & _NO_OPEN_MODS:
            return False
        # What the key types decides "/" (Shift+7 on a German keyboard); the key code when
        # the event does not say (synthetic events).
        typed = getattr(event, "unicode", "")
        if typed == "/" or (not typed and event.key in (pygame.K_SLASH, pygame.K_KP_DIVIDE)):
            self.open("/")
            self._swallow = "/"
        elif event.key == pygame.K_t:
            self.open()
            self._swallow = "t"
        elif event.key in _ENTER:
            self.open()
        else:
            return False
        return True

    def _handle_key(self, event: pygame.event.Event) -> bool:
        if self.input.composition:  # the IME edits its composition with these keys
            self.input.handle_event(event)
            return True
        if event.key == pygame.K_ESCAPE:
            self.close()
            return True
        if event.key in _ENTER:
            before = self.input.text
            self.input.handle_event(event)
            # Sent (the line emptied) or nothing to send: done. Unchanged: the IME's Enter.
            if not before.strip() or self.input.text != before:
                self.close()
            return True
        if getattr(event, "mod", 0) & pygame.KMOD_CTRL and event.key in (
            pygame.K_HOME,
            pygame.K_END,
        ):
            return self.log.handle_event(event)
        if copies_log(event, self.input.selection) and self.log.copy_selection():
            return True
        return self.input.handle_event(event) or self.log.handle_event(event)

    def _handle_mouse(self, event: pygame.event.Event) -> bool:
        inside = self.rect.collidepoint(event.pos)
        local = pygame.event.Event(
            event.type,
            {**event.dict, "pos": (event.pos[0] - self.rect.x, event.pos[1] - self.rect.y)},
        )
        if event.type != pygame.MOUSEBUTTONDOWN:  # a drag selecting text in the line or log
            return self.input.handle_event(local) or self.log.handle_event(local)
        if not inside:
            return False  # (passed on, the input line would lose the focus)
        if self.input.rect.collidepoint(local.pos):
            self.input.handle_event(local)
        else:
            self.log.handle_event(local)
        return True

    def _mouse_over(self) -> bool:
        try:
            return self.rect.collidepoint(pygame.mouse.get_pos())
        except pygame.error:  # no video system (tests): the wheel is the chat's
            return True

    def _place_ime_window(self) -> None:
        """Put the IME candidate window at the caret, in the game's coordinates."""
        rect = self.input.caret_rect().move(self.rect.topleft)
        if rect == self._ime_rect:
            return
        self._ime_rect = rect
        try:
            pygame.key.set_text_input_rect(rect)
        except pygame.error:
            pass

    # --- lines -----------------------------------------------------------------------------

    def _own_nick(self) -> str:
        return self.conversation.nick

    def _add_line(self, tab: Tab, line: LogLine) -> None:
        """Every tab's lines go to the one log; those of other tabs say where they are from."""
        if tab is not self.conversation.current:
            if tab.is_room:
                line.text = f"[{tab.name}] {line.text}"
            elif line.own:
                line.text = f"(to {tab.name}) {line.text}"
            elif line.nick is not None:
                line.text = f"(private) {line.text}"
        self.log.append(line)
        if line.history:
            self._recent.clear()  # replayed lines don't pop up over the game
        else:
            self._recent.append((self._now, line))

    def _add_older(self, tab: Tab, lines: list[LogLine]) -> None:
        if tab is self.conversation.current:
            self.log.prepend(lines)

    def _member_changed(self, change: MemberChange) -> None:
        self._changes.append(change)
        if self.on_member_data is not None:
            self.on_member_data(change)

    # --- fading ------------------------------------------------------------------------------

    def _fading_strips(self) -> tuple[_Strip, ...]:
        """The newest lines younger than FADE_AFTER, bottom up, where the log shows them."""
        log = self.log
        pad = self.theme.padding
        linesize = max(1, self.font.get_linesize())
        bottom, top = log.rect.bottom - pad, log.rect.top + pad
        strips = []
        for arrived, line in reversed(self._recent):
            left = FADE_AFTER - (self._now - arrived)
            if left <= 0:
                break  # the older ones are gone too
            height = self._row_count(line) * linesize
            alpha = round(self.theme.opacity * min(1.0, left / FADE_SECONDS))
            area = pygame.Rect(log.rect.left, bottom - height, log.rect.width, height)
            strips.append(_Strip(area.clip(log.rect), alpha, line))
            bottom -= height
            if bottom <= top:
                break  # the log shows no more
        return tuple(strips)

    def _row_count(self, line: LogLine) -> int:
        """Rows the log wraps ``line`` into (kept per line and width: fading asks every frame)."""
        width = self.log.wrap_width
        key = (line, line.version, width)
        count = self._row_counts.get(key)
        if count is None:
            count = self.log.row_count(line)
            if len(self._row_counts) >= 4 * MAX_FADING_LINES:
                self._row_counts.clear()
            self._row_counts[key] = count
        return count
