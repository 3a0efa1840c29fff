"""``python run_client.py``: the chat window, or with ``--no-gui`` a terminal chat."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..protocol.tls import normalize_fingerprint
from ..server import DEFAULT_PORT, ChatServer
from .cli_support import host_local_server
from .config import ClientSettings, parse_servers
from .net import ChatClient
from .tls import TlsOptions, split_scheme


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_client.py",
        description="The game_chat client. With no arguments it opens the connect screen.",
    )
    parser.add_argument(
        "--server",
        metavar="[tls://]HOST[:PORT]",
        help="join this server directly (tls://: encrypted); several (a:5050,b:5050), the "
        "nodes of one cluster: the next is tried when one fails",
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
    tls = parser.add_argument_group("encryption (TLS: docs/SECURITY.md)")
    tls.add_argument(
        "--tls",
        action="store_true",
        help="use TLS (as tls:// before --server); with --local-server, host with TLS "
        "(a self-signed certificate kept in the data directory)",
    )
    tls.add_argument(
        "--tls-ca", metavar="FILE", help="also trust certificates signed by this CA (PEM)"
    )
    tls.add_argument(
        "--accept-fingerprint",
        metavar="SHA256",
        help="trust this certificate (its SHA-256 fingerprint) for the server although another "
        "one was trusted before: after checking with the server's host that it changed",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging threshold")
    return parser


def tls_options(args: argparse.Namespace, secure: bool) -> TlsOptions | None:
    """The TLS options the flags ask for (None: clear text); ValueError in plain words."""
    if args.accept_fingerprint:
        args.accept_fingerprint = normalize_fingerprint(args.accept_fingerprint)
    if not secure:
        if args.accept_fingerprint or args.tls_ca:
            raise ValueError("--accept-fingerprint and --tls-ca are for TLS (tls:// or --tls)")
        return None
    if args.tls_ca and not Path(args.tls_ca).is_file():
        raise ValueError(f"--tls-ca {args.tls_ca}: no such file")
    return TlsOptions(ca_file=args.tls_ca, accept_fingerprint=args.accept_fingerprint)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    settings = ClientSettings.load()
    nick = args.nick or settings.nick
    server: ChatServer | None = None
    target: tuple[str, int] | None = None
    alternates: list[tuple[str, int]] = []  # further nodes of a cluster (--server a,b)
    secure = args.tls
    try:
        if args.local_server:
            try:
                server = host_local_server(args.port, tls=args.tls)
            except OSError as exc:
                parser.exit(1, f"run_client.py: error: cannot host on port {args.port}: {exc}\n")
            except ValueError as exc:  # no certificate could be made
                parser.exit(1, f"run_client.py: error: {exc}\n")
            target = ("127.0.0.1", server.address[1])
        elif args.server:
            try:
                scheme, addresses = split_scheme(args.server)
                target, *alternates = parse_servers(addresses)
            except ValueError as exc:
                parser.error(str(exc))
            secure = secure or scheme
        try:
            tls = tls_options(args, secure)
        except ValueError as exc:
            parser.error(str(exc))
        if server is not None and server.tls is not None and tls is not None:
            tls = replace(tls, expected_fingerprint=server.tls.fingerprint)  # our own
        if args.no_gui:
            if target is None:
                parser.error("--no-gui needs --server HOST[:PORT] or --local-server")
            from .terminal import run_terminal

            client = ChatClient(
                target[0], target[1], nick, args.password, alternates=alternates, tls=tls or False
            )
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
            tls=tls,
        )
    finally:
        if server is not None:
            server.shutdown()
