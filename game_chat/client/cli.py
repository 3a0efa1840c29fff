"""``python run_client.py``: the chat window, or with ``--no-gui`` a terminal chat."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..server import DEFAULT_PORT, ChatServer
from .cli_support import host_local_server
from .config import ClientSettings, parse_servers
from .net import ChatClient


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_client.py",
        description="The game_chat client. With no arguments it opens the connect screen.",
    )
    parser.add_argument(
        "--server",
        metavar="HOST[:PORT]",
        help="join this server directly; several (a:5050,b:5050), the nodes of one cluster: "
        "the next is tried when one fails",
    )
    parser.add_argument("--nick", help="your nickname (default: the last one used)")
    parser.add_argument("--password", help="server password, if it has one")
    parser.add_argument(
        "--local-server",
        action="store_true",
        help="host a server on this machine and join it",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port for --local-server (default 5050)"
    )
    parser.add_argument(
        "--no-gui", action="store_true", help="line-based chat on stdin/stdout, no window"
    )
    parser.add_argument(
        "--no-discovery",
        action="store_true",
        help="do not listen for servers on the LAN (and do not announce one hosted here)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging threshold")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    settings = ClientSettings.load()
    nick = args.nick or settings.nick
    server: ChatServer | None = None
    target: tuple[str, int] | None = None
    alternates: list[tuple[str, int]] = []  # further nodes of a cluster (--server a,b)
    try:
        if args.local_server:
            try:
                server = host_local_server(args.port)
            except OSError as exc:
                parser.exit(1, f"run_client.py: error: cannot host on port {args.port}: {exc}\n")
            target = ("127.0.0.1", server.address[1])
        elif args.server:
            try:
                target, *alternates = parse_servers(args.server)
            except ValueError as exc:
                parser.error(str(exc))
        if args.no_gui:
            if target is None:
                parser.error("--no-gui needs --server HOST[:PORT] or --local-server")
            from .terminal import run_terminal

            client = ChatClient(target[0], target[1], nick, args.password, alternates=alternates)
            return run_terminal(client, sys.stdin, sys.stdout)
        from ..discovery import DiscoveryConfig
        from .app import run_window  # imports pygame: only when a window is wanted

        return run_window(
            settings,
            target=target,
            nick=nick,
            password=args.password,
            hosted=server,
            discovery=None if args.no_discovery else DiscoveryConfig(),
            alternates=alternates,
        )
    finally:
        if server is not None:
            server.shutdown()
