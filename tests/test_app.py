"""The whole window, headless, against a real server: posted events in, frames out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pygame
import pytest
from conftest import start_server
from wire import WireClient, rich_client

from game_chat.client.app import ChatApp
from game_chat.client.config import ClientSettings
from game_chat.client.model import Delivery
from game_chat.client.screens.chat import ChatScreen
from game_chat.client.screens.connect import ConnectScreen
from game_chat.server import ChatServer


@pytest.fixture(autouse=True)
def display(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GAME_CHAT_CONFIG_DIR", str(tmp_path))
    pygame.display.init()
    pygame.font.init()
    yield
    pygame.quit()


def key(k: int, mod: int = 0) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, {"key": k, "mod": mod, "unicode": ""}))


def type_text(text: str) -> None:
    pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, {"text": text}))


def run_until(app: ChatApp, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Run frames (as the real loop does) until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        app.frame(0.016)
        time.sleep(0.005)


def log_texts(app: ChatApp) -> list[str]:
    assert isinstance(app.screen, ChatScreen)
    return [line.text for line in app.screen.log.visible_lines()]


def joined_app(server: ChatServer, nick: str = "alice") -> ChatApp:
    host, port = server.address
    app = ChatApp(ClientSettings(nick=nick, server=f"{host}:{port}"))
    assert isinstance(app.screen, ConnectScreen)
    key(pygame.K_RETURN)
    run_until(app, lambda: isinstance(app.screen, ChatScreen))
    return app


def test_connect_screen_join_and_chat_both_ways(server: ChatServer) -> None:
    app = joined_app(server)
    peer, _ = rich_client(server.address, "bob")
    run_until(app, lambda: "bob joined" in log_texts(app))
    type_text("hello bob")
    key(pygame.K_RETURN)
    run_until(app, lambda: "hello bob" in log_texts(app))
    message = peer.recv_until(lambda m: m["type"] == "chat")
    assert (message["nick"], message["text"]) == ("alice", "hello bob")
    peer.send_json(type="chat", text="hi alice")
    run_until(app, lambda: "hi alice" in log_texts(app))
    assert isinstance(app.screen, ChatScreen)
    own = [line for line in app.screen.log.visible_lines() if line.own]
    run_until(app, lambda: own[0].delivery == Delivery.SENT)
    assert app.screen.users.users == ["alice", "bob"]
    started = time.monotonic()
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    assert not app.frame(0.016)
    app.close()
    assert time.monotonic() - started < 1
    assert peer.recv_until(lambda m: m["type"] == "leave")["reason"] == "window closed"


def test_settings_are_remembered(server: ChatServer, tmp_path: Path) -> None:
    app = joined_app(server, "remembered")
    app.close()
    settings = ClientSettings.load(tmp_path / "client.json")
    host, port = server.address
    assert (settings.nick, settings.server) == ("remembered", f"{host}:{port}")


def test_errors_show_inline_in_plain_words(server: ChatServer) -> None:
    rich_client(server.address, "taken")
    holder, _ = rich_client(server.address, "alice")
    host, port = server.address
    app = ChatApp(ClientSettings(nick="alice", server=f"{host}:{port}"))
    screen = app.screen
    assert isinstance(screen, ConnectScreen)
    key(pygame.K_RETURN)
    run_until(app, lambda: bool(screen.error))
    assert screen.error == "That nickname is taken here. Pick another one."
    screen.server_box.text = "127.0.0.1:1"
    screen.nick_box.text = "zed"
    key(pygame.K_RETURN)
    run_until(app, lambda: "refused" in screen.error)
    screen.nick_box.text = "bad nick"
    key(pygame.K_RETURN)
    app.frame(0.016)
    assert screen.error.startswith("Nickname:")
    screen.nick_box.text = "zed"
    screen.server_box.text = "host:notaport"
    key(pygame.K_RETURN)
    app.frame(0.016)
    assert screen.error.startswith("Server:")
    app.close()
    holder.close()


def test_direct_join_reconnects_and_sends_the_outbox() -> None:
    server = start_server()
    port = server.address[1]
    app = ChatApp(ClientSettings(), target=("127.0.0.1", port), nick="alice")
    screen = app.screen
    assert isinstance(screen, ChatScreen)
    screen.client.backoff_initial = 0.05
    run_until(app, lambda: screen.conversation.status == "connected")
    server.shutdown()
    run_until(app, lambda: screen.conversation.status == "reconnecting")
    type_text("typed while away")
    key(pygame.K_RETURN)
    app.frame(0.016)
    own = [line for line in screen.log.visible_lines() if line.own]
    assert own[0].delivery == Delivery.PENDING
    restarted = start_server(port=port)
    try:
        peer, _ = rich_client(restarted.address, "bob")
        run_until(app, lambda: own[0].delivery == Delivery.SENT, timeout=10)
        message = peer.recv_until(lambda m: m["type"] == "chat")
        assert message["text"] == "typed while away"
    finally:
        app.close()
        restarted.shutdown()


def test_host_a_server_from_the_connect_screen() -> None:
    app = ChatApp(ClientSettings(nick="host", server="localhost:0"))
    screen = app.screen
    assert isinstance(screen, ConnectScreen)
    screen.host()
    run_until(app, lambda: isinstance(app.screen, ChatScreen))
    assert app.hosted is not None
    peer, welcome = rich_client(("127.0.0.1", app.hosted.address[1]), "guest")
    assert welcome["users"] == ["host", "guest"]
    told = [t for t in log_texts(app) if t.startswith("You are hosting. Friends join with")]
    assert told and app.clipboard.get_text() in told[0]  # the address to share, copied
    app.close()
    assert peer.recv_until(lambda m: m["type"] == "bye")


def test_host_with_a_password_makes_a_server_that_asks_for_it() -> None:
    app = ChatApp(ClientSettings(nick="host", server="localhost:0"))
    screen = app.screen
    assert isinstance(screen, ConnectScreen)
    screen.password_box.text = "letmein"
    screen.host()
    run_until(app, lambda: isinstance(app.screen, ChatScreen))
    assert app.hosted is not None
    assert any("with the password you set" in t for t in log_texts(app))
    port = app.hosted.address[1]
    stranger = WireClient(("127.0.0.1", port))
    stranger.send_json(type="hello", nick="stranger", version=1)
    assert stranger.recv_json()["code"] == "bad_password"
    friend = WireClient(("127.0.0.1", port))
    friend.send_json(type="hello", nick="friend", version=1, password="letmein")
    assert friend.recv_json()["type"] == "welcome"
    app.close()


def test_resize_and_flood_keep_frames_responsive(burst_server: ChatServer) -> None:
    server = burst_server
    app = joined_app(server)
    pygame.event.post(
        pygame.event.Event(pygame.VIDEORESIZE, {"size": (500, 300), "w": 500, "h": 300})
    )
    app.frame(0.016)
    screen = app.screen
    assert isinstance(screen, ChatScreen)
    assert screen.log.rect.width < 500
    peer, _ = rich_client(server.address, "flooder")
    from game_chat.protocol.framing import encode_frame

    peer.send_raw(
        b"".join(encode_frame(b'{"type":"chat","text":"line %d"}' % n) for n in range(2000))
    )
    run_until(app, lambda: "line 1999" in log_texts(app), timeout=10)
    type_text("x")
    app.frame(0.016)
    assert screen.input.text == "x"
    app.close()


def test_sigterm_closes_the_window_cleanly(server: ChatServer, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    watcher, _ = rich_client(server.address, "watcher")
    host, port = server.address
    env = {**os.environ, "GAME_CHAT_CONFIG_DIR": str(tmp_path), "SDL_VIDEODRIVER": "dummy"}
    process = subprocess.Popen(
        [sys.executable, "run_client.py", "--server", f"{host}:{port}", "--nick", "windowed"],
        cwd=root,
        env=env,
    )
    try:
        assert watcher.recv_until(lambda m: m["type"] == "join")["nick"] == "windowed"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)  # SDL turns it into a QUIT event
        assert process.wait(timeout=5) == 0
        assert time.monotonic() - started < 1.5
        leave = watcher.recv_until(lambda m: m["type"] == "leave")
        assert (leave["nick"], leave["reason"]) == ("windowed", "window closed")
    finally:
        process.kill()
        process.wait()


def test_an_idle_window_draws_nothing_but_the_caret_blink(
    server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Render on change: idle, the window is drawn again only when the caret blinks (and at
    most once a second besides); a key or a line from the network draws at once."""
    from game_chat.client import app as app_module

    monkeypatch.setattr(app_module, "IDLE_REDRAW_SECONDS", 3600.0)  # a slow machine's second
    app = joined_app(server)
    for _ in range(5):  # settle: the join's lines and replies
        app.frame(0.001)
    drawn = app.frames_drawn
    for _ in range(100):  # 100 idle frames, 0.2 s of blink time in all: not one flip
        app.frame(0.002)
    assert app.frames_drawn == drawn
    for _ in range(4):  # 0.6 s more: the caret goes (and that is drawn)
        app.frame(0.15)
    assert app.frames_drawn == drawn + 1
    type_text("x")
    app.frame(0.001)
    assert app.frames_drawn == drawn + 2
    peer, _ = rich_client(server.address, "bob")
    peer.send_json(type="chat", text="hello there", id="1")
    run_until(app, lambda: "hello there" in " ".join(log_texts(app)))
    assert app.frames_drawn > drawn + 2
    app.close()


