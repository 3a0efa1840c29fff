"""Fonts with per-character fallback: SDL_ttf draws a box for any glyph its one font lacks.

:class:`FontChain` looks like the part of ``pygame.font.Font`` the widgets use, and draws each
character with the first font of a chain that has it: the theme's font (bundled Noto Sans by
default), the bundled DejaVu Sans, then fonts installed on the system for what both lack (CJK,
rarer scripts), found lazily and only when a character needs them. Emoji are drawn by a system
colour emoji font if there is one, else by the bundled monochrome Noto Emoji: never as boxes.

Coverage is asked of FreeType (``pygame.freetype.Font.get_metrics``: None = no glyph) once per
character and cached. Text the primary font covers whole renders with one ``Font.render`` call;
other text is split into runs by font and the runs are drawn side by side on the primary font's
baseline. Colour emoji fonts only have a fixed bitmap size (~136x128): their runs are scaled to
the line height.

Right-to-left text is measured and drawn in its display form (Arabic joined, visual order), made
by :func:`~game_chat.client.ui.shaping.display_text` in ``size`` and ``render`` alike.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Callable, Sequence
from typing import Protocol

import pygame
import pygame.freetype

from ..assets import assets_dir
from .shaping import display_text
from .theme import Theme

RGB = tuple[int, int, int] | tuple[int, int, int, int]

#: Where the bundled fonts live (repository or source tree layout).
BUNDLED_FONT_DIR = assets_dir() / "fonts"
REGULAR_FONT = BUNDLED_FONT_DIR / "NotoSans-Regular.ttf"
BOLD_FONT = BUNDLED_FONT_DIR / "NotoSans-Bold.ttf"
FALLBACK_FONT = BUNDLED_FONT_DIR / "DejaVuSans.ttf"
#: Monochrome emoji, for machines without a colour emoji font (Noto Emoji 1.05).
EMOJI_FONT = BUNDLED_FONT_DIR / "NotoEmoji-Regular.ttf"

# System font families to try first, in order, for what the bundled fonts lack; matched as
# substrings of pygame's normalised family names ("Noto Sans CJK SC" -> "notosanscjksc").
_PREFERRED_SYSTEM_FAMILIES = (
    "notosanscjk",
    "sourcehansans",
    "notoserifcjk",
    "droidsansfallback",
    "wenquanyi",
    "wqy",
    "notosanssymbols",
    "notosansmath",
    "symbola",
    "notocoloremoji",
    "notoemoji",
    "twemoji",
    "applecoloremoji",
    "segoeuiemoji",
    "segoeuisymbol",
    "arialunicode",
)
# Families searched after every other system font: they cover much, but look out of place.
_LAST_RESORT_FAMILIES = ("unifont", "lastresort")
#: At most this many system fonts are ever opened by one chain.
MAX_SYSTEM_FALLBACKS = 400
# Characters the size cache remembers results for: words and short pieces repeat a lot.
_SIZE_CACHE_MAX_CHARS = 48
_SIZE_CACHE_ENTRIES = 8192
# Per-character coverage cache bound: a peer can send many distinct characters.
_CHAR_CACHE_ENTRIES = 65536
# Face index of an invisible character no font has: it is not drawn at all.
_DROP = -1
# Characters never looked up in system fonts: private use, unassigned, surrogates, controls.
_NO_FALLBACK_CATEGORIES = frozenset({"Co", "Cn", "Cs", "Cc"})
# Category of the emoji outside the pictograph blocks (⌚, ⏰, ⭐...): the emoji font is asked for
# those before any other system font, and never for letters (a CJK text needs no emoji font).
_SYMBOL_CATEGORY = "So"


class TextFont(Protocol):
    """The part of ``pygame.font.Font`` the widgets use; FontChain and Font both have it."""

    def size(self, text: str, /) -> tuple[int, int]: ...

    def render(
        self, text: str, antialias: bool, color: RGB, background: RGB | None = None, /
    ) -> pygame.Surface: ...

    def get_linesize(self) -> int: ...

    def get_height(self) -> int: ...

    def get_ascent(self) -> int: ...


def ensure_font_init() -> None:
    """Initialise pygame.font and pygame.freetype if the caller has not."""
    if not pygame.font.get_init():
        pygame.font.init()
    if not pygame.freetype.get_init():
        pygame.freetype.init()


def is_pictograph(ch: str) -> bool:
    """True for the emoji blocks a colour emoji font should draw even if a text font has them.

    (DejaVu Sans has monochrome smileys; people sending them expect the colour ones.)
    """
    cp = ord(ch)
    return 0x1F300 <= cp <= 0x1FAFF or 0x1F000 <= cp <= 0x1F2FF


def font_covers(path: str | os.PathLike[str]) -> Callable[[str], bool]:
    """A test of whether the font file at ``path`` has a glyph for a character.

    A font that cannot be read is taken to have everything: callers use this to avoid glyphs a
    font lacks, and without the font there is nothing better to choose.
    """
    ensure_font_init()
    try:
        return _Face(str(path), 16).covers
    except (pygame.error, OSError, ValueError):
        return lambda ch: True


def is_ignorable(ch: str) -> bool:
    """True for invisible joiners and selectors (ZWJ, variation selectors, emoji tags).

    They belong to the character before them; a font without them must not draw them as boxes.
    """
    cp = ord(ch)
    return (
        cp in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)
        or 0xFE00 <= cp <= 0xFE0F
        or 0xE0000 <= cp <= 0xE01EF
    )


class _Face:
    """One font of a chain: FreeType for coverage, SDL_ttf (pygame.font) for drawing."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self.probe = pygame.freetype.Font(path, size)
        # A colour bitmap font (Noto Color Emoji) has one fixed size; FreeType refuses to
        # measure it at any other, so probe it at its own size (0).
        self.bitmap = not self.probe.scalable
        if self.bitmap:
            self.probe = pygame.freetype.Font(path, 0)
        self._font: pygame.font.Font | None = None

    def covers(self, ch: str) -> bool:
        try:
            return self.probe.get_metrics(ch)[0] is not None
        except (pygame.error, ValueError):
            return False

    @property
    def font(self) -> pygame.font.Font:
        # Opened on first use: most fallback faces are only ever probed, never drawn with.
        if self._font is None:
            self._font = pygame.font.Font(self.path, self.size)
        return self._font


