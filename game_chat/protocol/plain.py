"""The plain-text dialects: the classic tutorial chat protocols.

Plain clients send text frames and receive text frames. :func:`render_plain` turns a server
event into the line a plain client shows, or None for the events plain clients are not shown
(member data, pings). It is pure; the only thing that depends on the
recipient is its current room (lines from its other rooms are prefixed ``[#room]``), so the
server encodes each broadcast at most once per dialect and variant (rich; plain and select,
each current or other room).

:func:`render_select` does the same for the select-chatroom tutorial's clients (10-byte
headers), whose every line is a pair of frames, a username and a message: lines others say
come from their nick, events from ``*``, refusals from ``server``; their own lines are not
acknowledged (that tutorial has no acks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .errors import LocalProtocolError
from .messages import (
    SERVER_TYPES,
    Ack,
    AwayChanged,
    ChatMessage,
    ErrorReply,
    Goodbye,
    HistoryPage,
    LineSettled,
    MemberData,
    NickChanged,
    Notice,
    Ping,
    Pong,
    PrivateMessage,
    RoomJoined,
    RoomList,
    RoomModeChanged,
    RoomOpChanged,
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
#: The username of server events (joins, leaves, answers) in the select dialect.
SYSTEM_NAME: Final = "*"
#: The username of refusals (error lines) in the select dialect; no member may take it.
SERVER_NAME: Final = "server"


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


def _room_joined(message: RoomJoined) -> str:
    topic = f" Topic: {message.topic}." if message.topic else ""
    here = ", ".join(_member(m) for m in message.members)
    return f"* You are in {message.room}.{topic} Here: {here}"


def _room_list(message: RoomList) -> str:
    rooms = [
        f"{r.get('room')} ({r.get('members')})" + (f": {r['topic']}" if r.get("topic") else "")
        for r in message.rooms
    ]
    return "* Rooms: " + "; ".join(rooms)


def _history_page(message: HistoryPage) -> str:
    lines = [
        "[history] "
        + (
            f"* {m.get('nick')} {m.get('text')}"
            if m.get("action")
            else f"{m.get('nick')}: {m.get('text')}"
        )
        for m in message.messages
    ]
    return "\n".join([f"* {len(lines)} older messages of {message.room}:", *lines])


def _welcome(message: Welcome) -> str:
    others = ", ".join(u for u in message.users if u != message.nick) or "nobody else"
    return f"* Welcome to {message.server}, {message.nick}. Here: {others}"


def _not_shown(message: ServerMessage) -> None:
    return None


#: Server message class -> its plain line (None: plain clients are not shown it). Every class
#: of SERVER_TYPES has an entry, or this module does not import.
_RENDERERS: Final[dict[type, Callable[[Any], str | None]]] = {
    ChatMessage: _chat,
    PrivateMessage: lambda m: "[private] " + _chat(m),
    Ack: lambda m: SENT_REPLY,
    UserJoined: lambda m: f"* {m.nick} joined {m.room}",
    UserParted: lambda m: _with_reason(
        f"* {m.nick} was removed from {m.room} by {m.by}" if m.by else f"* {m.nick} left {m.room}",
        m.reason,
    ),
    RoomOpChanged: lambda m: (
        f"* {m.by} made {m.nick} an operator of {m.room}"
        if m.op
        else f"* {m.by} took {m.nick}'s operator status in {m.room}"
    ),
    RoomModeChanged: lambda m: f"* {m.by} set {m.mode}{' ' + m.arg if m.arg else ''} on {m.room}",
    UserLeft: lambda m: _with_reason(f"* {m.nick} left", m.reason),
    NickChanged: lambda m: f"* {m.old} is now known as {m.new}",
    RoomJoined: _room_joined,
    TopicChanged: lambda m: f"* {m.nick} set the topic of {m.room}: {m.topic}",
    RoomList: _room_list,
    WhoReply: lambda m: (
        f"* Users in {m.room or 'the server'}: " + ", ".join(_member(info) for info in m.members)
    ),
    AwayChanged: lambda m: f"* {m.nick} is away: {m.reason}" if m.reason else f"* {m.nick} is back",
    HistoryPage: _history_page,
    Notice: lambda m: f"* {m.text}",
    Welcome: _welcome,
    UserList: lambda m: "* Users: " + ", ".join(m.users),
    ErrorReply: lambda m: f"ERROR {m.code}: {m.message}",
    Goodbye: lambda m: f"* Disconnected: {m.reason}" if m.reason else "* Disconnected",
    Pong: lambda m: "* pong",
    #: Plain members are never pinged (a tutorial client could not answer, PROTOCOL.md 8.1).
    Ping: _not_shown,
    #: Member data is not shown to plain clients (PROTOCOL.md 4.11).
    MemberData: _not_shown,
    #: A plain client was shown the line when it was pending: it has nothing to update.
    LineSettled: _not_shown,
}
_unrendered = set(SERVER_TYPES.values()) - set(_RENDERERS)
if _unrendered:
    raise LocalProtocolError(f"no plain rendering for {sorted(c.__name__ for c in _unrendered)}")


def render_plain(message: ServerMessage, current_room: str | None = None) -> str | None:
    """The text line a plain client whose current room is ``current_room`` gets for an event,
    or None for an event plain clients are not shown: member data is not shown to plain
    clients, and they are never pinged. Never raises for a server message.

    Events of another room than the current one start with ``[#room] ``.
    """
    line = _render(message)
    return None if line is None else _room_tag(message, current_room) + line


def render_select(message: ServerMessage, current_room: str | None = None) -> list[tuple[str, str]]:
    """The (username, message) pairs a select-dialect client gets for an event: ``[]`` for
    an ack (that tutorial has none) and for what plain clients are not shown. A line somebody
    said comes from its nick (an action from ``*``); events and answers from ``*``, refusals
    from ``server``; ``[#room]``, ``[private]`` and ``[history]`` start the message. Never
    raises for a server message."""
    if isinstance(message, Ack):
        return []
    tag = _room_tag(message, current_room)
    if isinstance(message, ChatMessage | PrivateMessage) and not message.action:
        marks = "[private] " if isinstance(message, PrivateMessage) else ""
        marks += "[history] " if message.history else ""
        return [(message.nick, tag + marks + message.text)]
    line = _render(message)
    if line is None:
        return []
    name = SERVER_NAME if isinstance(message, ErrorReply) else SYSTEM_NAME
    return [(name, tag + part.removeprefix("* ")) for part in line.split("\n")]


def _render(message: ServerMessage) -> str | None:
    render = _RENDERERS.get(type(message))
    if render is None:
        raise LocalProtocolError(f"not a server message: {message!r}")
    return render(message)


def _room_tag(message: ServerMessage, current_room: str | None) -> str:
    """``[#room] `` for an event of another room than the recipient's current one."""
    room = getattr(message, "room", None)
    if (
        room is not None
        and current_room is not None
        and room != current_room
        and not isinstance(message, RoomJoined | RoomList | WhoReply | HistoryPage)
    ):
        return f"[{room}] "
    return ""
