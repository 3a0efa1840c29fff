"""One client's side of the conversation, without sockets.

A :class:`Session` receives the payloads of one connection's frames, works out the dialect
from the first one, and turns each frame into calls on :class:`ChatState`. Replies go to the
connection's mailbox. A peer's mistake becomes an error frame in its own dialect; only header
errors, a goodbye or a timeout end the session.
"""

from __future__ import annotations

import logging

from ..protocol.errors import ErrorCode, RemoteProtocolError
from ..protocol.messages import (
    PROTOCOL_VERSION,
    ChangeNick,
    ClientId,
    ErrorReply,
    Goodbye,
    Hello,
    ListUsers,
    Ping,
    Pong,
    SendChat,
    is_hello,
    parse_client_message,
)
from ..protocol.plain import DISCONNECT_COMMANDS
from ..protocol.text import clean_reason, decode_utf8
from .state import ChatState, Dialect, Mailbox, Member, encode_for

log = logging.getLogger("game_chat.server")

#: Reason shown to the others when a session ends without saying why.
QUIT_REASON = "quit"
LOST_REASON = "connection lost"


class Session:
    """Protocol logic of one connection. ``handle_frame`` returns False to end the session."""

    def __init__(self, state: ChatState, mailbox: Mailbox, address: str) -> None:
        self.state = state
        self.mailbox = mailbox
        self.address = address
        self.dialect: str | None = None  # decided by the first non-empty frame
        self.member: Member | None = None
        self.leave_reason = LOST_REASON
        self._client_id: ClientId = None  # id of the chat message being handled

    @property
    def registered(self) -> bool:
        """True once the peer is a member (the registration deadline no longer applies)."""
        return self.member is not None

    # --- events from the connection --------------------------------------------------------

    def handle_frame(self, payload: bytes) -> bool:
        """Handle one frame's payload; False means: close the connection now."""
        if not payload:  # zero-length frame: keepalive
            return True
        self._client_id = None
        try:
            if self.dialect is None:
                self.dialect = Dialect.RICH if is_hello(payload) else Dialect.PLAIN
                if self.dialect == Dialect.PLAIN:
                    self.member = self.state.join_guest(Dialect.PLAIN, self.mailbox, self.address)
                    log.info("%s: plain client joined as %s", self.address, self.member.nick)
            if self.dialect == Dialect.RICH:
                return self._rich(payload)
            return self._plain(payload)
        except RemoteProtocolError as exc:
            self.reject(exc, self._client_id)
            return not exc.fatal

    def reject(self, exc: RemoteProtocolError, client_id: ClientId = None) -> None:
        """Send the peer an error frame for its mistake and log it once.

        ``client_id`` names the chat message refused, so the client can mark it failed.
        """
        level = logging.WARNING if exc.fatal else logging.INFO
        log.log(level, "%s: %s: %s", self.address, exc.code, exc.message)
        if exc.fatal:
            self.leave_reason = exc.message
        reply = ErrorReply.from_exception(exc, client_id)
        self.mailbox.put(encode_for(reply, self.dialect or Dialect.RICH))

    def say_goodbye(self, reason: str) -> None:
        """Tell a peer that is not (or no longer) a member why the server closes on it."""
        if self.member is None:
            self.mailbox.put(encode_for(Goodbye(reason), self.dialect or Dialect.RICH))

    def end(self, reason: str | None = None) -> None:
        """The connection is over: leave the chat (the others are told why)."""
        if self.member is not None:
            self.state.leave(self.member, reason or self.leave_reason)
            log.info(
                "%s: %s left (%s)", self.address, self.member.nick, reason or self.leave_reason
            )
            self.member = None

    # --- rich dialect ----------------------------------------------------------------------

    def _rich(self, payload: bytes) -> bool:
        message = parse_client_message(payload)
        if self.member is None:
            if not isinstance(message, Hello):
                raise RemoteProtocolError(ErrorCode.NOT_REGISTERED, "send a hello first")
            self._hello(message)
            return True
        if isinstance(message, SendChat):
            self._client_id = message.id
            self.state.say(self.member, message.text, message.id, message.retry)
        elif isinstance(message, Ping):
            self.mailbox.put(encode_for(Pong(message.token), Dialect.RICH))
        elif isinstance(message, Goodbye):
            self.leave_reason = clean_reason(message.reason) or QUIT_REASON
            return False
        elif isinstance(message, ChangeNick):
            self.state.rename(self.member, message.nick)
        elif isinstance(message, ListUsers):
            self.state.send_user_list(self.member)
        elif isinstance(message, Hello):
            raise RemoteProtocolError(ErrorCode.ALREADY_REGISTERED, "already registered")
        # Pong: nothing to do, it only shows the client is alive.
        return True

    def _hello(self, hello: Hello) -> None:
        if hello.version != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                ErrorCode.BAD_VERSION,
                f"protocol version {hello.version} is not supported (this server speaks "
                f"{PROTOCOL_VERSION})",
            )
        self.member = self.state.join(hello.nick, Dialect.RICH, self.mailbox, self.address)
        log.info("%s: %s joined", self.address, self.member.nick)

    # --- plain dialect ---------------------------------------------------------------------

    def _plain(self, payload: bytes) -> bool:
        assert self.member is not None
        text = decode_utf8(payload).strip()
        if text in DISCONNECT_COMMANDS:
            self.leave_reason = QUIT_REASON
            return False
        if text.startswith("/") and not text.startswith("//"):
            return self._plain_command(text)
        if text.startswith("//"):  # "//x" sends the literal line "/x"
            text = text[1:]
        self.state.say(self.member, text)
        return True

    def _plain_command(self, line: str) -> bool:
        assert self.member is not None
        command, _, argument = line.partition(" ")
        command = command.lower()
        if command == "/nick":
            self.state.rename(self.member, argument.strip())
        elif command in ("/quit", "/exit"):
            self.leave_reason = clean_reason(argument) or QUIT_REASON
            return False
        elif command in ("/users", "/who"):
            self.state.send_user_list(self.member)
        else:
            raise RemoteProtocolError(
                ErrorCode.UNKNOWN_COMMAND,
                f"unknown command {clean_reason(command, 40)}; commands: /nick NAME, /who, /quit "
                "(start a line with // to send it as text)",
            )
        return True