class FontChain:
    """A font that draws every character with the first font of a chain that has its glyph.

    Metrics (height, ascent, line size) are the primary font's, so a line's height does not
    change with what it contains; fallback runs sit on the primary font's baseline.
    """

    def __init__(
        self,
        primary_path: str | os.PathLike[str],
        size: int,
        fallback_paths: Sequence[str | os.PathLike[str]] = (str(FALLBACK_FONT),),
        *,
        system_fallbacks: bool = True,
        emoji_path: str | os.PathLike[str] | None = EMOJI_FONT,
    ) -> None:
        """Chain ``primary_path`` -> ``fallback_paths`` -> (if enabled) system fonts.

        Emoji come from a colour emoji font among the fallbacks or (if enabled) the system
        fonts, else from ``emoji_path`` (the bundled Noto Emoji; None: none).
        """
        ensure_font_init()
        self._size = size
        self._faces = [_Face(str(primary_path), size)]
        self._opened = {os.path.realpath(self._faces[0].path)}
        for path in fallback_paths:
            self._add_face(str(path))
        self._primary = self._faces[0].font
        self._height = self._primary.get_height()
        self._ascent = self._primary.get_ascent()
        self._linesize = self._primary.get_linesize()
        self._system_fallbacks = system_fallbacks
        self._system_queue: list[str] | None = None if system_fallbacks else []
        self._emoji_path = None if emoji_path is None else str(emoji_path)
        self._emoji_index: int | None = None
        self._emoji_searched = False
        self._char_face: dict[str, int] = {}
        self._primary_chars: set[str] = set()
        self._sizes: dict[str, tuple[int, int]] = {}

    # --- the pygame.font.Font interface ---------------------------------------------------

    def size(self, text: str) -> tuple[int, int]:
        """Width and height in pixels of ``text`` drawn on one line."""
        cached = self._sizes.get(text)
        if cached is not None:
            return cached
        shown = display_text(text)  # measured as it is drawn (RTL: joined and reordered)
        if self._primary_covers(shown):
            result = self._primary.size(shown)
        else:
            width = sum(self._run_width(face, run) for face, run in self._split(shown))
            result = (width, self._height)
        if len(text) <= _SIZE_CACHE_MAX_CHARS:
            if len(self._sizes) >= _SIZE_CACHE_ENTRIES:
                self._sizes.clear()
            self._sizes[text] = result
        return result

    def render(
        self, text: str, antialias: bool, color: RGB, background: RGB | None = None
    ) -> pygame.Surface:
        """Draw ``text`` like ``Font.render``: opaque on ``background``, else per-pixel alpha.

        Right-to-left text is drawn in display form (see :mod:`.shaping`).
        """
        if "\x00" in text:  # SDL_ttf refuses embedded NULs
            text = text.replace("\x00", "")
        text = display_text(text)
        if self._primary_covers(text):
            return self._primary.render(text, antialias, color, background)
        pieces = [
            (face, self._render_run(face, run, antialias, color, background))
            for face, run in self._split(text)
        ]
        return self._compose(pieces, background)

    def get_linesize(self) -> int:
        """Recommended distance between baselines, in pixels (the primary font's)."""
        return self._linesize

    def get_height(self) -> int:
        """Height of a rendered line, in pixels (the primary font's)."""
        return self._height

    def get_ascent(self) -> int:
        """Pixels from the top of a rendered line to its baseline (the primary font's)."""
        return self._ascent

    def get_descent(self) -> int:
        """Pixels below the baseline (negative), as ``Font.get_descent``."""
        return self._primary.get_descent()

    # --- inspection ------------------------------------------------------------------------

    def runs(self, text: str) -> list[tuple[str, str]]:
        """Split ``text`` into ``(font path, run)`` pairs, left to right, as it would be drawn
        (right-to-left text in its display form)."""
        return [(face.path, run) for face, run in self._split(display_text(text))]

    def font_path_for(self, ch: str) -> str:
        """Path of the font that draws ``ch`` (the primary font if no font has it)."""
        return self._faces[max(0, self._face_index(ch))].path

    @property
    def paths(self) -> list[str]:
        """Fonts opened so far, in chain order (system fonts are added as they are needed)."""
        return [face.path for face in self._faces]

    # --- coverage -------------------------------------------------------------------------

    def _primary_covers(self, text: str) -> bool:
        if self._primary_chars.issuperset(text):
            return True
        return all(self._face_index(ch) == 0 for ch in set(text))

    def _face_index(self, ch: str) -> int:
        if ch in self._primary_chars:
            return 0
        index = self._char_face.get(ch)
        if index is None:
            index = self._find_face(ch)
            if len(self._char_face) >= _CHAR_CACHE_ENTRIES:
                self._char_face.clear()
                self._primary_chars.clear()
            self._char_face[ch] = index
            if index == 0:
                self._primary_chars.add(ch)
        return index

    def _find_face(self, ch: str) -> int:
        if is_pictograph(ch):
            emoji = self._emoji_face()
            if emoji is not None and self._faces[emoji].covers(ch):
                return emoji
        for index, face in enumerate(self._faces):
            if face.covers(ch):
                return index
        if is_ignorable(ch):
            return _DROP
        category = unicodedata.category(ch)
        if category in _NO_FALLBACK_CATEGORIES:
            return 0
        if category == _SYMBOL_CATEGORY and not is_pictograph(ch):
            emoji = self._emoji_face()
            if emoji is not None and self._faces[emoji].covers(ch):
                return emoji
        # Open more system fonts only when a character is missing from every open one.
        while self._open_next_system_face():
            if self._faces[-1].covers(ch):
                return len(self._faces) - 1
        return 0  # nobody has it: the primary font's "missing glyph" box

    def _emoji_face(self) -> int | None:
        # The emoji font, searched for once: an open colour (bitmap) face, else a system emoji
        # font, else the bundled monochrome one. Colour looks like what the sender saw, but
        # most Linux machines without a desktop (and CI) have no emoji font at all.
        if not self._emoji_searched:
            self._emoji_searched = True
            self._emoji_index = next((i for i, f in enumerate(self._faces) if f.bitmap), None)
            if self._emoji_index is None and self._system_fallbacks:
                for path in system_fallback_paths():
                    if "emoji" in os.path.basename(path).lower() and self._add_face(path):
                        self._emoji_index = len(self._faces) - 1
                        break
            if self._emoji_index is None and self._emoji_path is not None:
                self._emoji_index = self._open_face(self._emoji_path)
        return self._emoji_index

    def _open_next_system_face(self) -> bool:
        if self._system_queue is None:
            self._system_queue = list(system_fallback_paths()[:MAX_SYSTEM_FALLBACKS])
            self._system_queue.reverse()  # pop() from the end = the preferred first
        while self._system_queue:
            if self._add_face(self._system_queue.pop()):
                return True
        return False

    def _open_face(self, path: str) -> int | None:
        # Index of the face of ``path``, opened now if it is not yet (None: unreadable).
        if self._add_face(path):
            return len(self._faces) - 1
        real = os.path.realpath(path)
        return next(
            (i for i, f in enumerate(self._faces) if os.path.realpath(f.path) == real), None
        )

    def _add_face(self, path: str) -> bool:
        real = os.path.realpath(path)
        if real in self._opened:
            return False
        self._opened.add(real)
        try:
            face = _Face(path, self._size)
        except (pygame.error, OSError, ValueError):
            return False  # unreadable or unsupported font file: skip it
        # Bitmap fonts other than colour emoji are fixed-size pixel fonts: they would look wrong
        # scaled, so they are not used.
        if face.bitmap and "emoji" not in os.path.basename(path).lower():
            return False
        self._faces.append(face)
        return True

    def _split(self, text: str) -> list[tuple[_Face, str]]:
        runs: list[tuple[_Face, str]] = []
        primary = self._primary_chars
        current = -1
        begin = 0  # start of the current run
        dropped = False  # the current run skips an ignorable character
        chars: list[str] = []
        for i, ch in enumerate(text):
            # The common case first: a character the primary font has, inside a primary run.
            index = 0 if ch in primary else self._face_index(ch)
            if index == current:
                if dropped:
                    chars.append(ch)
                continue
            # (Ignorables the primary font has are drawn by it as nothing: no special case.)
            if index and is_ignorable(ch):
                # Joiners and selectors go with the run before them, or vanish if that font
                # lacks them (instead of showing a box).
                owner = current if current >= 0 else index
                if owner >= 0 and (owner == index or self._faces[owner].covers(ch)):
                    if current < 0:
                        current, begin = owner, i
                    elif dropped:
                        chars.append(ch)
                    continue
                if not dropped:
                    chars = list(text[begin:i]) if current >= 0 else []
                    dropped = True
                continue
            if current >= 0:
                runs.append((self._faces[current], "".join(chars) if dropped else text[begin:i]))
            current, begin, dropped, chars = index, i, False, []
        if current >= 0:
            runs.append((self._faces[current], "".join(chars) if dropped else text[begin:]))
        return runs

    # --- drawing --------------------------------------------------------------------------

    def _run_width(self, face: _Face, run: str) -> int:
        width, height = face.font.size(run)
        if face.bitmap and height:
            return round(width * self._height / height)
        return width

    def _render_run(
        self, face: _Face, run: str, antialias: bool, color: RGB, background: RGB | None
    ) -> pygame.Surface:
        if not face.bitmap:
            return face.font.render(run, antialias, color, background)
        # Colour glyphs only come out in colour without a background colour; scale the fixed
        # bitmap size down to the line height.
        surface = face.font.render(run, True, color)
        width, height = surface.get_size()
        if not height:
            return surface
        target = (max(1, round(width * self._height / height)), self._height)
        if surface.get_bitsize() in (24, 32):
            return pygame.transform.smoothscale(surface, target)
        return pygame.transform.scale(surface, target)

    def _compose(
        self, pieces: list[tuple[_Face, pygame.Surface]], background: RGB | None
    ) -> pygame.Surface:
        width = sum(surface.get_width() for _, surface in pieces)
        if background is None:
            target = pygame.Surface((width, self._height), pygame.SRCALPHA)
            target.fill((0, 0, 0, 0))
        else:
            target = pygame.Surface((width, self._height))
            target.fill(background)
        x = 0
        for face, surface in pieces:
            y = 0 if face.bitmap else self._ascent - face.font.get_ascent()
            if background is None and surface.get_flags() & pygame.SRCALPHA:
                # Runs do not overlap: copy their alpha as it is instead of blending it onto
                # the transparent target (which would darken the anti-aliased edges).
                target.blit(surface, (x, y), special_flags=pygame.BLEND_RGBA_MAX)
            else:
                target.blit(surface, (x, y))
            x += surface.get_width()
        return target


