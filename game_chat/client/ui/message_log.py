"""The chat log: wrapped, coloured, scrollable lines, at a frame cost independent of history.

How it stays cheap (see shared/PERFORMANCE.md):

- ``append`` only cleans the peer text and stores it in a bounded deque (default 200,000);
  ``prepend`` puts older lines (a history page) above, while there is room.
  An entry is a plain tuple of strings and numbers; the LogLine itself is kept only for one's
  own lines, whose delivery can change. Such tuples are not tracked by the garbage collector:
  holding 200,000 LogLines instead makes every full collection walk them (~85 ms per 100,000
  lines measured here), a visible hitch.
- Wrapping is done on demand, once: the first time an entry is laid out (it scrolls into view)
  its row break positions are computed and kept, keyed by (wrap width, line version).
  Messages that scroll past unseen in a flood are never wrapped.
- A resize re-wraps nothing up front: entries whose key no longer matches are re-wrapped when
  they are next laid out, so resizing a 100,000-line log costs about one screenful of wrapping.
  The price is that no exact total height exists: the scroll position is kept as "which entry
  sits at the bottom, and how many of its rows are hidden below", not in pixels, and the
  scrollbar thumb is an estimate by entry count.
- Entries are rendered lazily, when first visible, into an LRU cache of opaque surfaces in
  the display's format (``cache_size`` messages; a row is a cached "HH:MM nick" prefix plus
  the text), and a frame blits only the visible ones, in one ``Surface.blits`` call.
- The visible layout is rebuilt in ``update`` when something changed (append, scroll, resize,
  a line's version); ``draw`` only blits it and changes no state.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import NamedTuple

import pygame

from ...protocol.names import mentions, nick_key
from ..model import LineKind, LogLine
from .clipboard import Clipboard
from .fonts import TextFont
from .line_text import compose_line, find_links, format_time
from .text_safety import MAX_DISPLAY_NICK, clean_display_text
from .theme import Color, Theme
from .wrap import chars_within, nearest_boundary, wrap_text

DEFAULT_MAX_LINES = 200_000
DEFAULT_CACHE_SIZE = 512
#: Rows scrolled per notch of the mouse wheel.
WHEEL_ROWS = 3
SCROLLBAR_WIDTH = 4
#: Two clicks on the same spot within this many seconds are a double click (select a word).
DOUBLE_CLICK = 0.4
#: How far (pixels) the mouse may move between press and release for it to be a click.
CLICK_SLOP = 4
#: Opacity (0-255) of the selection tint laid over selected text.
SELECTION_ALPHA = 120
# Short pieces (timestamps, nicks, ": ") repeat on every line: their renders are cached.
_PIECE_CACHE_CHARS = 32
_PIECE_CACHE_ENTRIES = 1024
_MEASURE_CACHE_CHARS = 48
_MEASURE_CACHE_ENTRIES = 16384

OwnNick = str | Callable[[], str | None] | None

# A place in the log: (entry seq, character offset in the entry's composed text).
_Spot = tuple[int, int]
# What a double click selects: a word (letters, digits, _ and inner ' or -), else one character.
_WORD = re.compile(r"\w+(?:['’-]\w+)*")


def copies_log(event: pygame.event.Event, input_selection: object) -> bool:
    """Whether a key event is a Ctrl+C meant for the log's selection: the input line's own
    selection, when it has one, is what Ctrl+C copies (as in Discord)."""
    return (
        event.type == pygame.KEYDOWN
        and event.key == pygame.K_c
        and bool(event.mod & pygame.KMOD_CTRL)
        and input_selection is None
    )


# --- the widget ---------------------------------------------------------------------------


# An entry: (kind, cleaned text, cleaned nick, ts, mentions me, LogLine or None, history).
# The LogLine is kept only for lines whose delivery can change (one's own, and lines shown
# pending); see the module docstring.
_Entry = tuple[str, str, str | None, float, bool, LogLine | None, bool]
_KIND, _TEXT, _NICK, _TS, _MENTION, _LINE, _HISTORY = range(7)


def _version(entry: _Entry) -> int:
    line = entry[_LINE]
    return 0 if line is None else line.version


# A rendered entry: its pieces as (surface, x, y, area) relative to the entry's top left;
# ``area`` trims a piece that kerning would push past the wrap width.
_Piece = tuple[pygame.Surface, int, int, pygame.Rect | None]
_Blit = tuple[pygame.Surface, tuple[int, int], pygame.Rect | None]


class _View(NamedTuple):
    blits: list[_Blit]
    bands: list[pygame.Rect]  # highlight background of mentions, full width
    versions: list[tuple[LogLine, int]]
    marker: tuple[pygame.Surface, pygame.Rect] | None
    thumb: pygame.Rect | None
    top_shown: bool  # the oldest line is in view, its first row included


class _Placed(NamedTuple):
    seq: int
    entry: _Entry
    rows: tuple[int, ...]
    shown: int  # rows shown from the top of the entry (the bottom one may be cut)
    y: int


class MessageLog:
    """Scrollable chat log. ``handle_event`` / ``update`` / ``draw``; ``draw`` changes nothing.

    Scrolling: mouse wheel over the log, PageUp/PageDown, Ctrl+Home/Ctrl+End. The view follows
    new lines only while it is at the bottom; scrolled up, it stays put and a "N new messages"
    marker appears at the bottom, which jumps down when clicked. Appending one's own line
    (``line.own``) jumps to the bottom too. Lines prepended (older history) never move the
    view; :attr:`at_top` tells when the user has scrolled up to the oldest line.
    """

    def __init__(
        self,
        rect: pygame.Rect | tuple[int, int, int, int],
        theme: Theme,
        font: TextFont,
        own_nick: OwnNick = None,
        *,
        max_lines: int = DEFAULT_MAX_LINES,
        cache_size: int = DEFAULT_CACHE_SIZE,
        on_link: Callable[[str], None] | None = None,
        clipboard: Clipboard | None = None,
    ) -> None:
        """``own_nick`` is the nick (or a callable returning it) whose mentions are highlighted.

        ``max_lines`` bounds the history; ``cache_size`` the number of rendered messages kept.
        ``on_link`` is called with the web address clicked in a line (None: links are only
        drawn). ``clipboard`` is where Ctrl+C puts the selected text (None: nowhere).
        """
        self.on_link = on_link
        self.clipboard = clipboard
        self.theme = theme
        self.font = font
        self.own_nick: OwnNick = own_nick
        self.rect = pygame.Rect(rect)
        self._wrap_width = self._wrap_width_for(self.rect)
        self._entries: deque[_Entry] = deque(maxlen=max_lines)
        self._next_seq = 0  # sequence number of the next appended entry
        self._pinned = True
        self._anchor = (0, 0)  # when not pinned: (entry seq at the bottom, its rows hidden below)
        self._unread = 0
        self._cache_size = cache_size
        # seq -> (wrap width, version, rows) and seq -> ((wrap width, version), pieces)
        self._wraps: dict[int, tuple[int, int, tuple[int, ...]]] = {}
        self._surfaces: OrderedDict[int, tuple[tuple[int, int], tuple[_Piece, ...]]] = OrderedDict()
        self._prefixes: dict[tuple[tuple[tuple[str, Color], ...], Color], pygame.Surface] = {}
        self._nicks: dict[str, str] = {}  # one string object per nick, not one per line
        self._pieces: dict[tuple[str, Color, Color], pygame.Surface] = {}
        self._widths: dict[str, int] = {}
        self._marker_surface: tuple[str, pygame.Surface] | None = None
        self._composing: dict[tuple[int, int], tuple[str, list[tuple[int, Color]]]] = {}
        self._linesize = max(1, font.get_linesize())
        self._indent = self._measure(format_time(0) + " ")
        self._view: _View | None = None
        self._dirty = True
        self._wants_older = False  # the user scrolled toward older lines (and not back down)
        # Selection: (anchor, focus) spots; the press that may become a click (its position and
        # the link under it); the last click, for double clicks.
        self._selection: tuple[_Spot, _Spot] | None = None
        self._dragging = False
        self._press: tuple[tuple[int, int], str | None] | None = None
        self._last_click: tuple[_Spot, float] | None = None

    # --- content ----------------------------------------------------------------------------

    def append(self, line: LogLine) -> None:
        """Add a line at the bottom. Peer text is cleaned here: it is only ever shown as text."""
        entry = self._make_entry(line, self._own_nick())
        if len(self._entries) == self._entries.maxlen:  # the oldest entry is about to go
            self._wraps.pop(self._first_seq, None)
            self._surfaces.pop(self._first_seq, None)
        self._entries.append(entry)
        self._next_seq += 1
        if line.own:
            self.scroll_to_bottom()
        elif not self._pinned:
            if line.kind in (LineKind.CHAT, LineKind.ACTION):  # joins and leaves are not news
                self._unread += 1
            if self._anchor[0] < self._first_seq:  # the anchor fell off the front
                self._set_anchor(*self._clamp_top(self._first_seq, 0))
        self._dirty = True

    def extend(self, lines: Iterable[LogLine]) -> None:
        """Append several lines (e.g. what the network thread queued since the last frame)."""
        for line in lines:
            self.append(line)

    def prepend(self, lines: Iterable[LogLine]) -> int:
        """Put older lines (oldest first) above the oldest one held, as many as there is room
        for (the ones nearest the current lines are kept). The view does not move. Returns
        how many were added."""
        entries = self._entries
        room = (entries.maxlen or 0) - len(entries)
        batch = list(lines)[-room:] if room > 0 else []
        own = self._own_nick()
        for line in reversed(batch):
            entries.appendleft(self._make_entry(line, own))
            seq = self._first_seq
            self._wraps.pop(seq, None)  # nothing cached may survive under a reused number
            self._surfaces.pop(seq, None)
        if batch:
            self._dirty = True
        return len(batch)

    def _make_entry(self, line: LogLine, own: str | None) -> _Entry:
        """What the log keeps of ``line``: peer text cleaned (it is only ever shown as text)."""
        text = clean_display_text(line.text)
        mention = line.mention or (
            not line.own and line.kind in (LineKind.CHAT, LineKind.ACTION) and mentions(text, own)
        )
        # Kept whole only when its look can change: one's own lines, and lines shown before
        # the server stored them (their delivery changes too).
        keep = line if line.own or line.delivery is not None else None
        return (line.kind, text, self._clean_nick(line.nick), line.ts, mention, keep, line.history)

    def forget_rendered(self) -> None:
        """Drop the rendered surfaces (e.g. of a log not shown): they are made again as
        needed."""
        self._surfaces.clear()
        self._prefixes.clear()
        self._pieces.clear()
        self._marker_surface = None
        self._view = None
        self._dirty = True

    def clear(self) -> None:
        """Forget every line."""
        self._entries.clear()
        self._wraps.clear()
        self._surfaces.clear()
        self.clear_selection()
        self.scroll_to_bottom()

    def line_changed(self, line: LogLine | None = None) -> None:
        """Tell the log that ``line`` (e.g. its delivery) changed, so it is drawn anew.

        Visible lines whose ``version`` changed are also noticed by ``update`` on its own.
        """
        self._dirty = True

    @property
    def line_count(self) -> int:
        """Lines held (at most ``max_lines``)."""
        return len(self._entries)

    @property
    def pinned(self) -> bool:
        """True while the view follows the newest line."""
        return self._pinned

    @property
    def at_top(self) -> bool:
        """True when the user scrolled toward older lines and the oldest line held is in full
        view (as of the last ``update``): time to fetch older ones."""
        return self._wants_older and self._view is not None and self._view.top_shown

    @property
    def unread(self) -> int:
        """Lines appended since the view was last at the bottom (0 while pinned)."""
        return self._unread

    @property
    def wrap_width(self) -> int:
        """Pixel width text is wrapped to."""
        return self._wrap_width

    def visible_lines(self) -> list[LogLine]:
        """Lines at least partly in view, bottom first, as shown (cleaned). Changes nothing.

        One's own lines are the LogLines appended; the others are rebuilt from the entries.
        """
        return [_as_line(placed.entry) for placed in self._place(memo=False)]

    def row_count(self, line: LogLine) -> int:
        """Rows ``line`` takes (or would take) in this log at its current width: the same
        cleaning, composition and wrap as the log's own (the overlay fades lines by rows)."""
        entry = self._make_entry(line, self._own_nick())
        text, _ = self._compose(entry)
        return len(wrap_text(text, self._measure, self._wrap_width, self._indent)) // 2

    # --- selection --------------------------------------------------------------------------

    @property
    def selection(self) -> tuple[_Spot, _Spot] | None:
        """The selected range as ((seq, offset), (seq, offset)), start first; None if empty.

        Offsets count characters of the text a line shows (``HH:MM nick: text``)."""
        if self._selection is None:
            return None
        start, end = sorted(self._selection)
        first = self._first_seq
        if end[0] < first:  # every selected line has fallen off the front
            return None
        start = max(start, (first, 0))
        return None if start == end else (start, end)

    def selected_text(self) -> str:
        """The selected text as shown (time, nick and text), one line per log line."""
        selection = self.selection
        if selection is None:
            return ""
        (seq0, off0), (seq1, off1) = selection
        out = []
        for seq in range(seq0, seq1 + 1):
            text, _ = self._compose(self._entry(seq))
            a = off0 if seq == seq0 else 0
            b = off1 if seq == seq1 else len(text)
            out.append(text[a:b])
        return "\n".join(out)

    def copy_selection(self) -> bool:
        """Put the selected text on the clipboard (Ctrl+C); False if there was nothing to copy."""
        text = self.selected_text()
        if not text or self.clipboard is None:
            return False
        self.clipboard.set_text(text)
        return True

    def select(self, start: _Spot, end: _Spot) -> None:
        """Select from ``start`` to ``end`` (as :attr:`selection` gives them)."""
        self._selection = (start, end)
        self._dirty = True

    def clear_selection(self) -> None:
        """Select nothing."""
        if self._selection is not None:
            self._selection = None
            self._dirty = True
        self._dragging = False

    # --- scrolling --------------------------------------------------------------------------

    def scroll_by(self, rows: int) -> None:
        """Scroll ``rows`` wrapped rows toward older lines (negative: toward newer)."""
        if rows > 0:
            if self._entries:
                seq, hidden = self._bottom()
                self._set_anchor(*self._clamp_top(*self._moved_up(seq, hidden, rows)))
            self._wants_older = True  # (after: a log shorter than the view stays pinned)
        elif rows < 0:
            self._wants_older = False
            if not self._pinned:
                self._set_anchor(*self._moved_down(*self._anchor, -rows))

    def scroll_to_bottom(self) -> None:
        """Follow the newest line again."""
        self._pinned = True
        self._wants_older = False
        self._unread = 0
        self._dirty = True

    def scroll_to_top(self) -> None:
        """Show the oldest line at the top."""
        if self._entries:
            need = self._view_rows()
            seq, last = self._first_seq, self._next_seq - 1
            have = self._row_count(seq)
            while have < need and seq < last:
                seq += 1
                have += self._row_count(seq)
            self._set_anchor(seq, max(0, have - need))
        self._wants_older = True

    # --- events, update, draw ---------------------------------------------------------------

    def handle_event(self, event: pygame.event.Event) -> bool:
        """Scroll on wheel/keys; select with the mouse (drag, double click a word); open a link
        on a click; jump down on a click on the marker. True if consumed.

        The log never takes the keys: typing still goes to the input line (Ctrl+C is the
        screen's to route, see :meth:`selected_text`)."""
        kind = event.type
        if kind == pygame.MOUSEWHEEL:
            if event.y and self._hovered():
                self.scroll_by(int(event.y) * WHEEL_ROWS)
                return True
            return False
        if kind == pygame.KEYDOWN:
            return self._handle_key(event.key, event.mod)
        if kind == pygame.MOUSEBUTTONDOWN and event.button == 1:
            return self._mouse_down(event.pos)
        if kind == pygame.MOUSEMOTION and self._dragging:
            spot = self._spot_at(event.pos)
            if spot is not None and self._selection is not None:
                self.select(self._selection[0], spot)
            return True
        if kind == pygame.MOUSEBUTTONUP and event.button == 1:
            return self._mouse_up(event.pos)
        return False

    def link_at(self, pos: tuple[int, int]) -> str | None:
        """The web address drawn at a screen position, if any."""
        spot = self._spot_at(pos, exact=True) if self.rect.collidepoint(pos) else None
        if spot is None:
            return None
        seq, index = spot
        text, _ = self._compose(self._entry(seq))
        return next((a for s, e, a in find_links(text) if s <= index < e), None)

    def _mouse_down(self, pos: tuple[int, int]) -> bool:
        if not self.rect.collidepoint(pos):
            return False
        marker = self._marker_rect()
        if marker is not None and marker.collidepoint(pos):
            self.scroll_to_bottom()
            return True
        spot = self._spot_at(pos)
        if spot is None:  # an empty log
            return True
        now = time.monotonic()
        last, self._last_click = self._last_click, (spot, now)
        if last is not None and last[0] == spot and now - last[1] <= DOUBLE_CLICK:
            self._last_click = None
            self._select_word(spot)
            self._press = None
            return True
        self._press = (pos, self.link_at(pos))
        self._selection = (spot, spot)
        self._dragging = True
        self._dirty = True
        return True

    def _mouse_up(self, pos: tuple[int, int]) -> bool:
        if not self._dragging:
            return False
        self._dragging = False
        press, self._press = self._press, None
        if self.selection is not None:
            return True
        self._selection = None  # a click, not a drag: nothing stays selected
        if press is None or press[1] is None or self.on_link is None:
            return True
        (x, y), address = press
        if max(abs(pos[0] - x), abs(pos[1] - y)) <= CLICK_SLOP:
            self.on_link(address)
        return True

    def _select_word(self, spot: _Spot) -> None:
        """Select the link, else the word, else the character at ``spot``."""
        seq, index = spot
        text, _ = self._compose(self._entry(seq))
        for start, end, _address in find_links(text):
            if start <= index < end:
                self.select((seq, start), (seq, end))
                return
        for match in _WORD.finditer(text):
            if match.start() <= index < match.end():
                self.select((seq, match.start()), (seq, match.end()))
                return
        if index < len(text) and not text[index].isspace():
            self.select((seq, index), (seq, index + 1))

    def _spot_at(self, pos: tuple[int, int], exact: bool = False) -> _Spot | None:
        """The place in the text nearest a screen position (between the two characters
        nearest it). Above the view: the top line's start; below: the bottom line's end.
        ``exact``: the character under the position (None off the text)."""
        placed = self._place(False)
        if not placed:
            return None
        left = self.rect.left + self.theme.padding
        top = placed[-1]
        if pos[1] < top.y:
            return None if exact else (top.seq, 0)
        for seq, entry, rows, shown, y in placed:
            row = (pos[1] - y) // self._linesize
            if not (y <= pos[1] and row < shown):
                continue
            text, _ = self._compose(entry)
            start, end = rows[2 * row], rows[2 * row + 1]
            x = pos[0] - left - (0 if row == 0 else self._indent)
            if exact:
                if x < 0 or x >= self._measure(text[start:end]):
                    return None
                return seq, start + chars_within(text[start:end], x, self._measure)
            return seq, start + nearest_boundary(text[start:end], x, self._measure)
        bottom = placed[0]
        return None if exact else (bottom.seq, len(self._compose(bottom.entry)[0]))

    def update(self, dt: float = 0.0) -> None:
        """Lay out the visible lines if anything changed since the last frame."""
        view = self._view
        if view is not None and not self._dirty:
            self._dirty = any(line.version != v for line, v in view.versions)
        if view is None or self._dirty:
            try:
                self._view = self._build_view(memo=True)
            finally:
                self._composing.clear()
            self._dirty = False

    def draw(self, surface: pygame.Surface) -> None:
        """Blit the visible lines. Changes no state (without ``update`` first, it lays out a
        throwaway view of the current state, uncached)."""
        view = self._view if self._view is not None and not self._dirty else None
        if view is None:
            view = self._build_view(memo=False)
        clip = surface.get_clip()
        surface.set_clip(self.rect.clip(clip))
        surface.fill(self.theme.background, self.rect)
        for band in view.bands:
            surface.fill(self.theme.highlight, band)
        surface.blits(view.blits, doreturn=False)
        if view.thumb is not None:
            surface.fill(self.theme.muted, view.thumb)
        if view.marker is not None:
            text, rect = view.marker
            pygame.draw.rect(surface, self.theme.accent, rect, border_radius=rect.height // 2)
            surface.blit(text, text.get_rect(center=rect.center))
        surface.set_clip(clip)

    def set_rect(self, rect: pygame.Rect | tuple[int, int, int, int]) -> None:
        """Move or resize the log. Lines are re-wrapped lazily, as they come into view."""
        rect = pygame.Rect(rect)
        if rect == self.rect:
            return
        if rect.width != self.rect.width:
            # Both are keyed by width anyway: free the memory now.
            self._wraps.clear()
            self._surfaces.clear()
        self.rect = rect
        self._wrap_width = self._wrap_width_for(rect)
        if not self._pinned and self._entries:
            seq = max(self._anchor[0], self._first_seq)
            hidden = min(self._anchor[1], self._row_count(seq) - 1)
            self._set_anchor(*self._clamp_top(seq, hidden))
        self._dirty = True

    # --- scrolling internals ----------------------------------------------------------------

    def _wrap_width_for(self, rect: pygame.Rect) -> int:
        return max(1, rect.width - 2 * self.theme.padding - SCROLLBAR_WIDTH)

    @property
    def _first_seq(self) -> int:
        return self._next_seq - len(self._entries)

    def _entry(self, seq: int) -> _Entry:
        return self._entries[seq - self._first_seq]

    def _view_rows(self) -> int:
        return max(1, (self.rect.height - 2 * self.theme.padding) // self._linesize)

    def _row_count(self, seq: int, memo: bool = True) -> int:
        return len(self._rows(seq, self._entry(seq), memo)) // 2

    def _bottom(self) -> tuple[int, int]:
        """(seq, hidden rows) of the entry at the bottom of the view, clamped to what exists."""
        if self._pinned:
            return self._next_seq - 1, 0
        seq, hidden = self._anchor
        if seq < self._first_seq:
            return self._first_seq, 0
        return seq, hidden

    def _moved_up(self, seq: int, hidden: int, rows: int) -> tuple[int, int]:
        hidden += rows
        while hidden >= (count := self._row_count(seq)):
            if seq <= self._first_seq:
                return seq, count - 1
            hidden -= count
            seq -= 1
        return seq, hidden

    def _moved_down(self, seq: int, hidden: int, rows: int) -> tuple[int, int]:
        hidden -= rows
        last = self._next_seq - 1
        while hidden < 0:
            if seq >= last:
                return last, 0
            seq += 1
            hidden += self._row_count(seq)
        return seq, hidden

    def _clamp_top(self, seq: int, hidden: int) -> tuple[int, int]:
        """Move the bottom down if the view would otherwise show space above the oldest line."""
        need = self._view_rows()
        have = self._row_count(seq) - hidden
        above = seq
        while have < need and above > self._first_seq:
            above -= 1
            have += self._row_count(above)
        if have >= need:
            return seq, hidden
        return self._moved_down(seq, hidden, need - have)

    def _set_anchor(self, seq: int, hidden: int) -> None:
        if seq >= self._next_seq - 1 and hidden <= 0:
            self.scroll_to_bottom()
            return
        self._pinned = False
        self._anchor = (seq, hidden)
        self._dirty = True

    def _handle_key(self, key: int, mod: int) -> bool:
        page = max(1, self._view_rows() - 1)
        if key == pygame.K_c and mod & pygame.KMOD_CTRL:
            return self.copy_selection()
        if key == pygame.K_PAGEUP:
            self.scroll_by(page)
        elif key == pygame.K_PAGEDOWN:
            self.scroll_by(-page)
        elif key == pygame.K_HOME and mod & pygame.KMOD_CTRL:
            self.scroll_to_top()
        elif key == pygame.K_END and mod & pygame.KMOD_CTRL:
            self.scroll_to_bottom()
        else:
            return False
        return True

    def _hovered(self) -> bool:
        try:
            return self.rect.collidepoint(pygame.mouse.get_pos())
        except pygame.error:  # no video system (tests without a display): accept the wheel
            return True

    # --- layout -----------------------------------------------------------------------------

    def _place(self, memo: bool) -> list[_Placed]:
        """The entries in view, bottom first, with how many rows each shows and where."""
        placed: list[_Placed] = []
        if not self._entries:
            return placed
        seq, hidden = self._bottom()
        top = self.rect.top + self.theme.padding
        y = self.rect.bottom - self.theme.padding
        # This loop runs for every visible entry on every changed frame: locals, no calls
        # when the wrap is known.
        entries, first, wraps = self._entries, self._first_seq, self._wraps
        width, linesize = self._wrap_width, self._linesize
        while seq >= first and y > top:
            entry = entries[seq - first]
            known = wraps.get(seq)
            if known is not None and known[0] == width and known[1] == _version(entry):
                rows = known[2]
            else:
                rows = self._rows(seq, entry, memo)
            count = len(rows) >> 1
            shown = count - min(hidden, count - 1)
            y -= shown * linesize
            placed.append(_Placed(seq, entry, rows, shown, y))
            seq, hidden = seq - 1, 0
        return placed

    def _build_view(self, memo: bool) -> _View:
        blits: list[_Blit] = []
        bands: list[pygame.Rect] = []
        versions: list[tuple[LogLine, int]] = []
        left = self.rect.left + self.theme.padding
        placed = self._place(memo)
        top = placed[-1] if placed else None
        top_shown = top is None or (
            top.seq == self._first_seq and top.y >= self.rect.top + self.theme.padding
        )
        for seq, entry, rows, shown, y in placed:
            height = shown * self._linesize
            for surface, dx, dy, area in self._rendered(seq, entry, rows, memo):
                if dy < height:  # rows hidden below the bottom are not drawn
                    blits.append((surface, (left + dx, y + dy), area))
            if entry[_MENTION]:
                bands.append(pygame.Rect(self.rect.left, y, self.rect.width, height))
            line = entry[_LINE]
            if line is not None:
                versions.append((line, line.version))
        blits += self._selection_tints(placed, memo)
        return _View(blits, bands, versions, self._marker(memo), self._thumb(), top_shown)

    def _selection_tints(self, placed: list[_Placed], memo: bool) -> list[_Blit]:
        """Translucent patches over the selected part of each visible row (the rows are
        opaque renders, so the selection is laid over them rather than under)."""
        selection = self.selection
        if selection is None:
            return []
        (seq0, off0), (seq1, off1) = selection
        measure = self._measure if memo else self._peek_measure
        left = self.rect.left + self.theme.padding
        tints: list[_Blit] = []
        for seq, entry, rows, shown, y in placed:
            if not seq0 <= seq <= seq1:
                continue
            text, _ = self._composed(seq, entry, memo)
            a = off0 if seq == seq0 else 0
            b = off1 if seq == seq1 else len(text)
            for row in range(shown):
                start, end = rows[2 * row], rows[2 * row + 1]
                lo, hi = max(a, start), min(b, end)
                if hi < lo or (hi == lo and b <= end):  # nothing of this row (or its end)
                    continue
                x = left + (0 if row == 0 else self._indent)
                x0 = x + measure(text[start:lo]) if lo > start else x
                x1 = x + measure(text[start:hi]) if hi > start else x
                if b > end:  # the selection goes on past this row: show that it does
                    x1 += max(2, self._linesize // 4)
                width = min(x1, left + self._wrap_width) - x0
                if width > 0:
                    tints.append((self._tint(width), (x0, y + row * self._linesize), None))
        return tints

    def _tint(self, width: int) -> pygame.Surface:
        surface = pygame.Surface((width, self._linesize))
        surface.fill(self.theme.selection)
        surface.set_alpha(SELECTION_ALPHA)
        return surface

    def _thumb(self) -> pygame.Rect | None:
        # Entry count stands in for the total height, which lazy wrapping never computes.
        if self._pinned or not self._entries:
            return None
        total = len(self._entries)
        height = max(12, round(self.rect.height * min(1.0, self._view_rows() / total)))
        fraction = (self._bottom()[0] - self._first_seq) / max(1, total - 1)
        y = self.rect.top + round((self.rect.height - height) * fraction)
        return pygame.Rect(self.rect.right - SCROLLBAR_WIDTH - 1, y, SCROLLBAR_WIDTH, height)

    def _marker_text(self) -> str | None:
        if self._pinned or not self._unread:
            return None
        plural = "" if self._unread == 1 else "s"
        return f"{self._unread} new message{plural} ↓"

    def _marker_rect(self) -> pygame.Rect | None:
        text = self._marker_text()
        if text is None:
            return None
        width, height = self.font.size(text)
        pad = self.theme.padding
        rect = pygame.Rect(0, 0, width + 4 * pad, height + pad)
        rect.midbottom = (self.rect.centerx, self.rect.bottom - pad)
        return rect

    def _marker(self, memo: bool) -> tuple[pygame.Surface, pygame.Rect] | None:
        text = self._marker_text()
        rect = self._marker_rect()
        if text is None or rect is None:
            return None
        if self._marker_surface is not None and self._marker_surface[0] == text:
            return self._marker_surface[1], rect
        surface = self.font.render(text, True, self.theme.background, self.theme.accent)
        if memo:
            self._marker_surface = (text, surface)
        return surface, rect

    # --- wrapping and rendering -------------------------------------------------------------

    def _peek_measure(self, text: str) -> int:
        # For draw's throwaway layouts: read the cache, never fill it.
        width = self._widths.get(text)
        return self.font.size(text)[0] if width is None else width

    def _measure(self, text: str) -> int:
        width = self._widths.get(text)
        if width is None:
            width = self.font.size(text)[0]
            if len(text) <= _MEASURE_CACHE_CHARS:
                if len(self._widths) >= _MEASURE_CACHE_ENTRIES:
                    self._widths.clear()
                self._widths[text] = width
        return width

    def _rows(self, seq: int, entry: _Entry, memo: bool) -> tuple[int, ...]:
        version = _version(entry)
        known = self._wraps.get(seq)
        if known is not None and known[0] == self._wrap_width and known[1] == version:
            return known[2]
        text, _ = self._composed(seq, entry, memo)
        measure = self._measure if memo else self._peek_measure
        rows = wrap_text(text, measure, self._wrap_width, self._indent)
        if memo:
            self._wraps[seq] = (self._wrap_width, version, rows)
        return rows

    def _clean_nick(self, nick: str | None) -> str | None:
        if nick is None:
            return None
        nick = clean_display_text(nick, MAX_DISPLAY_NICK)
        shared = self._nicks.get(nick)
        if shared is None:
            if len(self._nicks) >= 4096:
                self._nicks.clear()
            shared = self._nicks[nick] = nick
        return shared

    def _own_nick(self) -> str | None:
        nick = self.own_nick
        return nick() if callable(nick) else nick

    def _composed(self, seq: int, entry: _Entry, memo: bool) -> tuple[str, list[tuple[int, Color]]]:
        # A new entry is composed to be wrapped, then again to be rendered in the same layout
        # pass: the pass keeps what it composed (and forgets it at its end).
        key = (seq, _version(entry))
        composed = self._composing.get(key)
        if composed is None:
            composed = self._compose(entry)
            if memo:
                self._composing[key] = composed
        return composed

    def _compose(self, entry: _Entry) -> tuple[str, list[tuple[int, Color]]]:
        kind, text, nick, ts, _, line, history = entry
        delivery = None if line is None else line.delivery
        me = self._own_nick()
        own = nick is not None and me is not None and nick_key(nick) == nick_key(me)
        return compose_line(kind, text, nick, ts, delivery, self.theme, history, own)

    def _rendered(
        self, seq: int, entry: _Entry, rows: tuple[int, ...], memo: bool
    ) -> tuple[_Piece, ...]:
        key = (self._wrap_width, _version(entry))
        hit = self._surfaces.get(seq)
        if hit is not None and hit[0] == key:
            if memo:
                self._surfaces.move_to_end(seq)
            return hit[1]
        pieces = self._render(seq, entry, rows, memo)
        if memo:
            self._surfaces[seq] = (key, pieces)
            self._surfaces.move_to_end(seq)
            # Never evict what one screen shows, whatever cache_size says.
            while len(self._surfaces) > max(self._cache_size, 2 * self._view_rows()):
                self._surfaces.popitem(last=False)
        return pieces

    def _render(
        self, seq: int, entry: _Entry, rows: tuple[int, ...], memo: bool
    ) -> tuple[_Piece, ...]:
        """The entry's rows as opaque pieces, blitted as they are (no composite surface).

        A row is usually two pieces: the shared "HH:MM nick" prefix, cached across lines, and
        the text as SDL_ttf renders it, converted to the display's format (an 8-bit surface
        blits at half the speed). Composing them into one surface per message would cost a
        surface, a fill and the blits for every line that arrives.
        """
        text, spans = self._composed(seq, entry, memo)
        background = self.theme.highlight if entry[_MENTION] else self.theme.background
        out: list[_Piece] = []
        for row in range(len(rows) // 2):
            x = 0 if row == 0 else self._indent
            y = row * self._linesize
            pieces = list(_pieces(text, spans, rows[2 * row], rows[2 * row + 1]))
            if row == 0 and len(pieces) > 1:
                head = tuple(pieces[:-1])
                if all(len(piece) <= _PIECE_CACHE_CHARS for piece, _ in head):
                    prefix = self._prefix(head, background, memo)
                    out.append((prefix, x, y, None))
                    x += prefix.get_width()
                    pieces = pieces[-1:]
            for piece, color in pieces:
                rendered = _display_format(self._render_piece(piece, color, background, memo))
                width = rendered.get_width()
                room = self._wrap_width - x
                area = None if width <= room else pygame.Rect(0, 0, max(0, room), self._linesize)
                out.append((rendered, x, y, area))
                x += width
        return tuple(out)

    def _prefix(
        self, pieces: tuple[tuple[str, Color], ...], background: Color, memo: bool
    ) -> pygame.Surface:
        key = (pieces, background)
        surface = self._prefixes.get(key)
        if surface is not None:
            return surface
        rendered = [self._render_piece(text, color, background, memo) for text, color in pieces]
        surface = pygame.Surface((sum(r.get_width() for r in rendered), self._linesize))
        surface.fill(background)
        x = 0
        for piece in rendered:
            surface.blit(piece, (x, 0))
            x += piece.get_width()
        if memo:
            if len(self._prefixes) >= _PIECE_CACHE_ENTRIES:
                self._prefixes.clear()
            self._prefixes[key] = surface
        return surface

    def _render_piece(
        self, text: str, color: Color, background: Color, memo: bool
    ) -> pygame.Surface:
        if len(text) > _PIECE_CACHE_CHARS:
            return self.font.render(text, True, color, background)
        key = (text, color, background)
        surface = self._pieces.get(key)
        if surface is None and not memo:
            return self.font.render(text, True, color, background)
        if surface is None:
            if len(self._pieces) >= _PIECE_CACHE_ENTRIES:
                self._pieces.clear()
            surface = self._pieces[key] = self.font.render(text, True, color, background)
        return surface


def _pieces(
    text: str, spans: list[tuple[int, Color]], start: int, end: int
) -> Iterable[tuple[str, Color]]:
    """The same-coloured pieces of ``text[start:end]``."""
    begin = 0
    for span_end, color in spans:
        a, b = max(start, begin), min(end, span_end)
        if a < b:
            yield text[a:b], color
        begin = span_end
        if begin >= end:
            break


def _display_format(surface: pygame.Surface) -> pygame.Surface:
    """``surface`` in the display's pixel format when there is a display (fastest to blit)."""
    if pygame.display.get_surface() is None or surface.get_bitsize() >= 24:
        return surface
    return surface.convert()


def _as_line(entry: _Entry) -> LogLine:
    kind, text, nick, ts, mention, line, history = entry
    if line is not None:
        return line
    return LogLine(kind, text, nick=nick, ts=ts, mention=mention, history=history)
