"""Events a :class:`~game_chat.client.net.ChatClient` puts on its queue.

Connection state changes are events of their own, and so is the fate of each line sent with a
local id (chat lines and private messages: ``ChatSent`` / ``ChatFailed``); everything else the
server says arrives as the protocol's typed messages (:mod:`game_chat.protocol.messages`), e.g.
``ChatMessage``, ``PrivateMessage``, ``RoomJoined``, ``UserJoined``, ``UserParted``,
``UserLeft``, ``NickChanged``, ``TopicChanged``, ``AwayChanged``, ``WhoReply``, ``RoomList``,
``HistoryPage``, ``Notice``, ``ErrorReply`` (a fatal one is followed by ``Disconnected``).

Over TLS, a certificate trusted on first use (or accepted deliberately) is
``CertificatePinned``, followed by a ``Notice`` in words so that every view of the chat shows
it once; a refused one is ``CertificateChanged``, followed by ``Disconnected`` with the code
``certificate_changed`` (or ``certificate_mismatch``) and no retry.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol.limits import Limits


@dataclass(frozen=True)
class Connecting:
    host: str
    port: int
    attempt: int  # 1 for the first try, then counts reconnection attempts


@dataclass(frozen=True)
class Connected:
    """The server accepted our hello."""

    nick: str
    server: str
    limits: Limits
    users: tuple[str, ...]
    #: The server's history is another one than on our last connection (it was reset or
    #: replaced): message ids seen before mean nothing now.
    history_reset: bool = False


@dataclass(frozen=True)
class Disconnected:
    """The connection is gone. ``will_retry`` says whether a reconnection follows."""

    reason: str
    will_retry: bool
    #: Machine-readable cause when the server refused us: "nick_taken", "bad_password", ...
    code: str | None = None


@dataclass(frozen=True)
class Reconnecting:
    attempt: int
    delay: float  # seconds until the next attempt


@dataclass(frozen=True)
class ChatSent:
    """The server confirmed our line ``local_id`` (see ChatClient.send_chat, send_private)."""

    local_id: int
    message_id: int
    ts: float


@dataclass(frozen=True)
class ChatFailed:
    """The server refused our line ``local_id`` (or it could not be sent); ``reason`` is for
    people."""

    local_id: int
    reason: str


@dataclass(frozen=True)
class RoundTrip:
    """Time between our last ping and the server's pong."""

    ms: float


@dataclass(frozen=True)
class CertificatePinned:
    """The TLS certificate of ``host:port`` is trusted from now on: its first use (``replaced``
    None), or a new one accepted deliberately in place of ``replaced``."""

    host: str
    port: int
    fingerprint: str  # SHA-256, "AB:CD:..."
    replaced: str | None = None


@dataclass(frozen=True)
class CertificateChanged:
    """The TLS certificate of ``host:port`` is not the trusted one (``known``; with
    ``announced``, the one LAN discovery announced): the connection was refused. Accept
    ``presented`` deliberately with ``TlsOptions(accept_fingerprint=...)``."""

    host: str
    port: int
    known: str
    presented: str
    announced: bool = False


ConnectionEvent = Connecting | Connected | Disconnected | Reconnecting
