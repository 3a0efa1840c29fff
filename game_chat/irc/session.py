"""One IRC client's side of the conversation, without sockets (docs/IRC.md).

:class:`IrcSession` has the interface of :class:`~game_chat.server.session.Session` that the
connection uses (``handle_frame`` gets one line here, ``settle``, ``reject``, ``end``...) and
turns IRC commands into calls on the same :class:`ChatState` as every other dialect: one chat,
one set of rooms and nicks, one order. A peer's mistake becomes an IRC numeric (or a NOTICE)
for it alone; only QUIT, an excess flood, a kick or a timeout end the session.

Registration: NICK and USER (and PASS first on a server with a password), held back while
capabilities are negotiated (CAP LS / REQ / END). The member joins no room by itself: IRC
clients join what they ask for.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import logging
import math
import time
from collections.abc import Callable

from ..protocol.errors import ErrorCode, RemoteProtocolError
from ..protocol.messages import ChatMessage, Goodbye, Ping
from ..protocol.names import nick_key
from ..protocol.text import clean_reason
from ..server.members import MAX_ROOM_CHARS, MAX_TOPIC_CHARS, Mailbox
from ..server.moderation import host_of
from ..server.session import SessionCore
from ..server.state import ROOM_MODES, ChatState, MemberGone
from .chathistory import MAX_LINES as MAX_HISTORY_LINES
from .chathistory import BadRequest, Ref, Request, parse_request
from .lines import IrcLineError, IrcMessage, format_line, parse_line
from .render import (
    CAPABILITIES,
    HOST,
    USER,
    Renderer,
    dialect_for,
    mask,
    server_name,
    server_time,
    text_room,
)

log = logging.getLogger("game_chat.irc")

VERSION = "game_chat-0.1"
#: Longest user name kept from USER (as daemons cut it).
USERLEN = 9
QUIT_REASON = "Quit"
LOST_REASON = "connection lost"
_NOT_UTF8 = "Message rejected, your IRC software MUST use UTF-8"

#: What each command costs from the flood budget: the rich message type it stands for.
_COSTS = {
    "PRIVMSG": "chat", "NOTICE": "chat", "JOIN": "join", "PART": "part", "TOPIC": "topic",
    "NAMES": "who", "LIST": "rooms", "WHO": "who", "WHOIS": "who", "AWAY": "away",
    "NICK": "nick", "PING": "ping", "PONG": "pong", "KICK": "kick", "MODE": "who",
    "OPER": "oper", "MOTD": "help", "LUSERS": "users", "VERSION": "help", "ISON": "who",
    "USERHOST": "who", "QUIT": "pong", "CAP": "pong", "USER": "hello", "PASS": "hello",
    "CHATHISTORY": "history",
}  # fmt: skip
#: Our error codes as IRC numerics (those that depend on the command are chosen in _refused).
_NUMERICS = {
    ErrorCode.NICK_TAKEN: "433",
    ErrorCode.NICK_INVALID: "432",
    ErrorCode.NO_SUCH_ROOM: "403",
    ErrorCode.BAD_ROOM: "479",
    ErrorCode.NO_SUCH_NICK: "401",
    ErrorCode.NOT_OPERATOR: "481",
    ErrorCode.BAD_PASSWORD: "464",
    ErrorCode.TOO_MANY_ROOMS: "405",
    ErrorCode.EMPTY_TEXT: "412",
}


class IrcSession(SessionCore):
    """Protocol logic of one IRC connection. ``handle_frame`` returns False to end it."""

    def __init__(
        self,
        state: ChatState,
        mailbox: Mailbox,
        address: str,
        disconnect: Callable[[str], None] = lambda reason: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(state, mailbox, address, disconnect, clock)
        self._nick: str | None = None  # asked for before registration
        self._user: str | None = None
        self._password: str | None = None
        self._realname = ""
        self._negotiating = False  # CAP LS/REQ seen, no CAP END yet: registration waits
        self._caps: set[str] = set()
        self.renderer = Renderer(self._current_nick, frozenset(), server_name(state.server_name))
        self.server = self.renderer.server
        self._ids = itertools.count(1)

    # --- what the connection asks -------------------------------------------------------

    @property
    def dialect(self) -> str:
        return self.renderer.dialect

    @property
    def pinged(self) -> bool:
        """IRC clients are pinged when silent, and answer (PROTOCOL.md 8.1's rules)."""
        return True

    def handle_frame(self, line: bytes | None) -> bool:
        """Handle one line (without its CR LF; None: one over the limits, skipped); False:
        close the connection now."""
        if self._removed:
            return False
        if line is None:
            self._answer_line("417", "Input line was too long")
            return True
        try:
            message = parse_line(line)
        except IrcLineError:
            return True  # not IRC: daemons ignore such lines
        try:
            self._admit(message.command)  # (a refused line costs its share of the budget too)
            if not message.utf8:  # ISUPPORT says UTF8ONLY: nothing else is taken, or relayed
                if message.command != "NOTICE":  # (never an automatic reply to a NOTICE)
                    self._answer(self.renderer.fail(message.command, "INVALID_UTF8", _NOT_UTF8))
                return True
            return self._dispatch(message)
        except RemoteProtocolError as exc:
            self._refused(message, exc)
            return not exc.fatal
        except MemberGone:
            self.member = None
            return False

    def _tell_refusal(self, exc: RemoteProtocolError, client_id: object) -> None:
        """A refusal without a command to answer in its terms (the deadline, a flood, a
        wrong password): the numeric there is for it, then (fatal) ERROR before the close."""
        if exc.code == ErrorCode.BAD_PASSWORD:
            self._numeric("464", "Password incorrect")
        elif exc.code == ErrorCode.BANNED:
            self._numeric("465", exc.message)
        if exc.fatal:
            self._send(format_line("ERROR", f"Closing link: {exc.message}", trailing=True))
        elif exc.code not in (ErrorCode.BAD_PASSWORD, ErrorCode.BANNED):
            self._send(self.renderer.notice(exc.message))

    def ping(self) -> None:
        self._pings += 1
        self._send(self.renderer.render(Ping(self._pings)))

    def say_goodbye(self, reason: str) -> None:
        if self.member is None:
            self._send(self.renderer.render(Goodbye(reason)))

    # --- plumbing -------------------------------------------------------------------------

    def detach(self) -> None:
        """The connection is closed: drop the references back into it (the renderer asks
        this session for the nick: a cycle otherwise, freed only by the cyclic collector)."""
        super().detach()
        self.renderer.detach()

    def _current_nick(self) -> str:
        member = self.member
        return member.nick if member is not None else (self._nick or "*")

    def _send(self, data: bytes) -> None:
        if data:
            self.mailbox.put(data)

    def _from_server(self, command: str, *params: str) -> None:
        self._send(format_line(command, *params, prefix=self.server, trailing=True))

    def _numeric(self, code: str, *params: str) -> None:
        self._send(self.renderer.numeric(code, *params))

    def _answer(self, data: bytes) -> None:
        """A refusal of a line: after the echoes of the lines before it (lines do not wait
        for each other, so their refusals must; every other command waits in _dispatch)."""
        self.settle()
        self._send(data)

    def _answer_line(self, code: str, *params: str) -> None:
        """A numeric refusing a PRIVMSG (:meth:`_answer`)."""
        self._answer(self.renderer.numeric(code, *params))

    def _admit(self, command: str) -> None:
        member = self.member
        if member is not None and member.oper:
            return
        self._limiter.charge(_COSTS.get(command, "invalid"))

    def _refused(self, message: IrcMessage, exc: RemoteProtocolError) -> None:
        """A refusal as the numeric an IRC client expects for this command (a fatal one as
        :meth:`reject` tells it), after the answers to the lines before it (:meth:`_answer`)."""
        self.settle()
        if exc.fatal:
            self.reject(exc)
            return
        level = logging.DEBUG if exc.code == ErrorCode.RATE_LIMITED else logging.INFO
        log.log(level, "%s: %s %s: %s", self.address, message.command, exc.code, exc.message)
        params = message.params
        target = params[0] if params else "*"
        code = exc.code
        command = message.command
        if command == "NOTICE":
            return  # never an automatic reply to a NOTICE (RFC 2812 3.3.2)
        if code in (ErrorCode.NICK_TAKEN, ErrorCode.NICK_INVALID):
            self._numeric(_NUMERICS[code], target, exc.message)
        elif code == ErrorCode.NOT_IN_ROOM:
            if command == "PRIVMSG":
                self._numeric("404", target, f"Cannot send to channel ({exc.message})")
            else:
                self._numeric("442", target, "You're not on that channel")
        elif code in (ErrorCode.MUTED, ErrorCode.CANNOT_SEND):
            self._numeric("404", target, f"Cannot send to channel ({exc.message})")
        elif code == ErrorCode.BANNED_FROM_ROOM:
            self._numeric("474", target, "Cannot join channel (+b)")
        elif code == ErrorCode.NO_SUCH_ROOM:
            self._numeric("403", target, "No such channel")
        elif code == ErrorCode.NO_SUCH_NICK and command in ("KICK", "MODE"):
            nick = params[1] if command == "KICK" and len(params) > 1 else params[-1]
            if self.state.member_info(nick) is None:
                self._numeric("401", nick, "No such nick/channel")
            else:
                self._numeric("441", nick, target, "They aren't on that channel")
        elif code == ErrorCode.NOT_OPERATOR and command in ("KICK", "MODE", "TOPIC"):
            self._numeric("482", target, "You're not channel operator")
        elif code in _NUMERICS:
            self._numeric(_NUMERICS[code], target, exc.message)
        else:
            self._send(self.renderer.notice(f"{command}: {exc.message}"))

    # --- dispatch -------------------------------------------------------------------------

    def _dispatch(self, message: IrcMessage) -> bool:
        command = message.command
        if command not in ("PRIVMSG", "NOTICE"):
            # Lines go on without waiting; anything else (PING, NICK, QUIT too) answers
            # after them: a client's PING after its PRIVMSG is its barrier, and a rename
            # after a line must not reach the room before the line does.
            self.settle()
        early = _BEFORE.get(command)
        if early is not None:
            return early(self, message) is not False
        if self.member is None:
            if command in _AFTER:
                self._numeric("451", "You have not registered")
            else:
                self._numeric("421", command, "Unknown command")
            return True
        handler = _AFTER.get(command)
        if handler is None:
            self._numeric("421", command, "Unknown command")
            return True
        return handler(self, message) is not False

    def _need(self, message: IrcMessage, count: int) -> bool:
        if len(message.params) >= count and all(message.params[:count]):
            return True
        self._numeric("461", message.command, "Not enough parameters")
        return False

    # --- registration ---------------------------------------------------------------------

    def _cap(self, message: IrcMessage) -> None:
        sub = message.params[0].upper() if message.params else ""
        nick = self._current_nick()
        if sub == "LS":
            self._negotiating = self.member is None
            self._from_server("CAP", nick, "LS", " ".join(CAPABILITIES))
        elif sub == "LIST":
            caps = " ".join(sorted(self._caps))
            self._from_server("CAP", nick, "LIST", caps)
        elif sub == "REQ":
            self._negotiating = self.member is None
            asked = message.params[1] if len(message.params) > 1 else ""
            wanted = asked.split()
            names = [w.lstrip("-") for w in wanted]
            if not wanted or any(n not in CAPABILITIES for n in names):
                self._from_server("CAP", nick, "NAK", asked)
                return
            for word in wanted:
                if word.startswith("-"):
                    self._caps.discard(word[1:])
                else:
                    self._caps.add(word)
            self._use_caps()
            self._from_server("CAP", nick, "ACK", asked)
        elif sub == "END":
            self._negotiating = False
            self._try_register()
        else:
            self._numeric("410", sub or "*", "Invalid CAP command")

    def _use_caps(self) -> None:
        self.renderer.caps = frozenset(self._caps)
        self.renderer.dialect = dialect_for(self._caps)
        member = self.member
        if member is not None:
            self.state.set_dialect(member, self.renderer.dialect)

    def _pass(self, message: IrcMessage) -> None:
        if self.member is not None:
            self._numeric("462", "You may not reregister")
        elif self._need(message, 1):
            self._password = message.params[0]

    def _nick_command(self, message: IrcMessage) -> None:
        if not message.params or not message.params[0]:
            self._numeric("431", "No nickname given")
            return
        nick = message.params[0]
        if self.member is not None:
            if nick == self.member.nick:
                return
            self.state.rename(self.member, nick)
            return
        self.state.validate_new_nick(nick)  # 432/433 now, as daemons answer NICK at once
        self._nick = nick
        self._try_register()

    def _user_command(self, message: IrcMessage) -> None:
        if self.member is not None:
            self._numeric("462", "You may not reregister")
            return
        if not self._need(message, 4):
            return
        self._user = message.params[0]
        self._realname = message.params[3]
        self._try_register()

    def _try_register(self) -> None:
        if self.member is not None or self._negotiating or not self._nick or not self._user:
            return
        if self.state.access.password is not None:
            try:
                self.state.check_password(self._password)
            except RemoteProtocolError as exc:
                raise exc.as_fatal() from None
        member = self.state.join(
            self._nick,
            self.renderer.dialect,
            self.mailbox,
            self.address,
            lobby=False,
            render=self.renderer.render,
        )
        member.disconnect = self._kicked
        member.ident = (self._user[:USERLEN], self._realname)
        self.member = member
        log.info("%s: IRC client joined as %s", self.address, member.nick)
        self._welcome()

    def _welcome(self) -> None:
        me = self._me
        network = self.state.server_name
        self._numeric("001", f"Welcome to the {network} IRC network {mask(me.nick)}")
        self._numeric("002", f"Your host is {self.server}, running version {VERSION}")
        self._numeric("003", "This server is a game_chat server")
        self._send(format_line("004", me.nick, self.server, VERSION, "o", "b", prefix=self.server))
        tokens = isupport(self.state, network)
        for start in range(0, len(tokens), 12):
            self._numeric("005", *tokens[start : start + 12], "are supported by this server")
        self._lusers()
        self._numeric("422", "MOTD File is missing")

    def _lusers(self) -> None:
        users, peak = len(self.state), self.state.peak
        self._numeric("251", f"There are {users} users and 0 invisible on 1 servers")
        self._numeric("254", str(len(self.state.rooms())), "channels formed")
        self._numeric("255", f"I have {users} clients and 0 servers")
        self._numeric("265", str(users), str(peak), f"Current local users {users}, max {peak}")
        self._numeric("266", str(users), str(peak), f"Current global users {users}, max {peak}")

    def _ping(self, message: IrcMessage) -> None:
        if not message.params:
            self._numeric("409", "No origin specified")
            return
        self._from_server("PONG", self.server, message.params[0])

    def _quit(self, message: IrcMessage) -> bool:
        reason = clean_reason(message.params[0]) if message.params else ""
        self.leave_reason = f"Quit: {reason}" if reason else QUIT_REASON
        self._send(format_line("ERROR", f"Closing link: {self.leave_reason}", trailing=True))
        return False

    # --- after registration ---------------------------------------------------------------

    def _privmsg(self, message: IrcMessage) -> None:
        if len(message.params) < 1 or not message.params[0]:
            if message.command == "PRIVMSG":
                self._answer_line("411", f"No recipient given ({message.command})")
            return
        if len(message.params) < 2 or not message.params[1]:
            if message.command == "PRIVMSG":
                self._answer_line("412", "No text to send")
            return
        text, action = message.params[1], False
        targets = [t for t in message.params[0].split(",") if t]
        size, nick = len(text.encode()), self._me.nick
        if any(size > text_room(nick, message.command, t) for t in targets):
            # Relayed with the sender's mask in front, it would pass 512 bytes: refused
            # (nothing is said), as irctest allows, rather than cut as daemons do: a line
            # acked is delivered whole (the framed protocol's longer lines are split instead).
            if message.command == "PRIVMSG":
                self._answer_line("417", "Input line was too long")
            return
        if text.startswith("\x01"):
            body = text.strip("\x01")
            if not body.upper().startswith("ACTION"):
                return  # other CTCP requests: the chat has nobody to answer them
            text, action = body[len("ACTION") :].strip(), True
        for target in targets:
            client_id = f"i{next(self._ids)}"
            self.renderer.expect_ack(client_id, message.command, target, text, action)
            notice = message.command == "NOTICE"
            try:
                if target.startswith("#"):
                    accepted = self.state.say(
                        self._me, text, client_id, False, target, action, notice
                    )
                else:
                    accepted = self.state.private(
                        self._me, target, text, client_id, False, action, notice
                    )
            except RemoteProtocolError as exc:
                self.renderer.forget_ack(client_id)
                if exc.fatal or len(targets) == 1:
                    raise
                self._refused(IrcMessage(message.command, (target,)), exc)
                continue
            self._ticket = accepted.ticket or self._ticket
            if not target.startswith("#") and message.command == "PRIVMSG":
                info = self.state.member_info(target)
                if info is not None and info["away"]:  # (the chat tells others in a notice)
                    self._numeric("301", info["nick"], info["away"])

    def _join(self, message: IrcMessage) -> None:
        if not self._need(message, 1):
            return
        if message.params[0] == "0":  # JOIN 0: leave every channel
            for room in list(self._me.rooms.values()):
                self.state.part_room(self._me, room.name)
            return
        for name in message.params[0].split(","):
            if not name:
                continue
            if nick_key(name) in self._me.rooms:
                continue  # already there: daemons say nothing
            try:
                self.state.join_room(self._me, name)
            except RemoteProtocolError as exc:
                if exc.fatal:
                    raise
                self._refused(IrcMessage("JOIN", (name,)), exc)

    def _part(self, message: IrcMessage) -> None:
        if not self._need(message, 1):
            return
        reason = message.params[1] if len(message.params) > 1 else ""
        for name in message.params[0].split(","):
            if not name:
                continue
            try:
                self.state.part_room(self._me, name, reason)
            except RemoteProtocolError as exc:
                if exc.fatal:
                    raise
                self._refused(IrcMessage("PART", (name,)), exc)

    def _topic(self, message: IrcMessage) -> None:
        if not self._need(message, 1):
            return
        name = message.params[0]
        if len(message.params) > 1:
            if nick_key(name) not in self._me.rooms:
                self.state.room_view(self._me, name)  # no_such_room (403) before 442
                self._numeric("442", name, "You're not on that channel")
                return
            self.state.set_topic(self._me, name, message.params[1])
            return
        view = self.state.room_view(self._me, name)
        if view.topic:
            self._send(self.renderer.topic(view))
        else:
            self._numeric("331", view.room, "No topic is set")

    def _names(self, message: IrcMessage) -> None:
        if not message.params:
            self._numeric("366", "*", "End of /NAMES list")
            return
        for name in message.params[0].split(","):
            try:
                view = self.state.room_view(self._me, name)
            except RemoteProtocolError:
                self._numeric("366", name, "End of /NAMES list")
                continue
            if view.members and not (view.secret and nick_key(view.room) not in self._me.rooms):
                self._send(self.renderer.names(view.room, view.members, secret=view.secret))
            else:  # nobody, or secret (+s) to those outside
                self._numeric("366", view.room, "End of /NAMES list")

    def _who(self, message: IrcMessage) -> None:
        target = message.params[0] if message.params else "*"
        if target.startswith("#"):
            try:
                view = self.state.room_view(self._me, target)
                room, members = view.room, list(view.members)
            except RemoteProtocolError:
                members, room = [], target
            for m in members:
                info = self.state.member_info(m["nick"])
                if info is not None:
                    self._who_line(room, info, self.renderer.prefixes(m))
        else:  # a nick, or a mask of nicks, user names or real names (* and ?)
            pattern = "*" if target == "0" else target
            for nick in self.state.every_nick():
                info = self.state.member_info(nick)
                if info is not None and _who_matches(pattern, info):
                    self._who_line("*", info, "")
        self._numeric("315", target, "End of /WHO list")

    def _who_line(self, channel: str, info: dict[str, object], prefixes: str) -> None:
        """RPL_WHOREPLY: channel, user, host, server, nick, flags (with the member's channel
        prefixes), hops and real name."""
        flags = ("G" if info["away"] else "H") + ("*" if info["oper"] else "")
        flags += prefixes
        user, realname = _ident(info)
        nick = str(info["nick"])
        self._numeric("352", channel, user, HOST, self.server, nick, flags, f"0 {realname}")

    def _whois(self, message: IrcMessage) -> None:
        if not self._need(message, 1):
            return
        target = message.params[-1]
        info = self.state.member_info(target)
        if info is None:
            self._numeric("401", target, "No such nick/channel")
            self._numeric("318", target, "End of /WHOIS list")
            return
        nick = info["nick"]
        user, realname = _ident(info)
        self._numeric("311", nick, user, HOST, "*", realname)
        self._numeric("312", nick, self.server, self.state.server_name)
        if info["oper"]:
            self._numeric("313", nick, "is an IRC operator")
        if info["away"]:
            self._numeric("301", nick, info["away"])
        secret = set(info.get("secret_rooms", ())) - {r.name for r in self._me.rooms.values()}
        rooms = [r for r in info["rooms"] if r not in secret]  # (+s: only to its members)
        if rooms:
            ops, voiced = set(info.get("op_rooms", ())), set(info.get("voice_rooms", ()))
            shown = [
                self.renderer.prefixes({"op": r in ops, "oper": info["oper"], "voice": r in voiced})
                + r
                for r in rooms
            ]
            self._numeric("319", nick, " ".join(shown))
        self._numeric("318", nick, "End of /WHOIS list")

    def _away(self, message: IrcMessage) -> None:
        # The state tells the member too: RPL_NOWAWAY / RPL_UNAWAY (render.py).
        self.state.set_away(self._me, message.params[0] if message.params else "")

    def _mode(self, message: IrcMessage) -> None:
        if not self._need(message, 1):
            return
        target = message.params[0]
        if target.startswith("#"):
            self._channel_mode(target, list(message.params[1:]))
            return
        if nick_key(target) != nick_key(self._me.nick):
            self._numeric("502", "Can't change mode for other users")
            return
        if len(message.params) == 1:
            self._numeric("221", "+o" if self._me.oper else "+")
        else:
            self._numeric("501", "Unknown MODE flag")

    def _channel_mode(self, target: str, params: list[str]) -> None:
        """MODE #room: the modes (324, 329), the ban list (367, 368), or changes, one by one
        (each told to the room as a MODE of its own)."""
        room, modes, created = self.state.room_modes(self._me, target)
        if not params or not params[0]:
            self._numeric("324", room, modes)
            self._numeric("329", room, str(int(created)))
            return
        change, args, sign = params[0], params[1:], "+"
        for letter in change:
            if letter in "+-":
                sign = letter
                continue
            if letter == "b" and not args:  # the ban list
                for ban, by, ts in self.state.room_bans(self._me, room):
                    self._numeric("367", room, ban, mask(by), str(int(ts)))
                self._numeric("368", room, "End of channel ban list")
                continue
            if letter not in ROOM_MODES:
                self._numeric("472", letter, "is unknown mode char to me")
                continue
            arg = None
            if letter in "bov":
                if not args:
                    self._numeric("461", "MODE", "Not enough parameters")
                    continue
                arg, args = args[0], args[1:]
            try:
                self.state.set_room_mode(self._me, room, sign + letter, arg)
            except RemoteProtocolError as exc:
                if exc.fatal:
                    raise
                asked = (room, sign + letter, *([arg] if arg else []))
                self._refused(IrcMessage("MODE", asked), exc)
                if exc.code == ErrorCode.NOT_OPERATOR:
                    return  # one 482 says it for the whole request

    def _kick(self, message: IrcMessage) -> None:
        if not self._need(message, 2):
            return
        # No comment: the kicker's nick, as IRC daemons give it.
        reason = message.params[2] if len(message.params) > 2 else self._me.nick
        # IRC's KICK removes from the channel (the chat's /kick, from the server, stays the
        # server operators' command of the other dialects).
        for nick in message.params[1].split(","):
            self.state.kick_from_room(self._me, message.params[0], nick, reason)

    def _oper(self, message: IrcMessage) -> None:
        if not self._need(message, 2):
            return
        address = host_of(self.address)
        wait = max(self._oper_tries.blocked(""), self.state.oper_failures.blocked(address))
        if wait:
            self._numeric("491", f"Too many failed attempts: try again in {math.ceil(wait)} s")
            return
        try:
            self.state.oper(self._me, message.params[1])
        except RemoteProtocolError as exc:
            if exc.code != ErrorCode.BAD_PASSWORD:
                raise
            self._oper_tries.failed("")
            self._numeric("464", "Password incorrect")
            return
        self._oper_tries.succeeded("")
        self._numeric("381", "You are now an IRC operator")
        me = self._me.nick
        self._send(format_line("MODE", me, "+o", prefix=mask(me), trailing=True))

    def _list(self, message: IrcMessage) -> None:
        self.state.list_rooms(self._me)

    def _chathistory(self, message: IrcMessage) -> None:
        """IRCv3 draft/chathistory (irc/chathistory.py): a channel's stored lines around
        message references, in a ``chathistory`` batch; the channels with lines between two
        times (TARGETS). Only channels the member is in; a mistake is a FAIL reply."""
        try:
            request = parse_request(message.params)
            if request.subcommand == "TARGETS":
                self._history_targets(request)
            else:
                self._history_lines(request)
        except BadRequest as exc:
            self._send(self.renderer.fail("CHATHISTORY", exc.code, *exc.params, exc.description))

    def _history_lines(self, request: Request) -> None:
        sub, target, limit = request.subcommand, request.target, request.limit
        if not target.startswith("#") or nick_key(target) not in self._me.rooms:
            raise BadRequest("INVALID_TARGET", (sub, target), "not a channel you are in")
        ref = request.refs[0]
        read = functools.partial(self._history_read, request)
        if sub == "BEFORE":
            lines = read(before=self._ref_id(ref, sub))
        elif sub == "AFTER":
            lines = read(after=self._ref_id(ref, sub, after=True), newest=False)
        elif sub == "LATEST":
            lines = read() if ref.newest else read(after=self._ref_id(ref, sub, after=True))
        elif sub == "AROUND":  # half before the reference, the rest from it on
            at, half = self._ref_id(ref, sub), limit // 2
            lines = read(before=at, limit=half) if half else []
            lines += read(after=at - 1, limit=limit - half, newest=False)
        else:  # BETWEEN, from the first reference towards the second, either way
            first, second = request.refs
            first_at, second_at = self._ref_id(first, sub), self._ref_id(second, sub)
            if first_at <= second_at:
                lower = self._ref_id(first, sub, after=True)
                lines = read(after=lower, before=second_at, newest=False)
            else:
                lines = read(after=self._ref_id(second, sub, after=True), before=first_at)
        self._send(self.renderer.history(lines[0].room if lines else target, lines))

    def _history_read(
        self,
        request: Request,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
        newest: bool = True,
    ) -> list[ChatMessage]:
        sub, target = request.subcommand, request.target
        try:
            _, lines, _ = self.state.history_lines(
                self._me, target, before, limit or request.limit, after, newest
            )
        except RemoteProtocolError as exc:
            if exc.code == ErrorCode.UNAVAILABLE:
                raise BadRequest("MESSAGE_ERROR", (sub, target), exc.message) from None
            raise BadRequest("INVALID_TARGET", (sub, target), exc.message) from None
        return lines

    def _ref_id(self, ref: Ref, sub: str, after: bool = False) -> int:
        """The id the lines before ``ref`` are below, or (``after``) the lines after it are
        above. A time tag names the millisecond of its line: lines before it are those before
        that millisecond, lines after it those after."""
        if ref.msgid is not None:
            return ref.msgid
        assert ref.ts is not None  # ("*" is LATEST's only, taken apart)
        return self._id_at(ref.ts + 0.001, sub) - 1 if after else self._id_at(ref.ts, sub)

    def _id_at(self, ts: float, sub: str) -> int:
        try:
            found = self.state.first_id_at(ts)
        except RemoteProtocolError as exc:
            raise BadRequest("MESSAGE_ERROR", (sub, "*"), exc.message) from None
        if found is None:
            raise BadRequest("INVALID_PARAMS", (sub,), "use msgid= references on this server")
        return found

    def _history_targets(self, request: Request) -> None:
        """The member's channels whose last line was said between the two times, oldest
        first, as ``CHATHISTORY TARGETS #room time`` lines in a batch."""
        first, second = (ref.ts or 0.0 for ref in request.refs)
        low, high = min(first, second), max(first, second)
        found = []
        for room in list(self._me.rooms.values()):
            try:
                _, last, _ = self.state.history_lines(self._me, room.name, None, 1)
            except RemoteProtocolError:
                continue  # left meanwhile, or its history is unavailable: not listed
            if last and low <= last[-1].ts <= high:
                found.append((last[-1].ts, room.name))
        server = self.server
        lines = [
            functools.partial(_targets_line, server, name, server_time(ts))
            for ts, name in sorted(found)[: request.limit]
        ]
        self._send(self.renderer.batch("draft/chathistory-targets", (), lines))

    def _ison(self, message: IrcMessage) -> None:
        here = [n for n in " ".join(message.params).split() if self.state.member_info(n)]
        self._numeric("303", " ".join(here))

    def _userhost(self, message: IrcMessage) -> None:
        found = []
        for nick in message.params[:5]:
            info = self.state.member_info(nick)
            if info is not None:
                oper = "*" if info["oper"] else ""
                away = "-" if info["away"] else "+"
                found.append(f"{info['nick']}{oper}={away}{USER}@{HOST}")
        self._numeric("302", " ".join(found))


def _targets_line(server: str, room: str, when: str, tags: dict[str, str]) -> bytes:
    return format_line("CHATHISTORY", "TARGETS", room, when, prefix=server, tags=tags or None)


def _who_matches(pattern: str, info: dict[str, object]) -> bool:
    """WHO's mask against a member's nick, user name, real name or host (case-insensitive,
    ``*`` and ``?`` as wildcards)."""
    user, realname = _ident(info)
    fields = (str(info["nick"]), user, realname, HOST)
    return any(fnmatch.fnmatchcase(f.casefold(), pattern.casefold()) for f in fields)


def _ident(info: dict[str, object]) -> tuple[str, str]:
    """(user, real name) of a member as WHO and WHOIS show it: an IRC member's own, else
    the chat's placeholder and its nick."""
    user, realname = info.get("user"), info.get("realname")
    return (str(user) if user else USER), (str(realname) if realname else str(info["nick"]))


def isupport(state: ChatState, network: str) -> list[str]:
    """The RPL_ISUPPORT tokens: what this server's limits really are."""
    limits = state.limits
    return [
        "AWAYLEN=200",
        "CASEMAPPING=ascii",
        f"CHANLIMIT=#:{state.max_rooms_per_member}",
        "CLIENTTAGDENY=*",  # client-only tags (+tag) are not relayed: lines carry no tags
        "CHANMODES=b,,,mnst",
        f"CHATHISTORY={MAX_HISTORY_LINES}",
        f"CHANNELLEN={MAX_ROOM_CHARS + 1}",
        "CHANTYPES=#",
        "KICKLEN=200",
        f"NETWORK={network.replace(' ', '_') or 'game_chat'}",
        # (a cluster node's lines are in Redis, which it cannot search by time)
        "MSGREFTYPES=msgid,timestamp" if state.finds_times else "MSGREFTYPES=msgid",
        f"NICKLEN={limits.max_nick_chars}",
        "PREFIX=(ov)@+",
        f"TOPICLEN={MAX_TOPIC_CHARS}",
        f"USERLEN={USERLEN}",
        "UTF8ONLY",
    ]


_BEFORE: dict[str, Callable[[IrcSession, IrcMessage], bool | None]] = {
    "CAP": IrcSession._cap,
    "PASS": IrcSession._pass,
    "NICK": IrcSession._nick_command,
    "USER": IrcSession._user_command,
    "PING": IrcSession._ping,
    "PONG": lambda s, m: None,
    "QUIT": IrcSession._quit,
}
_AFTER: dict[str, Callable[[IrcSession, IrcMessage], bool | None]] = {
    "PRIVMSG": IrcSession._privmsg,
    "NOTICE": IrcSession._privmsg,
    "JOIN": IrcSession._join,
    "PART": IrcSession._part,
    "TOPIC": IrcSession._topic,
    "NAMES": IrcSession._names,
    "LIST": IrcSession._list,
    "WHO": IrcSession._who,
    "WHOIS": IrcSession._whois,
    "AWAY": IrcSession._away,
    "MODE": IrcSession._mode,
    "KICK": IrcSession._kick,
    "OPER": IrcSession._oper,
    "MOTD": lambda s, m: s._numeric("422", "MOTD File is missing"),
    "LUSERS": lambda s, m: s._lusers(),
    "VERSION": lambda s, m: s._numeric("351", VERSION, s.server, "game_chat"),
    "ISON": IrcSession._ison,
    "CHATHISTORY": IrcSession._chathistory,
    "USERHOST": IrcSession._userhost,
}
