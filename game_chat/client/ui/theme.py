"""Colours, sizes and fonts shared by the widgets; a game embedding the chat passes its own."""

from __future__ import annotations

from dataclasses import dataclass, field

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Theme:
    """Look of every widget. ``font_path`` None means the bundled font (assets/fonts)."""

    font_path: str | None = None
    font_size: int = 16
    background: Color = (24, 26, 32)
    panel: Color = (32, 35, 43)
    input_background: Color = (40, 44, 54)
    text: Color = (222, 226, 232)
    muted: Color = (128, 135, 150)  # system lines: joins, leaves, errors, reconnecting
    error: Color = (235, 110, 110)
    highlight: Color = (70, 60, 28)  # background of a line that mentions you
    selection: Color = (60, 90, 150)
    cursor: Color = (240, 240, 240)
    accent: Color = (110, 160, 255)
    #: 0-255; the overlay of issue 5 draws with this opacity.
    opacity: int = 255
    padding: int = 6
    #: Your own nick, in your lines and the member list: a colour no other nick gets.
    own_nick: Color = (255, 255, 255)
    nick_colors: tuple[Color, ...] = field(
        default=(
            (240, 120, 120),
            (240, 170, 90),
            (220, 210, 90),
            (130, 210, 110),
            (90, 200, 170),
            (100, 190, 240),
            (140, 150, 250),
            (190, 140, 240),
            (235, 130, 200),
            (200, 200, 200),
        )
    )
