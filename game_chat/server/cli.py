"""``python run_server.py`` / ``python -m game_chat.server``: the headless server launch."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ..discovery.interfaces import DEFAULT_GROUP, is_loopback_host
from ..discovery.interfaces import DEFAULT_PORT as DEFAULT_ANNOUNCE_PORT
from ..protocol.limits import DEFAULT_MAX_FRAME_BYTES, Limits
from .history import SYNC_MODES, HistoryError, default_history_path
from .moderation import hash_password
from .netinfo import lan_addresses
from .server import DEFAULT_PORT, ChatServer, ServerConfig
from .tls import TlsSetupError, default_tls_dir, ensure_self_signed

log = logging.getLogger("game_chat.server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_server.py", description="Run the game_chat server (no display needed)."
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 5050)")
    parser.add_argument("--name", default="game_chat", help="server name shown to clients")
    parser.add_argument(
        "--max-clients", type=int, default=1000, help="connections served at once (default 1000)"
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        default=DEFAULT_MAX_FRAME_BYTES,
        help=f"largest frame payload accepted from a client (default {DEFAULT_MAX_FRAME_BYTES})",
    )
    parser.add_argument(
        "--max-text-chars", type=int, default=1000, help="longest chat line (default 1000)"
    )
    parser.add_argument(
        "--max-nick-chars", type=int, default=24, help="longest nickname (default 24)"
    )
    parser.add_argument(
        "--send-queue-bytes",
        type=int,
        default=1024 * 1024,
        help="bytes queued for a client before it is disconnected (default 1 MiB)",
    )
    parser.add_argument(
        "--sender-threads",
        type=int,
        default=2,
        help="threads writing to client sockets (default 2)",
    )
    parser.add_argument(
        "--max-per-address",
        type=int,
        default=16,
        help="connections at once from one address; this machine's own not counted (default 16)",
    )
    parser.add_argument(
        "--max-rooms-per-member",
        type=int,
        default=20,
        help="rooms one member may be in at once (default 20)",
    )
    parser.add_argument(
        "--max-rooms", type=int, default=1000, help="rooms on the server in all (default 1000)"
    )
    parser.add_argument(
        "--plain-grace",
        type=float,
        default=2.0,
        help="seconds after which a connection that has said nothing becomes a plain guest, "
        "as listen-first tutorial clients expect; 0: never (default 2)",
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=60.0,
        help="seconds of silence after which a rich client is pinged; 0: never (default 60)",
    )
    parser.add_argument(
        "--ping-timeout",
        type=float,
        default=30.0,
        help="seconds a pinged client has to answer before it is dropped (default 30)",
    )
    flood = parser.add_argument_group("flood limits (docs/PROTOCOL.md 6.5)")
    flood.add_argument(
        "--chat-burst",
        type=int,
        default=20,
        help="requests, counted in chat lines, a connection may send at once (default 20)",
    )
    flood.add_argument(
        "--chat-per-minute",
        type=int,
        default=120,
        help="chat lines' worth of requests a minute after the burst; 0: no limit (default 120)",
    )
    flood.add_argument(
        "--data-burst", type=int, default=60, help="member data updates at once (default 60)"
    )
    flood.add_argument(
        "--data-per-second",
        type=int,
        default=30,
        help="member data updates a second after the burst; 0: no limit (default 30)",
    )
    flood.add_argument(
        "--flood-seconds",
        type=int,
        default=20,
        help="a connection this many seconds of refill over its budget is disconnected "
        "(excess flood); 0: never (default 20)",
    )
    flood.add_argument(
        "--flood-ban-minutes",
        type=float,
        default=1.0,
        help="after an excess-flood kick, its nick (and a remote address) is banned this long; "
        "0: no ban (default 1)",
    )
    flood.add_argument(
        "--request-cost",
        action="append",
        metavar="TYPE=COST",
        help="what a request type costs in chat lines, e.g. nick=8; repeat for several",
    )
    flood.add_argument(
        "--oper-wait-max",
        type=int,
        default=60,
        help="longest wait after failed /oper attempts, in seconds (default 60)",
    )
    flood.add_argument(
        "--no-flood-limits",
        action="store_true",
        help="no request or member-data budgets (for benchmarks)",
    )
    history = parser.add_argument_group("history")
    history.add_argument(
        "--history-db",
        metavar="PATH",
        help=f"SQLite file for history and bans (default {default_history_path()})",
    )
    history.add_argument(
        "--no-history", action="store_true", help="keep history and bans in memory only"
    )
    history.add_argument(
        "--history-days", type=float, default=30, help="days of history kept (default 30)"
    )
    history.add_argument(
        "--history-replay",
        type=int,
        default=100,
        help="messages replayed when joining a room (default 100)",
    )
    history.add_argument("--store-private", action="store_true", help="also store private messages")
    history.add_argument(
        "--history-sync",
        choices=SYNC_MODES,
        default="normal",
        help="normal: an acked line survives the server being killed; full: also a power cut "
        "(an fsync per commit) (default normal)",
    )
    history.add_argument(
        "--cluster",
        metavar="URL",
        help="redis://HOST:PORT/DB (rediss:// for TLS, a password in the URL): be one node of "
        "the chat every server started with this URL makes; room lines and their history "
        "live in Redis/Valkey (in progress: docs/SCALING.md says what works)",
    )
    history.add_argument(
        "--cluster-ttl",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a node silent this long is dead to the others: its members leave the lists and "
        "their nicks are free (default 10)",
    )
    access = parser.add_argument_group("access")
    access.add_argument("--password", help="password every client must give")
    access.add_argument("--oper-password", help="password of /oper (operators)")
    access.add_argument(
        "--config",
        metavar="FILE",
        help="JSON file with defaults for these flags, e.g. "
        '{"oper_password": "pbkdf2_sha256$..."} (hash one with --hash-password)',
    )
    access.add_argument(
        "--hash-password",
        metavar="PASSWORD",
        help="print a hash of PASSWORD for the config file, and exit",
    )
    add_tls_flags(parser)
    add_irc_flags(parser)
    add_discovery_flags(parser)
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (default INFO)",
    )
    return parser


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group("encryption (TLS: docs/SECURITY.md)")
    tls.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="serve TLS on the chat port with this certificate (PEM, its chain after it); "
        "reloaded with the key on SIGHUP",
    )
    tls.add_argument(
        "--tls-key",
        metavar="FILE",
        help="the certificate's private key (PEM; default: in --tls-cert)",
    )
    tls.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="serve TLS with a self-signed certificate made once and kept in the server's data "
        "directory (for a LAN: clients trust it on first use; the banner prints its fingerprint)",
    )
    tls.add_argument(
        "--plain-port",
        type=int,
        metavar="PORT",
        help="with TLS: also serve clear text on this port (default: TLS only)",
    )


def tls_settings(args: argparse.Namespace) -> dict[str, object]:
    """ServerConfig fields for the TLS flags; --tls-self-signed makes its certificate in the
    data directory the first time (TlsSetupError in plain words if it cannot)."""
    if args.tls_self_signed and args.tls_cert:
        raise TlsSetupError("give --tls-self-signed or --tls-cert, not both")
    if args.tls_key and not args.tls_cert:
        raise TlsSetupError("--tls-key needs --tls-cert")
    cert, key = args.tls_cert, args.tls_key
    if args.tls_self_signed:
        directory = default_tls_dir()
        cert_path, key_path, made = ensure_self_signed(directory, args.name)
        if made:
            log.info("made a self-signed TLS certificate: %s", cert_path)
        cert, key = str(cert_path), str(key_path)
    if args.plain_port is not None and cert is None:
        raise TlsSetupError("--plain-port is the clear-text port beside TLS: it needs TLS")
    if args.irc_tls_port is not None and cert is None:
        raise TlsSetupError(
            "--irc-tls-port serves IRC over TLS with the chat port's certificate: it needs TLS "
            "(--tls-self-signed or --tls-cert)"
        )
    return {
        "tls_cert": cert,
        "tls_key": key,
        "plain_port": args.plain_port,
        "irc_tls_port": args.irc_tls_port,
    }


def add_irc_flags(parser: argparse.ArgumentParser) -> None:
    irc = parser.add_argument_group("IRC clients (docs/IRC.md)")
    irc.add_argument(
        "--irc-port",
        type=int,
        metavar="PORT",
        help="also serve IRC clients (HexChat, WeeChat, bots, bridges) on this port, in the same "
        "rooms (default: no IRC; 6667 is IRC's usual port)",
    )
    irc.add_argument(
        "--irc-tls-port",
        type=int,
        metavar="PORT",
        help="with TLS: also serve IRC clients over TLS on this port, with the same certificate "
        "(default: none; 6697 is IRC over TLS's usual port)",
    )
    irc.add_argument(
        "--irc-host",
        metavar="HOST",
        help="the address the IRC ports listen on (default: --host)",
    )


def add_discovery_flags(parser: argparse.ArgumentParser) -> None:
    lan = parser.add_argument_group("LAN discovery (docs/DISCOVERY.md)")
    lan.add_argument(
        "--announce-address",
        action="append",
        metavar="IPV4",
        help=f"where to announce: a multicast group (sent out of every interface) or a unicast "
        f"or broadcast address; repeat for several (default {DEFAULT_GROUP}). Giving one "
        "announces even when --host is a loopback address",
    )
    lan.add_argument(
        "--announce-port",
        type=int,
        default=DEFAULT_ANNOUNCE_PORT,
        help=f"UDP port announcements go to (default {DEFAULT_ANNOUNCE_PORT})",
    )
    lan.add_argument(
        "--announce-interval",
        type=float,
        default=1.5,
        help="seconds between announcements (default 1.5)",
    )
    lan.add_argument(
        "--no-announce",
        action="store_true",
        help="do not announce (default: announce unless --host is a loopback address)",
    )


def discovery_settings(args: argparse.Namespace) -> dict[str, object]:
    """ServerConfig fields for the discovery flags: on by default only off loopback."""
    wanted = bool(args.announce_address) or not is_loopback_host(args.host)
    return {
        "announce": wanted and not args.no_announce,
        "announce_addresses": tuple(args.announce_address or (DEFAULT_GROUP,)),
        "announce_port": args.announce_port,
        "announce_interval": args.announce_interval,
    }


def config_from_args(
    args: argparse.Namespace, tls: dict[str, object] | None = None
) -> ServerConfig:
    """The config the flags ask for; ``tls``: :func:`tls_settings` (none: no TLS)."""
    history_db = None if args.no_history else (args.history_db or str(default_history_path()))
    return ServerConfig(
        history_db=history_db,
        history_days=args.history_days,
        history_replay=args.history_replay,
        store_private=args.store_private,
        history_sync=args.history_sync,
        cluster=args.cluster,
        cluster_ttl=args.cluster_ttl,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        max_per_address=args.max_per_address,
        max_rooms_per_member=args.max_rooms_per_member,
        max_rooms=args.max_rooms,
        plain_grace=args.plain_grace or None,
        flood_ban_minutes=args.flood_ban_minutes,
        password=args.password,
        oper_password=args.oper_password,
        host=args.host,
        port=args.port,
        server_name=args.name,
        max_clients=args.max_clients,
        limits=Limits(
            max_frame_bytes=args.max_frame_bytes,
            max_text_chars=args.max_text_chars,
            max_nick_chars=args.max_nick_chars,
            chat_burst=args.chat_burst,
            chat_per_minute=0 if args.no_flood_limits else args.chat_per_minute,
            data_burst=args.data_burst,
            data_per_second=0 if args.no_flood_limits else args.data_per_second,
            flood_seconds=args.flood_seconds,
            oper_wait_max=args.oper_wait_max,
            costs=request_costs(args.request_cost),
        ),
        send_queue_bytes=args.send_queue_bytes,
        sender_threads=args.sender_threads,
        irc_port=args.irc_port,
        irc_host=args.irc_host,
        **discovery_settings(args),  # type: ignore[arg-type]
        **(tls or {}),  # type: ignore[arg-type]
    )


def request_costs(items: list[str] | None) -> dict[str, float]:
    """--request-cost TYPE=COST, repeated, as a dict (ValueError for a malformed one)."""
    costs = {}
    for item in items or ():
        kind, _, value = item.partition("=")
        try:
            costs[kind.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--request-cost wants TYPE=NUMBER, not {item!r}") from None
    return costs


def banner(server: ChatServer) -> str:
    host, port = server.address
    lines = [f"game_chat server listening on {host}:{port}"]
    scheme = "tls://" if server.tls is not None else ""
    if host in ("0.0.0.0", "::"):
        addresses = lan_addresses()
        if addresses:
            lines.append(
                "clients on your network can connect to: "
                + ", ".join(f"{scheme}{a}:{port}" for a in addresses)
            )
        lines.append(f"on this machine: {scheme}localhost:{port}")
    if server.tls is not None:
        lines.append(f"TLS certificate SHA-256 fingerprint: {server.tls.fingerprint}")
        if server.config.tls_cert and Path(server.config.tls_cert).parent == default_tls_dir():
            lines.append(
                "self-signed: clients trust it on first use; tell players the fingerprint "
                "above so they can compare"
            )
        lines.append("SIGHUP reloads the certificate and key")
    if server.config.plain_port is not None:
        lines.append(f"clear text (no TLS) on port {server.plain_address[1]}")
    if server.config.irc_port is not None:
        lines.append(f"IRC clients (no TLS) on port {server.irc_address[1]}")
    if server.config.irc_tls_port is not None:
        lines.append(f"IRC clients over TLS on port {server.irc_tls_address[1]}")
    announcer = server.announcer
    if announcer is not None and announcer.running:
        targets = ", ".join(f"{t}:{announcer.port}" for t in announcer.targets)
        lines.append(f"announcing to {targets} every {announcer.interval:g} s (--no-announce)")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line flags, with defaults taken from --config FILE when given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as file:
                defaults = json.load(file)
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read --config {args.config}: {exc}")
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(defaults) - known)
        if not isinstance(defaults, dict) or unknown:
            parser.error(f"unknown keys in {args.config}: {', '.join(unknown)}")
        parser.set_defaults(**defaults)
        args = parser.parse_args(argv)  # flags given on the command line still win
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.hash_password is not None:
        print(hash_password(args.hash_password))
        return 0
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        server = ChatServer(config_from_args(args, tls_settings(args)))
        server.start()
    except (ValueError, HistoryError) as exc:
        print(f"run_server.py: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"port {args.port} is already in use (is another server running?)"
        else:
            message = f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        print(f"run_server.py: error: {message}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    reload = threading.Event()

    def on_reload(_signum: int, _frame: object) -> None:
        reload.set()  # read by the loop below, not in the handler

    # Handlers first: whoever reads the banner may signal us at once.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if server.tls is not None and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_reload)
    print(banner(server), flush=True)
    # Wake up regularly so signal handlers run promptly on every platform.
    while not stop.wait(0.2):
        if reload.is_set():
            reload.clear()
            log.info("received SIGHUP: reloading the TLS certificate")
            server.reload_tls()
    server.shutdown()
    log.info("server stopped")
    return 0