@functools.lru_cache(maxsize=1)
def system_fallback_paths() -> tuple[str, ...]:
    """Installed font files worth trying for missing glyphs, the preferred ones first.

    Asks pygame's font registry (fontconfig on Linux) once per process.
    """
    ensure_font_init()
    try:
        names = sorted(pygame.font.get_fonts())
    except Exception:  # a broken font registry must not break the chat
        return ()
    ordered: list[str] = []
    for family in _PREFERRED_SYSTEM_FAMILIES:
        ordered += [name for name in names if family in name and name not in ordered]
    last = [name for name in names if any(f in name for f in _LAST_RESORT_FAMILIES)]
    rest = [name for name in names if name not in ordered and name not in last]
    # Sans-serif faces read better next to Noto Sans than serif or display faces.
    rest.sort(key=lambda name: "sans" not in name)
    paths: list[str] = []
    for name in ordered + rest + last:
        path = pygame.font.match_font(name)
        if path and path not in paths:
            paths.append(path)
    return tuple(paths)


def load_font(theme: Theme, bold: bool = False) -> FontChain:
    """The theme's font (bundled Noto Sans unless ``theme.font_path``) with fallbacks."""
    if theme.font_path:
        primary: str | os.PathLike[str] = theme.font_path
    else:
        primary = BOLD_FONT if bold else REGULAR_FONT
    return FontChain(primary, theme.font_size)


def fit(font: TextFont, text: str, width: int) -> str:
    """``text`` cut (with an ellipsis) to at most ``width`` pixels."""
    if font.size(text)[0] <= width:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with the ellipsis
        mid = (low + high + 1) // 2
        if font.size(text[:mid] + "…")[0] <= width:
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + "…"
