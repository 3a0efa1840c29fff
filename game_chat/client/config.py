"""The connect screen's last values, remembered in a small JSON file in the user's config dir."""

from __future__ import annotations

import getpass
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from ..dirs import SETTINGS_FILE, config_dir
from ..protocol.names import validate_nick

log = logging.getLogger("game_chat.client")

DEFAULT_SERVER = "localhost:5050"


def default_nick() -> str:
    """The login name if it makes a valid nick, else "player"."""
    try:
        name = getpass.getuser()
        return validate_nick(name[:24])
    except Exception:  # no login name, or one with characters nicks can't have
        return "player"


@dataclass
class ClientSettings:
    nick: str = ""
    server: str = DEFAULT_SERVER

    @classmethod
    def load(cls, path: Path | None = None) -> ClientSettings:
        path = path or config_dir() / SETTINGS_FILE
        settings = cls(nick=default_nick())
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return settings
        if isinstance(data, dict):
            if isinstance(data.get("nick"), str) and data["nick"]:
                settings.nick = data["nick"]
            if isinstance(data.get("server"), str) and data["server"]:
                settings.server = data["server"]
        return settings

    def save(self, path: Path | None = None) -> None:
        path = path or config_dir() / SETTINGS_FILE
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        except OSError as exc:  # a read-only home must not stop anyone from chatting
            log.warning("could not save settings to %s: %s", path, exc)


def parse_address(text: str, default_port: int = 5050) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` -> (host, port). Raises ValueError in plain words."""
    text = text.strip()
    if not text:
        raise ValueError("enter a server address, e.g. localhost:5050")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError("the server address has no host name")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{port_text!r} is not a port number (1-65535)")
    return host, int(port_text)


def parse_servers(text: str, default_port: int = 5050) -> list[tuple[str, int]]:
    """``a:5050,b:5050`` (the nodes of one cluster) -> [(host, port), ...], in order; one
    address is a list of one. Raises ValueError in plain words."""
    parts = [part for part in text.split(",") if part.strip()] or [text]
    return [parse_address(part, default_port) for part in parts]
