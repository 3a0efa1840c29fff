"""Chat text from peers: made safe to show before it reaches anybody else's screen.

:func:`clean_text` applies these rules in this order (:func:`strip_controls` all but the last):

1. Line breaks of every kind (tab, LF, VT, FF, CR, NEL U+0085, LINE SEPARATOR U+2028,
   PARAGRAPH SEPARATOR U+2029): each run of them becomes one space.
2. Removed: C0 and C1 controls and DEL (ESC of ANSI sequences included); every format
   character (General_Category Cf: bidi embeddings, overrides, isolates and marks, ALM U+061C,
   zero width space U+200B, word joiner U+2060, soft hyphen U+00AD, BOM U+FEFF, invisible
   operators, interlinear annotation, tags...); the other Default_Ignorable_Code_Points that
   are not combining marks (Hangul fillers U+115F, U+1160, U+3164, U+FFA0 and reserved
   ignorables); lone surrogates. Two exceptions: ZWJ and ZWNJ, judged in step 4, and an emoji
   subdivision flag: U+1F3F4 followed by 2 to 7 tag letters or digits and CANCEL TAG (the
   flags of England, Scotland and Wales) keeps its tags.
3. Combining marks (Mn, Mc, Me): at most :data:`MAX_TEXT_MARKS` (6) in a row; the ones after
   that are dropped. A ZWJ or ZWNJ between marks does not start a new count.
4. ZERO WIDTH JOINER U+200D stays only where it joins: between two pictographs of an emoji
   ZWJ sequence (UAX #29 rule GB11: an Extended_Pictographic character, then any combining
   marks or skin tones, ZWJ, an Extended_Pictographic character: 👨‍👩‍👧, 🏳️‍🌈, 👩🏽‍💻), or
   after a virama and before a letter (Indic conjuncts, Sinhala ශ්‍රී). ZERO WIDTH NON-JOINER
   U+200C stays only after a virama and before a letter, or between two letters that would
   otherwise join (Joining_Type L or D before it, R or D after it, skipping transparent
   marks: Persian می‌خواهم): the CONTEXTJ rules of IDNA (RFC 5892 appendix A.1 and A.2).
   Anywhere else both are removed.
5. White space at both ends is trimmed.

Cleaning is idempotent: cleaned text comes back unchanged. Character data: Unicode 17.0.0
(:mod:`.unicode_tables`). Text that needs none of this (the usual line) costs two regular
expression scans (ASCII text: one).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

from . import unicode_tables as _ucd
from .errors import ErrorCode, RemoteProtocolError

#: Most combining marks kept in a row (on one letter) in chat text.
MAX_TEXT_MARKS = 6

ZWJ = "\u200d"
ZWNJ = "\u200c"

Ranges = tuple[tuple[int, int], ...]


def _subtract(ranges: Ranges, holes: Ranges) -> Ranges:
    points = {cp for lo, hi in ranges for cp in range(lo, hi + 1)}
    points.difference_update(cp for lo, hi in holes for cp in range(lo, hi + 1))
    out: list[tuple[int, int]] = []
    for cp in sorted(points):
        if out and out[-1][1] + 1 == cp:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return tuple(out)


def _class(ranges: Ranges) -> str:
    """The inside of a regular expression character class for ``ranges``."""
    return "".join(
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
        for lo, hi in ranges
    )


def _bmp(ranges: Ranges) -> Ranges:
    return tuple((lo, min(hi, 0xFFFF)) for lo, hi in ranges if lo <= 0xFFFF)


# Controls, format characters, the ignorables that are not marks, surrogates; not the joiners.
_REMOVED = _subtract(
    ((0x00, 0x1F), (0x7F, 0x9F), (0xD800, 0xDFFF), *_ucd.FORMAT, *_ucd.DEFAULT_IGNORABLE),
    ((0x200C, 0x200D), *_ucd.MARKS),
)
_BREAK_CHARS = "\t\n\x0b\x0c\r\x85\u2028\u2029"
_BREAKS = re.compile(f"[{_BREAK_CHARS}]+")
_TAG_FLAG = "\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{2,7}\U000e007f"
_REMOVE = re.compile(f"[{_class(_REMOVED)}]")
_REMOVE_BUT_FLAGS = re.compile(f"({_TAG_FLAG})|[{_class(_REMOVED)}]")  # slower: only if tags
# Anything that steps 1 and 2 act on (the joiners of step 4 are looked for with ``in``).
_ATTENTION = re.compile(f"[{_class(_REMOVED)}{_BREAK_CHARS}]")
# Each range above U+FFFF in a character class costs a test for every character that is not in
# the class: _ATTENTION's seven cost 1 µs per 100 characters. So a line is first scanned with
# the part below U+10000 and *any* character above it, and only a line with one of those (an
# emoji, say) is scanned with the exact class.
_MAYBE_ATTENTION = re.compile(f"[{_class(_bmp(_REMOVED))}{_BREAK_CHARS}\U00010000-\U0010ffff]")
# Step 3 likewise: runs are looked for with the marks below U+10000 and any character above,
# and only the runs found (rare) are looked at with the exact class. The first character is
# spelled out, so that the search skips the others at the speed of a set lookup.
_CANDIDATE = f"[{_class(_bmp(_ucd.MARKS))}\U00010000-\U0010ffff{ZWJ}{ZWNJ}]"
_MARK_CANDIDATES = re.compile(f"{_CANDIDATE}{_CANDIDATE}{{{MAX_TEXT_MARKS},}}")
# Runs of marks and joiners long enough to hold too many marks. (No nested repeat: a run of
# a thousand joiners must not make the engine backtrack a thousand times at each of them.)
_MARK_RUN = re.compile(f"[{_class(_ucd.MARKS)}{ZWJ}{ZWNJ}]{{{MAX_TEXT_MARKS + 1},}}")
_FIRST_MARKS = re.compile(f"(?:[{ZWJ}{ZWNJ}]*[^{ZWJ}{ZWNJ}]){{{MAX_TEXT_MARKS}}}")
_NOT_JOINERS = re.compile(f"[^{ZWJ}{ZWNJ}]+")
_BOTH = (ZWJ, ZWNJ)


# What step 4 needs to know of a character, as bits; built on the first joiner seen.
_VIRAMA, _PICTOGRAPH, _EMOJI_EXTEND, _JOINS_NEXT, _JOINS_PREVIOUS, _TRANSPARENT = (
    1 << n for n in range(6)
)


@functools.cache
def _joining_kinds() -> dict[str, int]:
    kinds: dict[str, int] = {}
    for bit, table in (
        (_VIRAMA, _ucd.VIRAMAS),
        (_PICTOGRAPH, _ucd.EXTENDED_PICTOGRAPHIC),
        (_EMOJI_EXTEND, _ucd.MARKS + _ucd.EMOJI_MODIFIERS),
        (_JOINS_NEXT, _ucd.JOINS_TO_NEXT),
        (_JOINS_PREVIOUS, _ucd.JOINS_TO_PREVIOUS),
        (_TRANSPARENT, _ucd.JOIN_TRANSPARENT),
    ):
        for lo, hi in table:
            for cp in range(lo, hi + 1):
                kinds[chr(cp)] = kinds.get(chr(cp), 0) | bit
    return kinds


def _cap_run(match: re.Match[str]) -> str:
    """A run of marks (with joiners among them): the first MAX_TEXT_MARKS marks stay."""
    run = match.group()
    if len(run) - run.count(ZWJ) - run.count(ZWNJ) <= MAX_TEXT_MARKS:
        return run
    end = _FIRST_MARKS.match(run).end()  # type: ignore[union-attr]  # there are that many
    return run[:end] + _NOT_JOINERS.sub("", run[end:])


def _cap_candidates(match: re.Match[str]) -> str:
    return _MARK_RUN.sub(_cap_run, match.group())


def _joiner_positions(text: str) -> list[int]:
    """Where the ZWJs and ZWNJs of ``text`` are, in order (str.find: 3x faster than a regex)."""
    positions = []
    for joiner in (ZWJ, ZWNJ):
        i = text.find(joiner)
        while i != -1:
            positions.append(i)
            i = text.find(joiner, i + 1)
    positions.sort()
    return positions


def _joiners_resolved(text: str) -> str:
    """Step 4: each ZWJ or ZWNJ of ``text`` judged by its neighbours. One pass is enough: a
    joiner that stays never has another joiner among the characters it was judged by."""
    kind = _joining_kinds().get
    last = len(text) - 1
    pieces, start = [], 0
    for i in _joiner_positions(text):
        # At an end, or next to another joiner, a joiner never stays: no rule allows it.
        alone = 0 < i < last and text[i - 1] not in _BOTH and text[i + 1] not in _BOTH
        if alone and _joins(text, i, last, kind):
            continue
        pieces.append(text[start:i])
        start = i + 1
    if not pieces:
        return text
    pieces.append(text[start:])
    return "".join(pieces)


def _joins(text: str, i: int, last: int, kind: Callable[[str, int], int]) -> bool:
    after = text[i + 1]
    j = i - 1
    if kind(text[j], 0) & _VIRAMA and unicodedata.category(after)[0] == "L":
        return True  # RFC 5892 A.1 and A.2: after a virama (and, ours, before a letter)
    if text[i] == ZWJ:  # UAX #29 GB11: ExtPict Extend* ZWJ x ExtPict
        while j > 0 and kind(text[j], 0) & _EMOJI_EXTEND:
            j -= 1
        return bool(kind(text[j], 0) & kind(after, 0) & _PICTOGRAPH)
    while j > 0 and kind(text[j], 0) & _TRANSPARENT:  # RFC 5892 A.1: (L|D) T* ZWNJ T* (R|D)
        j -= 1
    k = i + 1
    while k < last and kind(text[k], 0) & _TRANSPARENT:
        k += 1
    return bool(kind(text[j], 0) & _JOINS_NEXT and kind(text[k], 0) & _JOINS_PREVIOUS)


def strip_controls(text: str, *, keep_joiners: bool = False) -> str:
    """Rules 1 to 4 of the module docstring: all of :func:`clean_text` but the trimming.

    ``keep_joiners=True`` leaves every ZWJ and ZWNJ in place, for a piece of a line (one
    keystroke of a Persian keyboard is a lone ZWNJ) whose neighbours are not known yet; the
    whole line gets the rule when it is cleaned."""
    if _MAYBE_ATTENTION.search(text) is not None and _ATTENTION.search(text) is not None:
        text = _BREAKS.sub(" ", text)
        flag = "\U000e007f" in text  # CANCEL TAG: maybe a subdivision flag
        text = _REMOVE_BUT_FLAGS.sub(r"\1", text) if flag else _REMOVE.sub("", text)
    if not text.isascii() and _MARK_CANDIDATES.search(text) is not None:
        text = _MARK_CANDIDATES.sub(_cap_candidates, text)
    if not keep_joiners and (ZWJ in text or ZWNJ in text):
        text = _joiners_resolved(text)
    return text


def clean_text(text: str) -> str:
    """:func:`strip_controls`, then surrounding white space trimmed."""
    return strip_controls(text).strip()


def clean_reason(text: str, max_chars: int = 200) -> str:
    """A leave or quit reason from a peer: cleaned like chat text and cut to ``max_chars``
    (cleaned again after the cut, which may have left a joiner without its neighbour)."""
    return clean_text(clean_text(text)[:max_chars])


def validate_text(text: str, max_chars: int) -> str:
    """Return the cleaned chat text, or raise RemoteProtocolError if empty or too long."""
    cleaned = clean_text(text)
    if not cleaned:
        raise RemoteProtocolError(ErrorCode.EMPTY_TEXT, "empty messages are not sent")
    if len(cleaned) > max_chars:
        raise RemoteProtocolError(
            ErrorCode.TEXT_TOO_LONG,
            f"message of {len(cleaned)} characters is over the limit of {max_chars}",
        )
    return cleaned


def decode_utf8(payload: bytes) -> str:
    """Decode a frame payload, or raise RemoteProtocolError (not fatal) for invalid UTF-8."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(
            ErrorCode.BAD_UTF8, f"frame payload is not valid UTF-8 (byte {exc.start})"
        ) from None
