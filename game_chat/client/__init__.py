"""The chat client: a network layer usable by any program, and the Pygame window on top.

For games: ``from game_chat.client import ChatClient, ChatOverlay`` (see overlay.py). The
names are loaded on first use, so importing the network layer alone never imports pygame.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .net import ChatClient
    from .overlay import ChatOverlay, MemberChange
    from .tls import TlsOptions

__all__ = ["ChatClient", "ChatOverlay", "MemberChange", "TlsOptions"]

_HOMES = {
    "ChatClient": ".net",
    "ChatOverlay": ".overlay",
    "MemberChange": ".overlay",
    "TlsOptions": ".tls",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)
