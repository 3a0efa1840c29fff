"""A LAN lobby with the chat as an overlay: find or host a game, walk around, get ready.

    python examples/lobby_game.py                       # servers on the LAN; H hosts one
    python examples/lobby_game.py --server 192.168.1.20:5050 --nick alice

Arrows or WASD move your avatar, R toggles "ready", 1 and 2 pick a team; T or Enter opens the
chat, "/" opens it with a command. Ready, team and position are lobby member data: everyone in
the room sees them change. The chat is game_chat.client.ChatOverlay (see the README).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # --help prints the keys, not a banner
# A 2D game of blits: the unaccelerated window surface is cheaper than streaming each frame
# through OpenGL, which is software OpenGL where there is no GPU (see the README).
os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")

import pygame

from game_chat.client import ChatClient, ChatOverlay
from game_chat.client.config import parse_address
from game_chat.discovery import DEFAULT_GROUP, DEFAULT_PORT, DiscoveryListener
from game_chat.server import ChatServer, ServerConfig

SIZE = (900, 600)
SPEED = 220  # pixels a second
SHARE_EVERY = 0.2  # seconds between two position updates at most
TEAM_COLORS = {1: (230, 95, 95), 2: (95, 150, 235)}
BACKGROUND, TEXT, DIM = (18, 22, 30), (230, 232, 240), (130, 136, 150)
QUIT_CONFIRM_SECONDS = 2.0  # Esc, then Esc again within this long, quits
IDLE_POLL = 0.03  # seconds between looks at keys and network while nothing changes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", help="HOST:PORT to join at once (no server list)")
    parser.add_argument("--nick", default=f"player{random.randint(100, 999)}")
    parser.add_argument("--discovery-address", default=DEFAULT_GROUP, help="where to listen")
    parser.add_argument("--discovery-port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="0.0.0.0", help="address a hosted server listens on")
    parser.add_argument("--port", type=int, default=5050, help="port of a hosted server")
    return parser.parse_args(argv)


def number(value: object, default: float) -> float:
    """A coordinate from someone's member data (anything may arrive)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(0.0, min(float(value), 10_000.0))
    return default


