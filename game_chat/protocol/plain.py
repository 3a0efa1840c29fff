"""The plain-text dialect: the classic tutorial chat protocol.

Plain clients send text frames and receive text frames. :func:`render_plain` turns a server
event into the line a plain client shows. It is pure; the only thing that depends on the
recipient is its current room (lines from its other rooms are prefixed ``[#room]``), so the
server encodes each broadcast at most three times: rich, plain-current, plain-other.
"""

from __future__ import annotations

from typing import Any, Final

from .messages import (
    Ack,
    AwayChanged,
    ChatMessage,
    ErrorReply,
    Goodbye,
    HistoryPage,
    NickChanged,
    Notice,
    Pong,
    PrivateMessage,
    RoomJoined,
    RoomList,
    ServerMessage,
    TopicChanged,
    UserJoined,
    UserLeft,
    UserList,
    UserParted,
    Welcome,
    WhoReply,
)

#: The reply a plain sender gets for each accepted line, exactly as in the tutorial.
SENT_REPLY: Final = "Message was Sent!"
#: Frames with which a plain client ends its session.
DISCONNECT_COMMANDS: Final = frozenset({"Client Disconnected", "!DISCONNECT"})


def _with_reason(text: str, reason: str) -> str:
    return f"{text} ({reason})" if reason else text


def _member(info: dict[str, Any]) -> str:
    name = ("@" if info.get("oper") else "") + str(info.get("nick", "?"))
    if info.get("away"):
        name += f" (away: {info['away']})"
    if info.get("muted"):
        name += " (muted)"
    return name


def _chat(message: ChatMessage | PrivateMessage) -> str:
    body = (
        f"* {message.nick} {message.text}" if message.action else f"{message.nick}: {message.text}"
    )
    return f"[history] {body}" if message.history else body


def _render(message: ServerMessage) -> str:
    if isinstance(message, ChatMessage):
        return _chat(message)
    if isinstance(message, PrivateMessage):
        return "[private] " + _chat(message)
    if isinstance(message, Ack):
        return SENT_REPLY
    if isinstance(message, UserJoined):
        return f"* {message.nick} joined {message.room}"
    if isinstance(message, UserParted):
        return _with_reason(f"* {message.nick} left {message.room}", message.reason)
    if isinstance(message, UserLeft):
        return _with_reason(f"* {message.nick} left", message.reason)
    if isinstance(message, NickChanged):
        return f"* {message.old} is now known as {message.new}"
    if isinstance(message, RoomJoined):
        topic = f" Topic: {message.topic}." if message.topic else ""
        here = ", ".join(_member(m) for m in message.members)
        return f"* You are in {message.room}.{topic} Here: {here}"
    if isinstance(message, TopicChanged):
        return f"* {message.nick} set the topic of {message.room}: {message.topic}"
    if isinstance(message, RoomList):
        rooms = [
            f"{r.get('room')} ({r.get('members')})" + (f": {r['topic']}" if r.get("topic") else "")
            for r in message.rooms
        ]
        return "* Rooms: " + "; ".join(rooms)
    if isinstance(message, WhoReply):
        where = message.room or "the server"
        return f"* Users in {where}: " + ", ".join(_member(m) for m in message.members)
    if isinstance(message, AwayChanged):
        return (
            f"* {message.nick} is away: {message.reason}"
            if message.reason
            else (f"* {message.nick} is back")
        )
    if isinstance(message, HistoryPage):
        lines = [
            "[history] "
            + (
                f"* {m.get('nick')} {m.get('text')}"
                if m.get("action")
                else (f"{m.get('nick')}: {m.get('text')}")
            )
            for m in message.messages
        ]
        return "\n".join([f"* {len(lines)} older messages of {message.room}:", *lines])
    if isinstance(message, Notice):
        return f"* {message.text}"
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


def render_plain(message: ServerMessage, current_room: str | None = None) -> str:
    """The text line a plain client whose current room is ``current_room`` gets for an event.

    Events of another room than the current one start with ``[#room] ``.
    """
    line = _render(message)
    room = getattr(message, "room", None)
    if (
        room is not None
        and current_room is not None
        and room != current_room
        and not isinstance(message, RoomJoined | RoomList | WhoReply | HistoryPage)
    ):
        return f"[{room}] {line}"
    return line
