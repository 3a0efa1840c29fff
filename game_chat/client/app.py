"""The chat window: one Pygame window that shows the connect screen, then the chat screen.

The frame loop, at most 60 frames a second: handle pygame events -> drain the network queue
(inside the screen's update) -> update -> draw -> flip. Nothing in it waits on the network.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pygame

from ..discovery import DiscoveryConfig, DiscoveryListener, ServerEntry
from ..protocol.errors import RemoteProtocolError
from ..protocol.names import validate_nick
from ..server import ChatServer, ServerConfig
from ..server.netinfo import lan_addresses
from .assets import assets_dir
from .cli_support import host_local_server, self_signed_settings
from .config import ClientSettings, parse_address, parse_servers
from .events import CertificateChanged, Connected, Disconnected
from .model import LineKind
from .net import ChatClient
from .screens.chat import ChatScreen
from .screens.connect import ConnectScreen
from .tls import CERTIFICATE_CHANGED, CERTIFICATE_MISMATCH, TlsOptions, split_scheme
from .ui.clipboard import make_clipboard
from .ui.fonts import load_font
from .ui.theme import Theme

log = logging.getLogger("game_chat.client")

ASSETS = assets_dir()
DEFAULT_SIZE = (960, 640)
#: How often the idle loop wakes to look at events and the network (the receive thread never
#: touches pygame, so it cannot wake the loop itself): a key or a line waits at most this long.
POLL_SECONDS = 0.025
#: Redraw at least this often even when nothing seems to change (a countdown in the status).
IDLE_REDRAW_SECONDS = 1.0

#: What the connect screen says for a refused hello, by error code.
REFUSALS = {
    "nick_taken": "That nickname is taken here. Pick another one.",
    "bad_password": "Wrong password for this server.",
    "tls_required": "This server only speaks TLS: tick Secure (TLS) and join again.",
}


class ChatApp:
    """The whole window. ``frame()`` runs one frame; ``run()`` loops until the window closes."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        target: tuple[str, int] | None = None,
        nick: str | None = None,
        password: str | None = None,
        hosted: ChatServer | None = None,
        alternates: Sequence[tuple[str, int]] = (),
        size: tuple[int, int] = DEFAULT_SIZE,
        theme: Theme | None = None,
        discovery: DiscoveryConfig | None = None,
        tls: TlsOptions | None = None,
    ) -> None:
        """``tls``: the direct join (``target``) is TLS with these options; joins from the
        connect screen take its CA file (the address says whether they are TLS)."""
        self.settings = settings
        self.tls = tls
        # The last join from the connect screen, for "Trust the new certificate":
        # (host, port, nick, password, server text, alternates).
        self._last_join: tuple[Any, ...] | None = None
        self._changed: CertificateChanged | None = None  # what the pending join was refused
        #: LAN discovery: None (the default, and in tests) listens and announces nowhere.
        self.discovery = discovery
        self._listener: DiscoveryListener | None = None
        self._listener_note = ""
        self.theme = theme or Theme()
        self.hosted = hosted
        self._owns_hosted = False  # servers we started from the connect screen
        icon = ASSETS / "icon.png"
        if icon.exists():
            pygame.display.set_icon(pygame.image.load(str(icon)))
        self.window = pygame.display.set_mode(size, pygame.RESIZABLE)
        self._caption = ""
        pygame.key.set_repeat(400, 35)
        pygame.key.start_text_input()
        self.font = load_font(self.theme)
        self.title_font = load_font(Theme(font_size=self.theme.font_size * 2), bold=True)
        self.clipboard = make_clipboard()
        self.running = True
        # Render on change: the loop sleeps until the next look at events and the network
        # (POLL_SECONDS) and draws and flips only when something changed.
        self._redraw = True
        self._drawn_at = self._last_frame = self._looked_at = time.monotonic()
        #: Frames drawn (and flipped) so far (tests and bench/client_cpu.py look).
        self.frames_drawn = 0
        self._pending: ChatClient | None = None  # a join the connect screen is waiting for
        self._pending_events: list[Any] = []  # its events so far
        self.screen: ConnectScreen | ChatScreen
        if target is not None:
            client = ChatClient(
                target[0],
                target[1],
                nick or settings.nick,
                password,
                alternates=alternates,
                tls=tls or False,
            )
            self._open_chat(client)
        else:
            self._show_connect_screen()

    # --- frame loop --------------------------------------------------------------------

    def run(self) -> int:
        # Everything alive now (pygame, fonts, modules) stays alive: keep it out of the cyclic
        # collector's sight, so a full collection never walks it mid-game (a ~20 ms frame).
        gc.collect()
        gc.freeze()
        try:
            while True:
                self._wait()
                if not self.frame():
                    break
        finally:
            self.close()
        return 0

    def _wait(self) -> None:
        """Sleep until an event comes, or the next network poll or redraw is due."""
        if self._redraw:
            return
        now = time.monotonic()
        due = self._drawn_at + IDLE_REDRAW_SECONDS - now
        if pygame.event.peek():
            return
        # A plain sleep, not pygame.event.wait: pygame's wait with a timeout polls SDL every
        # millisecond (measured: 4 % of a core doing nothing). The loop looks at its input
        # every POLL_SECONDS whatever the frames cost (the sleep is what is left of the
        # period), so a key or a line is on screen at most POLL_SECONDS plus one frame after
        # it came; and drawing is capped at 1 / POLL_SECONDS frames a second.
        time.sleep(max(0.0, min(self._looked_at + POLL_SECONDS - now, due)))

    def frame(self, dt: float | None = None) -> bool:
        """One frame: events, network, update; draws and flips only if something changed (or
        a second passed). False once the window was closed. Never blocks."""
        now = time.monotonic()
        dt = now - self._last_frame if dt is None else dt
        self._last_frame = self._looked_at = now
        events = pygame.event.get()
        for event in events:
            if event.type == pygame.QUIT:  # also what SDL turns SIGTERM into
                self.running = False
            elif event.type == pygame.VIDEORESIZE:
                self.screen.resize(event.size)
            else:
                self.screen.handle_event(event)
        changed = self._check_pending_join()
        changed = self.screen.update(dt) is not False or changed or bool(events)
        self._update_caption()
        if changed or self._redraw or now - self._drawn_at >= IDLE_REDRAW_SECONDS:
            self.screen.draw(self.window)
            pygame.display.flip()
            self._drawn_at = now
            self._redraw = False
            self.frames_drawn += 1
        return self.running

    def _update_caption(self) -> None:
        """The window's title names who you are now (after a /nick too)."""
        if isinstance(self.screen, ChatScreen):
            client = self.screen.client
            title = f"game_chat — {self.screen.conversation.nick} @ {client.host}:{client.port}"
        else:
            title = "game_chat"
        if title != self._caption:
            self._caption = title
            pygame.display.set_caption(title)

    def close(self) -> None:
        """Say goodbye to the server and stop every thread we started."""
        if isinstance(self.screen, ChatScreen):
            self.screen.close("window closed")
        if self._pending is not None:
            self._pending.close()
        self._stop_discovery()
        if self.hosted is not None and self._owns_hosted:
            self.hosted.shutdown(timeout=0.5)

    # --- screens -----------------------------------------------------------------------

    def _show_connect_screen(self) -> None:
        self._start_discovery()
        self.screen = ConnectScreen(
            self.window.get_size(),
            self.theme,
            self.font,
            self.title_font,
            self.clipboard,
            nick=self.settings.nick,
            server=self.settings.server,
            on_join=self._join,
            on_host=self._host,
            servers=self._found_servers if self.discovery is not None else None,
            servers_note=self._listener_note,
        )
        self._update_caption()

    def _open_chat(self, client: ChatClient, events: list[Any] | None = None) -> None:
        self._stop_discovery()
        if not client._thread.is_alive():
            client.start()
        self.screen = ChatScreen(
            self.window.get_size(),
            client,
            self.theme,
            self.font,
            self.clipboard,
            on_leave=self._leave_chat,
        )
        for event in events or []:
            self.screen.conversation.apply(event)
        self._update_caption()

    def _leave_chat(self) -> None:
        if self.hosted is not None and self._owns_hosted:
            self.hosted.shutdown(timeout=0.5)
            self.hosted = None
        self._show_connect_screen()

    # --- joining and hosting ------------------------------------------------------------

    def _join(self, nick: str, server_text: str, password: str | None) -> None:
        assert isinstance(self.screen, ConnectScreen)
        try:
            nick = validate_nick(nick)
            secure, addresses = split_scheme(server_text)  # tls://: encrypted
            (host, port), *alternates = parse_servers(addresses)  # a,b: nodes of a cluster
        except RemoteProtocolError as exc:
            self.screen.show_error(f"Nickname: {exc.message}")
            return
        except ValueError as exc:
            self.screen.show_error(f"Server: {exc}")
            return
        self._start_join(host, port, nick, password, server_text, alternates, secure=secure)

    def _host(self, nick: str, server_text: str, password: str | None) -> None:
        assert isinstance(self.screen, ConnectScreen)
        secure = self.screen.secure
        try:
            nick = validate_nick(nick)
            port = parse_address(split_scheme(server_text)[1] or "localhost")[1]
        except RemoteProtocolError as exc:
            self.screen.show_error(f"Nickname: {exc.message}")
            return
        except ValueError:
            port = 5050
        try:
            self.hosted = self._host_server(port, password, secure)
        except OSError as exc:
            self.screen.show_error(
                f"Cannot host on port {port}: {exc.strerror or exc}. Is a server already "
                "running? Then use Join."
            )
            return
        except ValueError as exc:  # TLS: no certificate could be made (TlsSetupError)
            self.screen.show_error(f"Cannot host with TLS: {exc}")
            return
        self._owns_hosted = True
        tls = self.hosted.tls
        expected = tls.fingerprint if tls is not None else None
        self._start_join(
            "127.0.0.1",
            self.hosted.address[1],
            nick,
            password,
            server_text,
            secure=tls is not None,
            expected=expected,
        )

    def _host_server(
        self, port: int, password: str | None = None, secure: bool = False
    ) -> ChatServer:
        """The server of "Host a server" (the Password field, if filled, is its password;
        "Secure (TLS)" ticked: TLS with this machine's self-signed certificate): announced
        where our own listener listens."""
        if self.discovery is None:
            return host_local_server(port, password, secure)
        server = ChatServer(
            ServerConfig(
                host="0.0.0.0",
                port=port,
                password=password or None,
                announce=True,
                announce_addresses=(self.discovery.address,),
                announce_port=self.discovery.port,
                **self_signed_settings(secure),  # type: ignore[arg-type]
            )
        )
        server.start()
        return server

    def _tell_how_to_join(self, password: str | None) -> None:
        """After hosting: the addresses to give friends, copied to the clipboard."""
        assert isinstance(self.screen, ChatScreen) and self.hosted is not None
        port = self.hosted.address[1]
        scheme = "tls://" if self.hosted.tls is not None else ""
        shared = [f"{scheme}{address}:{port}" for address in lan_addresses()]
        shared = shared or [f"{scheme}localhost:{port}"]
        needs = " with the password you set" if password else ""
        self.clipboard.set_text(shared[0])
        text = (
            f"You are hosting. Friends join with {' or '.join(shared)}{needs} "
            f"({shared[0]} is copied: paste it to them)"
        )
        if self.hosted.tls is not None:
            text += (
                f". Encrypted: the certificate's SHA-256 is {self.hosted.tls.fingerprint}, "
                "tell them so they can compare"
            )
        self.screen.conversation.system(text, LineKind.NOTICE)

    def _start_join(
        self,
        host: str,
        port: int,
        nick: str,
        password: str | None,
        server_text: str,
        alternates: Sequence[tuple[str, int]] = (),
        *,
        secure: bool = False,
        accept: str | None = None,
        expected: str | None = None,
    ) -> None:
        """Join from the connect screen; ``secure``: over TLS, with ``accept`` (a changed
        certificate the person chose to trust) and ``expected`` (a fingerprint known to be
        the server's: ours when we host it, else the one it announced on the LAN)."""
        assert isinstance(self.screen, ConnectScreen)
        self.settings.nick = nick
        self.settings.server = server_text or self.settings.server
        self._last_join = (host, port, nick, password, server_text, tuple(alternates))
        tls: TlsOptions | bool = False
        if secure:
            base = self.tls or TlsOptions()
            expected = expected or self._announced_fingerprint(host, port)
            tls = replace(base, accept_fingerprint=accept, expected_fingerprint=expected)
        self._pending = ChatClient(host, port, nick, password, alternates=alternates, tls=tls)
        self._pending_events = []
        self._pending.start()
        self.screen.set_busy(f"Connecting to {host}:{port}…")

    def _announced_fingerprint(self, host: str, port: int) -> str | None:
        """The certificate fingerprint a TLS server at ``host:port`` announced on the LAN."""
        for entry in self._found_servers():
            if entry.tls and entry.fingerprint and (entry.host, entry.port) == (host, port):
                return entry.fingerprint
        return None

    def _trust_new_certificate(self, changed: CertificateChanged) -> None:
        """ "Trust the new certificate" after a refusal: the same join, accepting it."""
        if self._last_join is None or not isinstance(self.screen, ConnectScreen):
            return
        host, port, nick, password, server_text, alternates = self._last_join
        self._start_join(
            host,
            port,
            nick,
            password,
            server_text,
            alternates,
            secure=True,
            accept=changed.presented,
        )

    def _check_pending_join(self) -> bool:
        """The join the connect screen waits for; True if anything came of it."""
        client = self._pending
        if client is None:
            return False
        events = client.poll()
        self._redraw = self._redraw or bool(events)
        self._pending_events += events  # what came before the welcome is shown with it
        for event in events:
            if isinstance(event, CertificateChanged):
                self._changed = event
            if isinstance(event, Connected):
                self._pending = None
                self.settings.save()
                self._open_chat(client, self._pending_events)
                if self.hosted is not None and self._owns_hosted:
                    self._tell_how_to_join(client.password)
                return True
            if isinstance(event, Disconnected) and not event.will_retry:
                self._pending = None
                client.close()
                changed, self._changed = self._changed, None
                if not isinstance(self.screen, ConnectScreen):
                    return True
                if changed is not None and event.code in (
                    CERTIFICATE_CHANGED,
                    CERTIFICATE_MISMATCH,
                ):
                    on_trust = functools.partial(self._trust_new_certificate, changed)
                    self.screen.offer_certificate(certificate_refusal(changed), on_trust)
                    return True
                text = REFUSALS.get(event.code or "", f"Could not join: {event.reason}")
                self.screen.show_error(text)
                return True
        return bool(events)

    # --- LAN discovery ---------------------------------------------------------------------

    def _start_discovery(self) -> None:
        """Listen for servers while the connect screen shows (a thread; no pygame in it)."""
        if self.discovery is None or self._listener is not None:
            return
        listener = DiscoveryListener(self.discovery.address, self.discovery.port)
        try:
            listener.start()
        except OSError as exc:
            listener.stop()
            log.warning("LAN discovery is off: %s", exc)
            self._listener_note = f"Cannot look for servers: {exc.strerror or exc}"
            return
        self._listener, self._listener_note = listener, ""

    def _stop_discovery(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def _found_servers(self) -> tuple[ServerEntry, ...]:
        return () if self._listener is None else self._listener.servers()


def certificate_refusal(changed: CertificateChanged) -> str:
    """The connect screen's words for a refused certificate (both fingerprints in full)."""
    address = f"{changed.host}:{changed.port}"
    if changed.announced:
        head = f"REFUSED: {address} shows another certificate than it announced on the LAN."
        known = "Announced"
    else:
        head = f"REFUSED: the certificate of {address} has CHANGED since you trusted it."
        known = "Known"
    return (
        f"{head} Someone may be intercepting the connection, or the server has a new "
        f"certificate: ask its host. {known}: {changed.known} Now: {changed.presented}"
    )


def run_window(
    settings: ClientSettings,
    *,
    target: tuple[str, int] | None = None,
    nick: str | None = None,
    password: str | None = None,
    hosted: ChatServer | None = None,
    discovery: DiscoveryConfig | None = DiscoveryConfig(),  # noqa: B008 (frozen)
    alternates: Sequence[tuple[str, int]] = (),
    tls: TlsOptions | None = None,
) -> int:
    # SDL's "accelerated" window surface streams every frame through OpenGL: where there is no
    # GPU (VMs, remote desktops, Xvfb) that is software OpenGL, 40 % of a core at 60 frames a
    # second. A chat window draws few frames with plain 2D blits: the unaccelerated surface
    # (X11 shared memory, Wayland shm buffers) costs less everywhere. An explicit setting wins.
    os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
    # Only what the window needs: pygame.init() would also open audio, which a chat never uses.
    pygame.display.init()
    pygame.font.init()
    try:
        return ChatApp(
            settings,
            target=target,
            nick=nick,
            password=password,
            hosted=hosted,
            discovery=discovery,
            alternates=alternates,
            tls=tls,
        ).run()
    finally:
        pygame.quit()