class LobbyGame:
    """The server list until we join or host, then the lobby. ``frame`` runs one frame."""

    def __init__(self, args: argparse.Namespace, screen: pygame.Surface) -> None:
        self.args, self.screen = args, screen
        self.font = pygame.font.Font(None, 24)
        self.listener: DiscoveryListener | None = None
        self.server: ChatServer | None = None
        self.chat: ChatOverlay | None = None
        self.selected, self.note = 0, ""
        self.quit_asked: float | None = None  # when Esc was pressed once (monotonic)
        # Render on change: what was last drawn, and whether this frame drew.
        self.drawn = True
        self.shown_servers: object = None
        self.shown_members: object = None
        self.pos = pygame.Vector2(random.randint(80, 820), random.randint(90, 320))
        self.shared: tuple[int, int] | None = None
        self.since_shared = 0.0
        self.ready, self.team = False, random.choice((1, 2))
        if args.server:
            self.join(*parse_address(args.server))

    # --- finding, hosting, joining ---------------------------------------------------------

    def listen(self) -> None:
        listener = DiscoveryListener(self.args.discovery_address, self.args.discovery_port)
        try:
            listener.start()
        except OSError as exc:
            self.note = f"Cannot look for servers: {exc.strerror or exc}"
            return
        self.listener = listener

    def host(self) -> None:
        """Start a server in this process, announced where we listen, and join it."""
        port = self.args.discovery_port
        if not port and self.listener is not None:
            port = self.listener.address_bound[1]  # tests: a listener on port 0
        config = ServerConfig(
            host=self.args.host,
            port=self.args.port,
            server_name=f"{self.args.nick}'s game",
            announce=bool(port),
            announce_addresses=(self.args.discovery_address,),
            announce_port=port or DEFAULT_PORT,
        )
        try:
            self.server = ChatServer(config)
            self.server.start()
        except OSError as exc:
            self.note = f"Cannot host on port {self.args.port}: {exc.strerror or exc}"
            return
        self.join("127.0.0.1", self.server.address[1])

    def join(self, host: str, port: int) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        client = ChatClient(host, port, self.args.nick)
        client.start()
        self.chat = ChatOverlay(client, pygame.Rect(10, SIZE[1] - 250, 480, 240))
        self.chat.set_member_data(ready=self.ready, team=self.team)

    def close(self) -> None:
        if self.chat is not None:
            self.chat.client.close("quit")
        if self.listener is not None:
            self.listener.stop()
        if self.server is not None:
            self.server.shutdown(timeout=0.5)

    # --- the frame -------------------------------------------------------------------------

    def frame(self, dt: float, events: Sequence[pygame.event.Event]) -> bool:
        """Handle ``events``, update, and draw if anything changed (``self.drawn`` says
        whether it did); False when the player quits."""
        self.drawn = bool(events)
        for event in events:
            if event.type == pygame.QUIT:
                return False
            if self.chat is not None and self.chat.handle_event(event):
                continue  # typed into the chat: not a game key
            if event.type == pygame.KEYDOWN and not self.on_key(event.key):
                return False
        if self.chat is None:
            if self.listener is None and not self.note:
                self.listen()
            servers = self.listener.servers() if self.listener else ()
            if self.drawn or servers != self.shown_servers or self.asking_to_quit():
                self.shown_servers = servers
                self.draw_server_list()
                self.drawn = True
            return True
        changed = self.chat.update(dt)
        moved = self.move(dt)
        members = [(m.nick, m.data) for m in self.chat.members()]
        quitting = self.asking_to_quit()
        if self.drawn or changed or moved or quitting or members != self.shown_members:
            self.shown_members = members
            self.draw_lobby()
            self.chat.draw(self.screen)
            self.drawn = True
        return True

    def asking_to_quit(self) -> bool:
        return self.quit_asked is not None and time.monotonic() - self.quit_asked < 3.0

    def on_key(self, key: int) -> bool:
        servers = self.listener.servers() if self.listener else ()
        if key == pygame.K_ESCAPE:  # asks first: a stray Esc must not end the game
            now = time.monotonic()
            if self.quit_asked is not None and now - self.quit_asked < QUIT_CONFIRM_SECONDS:
                return False
            self.quit_asked = now
            return True
        self.quit_asked = None
        if self.chat is None and key == pygame.K_h:
            self.host()
        elif self.chat is None and key in (pygame.K_UP, pygame.K_DOWN) and servers:
            self.selected = (self.selected + (1 if key == pygame.K_DOWN else -1)) % len(servers)
        elif self.chat is None and key == pygame.K_RETURN and servers:
            entry = servers[min(self.selected, len(servers) - 1)]
            self.join(entry.host, entry.port)
        elif self.chat is not None and key == pygame.K_r:
            self.ready = not self.ready
            self.chat.set_member_data(ready=self.ready)
        elif self.chat is not None and key in (pygame.K_1, pygame.K_2):
            self.team = 1 if key == pygame.K_1 else 2
            self.chat.set_member_data(team=self.team)
        return True

    def move(self, dt: float) -> bool:
        """Move the avatar by the keys held; True if it moved."""
        assert self.chat is not None
        before = pygame.Vector2(self.pos)
        if not self.chat.is_open:  # while typing, WASD are letters
            keys = pygame.key.get_pressed()
            dx = (keys[pygame.K_RIGHT] or keys[pygame.K_d]) - (
                keys[pygame.K_LEFT] or keys[pygame.K_a]
            )
            dy = (keys[pygame.K_DOWN] or keys[pygame.K_s]) - (keys[pygame.K_UP] or keys[pygame.K_w])
            self.pos += pygame.Vector2(dx, dy) * SPEED * dt
            self.pos.x = max(20, min(SIZE[0] - 20, self.pos.x))
            self.pos.y = max(60, min(SIZE[1] - 20, self.pos.y))
        self.since_shared += dt
        spot = (round(self.pos.x), round(self.pos.y))
        if spot != self.shared and self.since_shared >= SHARE_EVERY:
            self.chat.set_member_data(x=spot[0], y=spot[1])
            self.shared, self.since_shared = spot, 0.0
        return self.pos != before

    # --- drawing ---------------------------------------------------------------------------

    def text(self, text: str, pos: tuple[int, int], color: tuple[int, int, int] = TEXT) -> None:
        self.screen.blit(self.font.render(text, True, color), pos)

    def draw_server_list(self) -> None:
        self.screen.fill(BACKGROUND)
        self.text(f"LAN games - you are {self.args.nick}", (40, 30))
        servers = self.listener.servers() if self.listener else ()
        for i, entry in enumerate(servers):
            ping = f"{entry.ping_ms:.0f} ms" if entry.ping_ms is not None else "-"
            lock = "  (password)" if entry.password else ""
            line = f"{entry.name}   {entry.address}   {entry.players} here   {ping}{lock}"
            self.text(("> " if i == self.selected else "  ") + line, (40, 80 + 30 * i))
        if not servers:
            self.text("Looking for games on the LAN...", (40, 80), DIM)
        self.text("Up/Down, Enter: join   H: host a game here   Esc: quit", (40, 540), DIM)
        self.text(self.note, (40, 510), TEAM_COLORS[1])
        self.draw_quit_question()

    def draw_quit_question(self) -> None:
        asked = self.quit_asked
        if asked is not None and time.monotonic() - asked < QUIT_CONFIRM_SECONDS:
            self.text("Press Esc again to quit", (SIZE[0] - 260, 10), TEAM_COLORS[1])

    def draw_lobby(self) -> None:
        assert self.chat is not None
        self.screen.fill(BACKGROUND)
        state = "READY" if self.ready else "not ready"
        self.text(f"{self.chat.nick} | team {self.team} | {state} | {self.chat.status}", (10, 10))
        self.draw_quit_question()
        help_text = "arrows/WASD: move   R: ready   1/2: team   T/Enter: chat   Esc: quit"
        self.text(help_text, (10, 34), DIM)
        for member in self.chat.members():
            mine = member.nick == self.chat.nick
            data = member.data
            x = self.pos.x if mine else number(data.get("x"), SIZE[0] / 2)
            y = self.pos.y if mine else number(data.get("y"), SIZE[1] / 2)
            color = TEAM_COLORS[2 if data.get("team") == 2 else 1]
            pygame.draw.circle(self.screen, color, (x, y), 16)
            if mine:
                pygame.draw.circle(self.screen, TEXT, (x, y), 18, width=2)
            label = member.nick[:16] + ("  READY" if data.get("ready") is True else "")
            self.text(label, (round(x) - 30, round(y) - 40), TEXT if data.get("ready") else DIM)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pygame.display.init()
    pygame.font.init()
    screen = pygame.display.set_mode(SIZE)
    pygame.display.set_caption(f"LAN lobby - {args.nick}")
    game, clock = LobbyGame(args, screen), pygame.time.Clock()
    # What is alive after set-up (pygame, fonts, modules) stays alive: out of the cyclic
    # collector's sight, so a full collection never walks it mid-game (a ~20 ms frame).
    gc.collect()
    gc.freeze()
    try:
        # Render on change: flip only frames that drew; idle (nothing moving, the chat closed
        # and not fading), sleep between looks at the keys and the network instead of
        # spinning at 60 frames a second.
        while game.frame(clock.tick(60) / 1000, pygame.event.get()):
            if game.drawn:
                pygame.display.flip()
            else:
                time.sleep(IDLE_POLL)
    finally:
        game.close()
        pygame.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
