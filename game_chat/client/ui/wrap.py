"""Word wrapping by pixel width, for any font: pure functions, no pygame.

``wrap_text`` gives row break offsets, not strings, so a wrap can be kept per line and the
same text sliced for rendering, hit-testing and selection."""

from __future__ import annotations

from collections.abc import Callable

# Rows whose summed word widths come this close to the limit are measured whole.
_KERNING_SLACK = 3


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
    return pos + max(1, chars_within(text[pos:end], avail, measure))


def chars_within(text: str, width: int, measure: Callable[[str], int]) -> int:
    """How many characters of ``text`` from its start fit in ``width`` pixels (binary
    search: widths only grow)."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if measure(text[:mid]) <= width:
            low = mid
        else:
            high = mid - 1
    return low


def nearest_boundary(text: str, x: float, measure: Callable[[str], int]) -> int:
    """The character boundary of ``text`` nearest ``x`` pixels from its start (where a click
    puts a caret or starts a selection)."""
    if x <= 0:
        return 0
    n = chars_within(text, int(x), measure)
    if n < len(text):
        before, after = measure(text[:n]), measure(text[: n + 1])
        if x - before > (after - before) / 2:
            n += 1
    return n
