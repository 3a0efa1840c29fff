"""The bundled chat server. Importing it never imports pygame."""

from .server import DEFAULT_PORT, ChatServer, ServerConfig
from .state import ChatState

__all__ = ["DEFAULT_PORT", "ChatServer", "ChatState", "ServerConfig"]
