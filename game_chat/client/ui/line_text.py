"""What a log line says, and in which colours: ``HH:MM nick: text`` with its spans and links.

Shared by the log (which wraps and draws it) and anything that must lay a line out the same way.
"""

from __future__ import annotations

import functools
import re
import time

from ..model import Delivery, LineKind
from .colors import mix, nick_color
from .shaping import has_rtl
from .theme import Color, Theme

PENDING_MARK = " …"
FAILED_MARK = " (not sent)"


def format_time(ts: float) -> str:
    """``HH:MM`` in local time."""
    return _format_minute(int(ts // 60))


@functools.lru_cache(maxsize=256)
def _format_minute(minute: int) -> str:
    # Lines arrive in time order: a small cache by minute saves a localtime per line.
    return time.strftime("%H:%M", time.localtime(minute * 60))


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
        # One render call for ": " and the text, unless the text is right-to-left: each piece
        # is put in display order on its own, and ": " must stay after the nick.
        if spans and spans[-1][1] == color and not has_rtl(piece):
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
