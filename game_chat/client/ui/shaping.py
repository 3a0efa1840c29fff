"""Right-to-left text in display form: Arabic letters joined, Hebrew and Arabic in visual order.

SDL_ttf draws the characters of a string left to right, in the order they are stored, each in
the form its font maps the code point to; an Arabic or Hebrew line comes out mirrored and, for
Arabic, unjoined. :func:`display_text` turns a line from logical (stored) order into what
should be drawn left to right: ``arabic_reshaper`` swaps Arabic letters for their contextual
presentation forms (initial, medial, final, lam-alef ligatures), then python-bidi's
implementation of the Unicode Bidirectional Algorithm puts the line in visual order.
:class:`~game_chat.client.ui.fonts.FontChain` calls it in ``size`` and ``render``, so every widget
measures and draws the same display form.

Why not pygame-ce's HarfBuzz switches (``Font.set_direction`` / ``Font.set_script``): SDL_ttf
shapes a whole call in one direction and does not reorder a line that mixes directions ("gg
שלום 123"), plain pygame has no such methods, and the project runs on both pygame and
pygame-ce: one path in Python gives the same result on each.

Each call is one line: wrapping works on logical text, and every wrapped row is put in display
order on its own, as the bidi algorithm reorders per line. A row's direction follows its first
strong letter.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from arabic_reshaper import ArabicReshaper
from arabic_reshaper.letters import LETTERS_ARABIC
from arabic_reshaper.ligatures import LIGATURES
from arabic_reshaper.reshaper_config import default_config

try:  # python-bidi >= 0.5: the Rust implementation, which leaves mirroring (rule L4) to us
    from bidi import get_display as _get_display

    _MIRROR_HERE = True
except ImportError:  # python-bidi 0.4: the Python implementation, which mirrors itself
    from bidi.algorithm import get_display as _get_display

    _MIRROR_HERE = False
from bidi.mirror import MIRRORED

# Strong right-to-left scripts: Hebrew, Arabic, Syriac, Thaana, NKo, Samaritan, Mandaic and the
# Arabic supplements and extensions; Hebrew and Arabic presentation forms (U+FEFF, the byte order
# mark, is not one); the historic and African RTL scripts of plane 1. Bidi controls are not
# here: peer text has them removed (text_safety), and alone they cannot reorder anything.
_RTL = re.compile(
    "[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefe\U00010800-\U00010fff\U0001e800-\U0001efff]"
)
# Lines up to this long are cached: log rows and input lines are short, and a row is measured
# and drawn many times; longer text (a whole unwrapped 4000-character message) is not kept.
_CACHE_MAX_CHARS = 512
_CACHE_ENTRIES = 4096
# Bidi classes of letters with a direction; numbers and neutrals take theirs from them.
_STRONG_RTL = frozenset({"R", "AL"})


def has_rtl(text: str) -> bool:
    """True if ``text`` has a right-to-left letter (then it has a display form of its own)."""
    return _RTL.search(text) is not None


def display_text(text: str) -> str:
    """``text`` (one line, in logical order) as it is to be drawn left to right.

    Text without right-to-left letters is returned as it is (the same object) after one regular
    expression scan. Arabic comes back in presentation forms; harakat (vowel marks) are dropped,
    as arabic_reshaper does by default, since marks on reordered presentation forms would land
    on the wrong letter.
    """
    if _RTL.search(text) is None:
        return text
    if len(text) > _CACHE_MAX_CHARS:
        return _to_display(text)
    return _cached_display(text)


@functools.lru_cache(maxsize=_CACHE_ENTRIES)
def _cached_display(text: str) -> str:
    return _to_display(text)


def _to_display(text: str) -> str:
    reshaper, unshape = _reshaper()
    shaped = reshaper.reshape(text).translate(unshape)
    # Combining marks (Hebrew points) come out before their letter, which suits the bundled
    # DejaVu Sans drawn left to right: its points have no advance and their ink lies over the
    # glyph that follows (moved after the letter, they would stick out on its left).
    visual = _get_display(shaped)
    if _MIRROR_HERE:
        visual = _mirror(visual, rtl_line=bool(_strong_rtl(shaped, range(len(shaped)))))
    return visual


@functools.lru_cache(maxsize=1)
def _reshaper() -> tuple[ArabicReshaper, dict[int, int]]:
    """The reshaper, and a table writing the forms the bundled font lacks as plain letters.

    The Arabic fallback that always exists is the bundled DejaVu Sans: a presentation form or
    ligature it does not have would be a box (or a glyph from another font) on most machines,
    so those ligatures are off (e.g. ARABIC LIGATURE ALLAH, U+FDF2), and a letter it has
    without all of its forms is drawn unjoined instead. (A letter it lacks altogether, like
    Urdu's heh goal, keeps its forms: only a system font can draw it, maybe joined.)
    """
    # Imported here: fonts imports this module (and draws with what it returns).
    from .fonts import FALLBACK_FONT, font_covers

    covers = font_covers(str(FALLBACK_FONT))
    config = {
        name: False
        for name, (_, forms) in LIGATURES
        if default_config.get(name) and not all(covers(ch) for form in forms for ch in form)
    }
    unshape = {
        ord(form): ord(letter)
        for letter, forms in LETTERS_ARABIC.items()
        for form in forms
        if form and form != letter and not covers(form) and covers(letter)
    }
    return ArabicReshaper(configuration=config), unshape


def _mirror(visual: str, rtl_line: bool) -> str:
    """Rule L4 of the bidi algorithm: brackets in right-to-left text drawn mirrored.

    python-bidi >= 0.5 returns the visual order without it and without the resolved levels, so
    a mirrorable character's direction is taken from the nearest letters with a direction on
    either side (numbers and neutrals skipped): the same on both sides wins, else the line's
    direction. That is rules N1/N2 of the algorithm; in lines that mix directions it can differ
    from the exact result for a bracket pair (rule N0 resolves a pair as one).
    """
    if not any(ch in MIRRORED for ch in visual):
        return visual
    chars = list(visual)
    for i, ch in enumerate(visual):
        mirrored = MIRRORED.get(ch)
        if mirrored is None:
            continue
        left = _strong_rtl(visual, range(i - 1, -1, -1))
        right = _strong_rtl(visual, range(i + 1, len(visual)))
        left = rtl_line if left is None else left
        right = rtl_line if right is None else right
        if left if left == right else rtl_line:
            chars[i] = mirrored
    return "".join(chars)


def _strong_rtl(text: str, indices: range) -> bool | None:
    # The direction of the first letter with one at ``indices``: True = RTL, None = none.
    for i in indices:
        kind = unicodedata.bidirectional(text[i])
        if kind == "L":
            return False
        if kind in _STRONG_RTL:
            return True
    return None
