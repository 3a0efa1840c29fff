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

import colorsys
import functools
import re
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import NamedTuple

import pygame

from ...protocol.names import mentions, nick_key
from ..model import Delivery, LineKind, LogLine
from .fonts import TextFont
from .text_safety import MAX_DISPLAY_NICK, clean_display_text
from .theme import Color, Theme

DEFAULT_MAX_LINES = 200_000
DEFAULT_CACHE_SIZE = 512
#: Rows scrolled per notch of the mouse wheel.
WHEEL_ROWS = 3
SCROLLBAR_WIDTH = 4
PENDING_MARK = " …"
FAILED_MARK = " (not sent)"

# Rows whose summed word widths come this close to the limit are measured whole.
_KERNING_SLACK = 3
# Short pieces (timestamps, nicks, ": ") repeat on every line: their renders are cached.
_PIECE_CACHE_CHARS = 32
_PIECE_CACHE_ENTRIES = 1024
_MEASURE_CACHE_CHARS = 48
_MEASURE_CACHE_ENTRIES = 16384

OwnNick = str | Callable[[], str | None] | None


# --- pure helpers -------------------------------------------------------------------------


def wrap_text(
    text: str, measure: Callable[[str], int], width: int, indent: int = 0
) -> tuple[int, ...]:
    """Break ``text`` into rows no wider than ``width`` pixels; words wider than a row are cut.

    Rows after the first are ``indent`` pixels narrower (a hanging indent). Returns the rows'
    ``(start, end)`` character offsets flattened: ``(s0, e0, s1, e1, ...)``; the spaces at a
    break belong to no row. ``measure(s)`` is the pixel width of ``s``.
    """
    rows, widths = _greedy_wrap(text, measure, width, indent, exact=False)
    # Word widths are summed, which can be off by a pixel or two of kerning at the spaces: a
    # row that close to the limit is measured whole, and in the rare case it overflows, the
    # text is wrapped again measuring whole rows.
    for row, summed in enumerate(widths):
        limit = max(1, width if row == 0 else width - indent)
        start, end = rows[2 * row], rows[2 * row + 1]
        if summed > limit - _KERNING_SLACK and end - start > 1 and measure(text[start:end]) > limit:
            return _greedy_wrap(text, measure, width, indent, exact=True)[0]
    return rows


def _greedy_wrap(
    text: str, measure: Callable[[str], int], width: int, indent: int, exact: bool
) -> tuple[tuple[int, ...], list[int]]:
    """Greedy wrap at spaces; returns the flattened rows and each row's (summed) width."""
    avail = max(1, width)
    rest = max(1, width - indent)
    rows: list[int] = []
    widths: list[int] = []
    start = end = x = 0
    empty = True
    e = -1
    # Splitting at " " (what the cleaned text breaks at) is much cheaper than a regex; an
    # empty word is a second space in a row. No-break spaces stay inside their word.
    for word in text.split(" "):
        s = e + 1
        e = s + len(word)
        if not word:
            continue
        if not empty:
            # The gap and the word are measured together, so the space's kerning counts.
            w = measure(text[start:e]) if exact else x + measure(text[end:e])
            if w <= avail:
                end, x = e, w
                continue
            rows += (start, end)
            widths.append(x)
            avail, empty = rest, True
        w = measure(word)
        if w <= avail:
            start, end, x, empty = s, e, w, False
            continue
        # A word wider than a whole row: cut it between characters, filling rows.
        pos = s
        while True:
            cut = _fit(text, pos, e, avail, measure)
            if cut >= e:
                start, end, x, empty = pos, e, measure(text[pos:e]), False
                break
            rows += (pos, cut)
            widths.append(avail)  # measured exactly by _fit: never re-checked
            pos, avail = cut, rest
    if not empty:
        rows += (start, end)
        widths.append(x)
    if not rows:
        return (0, 0), [0]
    return tuple(rows), widths


def _fit(text: str, pos: int, end: int, avail: int, measure: Callable[[str], int]) -> int:
    """Largest ``cut`` in ``(pos, end]`` with ``text[pos:cut]`` within ``avail`` (>= pos + 1)."""
    lo, hi = pos + 1, end
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[pos:mid]) <= avail:
            lo = mid
        else:
            hi = mid - 1
    return lo


