"""The plain-text dialect: the classic tutorial chat protocol.

Plain clients send text frames and receive text frames. These functions render server
events as the lines a plain client shows; they are pure, so the server encodes each
broadcast once per dialect.
"""

from __future__ import annotations

from typing import Final

from .messages import (
    Ack,
    ChatMessage,
    ErrorReply,
    Goodbye,
    NickChanged,
    Pong,
    ServerMessage,
    UserJoined,
    UserLeft,
    UserList,
    Welcome,
)

#: The reply a plain sender gets for each accepted line, exactly as in the tutorial.
SENT_REPLY: Final = "Message was Sent!"
#: Frames with which a plain client ends its session.
DISCONNECT_COMMANDS: Final = frozenset({"Client Disconnected", "!DISCONNECT"})


def render_plain(message: ServerMessage) -> str:
    """The text line a plain client gets for a server event."""
    if isinstance(message, ChatMessage):
        return f"{message.nick}: {message.text}"
    if isinstance(message, Ack):
        return SENT_REPLY
    if isinstance(message, UserJoined):
        return f"* {message.nick} joined"
    if isinstance(message, UserLeft):
        return (
            f"* {message.nick} left ({message.reason})"
            if message.reason
            else (f"* {message.nick} left")
        )
    if isinstance(message, NickChanged):
        return f"* {message.old} is now known as {message.new}"
    if isinstance(message, Welcome):
        others = ", ".join(u for u in message.users if u != message.nick) or "nobody else"
        return f"* Welcome to {message.server}, {message.nick}. Here: {others}"
    if isinstance(message, UserList):
        return "* Users: " + ", ".join(message.users)
    if isinstance(message, ErrorReply):
        return f"ERROR {message.code}: {message.message}"
    if isinstance(message, Goodbye):
        return f"* Disconnected: {message.reason}" if message.reason else "* Disconnected"
    if isinstance(message, Pong):
        return "* pong"
    raise TypeError(f"no plain rendering for {message!r}")
