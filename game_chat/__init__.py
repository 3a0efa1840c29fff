"""game_chat: a Pygame chat client with a bundled threaded chat server."""

__version__ = "0.1.0"
