"""LAN discovery: the packet codec, the server table, and real sockets — on 127.0.0.1 only.

Nothing here sends to a multicast, broadcast or LAN address: every announcer targets
127.0.0.1 and every listener binds 127.0.0.1 (a unicast address, so no group is joined).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pygame
import pytest
from conftest import start_server
from hypothesis import given
from hypothesis import strategies as st
from wire import WireClient

from game_chat.client.app import ChatApp
from game_chat.client.config import ClientSettings
from game_chat.client.screens.chat import ChatScreen
from game_chat.client.screens.connect import ConnectScreen
from game_chat.client.ui.clipboard import MemoryClipboard
from game_chat.client.ui.fonts import fit
from game_chat.client.ui.server_list import ServerList
from game_chat.client.ui.theme import Theme
from game_chat.discovery import (
    Announcement,
    Announcer,
    BadPacket,
    DiscoveryConfig,
    DiscoveryListener,
    Pong,
    Probe,
    ServerEntry,
    ServerTable,
    decode,
    encode,
    is_loopback_host,
)
from game_chat.discovery.packet import MAGIC, MAX_NAME_CHARS, MAX_PACKET_BYTES, clean_name
from game_chat.server import ChatServer, ServerConfig
from game_chat.server.cli import build_parser, config_from_args

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
FONT_PATH = ROOT / "assets" / "fonts" / "NotoSans-Regular.ttf"


def announcement(**fields: object) -> Announcement:
    values: dict[str, object] = {
        "server_id": "abc123",
        "name": "Friday LAN",
        "port": 5050,
        "players": 3,
        "password": False,
        "protocol": 1,
        "interval": 1.5,
        **fields,
    }
    return Announcement(**values)  # type: ignore[arg-type]


def raw(fields: object) -> bytes:
    return MAGIC + json.dumps(fields).encode()


VALID = {
    "type": "announce",
    "id": "abc123",
    "name": "x",
    "port": 5050,
    "players": 0,
    "password": False,
    "protocol": 1,
}

# ----------------------------------------------------------------------- the packet codec


def test_announcement_round_trip() -> None:
    sent = announcement(password=True)
    data = encode(sent)
    assert data.startswith(MAGIC) and len(data) <= MAX_PACKET_BYTES
    assert decode(data) == sent


def test_probe_and_pong_round_trip() -> None:
    assert decode(encode(Probe("n0nce"))) == Probe("n0nce")
    assert decode(encode(Pong("n0nce"))) == Pong("n0nce")
    assert len(encode(Pong("a" * 32))) <= len(encode(Probe("a" * 32)))  # no amplification


def test_long_name_is_cut_to_fit_the_size_limit() -> None:
    data = encode(announcement(name="𝔚" * 10_000))
    assert len(data) <= MAX_PACKET_BYTES
    decoded = decode(data)
    assert isinstance(decoded, Announcement)
    assert len(decoded.name) <= MAX_NAME_CHARS


def test_names_from_the_network_are_made_safe_to_show() -> None:
    hostile = "Evil\u202eeman\u2066\x1b[31m red\x00\x07\n\tserver\u200f" + "!" * 200
    data = raw({**VALID, "name": hostile})
    decoded = decode(data)
    assert isinstance(decoded, Announcement)
    assert decoded.name.startswith("Evileman red server!!!")
    assert len(decoded.name) == MAX_NAME_CHARS and decoded.name.endswith("…")
    assert clean_name("  a \u2028 b  ") == "a b"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 40,
        b"GCLAN",  # magic cut short
        b"GCLAN\x02" + json.dumps(VALID).encode(),  # a future version
        b"XXLAN\x01" + json.dumps(VALID).encode(),  # wrong magic
        raw({**VALID, "name": "x" * MAX_PACKET_BYTES}),  # oversize
        MAGIC + b"{not json",
        MAGIC + b"\xff\xfe{}",  # not UTF-8
        MAGIC + b"[" * 400 + b"]" * 400,  # nesting, not an object
        raw([VALID]),
        raw("announce"),
        raw({**VALID, "type": "shutdown"}),
        raw({k: v for k, v in VALID.items() if k != "port"}),
        raw({**VALID, "port": -1}),
        raw({**VALID, "port": 0}),
        raw({**VALID, "port": 65_536}),
        raw({**VALID, "port": 5050.0}),
        raw({**VALID, "port": True}),
        raw({**VALID, "port": "5050"}),
        raw({**VALID, "players": -3}),
        raw({**VALID, "players": 10**30}),
        MAGIC + json.dumps(VALID).replace('"players": 0', '"players": 1e999').encode(),
        MAGIC + json.dumps(VALID).replace('"players": 0', '"players": NaN').encode(),
        raw({**VALID, "password": "no"}),
        raw({**VALID, "password": 0}),
        raw({**VALID, "protocol": -1}),
        raw({**VALID, "name": None}),
        raw({**VALID, "name": ["x"]}),
        raw({**VALID, "id": ""}),
        raw({**VALID, "id": "x" * 33}),
        raw({**VALID, "id": "a b"}),
        raw({**VALID, "interval": 0}),
        raw({**VALID, "interval": 10**9}),
        raw({**VALID, "interval": "1.5"}),
        raw({"type": "probe", "nonce": "../../etc"}),
        raw({"type": "pong"}),
    ],
)
def test_hostile_packets_are_rejected(data: bytes) -> None:
    with pytest.raises(BadPacket):
        decode(data)


def test_unknown_keys_are_ignored() -> None:
    assert isinstance(decode(raw({**VALID, "map": "de_dust", "extra": [1, 2]})), Announcement)


@given(st.binary(max_size=600))
def test_any_bytes_decode_or_raise_bad_packet(data: bytes) -> None:
    for candidate in (data, MAGIC + data):
        try:
            decode(candidate)
        except BadPacket:
            pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@given(st.dictionaries(st.sampled_from([*VALID, "interval", "nonce"]), json_values))
def test_any_json_object_decodes_or_raises_bad_packet(fields: dict[str, object]) -> None:
    for kind in ("announce", "probe", "pong"):
        try:
            packet = decode(raw({**fields, "type": kind}))
        except BadPacket:
            continue
        if isinstance(packet, Announcement):
            assert 1 <= packet.port <= 65_535 and packet.players >= 0
            assert len(packet.name) <= MAX_NAME_CHARS


@given(
    name=st.text(max_size=300),
    port=st.integers(1, 65_535),
    players=st.integers(0, 1_000_000),
    password=st.booleans(),
)
def test_valid_announcements_survive_the_round_trip(
    name: str, port: int, players: int, password: bool
) -> None:
    sent = announcement(name=name, port=port, players=players, password=password)
    data = encode(sent)
    assert len(data) <= MAX_PACKET_BYTES
    got = decode(data)
    assert isinstance(got, Announcement)
    assert (got.port, got.players, got.password) == (port, players, password)
    assert got.name == clean_name(got.name)


# ----------------------------------------------------------------------- the server table

SOURCE = ("192.0.2.7", 40000)  # TEST-NET: only ever a value here, never sent to


def test_entry_expires_after_five_missed_announcements() -> None:
    table = ServerTable()
    assert table.heard(announcement(), SOURCE, now=100.0)
    (entry,) = table.entries()
    assert (entry.address, entry.name, entry.players) == ("192.0.2.7:5050", "Friday LAN", 3)
    assert not table.expire(now=100.0 + 5 * 1.5 - 0.01)
    assert table.entries() == (entry,)
    assert table.expire(now=100.0 + 5 * 1.5 + 0.01)
    assert table.entries() == ()


def test_each_announcement_renews_the_entry() -> None:
    table = ServerTable()
    for n in range(10):
        table.heard(announcement(players=n), SOURCE, now=float(n))
        assert not table.expire(now=n + 7.0)
    assert table.entries()[0].players == 9


def test_expiry_follows_the_announced_interval() -> None:
    table = ServerTable()
    table.heard(announcement(interval=10.0), SOURCE, now=0.0)
    assert not table.expire(now=49.0)
    assert table.expire(now=51.0)


def test_a_server_heard_on_two_interfaces_is_listed_once() -> None:
    table = ServerTable()
    table.heard(announcement(), SOURCE, now=0.0)
    assert table.heard(announcement(players=4), ("198.51.100.9", 40000), now=0.1)
    (entry,) = table.entries()
    assert (entry.host, entry.players) == ("192.0.2.7", 4)


def test_ping_is_the_probe_round_trip() -> None:
    table = ServerTable(probe_every=2.0)
    table.heard(announcement(), SOURCE, now=10.0)
    [(probe, destination)] = table.probes_due(now=10.0)
    assert destination == SOURCE
    assert table.probes_due(now=10.5) == []  # one probe in flight at a time
    assert not table.pong(Pong("0" * 16), SOURCE, now=10.01)  # not our nonce
    assert not table.pong(Pong(probe.nonce), ("192.0.2.8", 40000), now=10.01)  # wrong peer
    assert table.pong(Pong(probe.nonce), SOURCE, now=10.012)
    assert table.entries()[0].ping_ms == 12.0
    assert not table.pong(Pong(probe.nonce), SOURCE, now=10.02)  # answered already
    assert table.probes_due(now=11.9) == []
    assert len(table.probes_due(now=12.0)) == 1


def test_the_table_is_bounded() -> None:
    table = ServerTable(max_servers=3)
    for n in range(10):
        table.heard(announcement(server_id=f"s{n}"), SOURCE, now=0.0)
    assert len(table.entries()) == 3


# ----------------------------------------------------------------------- real sockets


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def listener() -> Iterator[DiscoveryListener]:
    with DiscoveryListener(LOOPBACK, 0) as found:
        yield found


def wait_until(
    listener: DiscoveryListener, condition: Callable[[], bool], timeout: float = 5.0
) -> None:
    """Wait on the listener's changes (no polling sleep) until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        version = listener.version
        if condition():
            return
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"condition not reached; servers: {listener.servers()}"
        listener.wait_for_change(version, min(remaining, 0.3))


