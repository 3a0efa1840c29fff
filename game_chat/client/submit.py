"""What a line typed into the chat does, for the window and ``--no-gui`` alike. No pygame.

A plain line goes to the tab shown (a room: a chat line to it; a private conversation: a
private message). A ``/command`` becomes a protocol message through
:func:`game_chat.protocol.commands.parse_command`, with a few handled here: ``/msg`` opens the
private tab, ``/join`` of a room we are in shows it, ``/part`` in a private tab (or ``/close``)
closes it, ``/history`` pages in the history above the oldest line shown, ``/help`` answers
locally while disconnected, ``/quit`` is returned to the caller.
"""

from __future__ import annotations

from typing import Protocol

from ..protocol.commands import ALIASES, COMMANDS, help_lines, is_command, parse_command
from ..protocol.errors import RemoteProtocolError
from ..protocol.messages import (
    ClientMessage,
    FetchHistory,
    Goodbye,
    Help,
    JoinRoom,
    PartRoom,
    SendChat,
    SendPrivate,
    SetTopic,
)
from .conversation import Conversation, Status
from .model import LineKind
from .rooms import Tab

#: Commands known to the client only.
LOCAL_COMMANDS = ("close",)
#: Every command name, for Tab completion.
COMMAND_NAMES = (*COMMANDS, *LOCAL_COMMANDS)

__all__ = ["COMMAND_NAMES", "LOCAL_COMMANDS", "Sender", "submit_line"]


class Sender(Protocol):
    """The part of :class:`~game_chat.client.net.ChatClient` that typed lines use."""

    def send_chat(self, text: str, room: str | None = None, action: bool = False) -> int: ...

    def send_private(self, to: str, text: str, action: bool = False) -> int: ...

    def send(self, message: ClientMessage) -> int | None: ...


def submit_line(
    line: str, client: Sender, conversation: Conversation, *, follow_private: bool = True
) -> Goodbye | None:
    """Act on one typed line. Returns the Goodbye when the user asked to leave (the caller
    closes the client), else None. ``follow_private``: ``/msg`` shows the private tab."""
    if not is_command(line):
        _say(line[1:] if line.startswith("//") else line, client, conversation)
        return None
    word, _, argument = line[1:].partition(" ")
    name = ALIASES.get(word.lower(), word.lower())
    current = conversation.current
    if name == "close" or (name == "part" and not current.is_room and "#" not in argument[:1]):
        _close(client, conversation)
        return None
    room = current.name if current.is_room else conversation.lobby
    if name == "topic" and _show_topic(argument, current, conversation):
        return None
    try:
        message = parse_command(line, room)
    except RemoteProtocolError as exc:
        conversation.system(exc.message, LineKind.ERROR)
        return None
    if isinstance(message, Goodbye):
        return message
    if isinstance(message, SetTopic) and not current.is_room and "#" not in argument[:1]:
        conversation.system("Name the room here: /topic #ROOM TEXT", LineKind.ERROR)
        return None
    if isinstance(message, SetTopic) and message.topic.strip() == "-":
        message = SetTopic(message.room, "")  # "/topic -" clears (bare /topic shows it)
    _dispatch(message, client, conversation, follow_private)
    return None


def _show_topic(argument: str, current: Tab, conversation: Conversation) -> bool:
    """``/topic`` or ``/topic #room`` with no text shows the topic (as IRC clients do; the
    window clears one with ``/topic -``). False: the line sets a topic."""
    words = argument.split(None, 1)
    named = words[0] if words and words[0].startswith("#") and len(words[0]) > 1 else None
    text = (words[1] if len(words) > 1 else "") if named else argument.strip()
    if text:
        return False
    tab = conversation.tab(named) if named else (current if current.is_room else None)
    if tab is None or not tab.is_room:
        where = named or "this tab"
        conversation.system(f"No topic known for {where}: /topic #ROOM", LineKind.ERROR)
    elif tab.topic:
        conversation.system(f"Topic of {tab.name}: {tab.topic}", LineKind.NOTICE, tab=tab)
    else:
        conversation.system(
            f"{tab.name} has no topic (set one: /topic TEXT)", LineKind.NOTICE, tab=tab
        )
    return True


def _dispatch(
    message: ClientMessage, client: Sender, conversation: Conversation, follow_private: bool
) -> None:
    if isinstance(message, SendChat):  # /me: to the tab shown, whatever it is
        _say(message.text, client, conversation, action=message.action)
    elif isinstance(message, SendPrivate):
        tab = conversation.open_private(message.to, switch=follow_private)
        local_id = client.send_private(message.to, message.text, message.action)
        conversation.add_own(local_id, message.text, tab, message.action)
    elif isinstance(message, JoinRoom):
        if not conversation.expect_join(message.room):
            client.send(message)
    elif isinstance(message, FetchHistory):
        _older(message.room, client, conversation)
    elif isinstance(message, Help) and conversation.status != Status.CONNECTED:
        for text in help_lines():
            conversation.system(text, LineKind.NOTICE)
    else:
        client.send(message)


def _say(text: str, client: Sender, conversation: Conversation, action: bool = False) -> None:
    tab = conversation.current
    if not tab.is_room:
        conversation.add_own(client.send_private(tab.name, text, action), text, tab, action)
    elif not tab.joined:
        conversation.system(f"You are not in {tab.name}: /join {tab.name}", LineKind.ERROR)
    else:
        conversation.add_own(client.send_chat(text, tab.name, action), text, tab, action)


def _close(client: Sender, conversation: Conversation) -> None:
    tab = conversation.current
    if tab.is_room and tab.joined:
        client.send(PartRoom(tab.name))  # the tab closes when the server confirms
    elif not conversation.close(tab):
        conversation.system("This is the last tab: it stays open", LineKind.ERROR)


def _older(room: str, client: Sender, conversation: Conversation) -> None:
    tab = conversation.tab(room)
    if tab is None or not tab.is_room:
        conversation.system(f"You are not in {room}", LineKind.ERROR)
        return
    request = conversation.request_older(tab)
    if request is not None:
        client.send(request)
    elif not tab.history_pending:
        conversation.system(f"No older messages of {tab.name}", LineKind.NOTICE)
