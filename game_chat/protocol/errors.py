"""Errors named by who is at fault.

- :class:`RemoteProtocolError`: the peer sent something we cannot accept. It carries a
  machine-readable ``code`` and whether the connection must be closed (``fatal``); the server
  turns it into an error frame, never into a crash.
- :class:`LocalProtocolError`: our own code misused an API (a bug on this side).
- :class:`ConnectionLost`: the connection broke underneath us (reset, EOF mid-frame).
"""

from __future__ import annotations


class ErrorCode:
    """The machine-readable error codes carried by error frames (see docs/PROTOCOL.md)."""

    BAD_HEADER = "bad_header"
    FRAME_TOO_LARGE = "frame_too_large"
    BAD_UTF8 = "bad_utf8"
    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    TEXT_TOO_LONG = "text_too_long"
    EMPTY_TEXT = "empty_text"
    NICK_INVALID = "nick_invalid"
    NICK_TAKEN = "nick_taken"
    BAD_VERSION = "bad_version"
    NOT_REGISTERED = "not_registered"
    ALREADY_REGISTERED = "already_registered"
    UNKNOWN_COMMAND = "unknown_command"
    HELLO_TIMEOUT = "hello_timeout"
    SERVER_FULL = "server_full"
    SEND_QUEUE_EXCEEDED = "send_queue_exceeded"
    SHUTTING_DOWN = "shutting_down"
    BAD_COMMAND = "bad_command"  # a known command used wrongly (the message gives the usage)
    BAD_ROOM = "bad_room"
    NO_SUCH_ROOM = "no_such_room"
    NOT_IN_ROOM = "not_in_room"
    NO_SUCH_NICK = "no_such_nick"
    NOT_OPERATOR = "not_operator"
    BAD_PASSWORD = "bad_password"
    RATE_LIMITED = "rate_limited"
    MUTED = "muted"
    #: A room's modes refuse the line: moderated (+m) and no voice, or banned from it (+b).
    CANNOT_SEND = "cannot_send"
    #: A room operator banned a mask that matches you from the room (+b).
    BANNED_FROM_ROOM = "banned_from_room"
    KICKED = "kicked"
    BANNED = "banned"
    #: The history store cannot number or check lines right now (it has failed for long).
    UNAVAILABLE = "unavailable"
    #: A newer connection took this member over with its session token (hello ``session``).
    REPLACED = "replaced"
    #: No frame (not even a pong) within the ping timeout: the server gives up on the peer.
    PING_TIMEOUT = "ping_timeout"
    #: A join over the rooms one member may be in, or a new room over the server's total.
    TOO_MANY_ROOMS = "too_many_rooms"
    #: A frame in clear text on a port that speaks TLS (docs/PROTOCOL.md section 1).
    TLS_REQUIRED = "tls_required"


class ChatError(Exception):
    """Base class of every error game_chat raises on purpose."""


class RemoteProtocolError(ChatError):
    """The peer broke the protocol: bad header, bad JSON, a nick that is taken, ...

    ``fatal`` errors end the connection after the error frame is sent; the others leave it open.
    """

    def __init__(self, code: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, fatal={self.fatal})"

    def as_fatal(self) -> RemoteProtocolError:
        """The same refusal, ending the connection (for a dialect that cannot retry)."""
        return RemoteProtocolError(self.code, self.message, fatal=True)


class LocalProtocolError(ChatError):
    """Our own code used the protocol objects wrongly (a bug on this side, not the peer's)."""


class ConnectionLost(ChatError):
    """The connection broke underneath: reset, or closed in the middle of a frame."""
