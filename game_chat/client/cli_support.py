"""Small pieces shared by the window and the command line."""

from __future__ import annotations

from ..server import ChatServer, ServerConfig


def host_local_server(port: int) -> ChatServer:
    """Start the bundled server in this process (background threads), reachable on the LAN."""
    server = ChatServer(ServerConfig(host="0.0.0.0", port=port))
    server.start()
    return server
