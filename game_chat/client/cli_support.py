"""Small pieces shared by the window and the command line."""

from __future__ import annotations

from ..server import ChatServer, ServerConfig
from ..server.tls import default_tls_dir, ensure_self_signed


def host_local_server(port: int, password: str | None = None, tls: bool = False) -> ChatServer:
    """Start the bundled server in this process (background threads), reachable on the LAN;
    with ``password``, every client must give it; with ``tls``, TLS with this machine's
    self-signed certificate (TlsSetupError, a ValueError, if none can be made)."""
    server = ChatServer(
        ServerConfig(
            host="0.0.0.0", port=port, password=password or None, **self_signed_settings(tls)
        )  # type: ignore[arg-type]
    )
    server.start()
    return server


def self_signed_settings(tls: bool) -> dict[str, str]:
    """ServerConfig fields for TLS with the self-signed certificate of the server's data
    directory (made there the first time); none without ``tls``."""
    if not tls:
        return {}
    cert, key, _ = ensure_self_signed(default_tls_dir(), "game_chat")
    return {"tls_cert": str(cert), "tls_key": str(key)}