def format_time(ts: float) -> str:
    """``HH:MM`` in local time."""
    return _format_minute(int(ts // 60))


@functools.lru_cache(maxsize=256)
def _format_minute(minute: int) -> str:
    # Lines arrive in time order: a small cache by minute saves a localtime per line.
    return time.strftime("%H:%M", time.localtime(minute * 60))


def _luminance(color: Color) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = color[:3]
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: Color, b: Color) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def mix(a: Color, b: Color, t: float) -> Color:
    """``a`` moved a fraction ``t`` of the way to ``b``."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def readable(color: Color, background: Color, minimum: float = 3.0) -> Color:
    """``color``, lightened or darkened (away from ``background``) until it can be read."""
    towards: Color = (255, 255, 255) if _luminance(background) < 0.5 else (0, 0, 0)
    step = 0
    while contrast(color, background) < minimum and step < 10:
        color = mix(color, towards, 0.2)
        step += 1
    return color


@functools.lru_cache(maxsize=2048)
def nick_color(nick: str, theme: Theme, own: bool = False) -> Color:
    """A stable colour for ``nick`` (same for every spelling of the same nick), readable on
    ``theme.background``: from ``theme.nick_colors`` or, if that is empty, a hue of the hash;
    ``own`` (your nick): ``theme.own_nick``, which no other nick gets."""
    if own:
        return readable(theme.own_nick, theme.background)
    digest = zlib.crc32(nick_key(nick).encode("utf-8", "replace"))
    if theme.nick_colors:
        color = theme.nick_colors[digest % len(theme.nick_colors)]
    else:
        light = 0.7 if _luminance(theme.background) < 0.5 else 0.35
        r, g, b = colorsys.hls_to_rgb((digest % 360) / 360, light, 0.65)
        color = (round(r * 255), round(g * 255), round(b * 255))
    return readable(color, theme.background)


#: Web addresses in a line: drawn as links, opened in the browser on a click (http and https
#: only; trailing punctuation is the sentence's, not the address's).
URL = re.compile(r"https?://[^\s<>\"']+")
_URL_TRAILING = ".,;:!?)]}'\""


def find_links(text: str) -> list[tuple[int, int, str]]:
    """(start, end, address) of every web address in ``text``."""
    found = []
    for match in URL.finditer(text):
        address = match.group().rstrip(_URL_TRAILING)
        if len(address) > len("https://"):
            found.append((match.start(), match.start() + len(address), address))
    return found


def compose_line(
    kind: str,
    text: str,
    nick: str | None,
    ts: float,
    delivery: str | None,
    theme: Theme,
    history: bool = False,
    own: bool = False,
) -> tuple[str, list[tuple[int, Color]]]:
    """The text a log line shows and its colours as ``(end offset, colour)`` spans.

    ``HH:MM nick: text``, ``HH:MM * nick text`` for actions, ``HH:MM text`` for system and
    error lines (muted, error colour) and notices (accent colour); one's own pending lines are
    dimmed and end in "…", failed ones in "(not sent)"; ``history`` lines (replayed by the
    server) are dimmed, their nick too.
    """
    dim = delivery == Delivery.PENDING or history
    body = mix(theme.text, theme.background, 0.45) if dim else theme.text
    parts: list[tuple[str, Color]] = [(format_time(ts) + " ", theme.muted)]
    if kind == LineKind.CHAT:
        if nick:
            parts += [(nick, _nick_shown(nick, theme, history, own)), (": ", body)]
        parts += _with_links(text, body, theme)
    elif kind == LineKind.ACTION:
        nick = nick or "?"
        parts += [("* ", body), (nick, _nick_shown(nick, theme, history, own))]
        parts += _with_links(" " + text, body, theme)
    elif kind == LineKind.ERROR:
        parts.append((text, theme.error))
    elif kind == LineKind.NOTICE:
        parts.append((text, theme.accent))
    else:
        parts.append((text, theme.muted))
    if delivery == Delivery.PENDING:
        parts.append((PENDING_MARK, theme.muted))
    elif delivery == Delivery.FAILED:
        parts.append((FAILED_MARK, theme.error))
    spans: list[tuple[int, Color]] = []
    end = 0
    for piece, color in parts:
        end += len(piece)
        if spans and spans[-1][1] == color:  # one render call for ": " and the text
            spans[-1] = (end, color)
        else:
            spans.append((end, color))
    return "".join(piece for piece, _ in parts), spans


def _with_links(text: str, color: Color, theme: Theme) -> list[tuple[str, Color]]:
    """``text`` as (piece, colour) parts, its web addresses in the link colour."""
    parts: list[tuple[str, Color]] = []
    at = 0
    for start, end, _address in find_links(text):
        parts += [(text[at:start], color), (text[start:end], theme.accent)]
        at = end
    parts.append((text[at:], color))
    return [part for part in parts if part[0]]


def _nick_shown(nick: str, theme: Theme, history: bool, own: bool = False) -> Color:
    color = nick_color(nick, theme, own)
    return mix(color, theme.background, 0.35) if history else color


# --- the widget ---------------------------------------------------------------------------


# An entry: (kind, cleaned text, cleaned nick, ts, mentions me, LogLine or None, history).
# The LogLine is kept for one's own lines only (their delivery changes); see the module
# docstring.
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
    ) -> None:
        """``own_nick`` is the nick (or a callable returning it) whose mentions are highlighted.

        ``max_lines`` bounds the history; ``cache_size`` the number of rendered messages kept.
        ``on_link`` is called with the web address clicked in a line (None: links are only
        drawn).
        """
        self.on_link = on_link
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

    # --- content ----------------------------------------------------------------------------

    def append(self, line: LogLine) -> None:
        """Add a line at the bottom. Peer text is cleaned here: it is only ever shown as text."""
        text = clean_display_text(line.text)
        nick = self._clean_nick(line.nick)
        mention = line.mention or (
            not line.own
            and line.kind in (LineKind.CHAT, LineKind.ACTION)
            and mentions(text, self._own_nick())
        )
        if len(self._entries) == self._entries.maxlen:  # the oldest entry is about to go
            self._wraps.pop(self._first_seq, None)
            self._surfaces.pop(self._first_seq, None)
        keep = line if line.own else None
        self._entries.append((line.kind, text, nick, line.ts, mention, keep, line.history))
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
            text = clean_display_text(line.text)
            mention = line.mention or (
                not line.own
                and line.kind in (LineKind.CHAT, LineKind.ACTION)
                and mentions(text, own)
            )
            keep = line if line.own else None
            nick = self._clean_nick(line.nick)
            entries.appendleft((line.kind, text, nick, line.ts, mention, keep, line.history))
            seq = self._first_seq
            self._wraps.pop(seq, None)  # nothing cached may survive under a reused number
            self._surfaces.pop(seq, None)
        if batch:
            self._dirty = True
        return len(batch)

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
        """Scroll on wheel/keys, jump down on a click on the marker. True if consumed."""
        if event.type == pygame.MOUSEWHEEL:
            if event.y and self._hovered():
                self.scroll_by(int(event.y) * WHEEL_ROWS)
                return True
            return False
        if event.type == pygame.KEYDOWN:
            return self._handle_key(event.key, event.mod)
        if event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            marker = self._marker_rect()
            if marker is not None and marker.collidepoint(event.pos):
                self.scroll_to_bottom()
                return True
            address = self.link_at(event.pos) if self.on_link is not None else None
            if address is not None and self.on_link is not None:
                self.on_link(address)
                return True
        return False

    def link_at(self, pos: tuple[int, int]) -> str | None:
        """The web address drawn at a screen position, if any."""
        if not self.rect.collidepoint(pos):
            return None
        left = self.rect.left + self.theme.padding
        for seq, entry, rows, shown, y in self._place(False):
            row = (pos[1] - y) // self._linesize
            if not (y <= pos[1] and row < shown):
                continue
            text, _ = self._composed(seq, entry, False)
            start, end = rows[2 * row], rows[2 * row + 1]
            x = pos[0] - left - (0 if row == 0 else self._indent)
            index = start + self._chars_within(text[start:end], x)
            return next((a for s, e, a in find_links(text) if s <= index < e), None)
        return None

    def _chars_within(self, text: str, width: int) -> int:
        """How many characters of ``text`` from its start fit in ``width`` pixels."""
        low, high = 0, len(text)
        while low < high:
            mid = (low + high + 1) // 2
            if self.font.size(text[:mid])[0] <= width:
                low = mid
            else:
                high = mid - 1
        return low

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
        return _View(blits, bands, versions, self._marker(memo), self._thumb(), top_shown)

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
