"""Nicknames: which are allowed, when two are the same nick, and when two look the same.

A nick is what others see, so a name is refused (``nick_invalid``) rather than quietly changed.
After NFC normalisation a nickname is 1 to ``max_chars`` code points, each of them:

- a letter of any script (Lu, Ll, Lt, Lm, Lo), a decimal digit (Nd), ``_`` or ``-``;
- or a combining mark (Mn, Mc) on a letter or digit: at most :data:`MAX_NICK_MARKS` (4) in a
  row, so a name cannot stack marks over the lines around it (Burmese ကျော် "Kyaw" needs 4).

No space, punctuation, symbol, control or format character (Cf: zero width space and joiners,
bidi marks, soft hyphen, BOM, tags...), and no Default_Ignorable_Code_Point of another category
either: the Hangul fillers (letters that render as nothing), the variation selectors, the
combining grapheme joiner and the Mongolian free variation selectors.

Two names are the same nick when their :func:`nick_key` (NFKC, then case folding) are equal:
``Alice`` = ``ALICE`` = ``Ａｌｉｃｅ``. Two names are confusable when their
:func:`nick_skeleton` are equal: the Unicode TR39 skeleton of the name as people see it, then
the same NFKC and case folding: ``alice`` ~ ``аlice`` (Cyrillic а) ~ ``alıce`` (dotless ı) ~
``a1ice`` ~ ``aIice`` ~ ``Αlice`` (Greek Alpha), and ``rn`` ~ ``m``. A server refuses a nick
that is the same as, or confusable with, one in use.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_right

from .errors import ErrorCode, RemoteProtocolError
from .unicode_tables import CONFUSABLES, DEFAULT_IGNORABLE

#: Most combining marks one letter of a nickname may carry.
MAX_NICK_MARKS = 4

_LETTER_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"})
_MARK_CATEGORIES = frozenset({"Mn", "Mc"})
_IGNORABLE_STARTS = [lo for lo, _ in DEFAULT_IGNORABLE]


def _ignorable(ch: str) -> bool:
    """Default_Ignorable_Code_Point: renders as nothing (or changes nothing) on its own."""
    i = bisect_right(_IGNORABLE_STARTS, ord(ch)) - 1
    return i >= 0 and ord(ch) <= DEFAULT_IGNORABLE[i][1]


def _invalid(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.NICK_INVALID, reason)


def validate_nick(name: str, max_chars: int = 24) -> str:
    """Return ``name`` in NFC form if it is a valid nickname, else raise RemoteProtocolError
    (``nick_invalid``, not fatal). Any ``str`` at all gets one of the two answers."""
    nick = unicodedata.normalize("NFC", name)
    if not 1 <= len(nick) <= max_chars:
        raise _invalid(f"a nickname has 1 to {max_chars} characters")
    marks = 0
    for i, ch in enumerate(nick):
        category = unicodedata.category(ch)
        if _ignorable(ch) or not (
            ch in "_-"
            or category in _LETTER_CATEGORIES
            or category in _MARK_CATEGORIES
            or category == "Nd"
        ):
            refused = "no spaces" if ch == " " else f"not {ch!r}"
            raise _invalid(f"a nickname may hold letters, digits, '_' and '-' only: {refused}")
        if category not in _MARK_CATEGORIES:
            marks = 0
        elif i == 0 or (marks == 0 and nick[i - 1] in "_-"):
            raise _invalid("a combining mark goes on a letter or a digit")
        elif (marks := marks + 1) > MAX_NICK_MARKS:
            raise _invalid(f"a nickname has at most {MAX_NICK_MARKS} marks on one letter")
    return nick


def nick_key(nick: str) -> str:
    """The form under which nicknames are compared: NFKC, case-folded."""
    return unicodedata.normalize("NFKC", nick).casefold()


@functools.cache
def _skeleton_table() -> dict[int, str | None]:
    """``str.translate`` table for TR39 steps 2 and 3: ignorables dropped, others mapped."""
    table: dict[int, str | None] = {}
    for line in CONFUSABLES.splitlines():
        source, *prototype = line.split()
        table[int(source, 16)] = "".join(chr(int(cp, 16)) for cp in prototype)
    for lo, hi in DEFAULT_IGNORABLE:  # removed before mapping: removal wins (U+3164)
        table.update(dict.fromkeys(range(lo, hi + 1)))
    return table


def skeleton(text: str) -> str:
    """The Unicode TR39 (UTS #39) skeleton of ``text``: NFD; Default_Ignorable_Code_Points
    removed; each character replaced by its prototype from confusables.txt; NFD again.

    Two strings with the same skeleton are visually confusable. A skeleton is a key to
    compare, never a name to show."""
    nfd = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", nfd.translate(_skeleton_table()))


def nick_skeleton(nick: str) -> str:
    """The key under which two nicknames are confusable: ``nick_key(skeleton(nick))``.

    The skeleton is taken first, of the name as people see it, and then NFKC and case
    folding as for :func:`nick_key`. Folding case first would lose what the eye sees:
    ``ALICE`` and ``ALlCE`` look the same (capital I, small l) and have the same skeleton
    (TR39 maps I to l), but fold to ``alice`` and ``allce``. Folding afterwards makes the
    relation coarser, never finer: names with equal skeletons always collide, and so do
    names whose skeletons differ only by case or width (``Αlice``, ``alice``, ``ａlice``).
    A server needs both keys: :func:`nick_key` says which member a name *is*, this one which
    members it could be *taken for* (``ſ`` is the same nick as ``s``, but looks like ``f``).
    """
    return nick_key(skeleton(nick))


@functools.lru_cache(maxsize=16)
def _mention_pattern(key: str) -> re.Pattern[str]:
    # Nicknames are letters, digits, "_" and "-": a mention is the nick not glued to more of
    # those ("@alice," and "alice:" count, "malice" and "alice_2" do not).
    return re.compile(r"(?<![\w-])" + re.escape(key) + r"(?![\w-])")


def mentions(text: str, nick: str | None) -> bool:
    """True if ``text`` names ``nick`` as a word, compared as nicknames are (NFKC, casefold)."""
    if not nick:
        return False
    key = nick_key(nick)
    return bool(key) and _mention_pattern(key).search(nick_key(text)) is not None
