"""The chat's input line: typing, IME composition, editing keys, history and Tab completion.

The editing logic lives in :class:`TextEditBuffer` and :class:`InputHistory` (text_edit.py),
which know nothing about pygame; :class:`InputBox` translates pygame events into calls on them
and draws the result. As in pygame-ce's examples/textinput.py, text only ever comes from
TEXTINPUT (and TEXTEDITING for an IME composition); KEYDOWN is used for editing keys only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pygame

from .clipboard import Clipboard
from .completion import TabCompleter
from .fonts import TextFont
from .text_edit import InputHistory, TextEditBuffer, sanitize_input, word_left, word_right
from .theme import Color, Theme
from .wrap import nearest_boundary

__all__ = [
    "InputBox",
    "InputHistory",
    "TextEditBuffer",
    "sanitize_input",
    "scroll_to_show",
    "word_left",
    "word_right",
]

#: Seconds the caret stays on, then off.
BLINK_SECONDS = 0.53
#: The "n/max" counter appears once the text is longer than this share of the limit.
COUNTER_THRESHOLD = 0.8
CARET_WIDTH = 2
# Ctrl, and Cmd on macOS (KMOD_META and KMOD_GUI are the same bits in pygame 2).
_COMMAND_MODS = pygame.KMOD_CTRL | pygame.KMOD_META | pygame.KMOD_GUI
# SDL keycodes of keys without a character carry this bit (arrows, F1, keypad, ...).
_SCANCODE_MASK = 1 << 30
# Keys an IME may still be delivering after it ended a composition (commit or cancel).
_IME_ENDING_KEYS = frozenset(
    (pygame.K_RETURN, pygame.K_KP_ENTER, pygame.K_BACKSPACE, pygame.K_DELETE, pygame.K_ESCAPE)
)


def _key_mods() -> int:
    try:
        return pygame.key.get_mods()
    except pygame.error:  # no video system (tests driving the widget with synthetic events)
        return 0


def scroll_to_show(caret_x: int, text_width: int, view_width: int, scroll: int) -> int:
    """Horizontal scroll (pixels hidden on the left) that keeps the caret in view.

    Moves as little as possible, except that going off the left edge jumps back a third of the
    view so some context shows; never leaves blank space on the right while text is hidden.
    """
    view_width = max(1, view_width)
    if caret_x < scroll:
        scroll = max(0, caret_x - view_width // 3)
    elif caret_x + CARET_WIDTH > scroll + view_width:
        scroll = caret_x + CARET_WIDTH - view_width
    return max(0, min(scroll, text_width + CARET_WIDTH - view_width))


@dataclass(frozen=True)
class _Layout:
    """Everything draw() needs, computed when the state changes (draw itself changes nothing)."""

    text_area: pygame.Rect  # screen area the text is visible in
    text_y: int
    scroll: int  # pixels of the text surface hidden on the left
    caret_x: int  # in text-surface pixels
    selection_x: tuple[int, int] | None
    composition_x: tuple[int, int] | None
    text: pygame.Surface | None  # the line with the composition inserted
    placeholder: pygame.Surface | None
    counter: pygame.Surface | None


#: pygame reports each wheel notch as a press of button 4 or 5 (and 6, 7 sideways) too.
WHEEL_BUTTONS = frozenset({4, 5, 6, 7})


class InputBox:
    """The chat input line. Call ``handle_event`` for each event, then ``update``, then ``draw``.

    ``on_submit(line)`` receives each non-blank line when Enter is pressed. ``completions``
    returns the nicknames Tab may complete; ``commands`` are the /commands it may complete.
    """

    def __init__(
        self,
        rect: pygame.Rect | tuple[int, int, int, int],
        theme: Theme,
        font: TextFont,
        clipboard: Clipboard,
        on_submit: Callable[[str], None],
        max_chars: int = 1000,
        completions: Callable[[], Iterable[str]] | None = None,
        commands: Iterable[str] = (),
        placeholder: str = "",
        focused: bool = True,
        mask: str = "",
        keep_focus: bool = False,
    ) -> None:
        self.rect = pygame.Rect(rect)
        self.theme = theme
        self.font = font
        self.clipboard = clipboard
        self.on_submit = on_submit
        self.completions = completions
        self.commands = tuple(commands)
        self.placeholder = placeholder
        #: Shown instead of each character (password fields), "" to show the text itself.
        self.mask = mask
        #: A click elsewhere does not take the keys away (the chat window's line: every key
        #: goes to it wherever you clicked, as in HexChat or Discord). False: a click elsewhere
        #: gives the keys back (to a game around the overlay, or to another field).
        self.keep_focus = keep_focus
        self._buffer = TextEditBuffer(max_chars)
        self._history = InputHistory()
        self._completer = TabCompleter()
        self._focused = focused
        self._composition = ""
        self._composition_cursor = 0
        self._ime_just_ended = False
        self._ime_rect: pygame.Rect | None = None
        self._dragging = False
        self._blink = 0.0
        self._surfaces: dict[str, tuple[tuple[str, Color], pygame.Surface]] = {}
        self._layout = self._compute_layout(0)

    # ----------------------------------------------------------------- state for the app

    @property
    def text(self) -> str:
        """The line as typed so far (without an unfinished IME composition)."""
        return self._buffer.text

    @text.setter
    def text(self, value: str) -> None:
        self._buffer.set_text(value)
        self._changed()

    @property
    def cursor(self) -> int:
        """Cursor index into :attr:`text`."""
        return self._buffer.cursor

    @property
    def selection(self) -> tuple[int, int] | None:
        """(start, end) of the selection, or None."""
        return self._buffer.selection

    @property
    def composition(self) -> str:
        """The IME's unfinished text, shown underlined at the cursor ("" when none)."""
        return self._composition

    @property
    def scroll(self) -> int:
        """Pixels of the line hidden on the left because it is wider than the box."""
        return self._layout.scroll

    @property
    def counter_text(self) -> str:
        """The "n/max" shown near the limit ("" while hidden)."""
        return self._counter()[0]

    @property
    def max_chars(self) -> int:
        """Longest line accepted; set it from the server's welcome (lowering it cuts the text)."""
        return self._buffer.max_chars

    @max_chars.setter
    def max_chars(self, value: int) -> None:
        if value != self._buffer.max_chars:
            self._buffer.max_chars = value
            self._changed()

    @property
    def focused(self) -> bool:
        """Whether keys and text go to this line. Losing focus drops an IME composition."""
        return self._focused

    @focused.setter
    def focused(self, value: bool) -> None:
        if value != self._focused:
            self._focused = value
            self._composition = ""
            self._dragging = False
            self._changed()

    def set_rect(self, rect: pygame.Rect | tuple[int, int, int, int]) -> None:
        """Move or resize the box (window resize)."""
        self.rect = pygame.Rect(rect)
        self._changed()

    def clear(self) -> None:
        """Empty the line and stop walking the history."""
        self._buffer.clear()
        self._history.reset()
        self._completer.reset()
        self._changed()

    def caret_rect(self) -> pygame.Rect:
        """The caret on screen; also where the IME candidate window is placed."""
        lay = self._layout
        x = lay.text_area.x + lay.caret_x - lay.scroll
        return pygame.Rect(x, lay.text_y, CARET_WIDTH, self.font.get_height())

    # ----------------------------------------------------------------- frame methods

    def handle_event(self, event: pygame.event.Event) -> bool:
        """Apply one event; True when the input line used it (don't pass it to the game)."""
        if event.type in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEMOTION, pygame.MOUSEBUTTONUP):
            consumed = self._on_mouse(event)
        elif not self._focused:
            return False
        elif event.type == pygame.TEXTINPUT:
            consumed = self._on_text_input(event.text)
        elif event.type == pygame.TEXTEDITING:
            consumed = self._on_text_editing(event.text, getattr(event, "start", len(event.text)))
        elif event.type == pygame.KEYDOWN:
            consumed = self._on_key(event.key, event.mod)
        else:
            return False
        if consumed:
            self._changed()
        return consumed

    def update(self, dt: float) -> bool:
        """Advance the caret blink by ``dt`` seconds and keep the IME window at the caret;
        True if the caret appeared or went (the box needs drawing again)."""
        shown = self._focused and self._blink < BLINK_SECONDS
        self._blink = (self._blink + dt) % (2 * BLINK_SECONDS)
        # Keys of one frame arrive together; once a frame has passed, a key is the user's again.
        self._ime_just_ended = False
        if self._focused:
            self._place_ime_window()
        return shown != (self._focused and self._blink < BLINK_SECONDS)

    def draw(self, surface: pygame.Surface) -> None:
        """Draw the box onto ``surface``. Changes no state (everything was laid out before)."""
        lay, theme = self._layout, self.theme
        pygame.draw.rect(surface, theme.input_background, self.rect)
        if self._focused:
            pygame.draw.rect(surface, theme.accent, self.rect, width=1)
        height = self.font.get_height()
        if lay.selection_x:
            span = self._screen_span(*lay.selection_x)
            if span:
                surface.fill(theme.selection, (span[0], lay.text_y, span[1] - span[0], height))
        shown = lay.text or lay.placeholder
        if shown is not None:
            area = pygame.Rect(lay.scroll, 0, lay.text_area.width, shown.get_height())
            surface.blit(shown, (lay.text_area.x, lay.text_y), area)
        if lay.composition_x:
            self._draw_underline(surface, *lay.composition_x)
        if self._focused and self._blink < BLINK_SECONDS:
            caret = self.caret_rect()
            if lay.text_area.left <= caret.left < lay.text_area.right:
                surface.fill(theme.cursor, caret)
        if lay.counter is not None:
            x = self.rect.right - self.theme.padding - lay.counter.get_width()
            surface.blit(lay.counter, (x, lay.text_y))

    # ----------------------------------------------------------------- events

    def _on_text_input(self, text: str) -> bool:
        if self._composition:
            self._ime_just_ended = True
        self._composition = ""
        self._completer.reset()
        self._buffer.insert(text)
        return True

    def _on_text_editing(self, text: str, start: int) -> bool:
        if self._composition and not text:
            self._ime_just_ended = True  # cancelled, e.g. by Backspace or Esc in the IME
        self._composition = sanitize_input(text)
        self._composition_cursor = max(0, min(len(self._composition), start))
        return True

    def _on_key(self, key: int, mod: int) -> bool:
        if self._composition:
            return True  # the IME is using the keys to edit its composition
        if self._ime_just_ended and key in _IME_ENDING_KEYS:
            self._ime_just_ended = False
            return True  # the key that committed or cancelled the composition, not ours
        ctrl, shift = bool(mod & _COMMAND_MODS), bool(mod & pygame.KMOD_SHIFT)
        if key != pygame.K_TAB:
            self._completer.reset()
        if self._motion_key(key, ctrl, shift) or self._edit_key(key, ctrl):
            return True
        if key == pygame.K_ESCAPE:
            return self._escape()
        if ctrl and not mod & pygame.KMOD_ALT and self._shortcut(key):
            return True  # (Ctrl+Alt is AltGr on Windows: those keys type characters)
        # Character keys come back as TEXTINPUT; eat their KEYDOWN so the game does not act on
        # them. Keys without a character (F1, PageUp) and other Ctrl combinations go through.
        return key < _SCANCODE_MASK and not ctrl

    def _motion_key(self, key: int, ctrl: bool, shift: bool) -> bool:
        buf = self._buffer
        if key == pygame.K_LEFT:
            buf.move_left(shift, ctrl)
        elif key == pygame.K_RIGHT:
            buf.move_right(shift, ctrl)
        elif key == pygame.K_HOME:
            buf.home(shift)
        elif key == pygame.K_END:
            buf.end(shift)
        else:
            return False
        return True

    def _edit_key(self, key: int, ctrl: bool) -> bool:
        if key == pygame.K_BACKSPACE:
            self._buffer.backspace(ctrl)
        elif key == pygame.K_DELETE:
            self._buffer.delete(ctrl)
        elif key == pygame.K_UP:
            self._show_history(self._history.older(self._buffer.text))
        elif key == pygame.K_DOWN:
            self._show_history(self._history.newer())
        elif key == pygame.K_TAB:
            self._complete()
        elif key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            self._submit()
        else:
            return False
        return True

    def _shortcut(self, key: int) -> bool:
        buf = self._buffer
        if key == pygame.K_a:
            buf.select_all()
        elif key in (pygame.K_c, pygame.K_x):
            if buf.selected_text:
                self.clipboard.set_text(buf.selected_text)
                if key == pygame.K_x:
                    buf.delete_selection()
        elif key == pygame.K_v:
            buf.insert(self.clipboard.get_text())
        else:
            return False
        return True

    def _escape(self) -> bool:
        """Esc clears the line, keeping it (Up brings it back, as Discord keeps a draft); on
        an empty line it is not ours (the app may close the chat)."""
        text = self._buffer.text
        if not text:
            return False
        if text.strip():
            self._history.add(text)
        self.clear()
        return True

    def _submit(self) -> None:
        line = self._buffer.text
        self._buffer.clear()
        self._history.reset()
        if line.strip():
            self._history.add(line)
            # Called last, so on_submit may put new text in the box (e.g. a command's template).
            self.on_submit(line)

    def _show_history(self, line: str | None) -> None:
        if line is not None:
            self._buffer.set_text(line)

    def _complete(self) -> None:
        nicks = self.completions() if self.completions is not None else ()
        buf = self._buffer
        done = self._completer.complete(buf.text, buf.cursor, nicks, self.commands)
        if done is not None and len(done.text) <= buf.max_chars:
            buf.set_text(done.text)
            buf.move_to(done.cursor)

    def _on_mouse(self, event: pygame.event.Event) -> bool:
        if event.type == pygame.MOUSEBUTTONDOWN:
            return self._mouse_down(event.pos, event.button)
        if event.type == pygame.MOUSEMOTION:
            if not (self._dragging and event.buttons[0]):
                return False
            self._buffer.move_to(self._index_at(event.pos[0]), select=True)
            self._changed()
            return True
        was_dragging, self._dragging = self._dragging, False
        return was_dragging and event.button == pygame.BUTTON_LEFT

    def _mouse_down(self, pos: tuple[int, int], button: int) -> bool:
        if button in WHEEL_BUTTONS:  # scrolling is not choosing where the keys go
            return False
        if not self.rect.collidepoint(pos):
            if not self.keep_focus:
                self.focused = False  # a click elsewhere: keys belong to the game again
            return False
        self.focused = True
        if button == pygame.BUTTON_LEFT and not self._composition:
            extend = bool(_key_mods() & pygame.KMOD_SHIFT)  # Shift+click extends the selection
            self._buffer.move_to(self._index_at(pos[0]), select=extend)
            self._dragging = True
            self._changed()
        return True

    # ----------------------------------------------------------------- layout

    def _changed(self) -> None:
        """After any change: caret on (blink restarts) and a fresh layout."""
        self._blink = 0.0
        self._layout = self._compute_layout(self._layout.scroll)

    def _shown(self, text: str) -> str:
        return self.mask * len(text) if self.mask else text

    def _width(self, text: str) -> int:
        return self.font.size(text)[0] if text else 0

    def _index_at(self, x: int) -> int:
        """The character boundary nearest to screen x."""
        text = self._shown(self._buffer.text)
        return nearest_boundary(
            text, x - self._layout.text_area.x + self._layout.scroll, self._width
        )

    def _compute_layout(self, scroll: int) -> _Layout:
        buf, comp = self._buffer, self._composition
        cursor = buf.cursor
        display = self._shown(buf.text[:cursor] + comp + buf.text[cursor:])
        counter = self._render("counter", *self._counter())
        pad = self.theme.padding
        counter_room = counter.get_width() + pad if counter is not None else 0
        width = max(0, self.rect.width - 2 * pad - counter_room)
        area = pygame.Rect(self.rect.x + pad, self.rect.y, width, self.rect.height)
        text = self._render("text", display, self.theme.text)
        text_width = text.get_width() if text is not None else 0
        caret_index = cursor + (self._composition_cursor if comp else 0)
        # Typing happens at the end: the rendered width saves measuring the whole line again.
        caret_x = text_width if caret_index == len(display) else self._width(display[:caret_index])
        scroll = scroll_to_show(caret_x, text_width, area.width, scroll)
        return _Layout(
            text_area=area,
            text_y=self.rect.y + (self.rect.height - self.font.get_height()) // 2,
            scroll=scroll,
            caret_x=caret_x,
            selection_x=self._selection_x(display),
            composition_x=(
                (self._width(display[:cursor]), self._width(display[: cursor + len(comp)]))
                if comp
                else None
            ),
            text=text,
            placeholder=self._placeholder_surface(display),
            counter=counter,
        )

    def _selection_x(self, display: str) -> tuple[int, int] | None:
        sel = self._buffer.selection
        if sel is None:
            return None
        # Text after the cursor sits after the composition in the displayed line.
        shift = len(self._composition)
        cursor = self._buffer.cursor
        start, end = (i + shift if i > cursor else i for i in sel)
        return self._width(display[:start]), self._width(display[:end])

    def _counter(self) -> tuple[str, Color]:
        length, limit = len(self._buffer.text), self._buffer.max_chars
        if length <= limit * COUNTER_THRESHOLD:
            return "", self.theme.muted
        return f"{length}/{limit}", self.theme.error if length >= limit else self.theme.muted

    def _placeholder_surface(self, display: str) -> pygame.Surface | None:
        if display or self._focused or not self.placeholder:
            return None
        return self._render("placeholder", self.placeholder, self.theme.muted)

    def _render(self, role: str, text: str, color: Color) -> pygame.Surface | None:
        """Font.render, cached per role: unchanged text is never rendered twice in a row."""
        if not text:
            return None
        key = (text, color)
        cached = self._surfaces.get(role)
        if cached is None or cached[0] != key:
            cached = (key, self.font.render(text, True, color))
            self._surfaces[role] = cached
        return cached[1]

    def _screen_span(self, x0: int, x1: int) -> tuple[int, int] | None:
        """Text-surface span [x0, x1) as screen x, clipped to the text area; None if hidden."""
        lay = self._layout
        left = max(lay.text_area.left, lay.text_area.x + x0 - lay.scroll)
        right = min(lay.text_area.right, lay.text_area.x + x1 - lay.scroll)
        return (left, right) if right > left else None

    def _draw_underline(self, surface: pygame.Surface, x0: int, x1: int) -> None:
        span = self._screen_span(x0, x1)
        if span:
            y = self._layout.text_y + self.font.get_ascent() + 2
            pygame.draw.line(surface, self.theme.text, (span[0], y), (span[1] - 1, y))

    def _place_ime_window(self) -> None:
        """Tell SDL where the caret is so the IME candidate list opens next to it."""
        rect = self.caret_rect()
        if rect == self._ime_rect:
            return
        self._ime_rect = rect
        try:
            pygame.key.set_text_input_rect(rect)
        except pygame.error:
            pass  # no video system yet: nothing to place
