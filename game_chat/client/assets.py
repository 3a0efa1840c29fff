"""Where the bundled assets (fonts, icon) are: the checkout's assets/, or, for an installed
game_chat, the copy pip put under ``<prefix>/share/game_chat/assets``."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2] / "assets"


def _candidates() -> list[Path]:
    data = Path(sysconfig.get_paths()["data"])
    return [
        _CHECKOUT,
        data / "share" / "game_chat" / "assets",
        Path(sys.prefix) / "share" / "game_chat" / "assets",
    ]


def assets_dir() -> Path:
    """The first assets directory that has the fonts (the checkout's if none has)."""
    for candidate in _candidates():
        if (candidate / "fonts" / "NotoSans-Regular.ttf").is_file():
            return candidate
    return _CHECKOUT
