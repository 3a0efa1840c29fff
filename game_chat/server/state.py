"""Who is connected and what they say: the chat's state, with no sockets in it.

:class:`ChatState` holds the members under one lock. Everything a member should receive is
put on its :class:`Mailbox`, a non-blocking bounded queue; nothing here ever waits on a
network. Each event is encoded once per dialect and the same bytes are shared by every
recipient. Because fan-out happens under the lock, every member sees all events in one order.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from ..protocol.framing import encode_frame
from ..protocol.limits import Limits
from ..protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    ChatMessage,
    ClientId,
    Goodbye,
    NickChanged,
    ServerMessage,
    UserJoined,
    UserLeft,
    UserList,
    Welcome,
    encode_message,
)
from ..protocol.names import nick_key, validate_nick
from ..protocol.plain import render_plain
from ..protocol.text import validate_text


class Mailbox(Protocol):
    """Where a member's outgoing frames go. ``put`` must never block."""

    def put(self, frame: bytes) -> None: ...


class Dialect:
    RICH = "rich"
    PLAIN = "plain"


def encode_for(message: ServerMessage, dialect: str) -> bytes:
    """The complete frame (header included) that carries ``message`` in ``dialect``."""
    if dialect == Dialect.RICH:
        return encode_frame(encode_message(message))
    return encode_frame(render_plain(message).encode("utf-8"))


@dataclass(eq=False)
class Member:
    """A registered user: its nick, dialect and mailbox. Identity is the object itself."""

    nick: str
    dialect: str
    mailbox: Mailbox
    address: str = ""

    def send(self, message: ServerMessage) -> None:
        self.mailbox.put(encode_for(message, self.dialect))


class RecentMessages:
    """The last few client ids each nick used, so a resent line is not delivered twice.

    Bounded twice over: ``per_nick`` ids for each nick, ``nicks`` nicks in all (oldest first out).
    """

    def __init__(self, per_nick: int = 256, nicks: int = 4096) -> None:
        self._per_nick = per_nick
        self._nicks = nicks
        self._by_nick: OrderedDict[str, OrderedDict[ClientId, ChatMessage]] = OrderedDict()

    def find(self, nick: str, client_id: ClientId, text: str) -> ChatMessage | None:
        seen = self._by_nick.get(nick_key(nick))
        message = seen.get(client_id) if seen else None
        return message if message is not None and message.text == text else None

    def remember(self, nick: str, client_id: ClientId, message: ChatMessage) -> None:
        key = nick_key(nick)
        seen = self._by_nick.pop(key, None) or OrderedDict()
        self._by_nick[key] = seen
        seen[client_id] = message
        if len(seen) > self._per_nick:
            seen.popitem(last=False)
        if len(self._by_nick) > self._nicks:
            self._by_nick.popitem(last=False)


