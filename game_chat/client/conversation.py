"""What the chat shows, worked out from ChatClient events: log lines, users, status. No pygame.

The window, the terminal chat and the in-game overlay all use a :class:`Conversation`; they
differ only in how they draw it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..protocol.messages import (
    ChatMessage,
    ErrorReply,
    NickChanged,
    UserJoined,
    UserLeft,
    UserList,
)
from ..protocol.names import mentions
from .events import (
    ChatFailed,
    ChatSent,
    Connected,
    Connecting,
    Disconnected,
    Reconnecting,
    RoundTrip,
)
from .model import Delivery, LineKind, LogLine


class Status:
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"


@dataclass
class CommandResult:
    """What a line typed by the user turned into."""

    chat_text: str | None = None  # send as chat
    nick: str | None = None  # ask for this nick
    list_users: bool = False
    quit: bool = False
    local_line: LogLine | None = None  # show this, send nothing


HELP = (
    "Commands: /nick NAME (change your name), /who (list users), /quit (leave), "
    "/help (this text). Start a line with // to send it as text."
)


def parse_input(line: str) -> CommandResult:
    """Interpret a line from the input box: a chat line or a /command."""
    if line.startswith("//"):
        return CommandResult(chat_text=line[1:])
    if not line.startswith("/"):
        return CommandResult(chat_text=line)
    command, _, argument = line.partition(" ")
    command, argument = command.lower(), argument.strip()
    if command == "/nick" and argument:
        return CommandResult(nick=argument)
    if command in ("/who", "/users"):
        return CommandResult(list_users=True)
    if command in ("/quit", "/exit"):
        return CommandResult(quit=True)
    if command == "/help":
        return CommandResult(local_line=LogLine(LineKind.SYSTEM, HELP))
    return CommandResult(local_line=LogLine(LineKind.ERROR, f"Unknown command {command}. {HELP}"))


COMMANDS = ("/nick", "/who", "/quit", "/help")


class Conversation:
    """Log lines, the user list and the connection status, fed by ChatClient events."""

    def __init__(self, nick: str, on_line: Callable[[LogLine], None]) -> None:
        self.nick = nick
        self.on_line = on_line
        self.users: list[str] = []
        self.status = Status.CONNECTING
        self.status_detail = ""
        self.server_name = ""
        self.rtt_ms: float | None = None
        self.max_text_chars = 1000
        self._own: dict[int, LogLine] = {}  # local id -> our line waiting for its ack

    # --- our own lines -------------------------------------------------------------------

    def add_own(self, local_id: int, text: str) -> LogLine:
        line = LogLine(LineKind.CHAT, text, self.nick, own=True, delivery=Delivery.PENDING)
        self._own[local_id] = line
        self.on_line(line)
        return line

    def system(self, text: str, kind: str = LineKind.SYSTEM) -> None:
        self.on_line(LogLine(kind, text))

    # --- events --------------------------------------------------------------------------

    def apply(self, event: Any) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    def _on_Connecting(self, event: Connecting) -> None:
        self.status = Status.CONNECTING
        self.status_detail = f"{event.host}:{event.port}"
        if event.attempt == 1:
            self.system(f"Connecting to {event.host}:{event.port}…")

    def _on_Connected(self, event: Connected) -> None:
        self.status = Status.CONNECTED
        self.nick = event.nick
        self.server_name = event.server
        self.users = list(event.users)
        self.max_text_chars = event.limits.max_text_chars
        others = [u for u in event.users if u != event.nick]
        here = ", ".join(others) if others else "nobody else yet"
        self.system(f"Connected to {event.server} as {event.nick}. Here: {here}")

    def _on_Disconnected(self, event: Disconnected) -> None:
        self.status = Status.RECONNECTING if event.will_retry else Status.DISCONNECTED
        self.status_detail = event.reason
        kind = LineKind.SYSTEM if event.will_retry or event.reason == "closed" else LineKind.ERROR
        self.system(f"Disconnected: {event.reason}", kind)

    def _on_Reconnecting(self, event: Reconnecting) -> None:
        self.status = Status.RECONNECTING
        self.status_detail = f"retrying in {event.delay:.1f} s"
        self.system(f"Reconnecting in {event.delay:.1f} s (attempt {event.attempt})…")

    def _on_RoundTrip(self, event: RoundTrip) -> None:
        self.rtt_ms = event.ms

    def _on_ChatSent(self, event: ChatSent) -> None:
        line = self._own.pop(event.local_id, None)
        if line is not None:
            line.set_delivery(Delivery.SENT)

    def _on_ChatFailed(self, event: ChatFailed) -> None:
        line = self._own.pop(event.local_id, None)
        if line is not None:
            line.set_delivery(Delivery.FAILED)
        self.system(f"Not sent: {event.reason}", LineKind.ERROR)

    def _on_ChatMessage(self, event: ChatMessage) -> None:
        self.on_line(
            LogLine(
                LineKind.CHAT,
                event.text,
                event.nick,
                ts=event.ts,
                mention=mentions(event.text, self.nick),
            )
        )

    def _on_UserJoined(self, event: UserJoined) -> None:
        if event.nick not in self.users:
            self.users.append(event.nick)
        self.on_line(LogLine(LineKind.SYSTEM, f"{event.nick} joined", ts=event.ts))

    def _on_UserLeft(self, event: UserLeft) -> None:
        if event.nick in self.users:
            self.users.remove(event.nick)
        reason = f" ({event.reason})" if event.reason else ""
        self.on_line(LogLine(LineKind.SYSTEM, f"{event.nick} left{reason}", ts=event.ts))

    def _on_NickChanged(self, event: NickChanged) -> None:
        self.users = [event.new if u == event.old else u for u in self.users]
        if event.old == self.nick:
            self.nick = event.new
            text = f"You are now known as {event.new}"
        else:
            text = f"{event.old} is now known as {event.new}"
        self.on_line(LogLine(LineKind.SYSTEM, text, ts=event.ts))

    def _on_UserList(self, event: UserList) -> None:
        self.users = list(event.users)
        self.system(f"Users here ({len(event.users)}): " + ", ".join(event.users))

    def _on_ErrorReply(self, event: ErrorReply) -> None:
        self.system(event.message, LineKind.ERROR)


def format_line(line: LogLine) -> str:
    """A log line as one line of plain text (terminal chat, logs)."""
    stamp = time.strftime("%H:%M", time.localtime(line.ts))
    if line.kind == LineKind.CHAT:
        text = f"{line.nick}: {line.text}"
    elif line.kind == LineKind.ACTION:
        text = f"* {line.nick} {line.text}"
    else:
        text = f"-- {line.text}"
    return f"[{stamp}] {text}"
