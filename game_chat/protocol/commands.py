"""Slash commands: one table, shared by the server (plain clients type them) and the client's
input line (the window and ``--no-gui`` turn them into rich messages). Sans-I/O.

:func:`parse_command` turns ``"/kick bob spamming"`` into ``Kick("bob", "spamming")``; the
room-relative commands (``/part``, ``/topic``, ``/me``, ``/who``) use the caller's current room.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import ErrorCode, RemoteProtocolError
from .messages import (
    Ban,
    ChangeNick,
    ClientMessage,
    FetchHistory,
    Goodbye,
    Help,
    JoinRoom,
    Kick,
    ListRooms,
    Mute,
    Oper,
    PartRoom,
    SendChat,
    SendPrivate,
    SetAway,
    SetRoomMode,
    SetTopic,
    Unban,
    Unmute,
    Who,
)
from .text import clean_reason

LOBBY = "#lobby"


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    description: str
    build: Callable[[str, str], ClientMessage]  # (argument text, current room) -> message
    oper: bool = False


def _usage(usage: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_COMMAND, f"usage: {usage}")


def _need(arg: str, usage: str) -> str:
    if not arg:
        raise _usage(usage)
    return arg


def _split(arg: str) -> tuple[str, str]:
    first, _, rest = arg.partition(" ")
    return first, rest.strip()


def _minutes(text: str, usage: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise _usage(usage) from None
    if not 0 < value < 10**7:
        raise _usage(usage)
    return value


def _ban(arg: str, room: str) -> Ban:
    usage = "/ban NICK|ADDRESS [MINUTES] [REASON]"
    target, rest = _split(_need(arg, usage))
    word, reason = _split(rest)
    if word and word.replace(".", "", 1).isdigit():
        return Ban(target, _minutes(word, usage), reason)
    return Ban(target, None, rest)


def _mute(arg: str, room: str) -> Mute:
    usage = "/mute NICK [MINUTES]"
    nick, rest = _split(_need(arg, usage))
    return Mute(nick, _minutes(rest, usage) if rest else None)


def _msg(arg: str, room: str) -> SendPrivate:
    usage = "/msg NICK TEXT"
    nick, text = _split(_need(arg, usage))
    return SendPrivate(nick, _need(text, usage))


def _join(arg: str, room: str) -> JoinRoom:
    name = _need(arg, "/join #ROOM").split()[0]
    return JoinRoom(name if name.startswith("#") else "#" + name)


def _part(arg: str, room: str) -> PartRoom:
    target, reason = _split(arg)
    if target.startswith("#"):
        return PartRoom(target, reason)
    return PartRoom(room, arg)


def _topic(arg: str, room: str) -> SetTopic:
    target, rest = _split(arg)
    if target.startswith("#") and len(target) > 1:
        return SetTopic(target, rest)
    return SetTopic(room, arg)


def _who(arg: str, room: str) -> Who:
    target = arg.split()[0] if arg.strip() else room
    if not target:  # in no room: everyone on the server
        return Who(None)
    return Who(target if target.startswith("#") else "#" + target)


def _mode(arg: str, room: str) -> SetRoomMode:
    usage = "/mode [#ROOM] +m|-m|+t|-t|+s|-s|+n|-n|+b MASK|-b MASK|+v NICK|-v NICK"
    words = _need(arg, usage).split()
    if words[0].startswith("#"):
        room, words = words[0], words[1:]
    if not words or words[0][:1] not in ("+", "-") or len(words) > 2:
        raise _usage(usage)
    return SetRoomMode(room, words[0], words[1] if len(words) > 1 else None)


def _give(mode: str) -> Callable[[str, str], SetRoomMode]:
    usage = f"/{_GIVE_NAMES[mode]} NICK"
    return lambda arg, room: SetRoomMode(room, mode, _need(arg, usage).split()[0])


_GIVE_NAMES = {"+o": "op", "-o": "deop", "+v": "voice", "-v": "devoice"}


def _history(arg: str, room: str) -> FetchHistory:
    target = arg.split()[0] if arg.strip() else room
    return FetchHistory(target if target.startswith("#") else "#" + target)


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("join", "/join #ROOM", "join a room (made if new) and make it current",
                _join),
        Command("part", "/part [#ROOM] [REASON]", "leave a room (default: the current one)",
                _part),
        Command("rooms", "/rooms", "list rooms with member counts and topics",
                lambda a, r: ListRooms()),
        Command("topic", "/topic [#ROOM] TEXT", "set a room's topic", _topic),
        Command("me", "/me ACTION", "say what you do: * you ACTION",
                lambda a, r: SendChat(_need(a, "/me ACTION"), room=r, action=True)),
        Command("msg", "/msg NICK TEXT", "private message", _msg),
        Command("nick", "/nick NEW", "change your nickname",
                lambda a, r: ChangeNick(_need(a, "/nick NEW"))),
        Command("away", "/away [REASON]", "mark yourself away (no reason: back)",
                lambda a, r: SetAway(a)),
        Command("who", "/who [#ROOM]", "who is in the room, with away and operator marks",
                _who),
        Command("history", "/history [#ROOM]", "older messages of the room", _history),
        Command("mode", "/mode [#ROOM] +m|-m|+t|-t|+s|-s|+n|-n|+b MASK|-b MASK",
                "change the room's modes (its operators)", _mode),
        Command("op", "/op NICK", "make NICK an operator of the room (its operators)",
                _give("+o")),
        Command("deop", "/deop NICK", "take NICK's operator status in the room", _give("-o")),
        Command("voice", "/voice NICK", "let NICK talk in the moderated room", _give("+v")),
        Command("devoice", "/devoice NICK", "take NICK's voice in the room", _give("-v")),
        Command("help", "/help", "this list", lambda a, r: Help()),
        Command("quit", "/quit [REASON]", "leave the server", lambda a, r: Goodbye(a)),
        Command("oper", "/oper PASSWORD", "become an operator",
                lambda a, r: Oper(_need(a, "/oper PASSWORD"))),
        Command("kick", "/kick NICK [REASON]", "disconnect a user", oper=True,
                build=lambda a, r: Kick(*_split(_need(a, "/kick NICK [REASON]")))),
        Command("ban", "/ban NICK|ADDRESS [MINUTES] [REASON]",
                "ban a nick and its address, or an address", _ban, oper=True),
        Command("unban", "/unban NICK|ADDRESS", "lift a ban", oper=True,
                build=lambda a, r: Unban(_need(a, "/unban NICK|ADDRESS").split()[0])),
        Command("mute", "/mute NICK [MINUTES]", "stop a user from talking", _mute, oper=True),
        Command("unmute", "/unmute NICK", "let a muted user talk again", oper=True,
                build=lambda a, r: Unmute(_need(a, "/unmute NICK").split()[0])),
    )
}  # fmt: skip
ALIASES = {"exit": "quit", "users": "who", "j": "join", "w": "msg", "query": "msg"}


def is_command(line: str) -> bool:
    """A line that is a command: starts with one slash ("//text" is text starting with "/")."""
    return line.startswith("/") and not line.startswith("//")


def parse_command(line: str, current_room: str = LOBBY) -> ClientMessage:
    """The message a /command line stands for; RemoteProtocolError if unknown or misused."""
    word, _, argument = line[1:].partition(" ")
    name = ALIASES.get(word.lower(), word.lower())
    command = COMMANDS.get(name)
    if command is None:
        raise RemoteProtocolError(
            ErrorCode.UNKNOWN_COMMAND,
            f"unknown command /{clean_reason(word, 40)}; /help lists the commands",
        )
    return command.build(argument.strip(), current_room)


def help_lines(oper: bool = False) -> list[str]:
    """One line per command: usage, then what it does (operator commands only for operators)."""
    lines = [f"{c.usage} — {c.description}" for c in COMMANDS.values() if not c.oper]
    if oper:
        lines += [f"{c.usage} — {c.description} (operators)" for c in COMMANDS.values() if c.oper]
    lines.append("//TEXT — send a line that starts with a slash")
    return lines