class ChatState:
    """The single broadcast channel of issue 2: members, nicks, messages.

    Every public method takes the lock; none of them blocks on a network.
    """

    def __init__(
        self,
        server_name: str = "game_chat",
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server_name = server_name
        self.limits = limits or Limits()
        self._clock = clock
        self._lock = threading.Lock()
        self._members: dict[str, Member] = {}  # nick_key -> member, in join order
        self._message_ids = itertools.count(1)
        self._guest_numbers = itertools.count(1)
        self._recent = RecentMessages()
        self._closed = False  # after close_all: nobody joins any more

    # --- queries ----------------------------------------------------------------------

    def nicks(self) -> list[str]:
        with self._lock:
            return [m.nick for m in self._members.values()]

    def __len__(self) -> int:
        return len(self._members)

    # --- membership -------------------------------------------------------------------

    def join(self, nick: str, dialect: str, mailbox: Mailbox, address: str = "") -> Member:
        """Register a user under ``nick``; it gets a welcome, everyone else a join notice.

        Raises RemoteProtocolError (nick_invalid, nick_taken).
        """
        nick = validate_nick(nick, self.limits.max_nick_chars)
        with self._lock:
            self._require_open()
            if nick_key(nick) in self._members:
                raise RemoteProtocolError(ErrorCode.NICK_TAKEN, f"the nickname {nick} is taken")
            return self._add(Member(nick, dialect, mailbox, address))

    def join_guest(self, dialect: str, mailbox: Mailbox, address: str = "") -> Member:
        """Register a user under the next free ``guest-N`` nick."""
        with self._lock:
            self._require_open()
            while True:
                nick = f"guest-{next(self._guest_numbers)}"
                if nick_key(nick) not in self._members:
                    return self._add(Member(nick, dialect, mailbox, address))

    def _add(self, member: Member) -> Member:
        now = self._clock()
        self._broadcast(UserJoined(member.nick, now), exclude=member)
        self._members[nick_key(member.nick)] = member
        # Plain clients get no welcome: a tutorial client expects "Message was Sent!" as the
        # first reply to its first line.
        if member.dialect == Dialect.RICH:
            member.send(
                Welcome(
                    nick=member.nick,
                    server=self.server_name,
                    version=PROTOCOL_VERSION,
                    limits=self.limits.to_dict(),
                    users=tuple(m.nick for m in self._members.values()),
                )
            )
        return member

    def leave(self, member: Member, reason: str = "") -> None:
        """Remove a member and tell the others; a member that already left is ignored."""
        with self._lock:
            if self._members.get(nick_key(member.nick)) is not member:
                return
            del self._members[nick_key(member.nick)]
            self._broadcast(UserLeft(member.nick, reason, self._clock()))

    def rename(self, member: Member, new_nick: str) -> None:
        """Change a member's nick and announce it to everyone (the member included)."""
        new_nick = validate_nick(new_nick, self.limits.max_nick_chars)
        with self._lock:
            self._require_member(member)
            old_key, new_key = nick_key(member.nick), nick_key(new_nick)
            if new_key != old_key and new_key in self._members:
                raise RemoteProtocolError(ErrorCode.NICK_TAKEN, f"the nickname {new_nick} is taken")
            old = member.nick
            if new_nick == old:  # nothing changes, but the asker still gets its answer
                member.send(NickChanged(old, new_nick, self._clock()))
                return
            # Rebuild to keep the member's place in the (join-ordered) user list.
            self._members = {
                (new_key if key == old_key else key): m for key, m in self._members.items()
            }
            member.nick = new_nick
            self._broadcast(NickChanged(old, new_nick, self._clock()))

    # --- messages ---------------------------------------------------------------------

    def say(
        self, member: Member, text: str, client_id: ClientId = None, retry: bool = False
    ) -> ChatMessage:
        """Deliver a chat line to every other member and acknowledge it to the sender.

        A client that lost its connection before the ack resends unacknowledged lines after
        reconnecting, marked ``retry``; a retry with the same nick, client id and text as a line
        already delivered is acknowledged again but not delivered twice. Lines not marked retry
        are always delivered (clients may reuse ids across sessions).

        Raises RemoteProtocolError (empty_text, text_too_long) before anything is sent.
        """
        text = validate_text(text, self.limits.max_text_chars)
        with self._lock:
            self._require_member(member)
            if retry and client_id is not None:
                earlier = self._recent.find(member.nick, client_id, text)
                if earlier is not None:
                    member.send(Ack(client_id, earlier.id, earlier.ts))
                    return earlier
            message = ChatMessage(next(self._message_ids), member.nick, text, self._clock())
            self._broadcast(message, exclude=member)
            member.send(Ack(client_id, message.id, message.ts))
            if client_id is not None:
                self._recent.remember(member.nick, client_id, message)
            return message

    def send_user_list(self, member: Member) -> None:
        with self._lock:
            member.send(UserList(tuple(m.nick for m in self._members.values())))
            if member.dialect == Dialect.PLAIN:  # plain clients have no welcome to tell them
                member.mailbox.put(encode_frame(f"* You are {member.nick}".encode()))

    def close_all(self, reason: str) -> list[Member]:
        """Tell every member goodbye (server shutting down) and forget them all."""
        with self._lock:
            self._closed = True
            members = list(self._members.values())
            self._members.clear()
            self._broadcast_to(members, Goodbye(reason))
            return members

    # --- internals (lock held) --------------------------------------------------------

    def _require_open(self) -> None:
        if self._closed:
            raise RemoteProtocolError(
                ErrorCode.SHUTTING_DOWN, "the server is shutting down", fatal=True
            )

    def _require_member(self, member: Member) -> None:
        if self._members.get(nick_key(member.nick)) is not member:
            raise LocalProtocolError(f"{member.nick} is not a member")

    def _broadcast(self, message: ServerMessage, exclude: Member | None = None) -> None:
        self._broadcast_to([m for m in self._members.values() if m is not exclude], message)

    @staticmethod
    def _broadcast_to(members: list[Member], message: ServerMessage) -> None:
        # Encoded once per dialect, the same bytes object for every recipient.
        rich = plain = None
        for m in members:
            if m.dialect == Dialect.RICH:
                if rich is None:
                    rich = encode_for(message, Dialect.RICH)
                m.mailbox.put(rich)
            else:
                if plain is None:
                    plain = encode_for(message, Dialect.PLAIN)
                m.mailbox.put(plain)