def test_listener_ignores_garbage_and_expires_with_its_clock() -> None:
    clock = FakeClock()
    with (
        DiscoveryListener(LOOPBACK, 0, clock=clock) as listener,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        target = listener.address_bound
        for junk in (b"", b"\xff" * 2000, raw({**VALID, "port": -1}), MAGIC + b"[" * 500):
            sender.sendto(junk, target)
        sender.sendto(encode(announcement(interval=1.0)), target)
        wait_until(listener, lambda: len(listener.servers()) == 1)
        (entry,) = listener.servers()
        assert entry.host == LOOPBACK and entry.port == 5050
        clock.now += 4.9  # four announcements missed: still listed
        time.sleep(0.3)  # no event to wait on: the listener's tick is 0.25 s
        assert len(listener.servers()) == 1
        clock.now += 0.2
        wait_until(listener, lambda: listener.servers() == ())


def test_a_real_server_is_found_then_expires(listener: DiscoveryListener) -> None:
    port = listener.address_bound[1]
    server = start_server(
        server_name="Test \u202eserver",
        password="secret",
        announce=True,
        announce_addresses=(LOOPBACK,),
        announce_port=port,
        announce_interval=0.05,
    )
    try:
        wait_until(listener, lambda: len(listener.servers()) == 1)
        (entry,) = listener.servers()
        assert entry.name == "Test server"
        assert (entry.host, entry.port) == (LOOPBACK, server.address[1])
        assert entry.password and entry.players == 0 and entry.protocol == 1
        alice = WireClient(server.address)
        alice.send_json(type="hello", nick="alice", version=1, password="secret")
        assert alice.recv_json()["type"] == "welcome"
        wait_until(listener, lambda: listener.servers()[0].players == 1)
        wait_until(listener, lambda: listener.servers()[0].ping_ms is not None)
        assert 0 <= (listener.servers()[0].ping_ms or 0) < 1000
    finally:
        server.shutdown()
    stopped = time.monotonic()
    wait_until(listener, lambda: listener.servers() == ())
    assert time.monotonic() - stopped < 2


def test_the_announcer_answers_probes_and_stops(listener: DiscoveryListener) -> None:
    announcer = Announcer(
        lambda: announcement(interval=0.05),
        (LOOPBACK,),
        listener.address_bound[1],
        0.05,
        bind_address=LOOPBACK,
    )
    announcer.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as prober:
            prober.settimeout(5)
            prober.sendto(b"garbage", announcer.address)
            prober.sendto(encode(Probe("p1")), announcer.address)
            data, source = prober.recvfrom(1024)
            assert decode(data) == Pong("p1") and source == announcer.address
        wait_until(listener, lambda: len(listener.servers()) == 1)
    finally:
        announcer.stop()
    assert not announcer.running
    wait_until(listener, lambda: listener.servers() == ())


def test_a_provider_crash_does_not_end_the_announcements(listener: DiscoveryListener) -> None:
    calls = []

    def flaky() -> Announcement:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return announcement()

    announcer = Announcer(flaky, (LOOPBACK,), listener.address_bound[1], 0.02)
    announcer.start()
    try:
        wait_until(listener, lambda: len(listener.servers()) == 1)
    finally:
        announcer.stop()


# ----------------------------------------------------------------------- configuration


def test_announcing_is_on_by_default_only_off_loopback() -> None:
    def config(*argv: str) -> ServerConfig:
        return config_from_args(build_parser().parse_args(["--no-history", *argv]))

    assert config("--host", "0.0.0.0").announce  # only built here, never started
    assert config("--host", "192.0.2.1").announce
    assert not config("--host", "127.0.0.1").announce
    assert not config("--host", "localhost").announce
    assert not config("--host", "0.0.0.0", "--no-announce").announce
    explicit = config("--host", "127.0.0.1", "--announce-address", LOOPBACK)
    assert explicit.announce and explicit.announce_addresses == (LOOPBACK,)
    custom = config("--announce-port", "6000", "--announce-interval", "3")
    assert (custom.announce_port, custom.announce_interval) == (6000, 3.0)
    assert config().announce_addresses == ("239.255.50.50",)
    assert is_loopback_host("::1") and not is_loopback_host("::")


@pytest.mark.parametrize(
    "fields",
    [
        {"announce_addresses": ("example.com",)},
        {"announce_addresses": ("::1",)},
        {"announce_port": 0},
        {"announce_interval": 0},
    ],
)
def test_bad_announce_settings_are_refused_before_starting(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ChatServer(ServerConfig(host=LOOPBACK, port=0, announce=True, **fields))  # type: ignore[arg-type]


def test_run_server_announces_where_told(listener: DiscoveryListener, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_server.py"),
            *("--host", LOOPBACK, "--port", "0", "--no-history", "--name", "cli"),
            *("--announce-address", LOOPBACK, "--announce-port", str(listener.address_bound[1])),
            *("--announce-interval", "0.1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().rsplit(":", 1)[1])
        assert "announcing to 127.0.0.1:" in process.stdout.readline()
        wait_until(listener, lambda: len(listener.servers()) == 1)
        assert listener.servers()[0].address == f"{LOOPBACK}:{port}"
        assert listener.servers()[0].name == "cli"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()


# ----------------------------------------------------------------------- the window


@pytest.fixture
def display() -> Iterator[pygame.font.Font]:
    pygame.display.init()
    pygame.font.init()
    yield pygame.font.Font(str(FONT_PATH), 16)
    pygame.quit()


def entry(name: str, host: str, password: bool = False, ping: float | None = 3.2) -> ServerEntry:
    return ServerEntry("id" + host[-1], name, host, 5050, 2, password, 1, ping)


SERVERS = (
    entry("Alpha", "192.0.2.1"),
    entry("Bravo " * 30, "192.0.2.2", password=True, ping=None),
)


def dispatch(handler: Callable[[pygame.event.Event], bool]) -> list[bool]:
    return [handler(event) for event in pygame.event.get()]


def click(pos: tuple[int, int]) -> None:
    pygame.event.post(pygame.event.Event(pygame.MOUSEMOTION, {"pos": pos, "rel": (0, 0)}))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, {"pos": pos, "button": 1}))


@pytest.mark.ui
def test_server_list_click_picks_a_row(display: pygame.font.Font) -> None:
    picked: list[ServerEntry] = []
    widget = ServerList(pygame.Rect(20, 300, 600, 200), Theme(), display, picked.append)
    widget.set_servers(SERVERS)
    widget.update(0.016)
    click(widget.row_rect(1).center)
    assert dispatch(widget.handle_event) == [False, True]
    assert picked == [SERVERS[1]]
    click((widget.rect.left + 5, widget.rect.top + 2))  # the header is no row
    assert dispatch(widget.handle_event) == [False, False]
    click(widget.row_rect(2).center)  # below the last row
    assert dispatch(widget.handle_event) == [False, False]
    assert picked == [SERVERS[1]]


@pytest.mark.ui
def test_server_list_draws_without_changing_state(display: pygame.font.Font) -> None:
    widget = ServerList(pygame.Rect(0, 0, 600, 200), Theme(), display, lambda _e: None)
    widget.set_servers(SERVERS)
    widget.update(0.016)
    click(widget.row_rect(0).center)
    dispatch(widget.handle_event)
    before = (widget.hovered, widget.scroll, widget.servers, widget._surface)
    surface = pygame.Surface((600, 200))
    widget.draw(surface)
    widget.draw(surface)
    assert (widget.hovered, widget.scroll, widget.servers, widget._surface) == before
    # The lock is drawn only on the password row, in the lock column.
    lock_x = widget._columns(600)[3]
    row0, row1 = widget.row_rect(0), widget.row_rect(1)
    lock_width = display.get_linesize()

    def lock_pixels(row: pygame.Rect) -> int:
        return sum(
            surface.get_at((x, y))[:3] == Theme().text
            for x in range(lock_x, lock_x + lock_width)
            for y in range(row.top, row.bottom)
        )

    assert lock_pixels(row1) > 10 and lock_pixels(row0) == 0


@pytest.mark.ui
def test_long_names_are_cut_to_the_column(display: pygame.font.Font) -> None:
    cut = fit(display, "W" * 200, 100)
    assert cut.endswith("…") and display.size(cut)[0] <= 100
    assert fit(display, "ok", 100) == "ok"


@pytest.mark.ui
def test_connect_screen_click_fills_the_address(display: pygame.font.Font) -> None:
    servers = [SERVERS]
    screen = ConnectScreen(
        (960, 640),
        Theme(),
        display,
        display,
        MemoryClipboard(),
        nick="alice",
        server="",
        on_join=lambda *_: None,
        on_host=lambda *_: None,
        servers=lambda: servers[0],
    )
    screen.update(0.016)
    assert screen.server_list is not None and screen.server_list.servers == SERVERS
    click(screen.server_list.row_rect(0).center)
    dispatch(screen.handle_event)
    assert screen.server_box.text == "192.0.2.1:5050"
    click(screen.server_list.row_rect(1).center)
    dispatch(screen.handle_event)
    assert screen.server_box.text == "192.0.2.2:5050"
    assert screen.password_box.focused  # a locked server: the password is next
    servers[0] = ()
    screen.update(0.016)
    assert screen.server_list.servers == ()


@pytest.mark.ui
def test_window_lists_an_announced_server_and_joins_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAME_CHAT_CONFIG_DIR", str(tmp_path))
    pygame.display.init()
    pygame.font.init()
    app = ChatApp(ClientSettings(nick="alice", server=""), discovery=DiscoveryConfig(LOOPBACK, 0))
    server: ChatServer | None = None
    try:
        listener = app._listener
        assert listener is not None and isinstance(app.screen, ConnectScreen)
        server = start_server(
            server_name="Lobby",
            announce=True,
            announce_addresses=(LOOPBACK,),
            announce_port=listener.address_bound[1],
            announce_interval=0.05,
        )
        wait_until(listener, lambda: len(listener.servers()) == 1)
        app.frame(0.016)
        screen = app.screen
        assert screen.server_list is not None
        click(screen.server_list.row_rect(0).center)
        app.frame(0.016)
        assert screen.server_box.text == f"{LOOPBACK}:{server.address[1]}"
        pygame.event.post(
            pygame.event.Event(pygame.KEYDOWN, {"key": pygame.K_RETURN, "mod": 0, "unicode": ""})
        )
        deadline = time.monotonic() + 5
        while not isinstance(app.screen, ChatScreen):
            assert time.monotonic() < deadline
            app.frame(0.016)
            time.sleep(0.005)
        assert app._listener is None and not listener._thread.is_alive()  # stopped on leaving
    finally:
        app.close()
        if server is not None:
            server.shutdown()
        pygame.quit()


@pytest.mark.ui
def test_the_server_list_says_when_nothing_was_found(display: pygame.font.Font) -> None:
    from game_chat.client.ui.server_list import NOTHING_FOUND, SEARCHING

    servers = ServerList(pygame.Rect(0, 0, 400, 200), Theme(), display, lambda entry: None)
    assert servers.status == SEARCHING
    servers.update(4.0)
    assert servers.status == SEARCHING
    assert servers.update(2.0) and servers.status == NOTHING_FOUND


@pytest.mark.ui
def test_a_tls_server_shows_as_tls_in_the_list(display: pygame.font.Font) -> None:
    """The address column says what joining will use: tls://HOST:PORT for a TLS server."""
    import dataclasses

    plain = entry("Alpha", "192.0.2.1")
    secure = dataclasses.replace(plain, tls=True)
    shots = []
    for servers in ((plain,), (secure,)):
        widget = ServerList(pygame.Rect(0, 0, 600, 200), Theme(), display, lambda _e: None)
        widget.set_servers(servers)
        widget.update(0.016)
        surface = pygame.Surface((600, 200))
        widget.draw(surface)
        address_x, players_x = widget._columns(600)[1:3]
        row = widget.row_rect(0)
        area = pygame.Rect(address_x, row.top, players_x - address_x, row.height)
        shots.append(pygame.image.tobytes(surface.subsurface(area), "RGB"))
    assert secure.url == "tls://192.0.2.1:5050" and shots[0] != shots[1]
