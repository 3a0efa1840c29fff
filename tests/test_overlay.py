"""ChatOverlay inside a fake game loop: posted events in, what the game got out.

Key routing and fading use a fake client (no sockets, time advanced by ``dt``); the round
trip, member data and the example game use real servers on 127.0.0.1. Discovery in the example
listens on 127.0.0.1 and its hosted server announces to 127.0.0.1 only.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pygame
import pytest

from game_chat.client import ChatClient, ChatOverlay, MemberChange
from game_chat.client.events import ChatSent, Connected
from game_chat.client.model import Delivery
from game_chat.client.overlay import FADE_AFTER
from game_chat.client.ui.clipboard import MemoryClipboard
from game_chat.protocol.limits import Limits
from game_chat.protocol.messages import ChatMessage, RoomJoined
from game_chat.server import ChatServer

RECT = pygame.Rect(10, 200, 400, 180)
GAME_COLOR = (0, 90, 0)
GAME_EVENTS = (pygame.KEYDOWN, pygame.KEYUP, pygame.TEXTINPUT)


@pytest.fixture(autouse=True)
def display() -> Iterator[pygame.Surface]:
    pygame.display.init()
    pygame.font.init()
    yield pygame.display.set_mode((640, 400))
    pygame.quit()


class FakeClient:
    """What the overlay uses of a ChatClient, with events queued by the test."""

    def __init__(self, nick: str = "alice") -> None:
        self.nick = nick
        self.events: list[Any] = []
        self.chats: list[tuple[str, str | None]] = []
        self.sent: list[Any] = []
        self.data: list[tuple[str, dict[str, Any]]] = []
        self.closed = False

    def poll(self, limit: int | None = None) -> list[Any]:
        out, self.events = self.events[:limit], self.events[limit:]
        return out

    def send_chat(self, text: str, room: str | None = None, action: bool = False) -> int:
        self.chats.append((text, room))
        return len(self.chats)

    def send_private(self, to: str, text: str, action: bool = False) -> int:
        return self.send_chat(text, to, action)

    def send(self, message: Any) -> None:
        self.sent.append(message)

    def set_member_data(self, room: str, data: dict[str, Any]) -> None:
        self.data.append((room, data))

    def close(self, reason: str = "") -> None:
        self.closed = True


def connected(client: FakeClient) -> None:
    client.events += [
        Connected(client.nick, "test", Limits(), (client.nick, "bob")),
        RoomJoined("#lobby", "", ({"nick": client.nick}, {"nick": "bob"})),
    ]


def make_overlay(client: FakeClient | ChatClient, **kwargs: Any) -> ChatOverlay:
    return ChatOverlay(client, RECT, clipboard=MemoryClipboard(), **kwargs)  # type: ignore[arg-type]


def key(k: int, text: str = "", mod: int = 0, up: bool = False) -> None:
    """Post a key as SDL sends it: KEYDOWN, then TEXTINPUT for a key that types."""
    kind = pygame.KEYUP if up else pygame.KEYDOWN
    pygame.event.post(pygame.event.Event(kind, {"key": k, "mod": mod, "unicode": text}))
    if text and not up:
        pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, {"text": text}))


def type_text(text: str) -> None:
    pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, {"text": text}))


def frame(chat: ChatOverlay, surface: pygame.Surface, dt: float = 0.016) -> list[tuple]:
    """One frame of a game: events to the chat first, the rest to the game (returned as
    (type, key or text)); then update and draw."""
    game_got = []
    for event in pygame.event.get():
        if not chat.handle_event(event) and event.type in GAME_EVENTS:
            game_got.append((event.type, getattr(event, "key", getattr(event, "text", None))))
    chat.update(dt)
    surface.fill(GAME_COLOR)
    chat.draw(surface)
    return game_got


def texts(chat: ChatOverlay) -> list[str]:
    return [line.text for line in chat.visible_lines()]


def chat_line(text: str, nick: str = "bob", ident: int = 1) -> ChatMessage:
    return ChatMessage(ident, nick, text, time.time())


# --- keys -----------------------------------------------------------------------------------


def test_keys_go_to_the_game_while_closed(display: pygame.Surface) -> None:
    chat = make_overlay(FakeClient())
    key(pygame.K_w, "w")
    key(pygame.K_SPACE, " ")
    key(pygame.K_w, up=True)
    key(pygame.K_F5)
    got = frame(chat, display)
    assert got == [
        (pygame.KEYDOWN, pygame.K_w),
        (pygame.TEXTINPUT, "w"),  # text is not swallowed while closed
        (pygame.KEYDOWN, pygame.K_SPACE),
        (pygame.TEXTINPUT, " "),
        (pygame.KEYUP, pygame.K_w),
        (pygame.KEYDOWN, pygame.K_F5),
    ]
    assert not chat.is_open


def test_t_opens_and_its_own_text_is_not_typed(display: pygame.Surface) -> None:
    chat = make_overlay(FakeClient())
    key(pygame.K_t, "t")
    key(pygame.K_h, "h")
    key(pygame.K_i, "i")
    assert frame(chat, display) == []
    assert chat.is_open
    assert chat.input.text == "hi"


def test_shift_t_opens_too_and_ctrl_t_is_the_games(display: pygame.Surface) -> None:
    chat = make_overlay(FakeClient())
    key(pygame.K_t, mod=pygame.KMOD_CTRL)
    assert frame(chat, display) == [(pygame.KEYDOWN, pygame.K_t)]
    assert not chat.is_open
    key(pygame.K_t, "T", mod=pygame.KMOD_SHIFT)
    assert frame(chat, display) == []
    assert chat.is_open and chat.input.text == ""


def test_only_the_opening_keys_own_text_is_dropped(display: pygame.Surface) -> None:
    # A "t" typed in a later frame (after the chat opened) is a letter of the line.
    chat = make_overlay(FakeClient())
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, {"key": pygame.K_t, "mod": 0}))
    frame(chat, display)  # (no TEXTINPUT came with it: text input was off, say)
    key(pygame.K_t, "t")
    frame(chat, display)
    assert chat.input.text == "t"


def test_slash_opens_holding_a_slash(display: pygame.Surface) -> None:
    client = FakeClient()
    chat = make_overlay(client)
    key(pygame.K_SLASH, "/")
    type_text("me waves")
    assert frame(chat, display) == []
    assert chat.input.text == "/me waves"


def test_slash_typed_by_another_key_opens_too(display: pygame.Surface) -> None:
    chat = make_overlay(FakeClient())
    key(pygame.K_7, "/", mod=pygame.KMOD_SHIFT)  # a German keyboard
    frame(chat, display)
    assert chat.is_open and chat.input.text == "/"


def test_enter_opens_sends_and_closes(display: pygame.Surface) -> None:
    client = FakeClient()
    connected(client)
    chat = make_overlay(client)
    frame(chat, display)
    key(pygame.K_RETURN)
    assert frame(chat, display) == []
    assert chat.is_open
    type_text("gg")
    key(pygame.K_RETURN)
    assert frame(chat, display) == []
    assert client.chats == [("gg", "#lobby")]
    assert not chat.is_open
    assert "gg" in texts(chat)  # shown (pending) over the game


def test_enter_on_an_empty_line_just_closes(display: pygame.Surface) -> None:
    client = FakeClient()
    chat = make_overlay(client)
    chat.open()
    key(pygame.K_RETURN)
    frame(chat, display)
    assert not chat.is_open and client.chats == []


def test_keys_go_to_the_chat_while_open_and_esc_gives_them_back(display: pygame.Surface) -> None:
    chat = make_overlay(FakeClient())
    key(pygame.K_t, "t")
    frame(chat, display)
    key(pygame.K_w, "w")
    key(pygame.K_a, "a")
    key(pygame.K_w, up=True)  # releases stay the game's (it may track held keys)
    key(pygame.K_F5)  # no use in the chat
    assert frame(chat, display) == [(pygame.KEYUP, pygame.K_w), (pygame.KEYDOWN, pygame.K_F5)]
    assert chat.input.text == "wa"
    key(pygame.K_ESCAPE)
    assert frame(chat, display) == []
    assert not chat.is_open and chat.input.text == ""
    key(pygame.K_w, "w")
    assert frame(chat, display) == [(pygame.KEYDOWN, pygame.K_w), (pygame.TEXTINPUT, "w")]


def test_clicks_elsewhere_are_the_games_and_keep_the_line_focused(
    display: pygame.Surface,
) -> None:
    chat = make_overlay(FakeClient())
    chat.open()
    outside = pygame.event.Event(pygame.MOUSEBUTTONDOWN, {"pos": (600, 20), "button": 1})
    inside = pygame.event.Event(
        pygame.MOUSEBUTTONDOWN, {"pos": RECT.move(5, 5).topleft, "button": 1}
    )
    assert not chat.handle_event(outside)
    assert chat.handle_event(inside)
    assert chat.input.focused


# --- fading ---------------------------------------------------------------------------------


def test_lines_fade_out_after_ten_seconds_while_closed(display: pygame.Surface) -> None:
    client = FakeClient()
    chat = make_overlay(client)
    connected(client)
    frame(chat, display)
    client.events.append(chat_line("first"))
    frame(chat, display, 0.0)
    assert "first" in texts(chat)
    assert display.get_at((RECT.x + 20, RECT.y + 120))[:3] != GAME_COLOR  # drawn over the game
    frame(chat, display, 5.0)
    client.events.append(chat_line("second", ident=2))
    frame(chat, display, 0.0)
    frame(chat, display, FADE_AFTER - 5.0 - 0.1)
    assert texts(chat)[-2:] == ["first", "second"]
    frame(chat, display, 0.2)  # "first" is 10.1 s old, "second" 5.1 s
    assert "first" not in texts(chat) and texts(chat)[-1] == "second"
    frame(chat, display, 5.0)
    assert texts(chat) == []
    assert display.get_at((RECT.x + 20, RECT.y + 120))[:3] == GAME_COLOR  # nothing drawn


def test_a_fading_line_gets_fainter(display: pygame.Surface) -> None:
    client = FakeClient()
    chat = make_overlay(client)
    client.events.append(chat_line("going"))
    frame(chat, display, 0.0)
    strip = chat._strips[0]
    assert strip.alpha == chat.theme.opacity
    frame(chat, display, FADE_AFTER - 0.5)
    assert 0 < chat._strips[0].alpha < strip.alpha


def test_open_shows_the_whole_log_with_scrollback(display: pygame.Surface) -> None:
    client = FakeClient()
    chat = make_overlay(client)
    client.events += [chat_line(f"line {i}", ident=i + 1) for i in range(40)]
    frame(chat, display)
    frame(chat, display, FADE_AFTER + 1)
    assert texts(chat) == []
    chat.open()
    frame(chat, display)
    assert texts(chat)[-1] == "line 39"
    key(pygame.K_PAGEUP)
    assert frame(chat, display) == []
    assert not chat.log.pinned and texts(chat)[-1] != "line 39"
    chat.close()
    frame(chat, display)
    assert chat.log.pinned  # closed: back at the newest line


def test_the_wheel_scrolls_over_the_chat_only(
    display: pygame.Surface, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = FakeClient()
    chat = make_overlay(client)
    client.events += [chat_line(f"line {i}", ident=i + 1) for i in range(40)]
    chat.open()
    frame(chat, display)
    wheel = pygame.event.Event(pygame.MOUSEWHEEL, {"x": 0, "y": 1, "flipped": False})
    monkeypatch.setattr(pygame.mouse, "get_pos", lambda: (600, 20))
    assert not chat.handle_event(wheel)  # over the game: the game's
    monkeypatch.setattr(pygame.mouse, "get_pos", lambda: RECT.center)
    assert chat.handle_event(wheel)
    assert not chat.log.pinned


def test_replayed_history_does_not_pop_up(display: pygame.Surface) -> None:
    client = FakeClient()
    chat = make_overlay(client)
    client.events.append(ChatMessage(1, "bob", "old news", time.time(), history=True))
    frame(chat, display)
    assert texts(chat) == []


def test_opacity_comes_from_the_theme(display: pygame.Surface) -> None:
    from game_chat.client.ui.theme import Theme

    client = FakeClient()
    solid = make_overlay(client, theme=Theme(opacity=255, background=(200, 0, 0)))
    glass = make_overlay(client, theme=Theme(opacity=100, background=(200, 0, 0)))
    for chat, expect_solid in ((solid, True), (glass, False)):
        chat.open()
        frame(chat, display)
        pixel = display.get_at((RECT.x + 200, RECT.y + 10))
        assert (pixel[:3] == (200, 0, 0)) is expect_solid
        if not expect_solid:
            assert pixel.g > 0  # the game shows through


# --- member data and rooms -----------------------------------------------------------------


def test_member_data_changes_reach_the_game(display: pygame.Surface) -> None:
    from game_chat.protocol.messages import MemberData

    seen: list[MemberChange] = []
    client = FakeClient()
    chat = make_overlay(client, on_member_data=seen.append)
    connected(client)
    client.events.append(MemberData("#lobby", "bob", {"ready": True}, time.time()))
    frame(chat, display)
    bob = next(m for m in chat.members() if m.nick == "bob")
    assert bob.data == {"ready": True}
    change = MemberChange("#lobby", "bob", {"ready": True})
    assert chat.member_changes() == [change] and seen == [change]
    assert chat.member_changes() == []
    chat.set_member_data({"skin.id": 3}, team=2)
    assert client.data == [("#lobby", {"skin.id": 3, "team": 2})]


def test_another_room_is_joined_and_its_data_set(display: pygame.Surface) -> None:
    client = FakeClient()
    chat = make_overlay(client, room="#game")
    assert [type(m).__name__ for m in client.sent] == ["JoinRoom"]
    chat.set_member_data(ready=False)
    assert client.data == [("#game", {"ready": False})]


def test_own_line_is_confirmed_in_place(display: pygame.Surface) -> None:
    client = FakeClient()
    connected(client)
    chat = make_overlay(client)
    frame(chat, display)
    chat.send("hello")
    frame(chat, display)
    line = chat.visible_lines()[-1]
    assert line.text == "hello" and line.delivery == Delivery.PENDING
    client.events.append(ChatSent(1, 10, time.time()))
    frame(chat, display)
    assert line.delivery == Delivery.SENT


# --- real server ------------------------------------------------------------------------


def run_until(
    step: Callable[[], object], condition: Callable[[], bool], timeout: float = 5.0
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        step()
        time.sleep(0.005)


def test_round_trip_and_member_data_through_a_real_server(
    server: ChatServer, display: pygame.Surface
) -> None:
    host, port = server.address
    clients = [ChatClient(host, port, nick) for nick in ("alice", "bob")]
    for client in clients:
        client.start()
    alice, bob = (make_overlay(client) for client in clients)
    try:

        def both() -> None:
            frame(alice, display)
            frame(bob, display)

        run_until(both, lambda: len(bob.members()) == 2 and len(alice.members()) == 2)
        key(pygame.K_t, "t")
        for ch in "hi bob":
            type_text(ch)
        key(pygame.K_RETURN)
        frame(alice, display)
        assert not alice.is_open
        run_until(both, lambda: "hi bob" in texts(bob))
        mine = alice.visible_lines()[-1]
        run_until(both, lambda: mine.delivery == Delivery.SENT)

        alice.set_member_data(ready=True, team=2)
        run_until(both, lambda: any(m.data for m in bob.members()))
        seen = {m.nick: m.data for m in bob.members()}
        assert seen["alice"] == {"ready": True, "team": 2}
        assert MemberChange("#lobby", "alice", {"ready": True, "team": 2}) in bob.member_changes()
    finally:
        for client in clients:
            client.close()


# --- the example game -------------------------------------------------------------------


def load_example() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "examples" / "lobby_game.py"
    spec = importlib.util.spec_from_file_location("lobby_game", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lobby_game"] = module
    spec.loader.exec_module(module)
    return module


def down(k: int, text: str = "") -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN, {"key": k, "mod": 0, "unicode": text})


def test_lobby_game_hosts_and_finds_a_game_on_127_0_0_1(display: pygame.Surface) -> None:
    lobby = load_example()
    local = ["--discovery-address", "127.0.0.1", "--host", "127.0.0.1", "--port", "0"]
    finder = lobby.LobbyGame(
        lobby.parse_args(["--nick", "finder", "--discovery-port", "0", *local]), display
    )
    games = [finder]
    try:
        assert finder.frame(0.016, [])  # the server list; starts listening
        assert finder.listener is not None
        listen_port = finder.listener.address_bound[1]
        args = ["--nick", "hoster", "--discovery-port", str(listen_port), *local]
        hoster = lobby.LobbyGame(lobby.parse_args(args), display)
        games.append(hoster)
        assert hoster.frame(0.016, [down(pygame.K_h, "h")])  # host: announce to 127.0.0.1
        assert hoster.server is not None and hoster.chat is not None

        def both(events: list[pygame.event.Event] | None = None) -> None:
            for game in games:
                assert game.frame(0.016, events or [])

        run_until(both, lambda: bool(finder.listener and finder.listener.servers()))
        entry = finder.listener.servers()[0]
        assert entry.name == "hoster's game" and entry.port == hoster.server.address[1]
        assert finder.frame(0.016, [down(pygame.K_RETURN)])  # join the one found
        assert finder.chat is not None
        run_until(both, lambda: len(hoster.chat.members()) == 2)

        finder.pos.update(123, 77)
        assert finder.frame(0.3, [down(pygame.K_r, "r"), down(pygame.K_2, "2")])

        def finder_seen() -> dict[str, Any]:
            return {m.nick: m.data for m in hoster.chat.members()}.get("finder", {})

        want = {"ready": True, "team": 2, "x": 123, "y": 77}
        run_until(both, lambda: finder_seen() == want)
        # Chat in the overlay while playing: keys go to the chat, then back to the game.
        finder_events = [down(pygame.K_t, "t")]
        finder_events += [pygame.event.Event(pygame.TEXTINPUT, {"text": "r"})]
        finder_events += [down(pygame.K_r, "r"), down(pygame.K_RETURN)]
        assert finder.frame(0.016, finder_events)
        assert finder.ready  # the "r" went into the chat, not the ready toggle
        run_until(both, lambda: "r" in texts(hoster.chat))
        # Esc with the chat closed asks first; a second Esc quits.
        assert finder.frame(0.016, [down(pygame.K_ESCAPE)])
        assert not finder.frame(0.016, [down(pygame.K_ESCAPE)])
    finally:
        for game in games:
            game.close()


def test_lobby_game_help_lists_the_keys_without_the_pygame_banner() -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "lobby_game.py"
    env = {k: v for k, v in os.environ.items() if k != "PYGAME_HIDE_SUPPORT_PROMPT"}
    done = subprocess.run(
        [sys.executable, str(path), "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0
    assert "Hello from the pygame community" not in done.stdout
    assert "Arrows or WASD move your avatar" in done.stdout and "--server" in done.stdout


def test_update_says_when_the_overlay_needs_drawing(display: pygame.Surface) -> None:
    """A game that draws only on change asks update(): closed, idle, nothing fading: False."""
    client = FakeClient()
    chat = make_overlay(client)
    connected(client)
    assert chat.update(0.016)  # the join's lines arrive (and start fading)
    while chat.update(1.0):  # they fade out within FADE_AFTER and a second
        pass
    assert not chat.update(0.016) and not chat.update(0.5)  # idle: nothing to draw
    client.events.append(ChatMessage(1, "bob", "hi", 1.0, "#lobby"))
    assert chat.update(0.016)
