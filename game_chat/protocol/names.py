"""Nicknames: which are allowed and when two are the same.

A nickname is 1 to ``max_chars`` characters: letters of any script (with their combining
marks), decimal digits, ``_`` and ``-``. No spaces, control or format characters, and none
of the invisible "filler" letters people use to fake blank or look-alike names. Two names are
the same nick when their NFKC case-folded forms are equal (``Alice`` = ``ALICE`` = ``Ａｌｉｃｅ``).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from .errors import ErrorCode, RemoteProtocolError

# Letters (category Lo) that render as nothing: Hangul fillers and the halfwidth filler.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_LETTER_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"})
_MARK_CATEGORIES = frozenset({"Mn", "Mc"})


def _allowed(ch: str, first: bool) -> bool:
    if ch in "_-":
        return True
    if ch in _INVISIBLE_LETTERS:
        return False
    category = unicodedata.category(ch)
    if category in _LETTER_CATEGORIES or category == "Nd":
        return True
    # A combining mark belongs to the letter before it, so it cannot start a name.
    return not first and category in _MARK_CATEGORIES


def validate_nick(name: str, max_chars: int = 24) -> str:
    """Return ``name`` in NFC form if it is a valid nickname, else raise RemoteProtocolError."""
    nick = unicodedata.normalize("NFC", name)
    if not 1 <= len(nick) <= max_chars:
        raise RemoteProtocolError(
            ErrorCode.NICK_INVALID, f"a nickname has 1 to {max_chars} characters"
        )
    for i, ch in enumerate(nick):
        if not _allowed(ch, first=i == 0):
            raise RemoteProtocolError(
                ErrorCode.NICK_INVALID,
                f"a nickname may hold letters, digits, '_' and '-' only, not {ch!r}",
            )
    return nick


def nick_key(nick: str) -> str:
    """The form under which nicknames are compared: NFKC, case-folded."""
    return unicodedata.normalize("NFKC", nick).casefold()


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
