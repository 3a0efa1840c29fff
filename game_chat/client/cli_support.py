"""Small pieces shared by the window and the command line."""

from __future__ import annotations

from ..server import ChatServer, ServerConfig


def host_local_server(port: int, password: str | None = None) -> ChatServer:
    """Start the bundled server in this process (background threads), reachable on the LAN;
    with ``password``, every client must give it."""
    server = ChatServer(ServerConfig(host="0.0.0.0", port=port, password=password or None))
    server.start()
    return server
