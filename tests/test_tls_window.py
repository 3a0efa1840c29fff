"""TLS in the client's views: the connect screen's "Secure (TLS)" box and "Trust the new
certificate" button (real pygame events, dummy driver), the window joining a TLS server found
on the LAN, the overlay and the terminal showing the first-use notice, and the refusal."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pygame
import pytest
from conftest import start_server

from game_chat.client import ChatClient, ChatOverlay
from game_chat.client.app import ChatApp
from game_chat.client.cli import build_parser, tls_options
from game_chat.client.config import ClientSettings
from game_chat.client.known_servers import KnownServers
from game_chat.client.model import LogLine
from game_chat.client.screens.chat import ChatScreen
from game_chat.client.screens.connect import ConnectScreen
from game_chat.client.terminal import run_terminal
from game_chat.client.tls import TlsOptions, split_scheme
from game_chat.client.ui.clipboard import MemoryClipboard
from game_chat.client.ui.theme import Theme
from game_chat.discovery import DiscoveryConfig
from game_chat.server import ChatServer
from game_chat.server.tls import ensure_self_signed

pytestmark = pytest.mark.ui
WRONG = ":".join(["CD"] * 32)


@pytest.fixture(autouse=True)
def display(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pygame.Surface]:
    monkeypatch.setenv("GAME_CHAT_CONFIG_DIR", str(tmp_path / "config"))
    pygame.display.init()
    pygame.font.init()
    yield pygame.display.set_mode((640, 400))
    pygame.quit()


@pytest.fixture
def self_signed(tmp_path: Path) -> Iterator[ChatServer]:
    cert, key, _ = ensure_self_signed(tmp_path / "data", "test")
    server = start_server(tls_cert=str(cert), tls_key=str(key))
    try:
        yield server
    finally:
        server.shutdown()


def click(pos: tuple[int, int]) -> None:
    pygame.event.post(pygame.event.Event(pygame.MOUSEMOTION, {"pos": pos, "rel": (0, 0)}))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, {"pos": pos, "button": 1}))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, {"pos": pos, "button": 1}))


def run_until(app: ChatApp, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        app.frame(0.016)
        time.sleep(0.005)


def screen_for(server: str = "localhost:5050", size: tuple[int, int] = (960, 640)) -> ConnectScreen:
    font = pygame.font.Font(None, 22)
    return ConnectScreen(
        size, Theme(), font, font, MemoryClipboard(), nick="alice", server=server,
        on_join=lambda *_: None, on_host=lambda *_: None,
    )  # fmt: skip


def pump(screen: ConnectScreen) -> None:
    for event in pygame.event.get():
        screen.handle_event(event)
    screen.update(0.016)


def lines(overlay: ChatOverlay) -> list[LogLine]:
    return overlay.visible_lines()


def log_texts(app: ChatApp) -> list[str]:
    assert isinstance(app.screen, ChatScreen)
    return [line.text for line in app.screen.log.visible_lines()]


# --- the connect screen ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [(400, 300), (960, 640)])
def test_the_secure_box_is_the_addresss_tls_prefix(size: tuple[int, int]) -> None:
    screen = screen_for("192.168.1.20:5050", size)
    screen.update(0.016)
    window = pygame.Rect((0, 0), size)
    assert window.contains(screen.tls_button.rect)
    assert not screen.tls_button.rect.colliderect(screen.server_box.rect)
    assert screen.tls_button.label.startswith("[ ]")
    click(screen.tls_button.rect.center)
    pump(screen)
    assert screen.server_box.text == "tls://192.168.1.20:5050"
    assert screen.tls_button.label.startswith("[x]") and screen.secure
    click(screen.tls_button.rect.center)
    pump(screen)
    assert screen.server_box.text == "192.168.1.20:5050" and not screen.secure
    screen.server_box.text = "TLS://example.org"  # typed: the box follows
    screen.update(0.016)
    assert screen.tls_button.label.startswith("[x]")


def test_trust_the_new_certificate_takes_the_host_buttons_place(display: pygame.Surface) -> None:
    screen = screen_for(size=(400, 300))
    trusted: list[bool] = []
    screen.offer_certificate(
        "REFUSED: " + "the certificate changed " * 8, lambda: trusted.append(True)
    )
    screen.update(0.016)
    assert screen.offering
    assert pygame.Rect(0, 0, 400, 300).contains(screen.trust_button.rect)
    assert screen.trust_button.rect == screen.host_button.rect
    assert len(screen._message) > 1  # the refusal in full, over several lines
    screen.draw(display)
    click(screen.trust_button.rect.center)
    pump(screen)
    assert trusted == [True] and not screen.offering
    screen.show_error("another error")
    screen.update(0.016)
    click(screen.trust_button.rect.center)
    pump(screen)
    assert trusted == [True]  # gone with the offer


def test_the_window_refuses_a_changed_certificate_until_trusted(
    self_signed: ChatServer, tmp_path: Path
) -> None:
    port = self_signed.address[1]
    KnownServers().pin("127.0.0.1", port, WRONG)  # the config dir of this test
    app = ChatApp(ClientSettings(nick="alice", server=f"tls://127.0.0.1:{port}"))
    try:
        screen = app.screen
        assert isinstance(screen, ConnectScreen) and screen.secure
        screen.join()
        run_until(app, lambda: screen.offering)
        assert self_signed.tls is not None
        real = self_signed.tls.fingerprint
        assert "CHANGED" in screen.error and WRONG in screen.error and real in screen.error
        app.frame(0.016)  # lays the button out
        click(screen.trust_button.rect.center)
        run_until(app, lambda: isinstance(app.screen, ChatScreen))
        run_until(
            app, lambda: any("You accepted the new TLS certificate" in t for t in log_texts(app))
        )
        assert KnownServers().get("127.0.0.1", port) == real
    finally:
        app.close()


def test_a_tls_server_found_on_the_lan_is_joined_against_its_announced_fingerprint(
    tmp_path: Path,
) -> None:
    app = ChatApp(
        ClientSettings(nick="alice", server=""), discovery=DiscoveryConfig("127.0.0.1", 0)
    )
    server: ChatServer | None = None
    try:
        listener = app._listener
        assert listener is not None
        cert, key, _ = ensure_self_signed(tmp_path / "data", "lan")
        server = start_server(
            server_name="Secure lobby", tls_cert=str(cert), tls_key=str(key), announce=True,
            announce_addresses=("127.0.0.1",), announce_port=listener.address_bound[1],
            announce_interval=0.05,
        )  # fmt: skip
        run_until(app, lambda: len(listener.servers()) == 1)
        entry = listener.servers()[0]
        assert server.tls is not None
        assert entry.tls and entry.fingerprint == server.tls.compact_fingerprint
        screen = app.screen
        assert isinstance(screen, ConnectScreen) and screen.server_list is not None
        app.frame(0.016)
        click(screen.server_list.row_rect(0).center)
        app.frame(0.016)
        assert screen.server_box.text == f"tls://127.0.0.1:{server.address[1]}"
        assert screen.note.startswith(
            "Encrypted. Certificate SHA-256 " + server.tls.fingerprint[:23]
        )
        screen.join()
        run_until(app, lambda: isinstance(app.screen, ChatScreen))
        run_until(app, lambda: any("First encrypted connection" in t for t in log_texts(app)))
    finally:
        app.close()
        if server is not None:
            server.shutdown()


def test_hosting_with_the_secure_box_ticked_hosts_tls_with_a_kept_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAME_CHAT_DATA_DIR", str(tmp_path / "data"))
    app = ChatApp(ClientSettings(nick="host", server="tls://localhost:0"))
    try:
        screen = app.screen
        assert isinstance(screen, ConnectScreen) and screen.secure
        screen.host()
        run_until(app, lambda: isinstance(app.screen, ChatScreen))
        hosted = app.hosted
        assert hosted is not None and hosted.tls is not None
        assert (tmp_path / "data" / "tls-self-signed.pem").exists()
        run_until(app, lambda: any(hosted.tls.fingerprint in t for t in log_texts(app)))
        told = [t for t in log_texts(app) if t.startswith("You are hosting")]
        assert told and "tls://" in told[0] and app.clipboard.get_text().startswith("tls://")
    finally:
        app.close()


def test_the_overlay_shows_the_first_use_notice(
    self_signed: ChatServer, display: pygame.Surface, tmp_path: Path
) -> None:
    client = ChatClient(
        "127.0.0.1", self_signed.address[1], "gamer",
        tls=TlsOptions(known_servers=str(tmp_path / "known")),
    )  # fmt: skip
    client.start()
    overlay = ChatOverlay(client, pygame.Rect(10, 10, 400, 200), clipboard=MemoryClipboard())
    try:
        deadline = time.monotonic() + 10
        while not any("First encrypted connection" in line.text for line in lines(overlay)):
            assert time.monotonic() < deadline, [line.text for line in lines(overlay)]
            overlay.update(0.016)
            overlay.draw(display)
            time.sleep(0.005)
    finally:
        client.close()


def test_the_terminal_prints_the_notice_then_refuses_a_changed_certificate(
    self_signed: ChatServer, tmp_path: Path
) -> None:
    port = self_signed.address[1]
    options = TlsOptions(known_servers=str(tmp_path / "known"))
    out = io.StringIO()
    code = run_terminal(
        ChatClient("127.0.0.1", port, "term", tls=options), io.StringIO("hi\n"), out
    )
    assert code == 0 and "First encrypted connection" in out.getvalue()
    KnownServers(tmp_path / "known").pin("127.0.0.1", port, WRONG)
    out = io.StringIO()
    code = run_terminal(ChatClient("127.0.0.1", port, "term", tls=options), io.StringIO(""), out)
    assert code == 1 and "REFUSED" in out.getvalue() and "--accept-fingerprint" in out.getvalue()


def test_the_command_line_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["--server", "tls://a:5050,tls://b:5050", "--accept-fingerprint",
                              "sha256:" + "ab" * 32])  # fmt: skip
    secure, text = split_scheme(args.server)
    assert (secure, text) == (True, "a:5050,b:5050")
    options = tls_options(args, secure)
    assert options is not None and options.accept_fingerprint == ":".join(["AB"] * 32)
    with pytest.raises(ValueError, match="before every address"):
        split_scheme("tls://a:5050,b:5050")
    with pytest.raises(ValueError, match="only scheme"):
        split_scheme("http://a:5050")
    with pytest.raises(ValueError, match="for TLS"):
        tls_options(parser.parse_args(["--server", "a", "--accept-fingerprint", "ab" * 32]), False)
    with pytest.raises(ValueError, match="fingerprint"):
        tls_options(parser.parse_args(["--server", "tls://a", "--accept-fingerprint", "ab"]), True)