def test_the_title_follows_a_nick_change_and_the_nickname_has_focus_at_start(
    server: ChatServer,
) -> None:
    host, port = server.address
    app = ChatApp(ClientSettings(nick="alice", server=f"{host}:{port}"))
    assert isinstance(app.screen, ConnectScreen)
    assert app.screen.nick_box.focused and not app.screen.server_box.focused
    key(pygame.K_RETURN)
    run_until(app, lambda: isinstance(app.screen, ChatScreen))
    assert pygame.display.get_caption()[0] == f"game_chat — alice @ {host}:{port}"
    type_text("/nick alicia")
    key(pygame.K_RETURN)
    run_until(app, lambda: pygame.display.get_caption()[0].startswith("game_chat — alicia @"))
    app.close()


@pytest.mark.parametrize("size", [(400, 300), (500, 340), (900, 640)])
def test_the_connect_form_fits_the_window(size: tuple[int, int]) -> None:
    """Down to 400x300 every field and both buttons are on screen (compact: no labels)."""
    app = ChatApp(ClientSettings(nick="alice", server="localhost:5050"), size=size)
    screen = app.screen
    assert isinstance(screen, ConnectScreen)
    window = pygame.Rect((0, 0), size)
    for rect in [box.rect for box in screen.fields] + [b.rect for b in screen.buttons]:
        assert window.contains(rect), (size, rect)
    host = screen.host_button
    assert host.font.size(host.label)[0] <= host.rect.width
    assert (len(screen.label_pos) == 3) == (size[1] >= 600)
    app.frame(0.016)  # and it draws
    app.close()


def test_button_labels_are_readable_hovered_or_not() -> None:
    from game_chat.client.ui.colors import contrast

    app = ChatApp(ClientSettings(nick="alice", server="localhost:5050"))
    screen = app.screen
    assert isinstance(screen, ConnectScreen)
    join = screen.join_button
    for hovered in (False, True):
        join.hovered = hovered
        assert contrast(join.label_color(), join.fill_color()) >= 4.5, hovered
    app.close()
