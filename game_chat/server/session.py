"""One client's side of the conversation, without sockets.

A :class:`Session` receives the payloads of one connection's frames, works out the dialect
from the first one, and turns each frame into calls on :class:`ChatState`. Rich clients send
typed messages; plain clients send text lines, and their /commands are parsed into the same
typed messages (protocol/commands.py), so both go through one dispatch table. A peer's mistake
becomes an error frame in its own dialect; only header errors, a goodbye, a kick or a timeout
end the session. Clients of the select-chatroom tutorial (10-byte headers, told apart by the
connection's framing: :meth:`Session.use_select_framing`) send their username first, then
lines as plain clients do.

Chat lines are delivered and acknowledged when they are stored (group commit), a little after
they were handled. To keep every answer in the order of the requests, the session waits for
its own lines (:meth:`Session.settle`) before it answers anything else, and the connection
waits for them before it reads more, which also bounds what one client can have in flight.

Every frame is paid for before it is handled (server/abuse.py): a rich message or a plain
/command by its type, a plain line as a chat line, a frame that is no request as ``invalid``.
The budgets belong to the connection: a takeover (hello ``session``) starts with full ones, as
any new connection does (a member kicked for flooding has no session left to take over).
Operators are not limited. Failed ``oper`` tries wait, per connection and per address.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ..protocol.commands import is_command, parse_command
from ..protocol.errors import ErrorCode, RemoteProtocolError
from ..protocol.messages import (
    PROTOCOL_VERSION,
    Ban,
    ChangeNick,
    ClientId,
    ErrorReply,
    FetchHistory,
    Goodbye,
    Hello,
    Help,
    JoinRoom,
    Kick,
    ListRooms,
    ListUsers,
    Mute,
    Notice,
    Oper,
    PartRoom,
    Ping,
    Pong,
    SendChat,
    SendPrivate,
    SetAway,
    SetMemberData,
    SetRoomMode,
    SetTopic,
    Unban,
    Unmute,
    Who,
    is_hello,
    parse_client_message,
)
from ..protocol.plain import DISCONNECT_COMMANDS
from ..protocol.text import clean_reason, decode_utf8
from .abuse import RequestLimiter
from .moderation import FailureLimiter, host_of
from .state import Accepted, ChatState, Dialect, Mailbox, Member, MemberGone, encode_for

log = logging.getLogger("game_chat.server")


def _ignore(reason: str) -> None:
    pass


#: Reason shown to the others when a session ends without saying why.
QUIT_REASON = "quit"
LOST_REASON = "connection lost"


class SessionCore:
    """What the session of every dialect has: the member, why it leaves, its lines on their
    way to the store, its flood budget and its operator tries (IRC's: irc/session.py)."""

    def __init__(
        self,
        state: ChatState,
        mailbox: Mailbox,
        address: str,
        disconnect: Callable[[str], None] = lambda reason: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.mailbox = mailbox
        self.address = address
        self._disconnect = disconnect  # ends the connection (used when an operator kicks)
        self.member: Member | None = None
        self.leave_reason = LOST_REASON
        self._ticket = 0  # our last line on its way to the store (0: none)
        self._pings = 0
        self._limiter = RequestLimiter(state.limits, clock)
        self._oper_tries = FailureLimiter(cap=state.limits.oper_wait_max, clock=clock)
        self._removed = False  # kicked, banned or taken over: later frames are not heard

    @property
    def registered(self) -> bool:
        """True once the peer is a member (the registration deadline no longer applies)."""
        return self.member is not None

    @property
    def _me(self) -> Member:
        member = self.member
        if member is None:  # kicked, banned or taken over by another thread meanwhile
            raise MemberGone("no longer a member")
        return member

    def settle(self) -> None:
        """Wait until our lines handed to the chat state are delivered and acknowledged."""
        if self._ticket:
            self.state.wait(self._ticket)
            self._ticket = 0

    def detach(self) -> None:
        """The connection is closed: drop the callback into it (a reference cycle)."""
        self._disconnect = _ignore

    def end(self, reason: str | None = None) -> None:
        """The connection is over: leave the chat (the others are told why), after our last
        lines (a member's lines come before its leaving)."""
        self.settle()
        member = self.member
        if member is not None:
            reason = reason or self.leave_reason
            self.state.leave(member, reason)
            log.info("%s: %s left (%s)", self.address, member.nick, reason)
            self.member = None

    def reject(self, exc: RemoteProtocolError, client_id: ClientId = None) -> None:
        """Tell the peer of its mistake in its dialect (``_tell_refusal``) and log it once.

        ``client_id`` names the chat message refused, so the client can mark it failed.
        """
        level = logging.WARNING if exc.fatal else logging.INFO
        if exc.code == ErrorCode.RATE_LIMITED and not exc.fatal:
            level = logging.DEBUG  # a flood would write a line per frame
        log.log(level, "%s: %s: %s", self.address, exc.code, exc.message)
        if exc.fatal:
            self.leave_reason = exc.message
        self._tell_refusal(exc, client_id)
        if exc.fatal and exc.code == ErrorCode.RATE_LIMITED:
            # An excess flood: a cool-down, so that the script behind it cannot come back at
            # once with a full budget (its nick, and its address unless it is this machine).
            self.state.cool_down(self.member, self.address)

    def _tell_refusal(self, exc: RemoteProtocolError, client_id: ClientId) -> None:
        raise NotImplementedError

    def _kicked(self, reason: str) -> None:
        self.leave_reason = reason
        self.member = None  # the state already removed it and told the others
        self._removed = True
        self._disconnect(reason)


class Session(SessionCore):
    """Protocol logic of one connection. ``handle_frame`` returns False to end the session."""

    def __init__(
        self,
        state: ChatState,
        mailbox: Mailbox,
        address: str,
        disconnect: Callable[[str], None] = lambda reason: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(state, mailbox, address, disconnect, clock)
        self.dialect: str | None = None  # decided by the first non-empty frame
        self._client_id: ClientId = None  # id of the chat message being handled
        self._charged = False  # the frame being handled was paid for
        self._quiet = False  # a plain guest for its silence; its first frame may be a hello
        self._username: str | None = None  # select dialect: the name its first frame gave

    @property
    def pinged(self) -> bool:
        """Whether a silent peer is pinged: rich members only (a tutorial client could not
        answer, PROTOCOL.md 8.1)."""
        return self.dialect == Dialect.RICH

    # --- events from the connection --------------------------------------------------------

    def handle_frame(self, payload: bytes) -> bool:
        """Handle one frame's payload; False means: close the connection now."""
        if not payload:  # zero-length frame: keepalive
            return True
        if self._removed:  # frames read before the kick closed the reading side
            return False
        self._client_id = None
        self._charged = False
        try:
            if self._quiet:
                self._speaks(payload)
            if self.dialect is None:
                self.dialect = Dialect.RICH if is_hello(payload) else Dialect.PLAIN
            if self.dialect == Dialect.RICH:
                return self._rich(payload)
            if self.dialect == Dialect.SELECT and self._username is None:
                return self._select_username(payload)
            return self._plain(payload)
        except RemoteProtocolError as exc:
            if not self._charged and not exc.fatal:  # no request at all: it costs too
                exc = self._refusal("invalid") or exc
            self.settle()  # the error answers this frame: after the acks of earlier ones
            self.reject(exc, self._client_id)
            return not exc.fatal
        except MemberGone:  # kicked, banned, taken over or shut down: nothing left to say
            self.member = None
            return False

    def _tell_refusal(self, exc: RemoteProtocolError, client_id: ClientId) -> None:
        self._reply(ErrorReply.from_exception(exc, client_id))

    def ping(self) -> None:
        """Ask a silent peer for a sign of life (any frame will do, a pong best)."""
        self._pings += 1
        self._reply(Ping(self._pings))

    def say_goodbye(self, reason: str) -> None:
        """Tell a peer that is not (or no longer) a member why the server closes on it."""
        if self.member is None:
            self._reply(Goodbye(reason))

    # --- flood limits ---------------------------------------------------------------------

    def _admit(self, kind: str) -> None:
        """Pay for the request being handled (a message type, or "invalid"): RemoteProtocolError
        rate_limited if it must not be handled, fatal when the connection floods."""
        self._charged = True
        member = self.member
        if member is not None and member.oper:
            return
        self._limiter.charge(kind)

    def _refusal(self, kind: str) -> RemoteProtocolError | None:
        try:
            self._admit(kind)
        except RemoteProtocolError as exc:
            return exc
        return None

    def _reply(self, message: Any) -> None:
        room = self.member.current_room if self.member is not None else None
        frame = encode_for(message, self.dialect or Dialect.RICH, room)
        if frame:
            self.mailbox.put(frame)

    # --- registration -------------------------------------------------------------------

    def _registered(self, member: Member) -> None:
        member.disconnect = self._kicked
        self.member = member

    def _hello(self, hello: Hello) -> None:
        if hello.version != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                ErrorCode.BAD_VERSION,
                f"protocol version {hello.version} is not supported (this server speaks "
                f"{PROTOCOL_VERSION})",
            )
        self.state.check_password(hello.password)
        member = self.state.join(
            hello.nick,
            Dialect.RICH,
            self.mailbox,
            self.address,
            session=hello.session,
            store=hello.store,
            resume=hello.resume,
        )
        self._registered(member)
        log.info("%s: %s joined", self.address, member.nick)

    def _second_hello(self, hello: Hello) -> None:
        raise RemoteProtocolError(ErrorCode.ALREADY_REGISTERED, "already registered")

    # --- rich dialect ----------------------------------------------------------------------

    def _rich(self, payload: bytes) -> bool:
        message = parse_client_message(payload)
        if isinstance(message, SendChat | SendPrivate) and self.member is not None:
            self._client_id = message.id  # a refusal names the line it refuses (a member's)
        self._admit(message.TYPE)
        if self.member is None:
            if not isinstance(message, Hello):
                raise RemoteProtocolError(ErrorCode.NOT_REGISTERED, "send a hello first")
            self._hello(message)
            return True
        return self._dispatch(message)

    def _dispatch(self, message: Any) -> bool:
        # Lines go on without waiting (a burst of them shares commits); anything else waits
        # for our lines to be answered first.
        if not isinstance(message, SendChat | SendPrivate):
            self.settle()
        return _HANDLERS[type(message)](self, message) is not False

    def _chat(self, message: SendChat) -> None:
        self._client_id = message.id
        self._accepted(
            self.state.say(
                self._me, message.text, message.id, message.retry, message.room, message.action
            )
        )

    def _private(self, message: SendPrivate) -> None:
        self._client_id = message.id
        self._accepted(
            self.state.private(
                self._me, message.to, message.text, message.id, message.retry, message.action
            )
        )

    def _accepted(self, accepted: Accepted) -> None:
        if accepted.ack is not None:  # a retry of a line delivered before: answered now,
            self.settle()  # after the answers to our lines before it
            self._reply(accepted.ack)
        self._ticket = accepted.ticket or self._ticket

    def _oper(self, message: Oper) -> None:
        """Failures wait, growing (FailureLimiter), per connection and per address: the
        connection's count stays when someone else from the address succeeds."""
        address = host_of(self.address)
        wait = max(self._oper_tries.blocked(""), self.state.oper_failures.blocked(address))
        if wait:
            raise RemoteProtocolError(
                ErrorCode.RATE_LIMITED,
                f"too many failed attempts: try again in {max(1, math.ceil(wait))} s",
            )
        try:
            self.state.oper(self._me, message.password)  # counts the address's failures
        except RemoteProtocolError as exc:
            if exc.code == ErrorCode.BAD_PASSWORD:
                self._oper_tries.failed("")
            raise
        self._oper_tries.succeeded("")
        self.state.oper_failures.succeeded(address)

    def _goodbye(self, message: Goodbye) -> bool:
        self.leave_reason = clean_reason(message.reason) or QUIT_REASON
        return False

    # --- plain dialect ---------------------------------------------------------------------

    def use_select_framing(self) -> None:
        """The connection's first bytes are a 10-byte header: a select-chatroom client. A
        guest made by its silence leaves first (as before a late rich hello)."""
        if self._quiet:
            self._guest_gives_way()
        self._quiet = False
        self.dialect = Dialect.SELECT

    def _select_username(self, payload: bytes) -> bool:
        """A select client's first frame is its username. It has no other way to hear a
        refusal than a line from ``server``, after which the connection closes."""
        self._admit("hello")
        name = decode_utf8(payload).strip()
        try:
            if self.state.access.password is None:
                self._register_select(name)
                return True
            self.state.validate_new_nick(name)
        except RemoteProtocolError as exc:
            raise exc.as_fatal() from None
        self._username = name  # registered by the /pass line that must follow
        self._reply(Notice("this server needs a password: send /pass PASSWORD"))
        return True

    def _register_select(self, name: str) -> None:
        self._username = name
        member = self.state.join(name, Dialect.SELECT, self.mailbox, self.address)
        self._registered(member)
        log.info("%s: select client joined as %s", self.address, member.nick)

    def _plain(self, payload: bytes) -> bool:
        if self.member is None and self.state.access.password is None:
            # Any first frame registers, even one that is not valid UTF-8 (answered below).
            self._plain_guest()
        text = decode_utf8(payload).strip()
        if text in DISCONNECT_COMMANDS:
            self.leave_reason = QUIT_REASON
            return False
        if self.member is None:
            self._admit("hello")
            self._plain_password(text)
            return True
        if is_command(text):
            message = parse_command(text, self._me.current_room)
            self._admit(message.TYPE)
            return self._dispatch(message)
        if text.startswith("//"):  # "//x" sends the literal line "/x"
            text = text[1:]
        self._admit("chat")
        self._accepted(self.state.say(self._me, text))
        return True

    def join_quietly(self, since: float | None = None) -> bool:
        """The peer has said nothing for the plain grace: it becomes a plain guest, as the
        classic tutorial clients expect (they listen first), and gets the lobby's lines said
        since it connected (``since``, Unix time). False if it cannot (the server is
        shutting down, its address was banned): it should be closed then."""
        self.dialect, self._quiet = Dialect.PLAIN, True
        try:
            self._plain_guest(since)
        except RemoteProtocolError as exc:
            self.reject(exc)
            return False
        return True

    def _speaks(self, payload: bytes) -> None:
        """A quiet guest's first frame: a rich hello makes it the member it asks to be (the
        guest leaves), anything else is its first plain line."""
        self._quiet = False
        if is_hello(payload):
            self._guest_gives_way()
            self.dialect = None

    def _guest_gives_way(self) -> None:
        """The guest made by its silence leaves: the connection turned out to be someone."""
        if self.member is not None:
            self.state.leave(self.member, QUIT_REASON)
            self.member = None

    def _plain_guest(self, since: float | None = None) -> None:
        member = self.state.join_guest(Dialect.PLAIN, self.mailbox, self.address, since)
        self._registered(member)
        log.info("%s: plain client joined as %s", self.address, self._me.nick)

    def _plain_password(self, text: str) -> None:
        """On a server with a password, a plain client's first line must be /pass PASSWORD."""
        word, _, password = text.partition(" ")
        if word.lower() != "/pass":
            raise RemoteProtocolError(
                ErrorCode.BAD_PASSWORD,
                "this server needs a password: send /pass PASSWORD first",
                fatal=True,
            )
        self.state.check_password(password.strip())
        if self._username is None:
            self._plain_guest()
        else:
            try:
                self._register_select(self._username)
            except RemoteProtocolError as exc:  # the name was taken meanwhile
                raise exc.as_fatal() from None
        self._reply(Notice(f"Welcome, you are {self._me.nick}"))


#: What each rich message (and plain /command) does: one table, checked by a test to cover
#: every client message type. Class-level, so a session holds no cycle of closures to itself.
_HANDLERS: dict[type, Callable[[Session, Any], bool | None]] = {
    SendChat: Session._chat,
    SendPrivate: Session._private,
    Ping: lambda s, m: s._reply(Pong(m.token)),
    Pong: lambda s, m: None,  # it only shows the client is alive
    Goodbye: Session._goodbye,
    ChangeNick: lambda s, m: s.state.rename(s._me, m.nick),
    ListUsers: lambda s, m: s.state.send_user_list(s._me),
    JoinRoom: lambda s, m: s.state.join_room(s._me, m.room),
    PartRoom: lambda s, m: s.state.part_room(s._me, m.room, m.reason),
    ListRooms: lambda s, m: s.state.list_rooms(s._me),
    SetTopic: lambda s, m: s.state.set_topic(s._me, m.room, m.topic),
    Who: lambda s, m: s.state.who(s._me, m.room),
    SetAway: lambda s, m: s.state.set_away(s._me, m.reason),
    FetchHistory: lambda s, m: s.state.history_page(s._me, m.room, m.before, m.limit, m.after),
    Help: lambda s, m: s.state.help(s._me),
    Oper: Session._oper,
    Kick: lambda s, m: s.state.kick(s._me, m.nick, m.reason),
    SetRoomMode: lambda s, m: s.state.set_room_mode(s._me, m.room, m.mode, m.arg),
    Ban: lambda s, m: s.state.ban(s._me, m.target, m.minutes, m.reason),
    Unban: lambda s, m: s.state.unban(s._me, m.target),
    Mute: lambda s, m: s.state.mute(s._me, m.nick, m.minutes),
    Unmute: lambda s, m: s.state.unmute(s._me, m.nick),
    Hello: Session._second_hello,
    SetMemberData: lambda s, m: s.state.set_member_data(s._me, m.room, m.data),
}
