"""Colour maths for readable text: WCAG contrast, mixing, and a stable colour per nick."""

from __future__ import annotations

import colorsys
import functools
import zlib

from ...protocol.names import nick_key
from .theme import Color, Theme


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
