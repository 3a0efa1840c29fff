"""Who is connected, which rooms exist, and what they say: the chat's state, without sockets.

:class:`ChatState` holds members and rooms under one lock. Everything a member should receive
is put on its :class:`Mailbox`, a non-blocking bounded queue; nothing here ever waits on a
network. Each event is encoded at most once per dialect (plain: once for recipients whose
current room it is, once for the others) and the same bytes are shared by all recipients.
Because fan-out happens under the lock, every member sees all events in one order.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..protocol.commands import LOBBY, help_lines
from ..protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from ..protocol.framing import encode_frame
from ..protocol.limits import Limits
from ..protocol.member_data import merge_member_data
from ..protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    AwayChanged,
    ChatMessage,
    ClientId,
    ErrorReply,
    Goodbye,
    HistoryPage,
    MemberData,
    NickChanged,
    Notice,
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
    encode_message,
    message_dict,
)
from ..protocol.names import nick_key, validate_nick
from ..protocol.plain import render_plain
from ..protocol.text import clean_reason, validate_text
from .history import HistoryStore, StoredMessage
from .moderation import BanList, FailureLimiter, describe_ban, host_of, verify_password

log = logging.getLogger("game_chat.server")

MAX_ROOM_CHARS = 32
MAX_TOPIC_CHARS = 300


class Mailbox(Protocol):
    """Where a member's outgoing frames go. ``put`` must never block."""

    def put(self, frame: bytes) -> None: ...


class Dialect:
    RICH = "rich"
    PLAIN = "plain"


def encode_for(message: ServerMessage, dialect: str, current_room: str | None = None) -> bytes:
    """The complete frame (header included) that carries ``message`` in ``dialect``."""
    if dialect == Dialect.RICH:
        return encode_frame(encode_message(message))
    return encode_frame(render_plain(message, current_room).encode("utf-8"))


def validate_room(name: str) -> str:
    """``#name`` with 1-32 characters after the #, nickname rules; RemoteProtocolError if not."""
    if not name.startswith("#"):
        raise RemoteProtocolError(ErrorCode.BAD_ROOM, "room names start with #, e.g. #team")
    try:
        return "#" + validate_nick(name[1:], MAX_ROOM_CHARS)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(
            ErrorCode.BAD_ROOM, exc.message.replace("nickname", "room name")
        ) from None


@dataclass(eq=False)
class Room:
    name: str
    topic: str = ""
    members: dict[str, Member] = field(default_factory=dict)  # nick key -> member, join order


@dataclass(eq=False)
class Member:
    """A registered user. Identity is the object itself."""

    nick: str
    dialect: str
    mailbox: Mailbox
    address: str = ""
    rooms: dict[str, Room] = field(default_factory=dict)  # room key -> room, join order
    current_room: str = LOBBY  # where a plain client's lines go
    away: str = ""
    oper: bool = False
    muted_until: float | None = None  # Unix time; math.inf until unmuted
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # room key -> member data
    #: Ends this member's connection (set by the session); called outside the state lock.
    disconnect: Callable[[str], None] = lambda reason: None

    def send(self, message: ServerMessage) -> None:
        self.mailbox.put(encode_for(message, self.dialect, self.current_room))

    def info(self, now: float, room: Room | None = None) -> dict[str, Any]:
        muted = self.muted_until is not None and self.muted_until > now
        info = {"nick": self.nick, "away": self.away, "oper": self.oper, "muted": muted}
        data = self.data.get(nick_key(room.name)) if room is not None else None
        if data:  # only members who set some carry it: most frames stay as they were
            info["data"] = data
        return info


@dataclass(frozen=True)
class Access:
    """Who may connect and who may become an operator."""

    password: str | None = None  # server password (plain or hash)
    oper_password: str | None = None  # operator password (plain or hash)


class RecentMessages:
    """The last few client ids each nick used, so a resent line is not delivered twice.

    Bounded twice over: ``per_nick`` ids for each nick, ``nicks`` nicks in all (oldest first out).
    """

    def __init__(self, per_nick: int = 256, nicks: int = 4096) -> None:
        self._per_nick = per_nick
        self._nicks = nicks
        self._by_nick: OrderedDict[str, OrderedDict[ClientId, Any]] = OrderedDict()

    def find(self, nick: str, client_id: ClientId, text: str) -> Any | None:
        seen = self._by_nick.get(nick_key(nick))
        message = seen.get(client_id) if seen else None
        return message if message is not None and message.text == text else None

    def remember(self, nick: str, client_id: ClientId, message: Any) -> None:
        key = nick_key(nick)
        seen = self._by_nick.pop(key, None) or OrderedDict()
        self._by_nick[key] = seen
        seen[client_id] = message
        if len(seen) > self._per_nick:
            seen.popitem(last=False)
        if len(self._by_nick) > self._nicks:
            self._by_nick.popitem(last=False)


class ChatState:
    """Members, rooms, messages, history and moderation. Every public method takes the lock;
    none of them blocks on a network."""

    def __init__(
        self,
        server_name: str = "game_chat",
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        *,
        history: HistoryStore | None = None,
        replay: int = 100,
        store_private: bool = False,
        access: Access | None = None,
        bans: BanList | None = None,
    ) -> None:
        self.server_name = server_name
        self.limits = limits or Limits()
        self._clock = clock
        self._lock = threading.Lock()
        self._members: dict[str, Member] = {}  # nick key -> member, in join order
        self._rooms: dict[str, Room] = {nick_key(LOBBY): Room(LOBBY)}
        self.history = history if history is not None else HistoryStore(None)
        self._message_ids = itertools.count(self.history.next_message_id())
        self._guest_numbers = itertools.count(1)
        self._recent = RecentMessages()
        self._closed = False  # after close_all: nobody joins any more
        self.replay = replay
        self.store_private = store_private
        self.access = access or Access()
        self.bans = bans or BanList(clock=clock)
        self.oper_failures = FailureLimiter()

    # --- queries ----------------------------------------------------------------------

    def nicks(self) -> list[str]:
        with self._lock:
            return [m.nick for m in self._members.values()]

    def rooms(self) -> dict[str, list[str]]:
        with self._lock:
            return {r.name: [m.nick for m in r.members.values()] for r in self._rooms.values()}

    def __len__(self) -> int:
        return len(self._members)

    # --- connecting -------------------------------------------------------------------

    def check_address(self, address: str) -> None:
        """Refuse a banned address at connect: RemoteProtocolError(banned, fatal)."""
        ban = self.bans.find(address=address)
        if ban is not None:
            raise RemoteProtocolError(
                ErrorCode.BANNED, describe_ban(ban, self._clock()), fatal=True
            )

    def check_password(self, password: str | None) -> None:
        expected = self.access.password
        if expected is not None and not verify_password(password or "", expected):
            raise RemoteProtocolError(
                ErrorCode.BAD_PASSWORD,
                "this server needs a password" if not password else "wrong password",
                fatal=True,
            )

    def join(self, nick: str, dialect: str, mailbox: Mailbox, address: str = "") -> Member:
        """Register a user under ``nick``: welcome, the lobby, its history; the others are told.

        Raises RemoteProtocolError (nick_invalid, nick_taken, banned, shutting_down).
        """
        nick = validate_nick(nick, self.limits.max_nick_chars)
        self._check_nick_ban(nick)
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
        self._enter(member, self._rooms[nick_key(LOBBY)], quiet=member.dialect == Dialect.PLAIN)
        return member

    def leave(self, member: Member, reason: str = "") -> None:
        """Remove a member from the server; those who shared a room with it are told."""
        with self._lock:
            if self._members.get(nick_key(member.nick)) is not member:
                return
            self._remove(member, UserLeft(member.nick, reason, self._clock()))

    def _remove(self, member: Member, notice: ServerMessage) -> None:
        del self._members[nick_key(member.nick)]
        audience = [m for m in self._sharing(member) if m is not member]
        for room in list(member.rooms.values()):
            self._drop_from_room(member, room)
        self._send_all(audience, notice)

    # --- rooms ------------------------------------------------------------------------

    def join_room(self, member: Member, name: str) -> None:
        """Join (or, already a member, switch to) a room; it is made on first join."""
        name = validate_room(name)
        with self._lock:
            self._require_member(member)
            key = nick_key(name)
            room = self._rooms.get(key)
            if room is None:
                room = self._rooms[key] = Room(name)
            if key in member.rooms:
                member.current_room = room.name
                member.send(self._room_joined(room))
                return
            self._enter(member, room)

    def part_room(self, member: Member, name: str, reason: str = "") -> None:
        with self._lock:
            room = self._member_room(member, name)
            self._send_all(
                room.members.values(),
                UserParted(room.name, member.nick, clean_reason(reason), self._clock()),
            )
            self._drop_from_room(member, room)

    def list_rooms(self, member: Member) -> None:
        with self._lock:
            rooms = tuple(
                {"room": r.name, "members": len(r.members), "topic": r.topic}
                for r in self._rooms.values()
            )
            member.send(RoomList(rooms))

    def set_topic(self, member: Member, name: str, topic: str) -> None:
        """Members set their room's topic; operators any room's."""
        topic = clean_reason(topic, MAX_TOPIC_CHARS)
        with self._lock:
            self._require_member(member)
            room = self._rooms.get(nick_key(name))
            if room is None:
                raise RemoteProtocolError(ErrorCode.NO_SUCH_ROOM, f"there is no room {name}")
            if nick_key(room.name) not in member.rooms and not member.oper:
                raise RemoteProtocolError(
                    ErrorCode.NOT_IN_ROOM, f"join {room.name} to set its topic"
                )
            room.topic = topic
            changed = TopicChanged(room.name, topic, member.nick, self._clock())
            self._send_all(room.members.values(), changed)
            if nick_key(room.name) not in member.rooms:  # an operator from outside
                member.send(changed)

    def who(self, member: Member, name: str | None) -> None:
        with self._lock:
            self._require_member(member)
            now = self._clock()
            if name is None:
                members: Iterable[Member] = self._members.values()
                room_name = None
            else:
                room = self._rooms.get(nick_key(name))
                if room is None:
                    raise RemoteProtocolError(ErrorCode.NO_SUCH_ROOM, f"there is no room {name}")
                members, room_name = room.members.values(), room.name
            where = room if name is not None else None
            member.send(WhoReply(room_name, tuple(m.info(now, where) for m in members)))
            if member.dialect == Dialect.PLAIN:  # plain clients have no welcome to tell them
                member.mailbox.put(encode_frame(f"* You are {member.nick}".encode()))

    def history_page(self, member: Member, name: str, before: int | None, limit: int) -> None:
        """Older lines of a room the member is in. The database is read outside the lock (a
        page is a reply to its asker only, so no broadcast order is at stake)."""
        with self._lock:
            room_name = self._member_room(member, name).name
        limit = max(1, min(limit, 500))
        stored = self.history.recent(nick_key(room_name), limit + 1, before)
        page = tuple(message_dict(self._replayed(s, room_name)) for s in stored[-limit:])
        member.send(HistoryPage(room_name, page, len(stored) > limit))

    def _enter(self, member: Member, room: Room, quiet: bool = False) -> None:
        """Lock held: put ``member`` in ``room``, tell the room, replay its history."""
        now = self._clock()
        self._send_all(room.members.values(), UserJoined(member.nick, now, room.name))
        room.members[nick_key(member.nick)] = member
        member.rooms[nick_key(room.name)] = room
        member.current_room = room.name
        if quiet:  # tutorial clients: no unasked-for lines before their first reply
            return
        member.send(self._room_joined(room))
        # Read under the lock on purpose: the replay must reach the joiner before any live
        # line of the room. Joins are rare and recent() is an indexed read (WAL: no waiting
        # on the writer).
        for stored in self.history.recent(nick_key(room.name), self.replay):
            member.send(self._replayed(stored, room.name))

    def _room_joined(self, room: Room) -> RoomJoined:
        now = self._clock()
        return RoomJoined(
            room.name, room.topic, tuple(m.info(now, room) for m in room.members.values())
        )

    @staticmethod
    def _replayed(stored: StoredMessage, room: str) -> ChatMessage:
        # Stored under the room's key, so "#Team" made anew as "#team" keeps its history.
        return ChatMessage(
            stored.id, stored.nick, stored.text, stored.ts, room, stored.action, True
        )

    def _drop_from_room(self, member: Member, room: Room) -> None:
        member.data.pop(nick_key(room.name), None)
        room.members.pop(nick_key(member.nick), None)
        member.rooms.pop(nick_key(room.name), None)
        if not room.members and nick_key(room.name) != nick_key(LOBBY):
            del self._rooms[nick_key(room.name)]
        if member.current_room == room.name:
            member.current_room = next(iter(member.rooms.values())).name if member.rooms else ""

    # --- users ------------------------------------------------------------------------

    def rename(self, member: Member, new_nick: str) -> None:
        """Change a member's nick and announce it to everyone sharing a room (and itself)."""
        new_nick = validate_nick(new_nick, self.limits.max_nick_chars)
        self._check_nick_ban(new_nick)
        with self._lock:
            self._require_member(member)
            old_key, new_key = nick_key(member.nick), nick_key(new_nick)
            if new_key != old_key and new_key in self._members:
                raise RemoteProtocolError(ErrorCode.NICK_TAKEN, f"the nickname {new_nick} is taken")
            old = member.nick
            if new_nick == old:  # nothing changes, but the asker still gets its answer
                member.send(NickChanged(old, new_nick, self._clock()))
                return
            # Rebuild to keep the member's place in the (join-ordered) lists.
            self._members = _rekey(self._members, old_key, new_key)
            for room in member.rooms.values():
                room.members = _rekey(room.members, old_key, new_key)
            member.nick = new_nick
            self._send_all(self._sharing(member), NickChanged(old, new_nick, self._clock()))

    def set_member_data(self, member: Member, name: str, change: dict[str, Any]) -> None:
        """Merge ``change`` into the member's data in a room; the room sees the result."""
        with self._lock:
            room = self._member_room(member, name)
            key = nick_key(room.name)
            member.data[key] = merge_member_data(member.data.get(key, {}), change)
            self._send_all(
                room.members.values(),
                MemberData(room.name, member.nick, member.data[key], self._clock()),
            )

    def set_away(self, member: Member, reason: str) -> None:
        reason = clean_reason(reason)
        with self._lock:
            self._require_member(member)
            member.away = reason
            self._send_all(self._sharing(member), AwayChanged(member.nick, reason, self._clock()))

    def send_user_list(self, member: Member) -> None:
        with self._lock:
            member.send(UserList(tuple(m.nick for m in self._members.values())))

    # --- messages ---------------------------------------------------------------------

    def say(
        self,
        member: Member,
        text: str,
        client_id: ClientId = None,
        retry: bool = False,
        room: str | None = None,
        action: bool = False,
    ) -> ChatMessage:
        """Deliver a line to everyone else in ``room`` (default: the member's current room)
        and acknowledge it to the sender.

        A client that lost its connection before the ack resends unacknowledged lines after
        reconnecting, marked ``retry``; a retry with the same nick, client id and text as a line
        already delivered is acknowledged again but not delivered twice. Lines not marked retry
        are always delivered (clients may reuse ids across sessions).
        """
        text = validate_text(text, self.limits.max_text_chars)
        with self._lock:
            target = self._member_room(member, room or member.current_room)
            self._require_voice(member)
            earlier = self._earlier(member, client_id, retry, text)
            if earlier is not None:
                return earlier  # type: ignore[no-any-return]
            message = ChatMessage(
                next(self._message_ids), member.nick, text, self._clock(), target.name, action
            )
            self._send_all(target.members.values(), message, exclude=member)
            self._acknowledge(member, client_id, message)
            self.history.append(
                StoredMessage(
                    message.id, nick_key(target.name), member.nick, text, message.ts, action
                )
            )
            return message

    def private(
        self,
        member: Member,
        to: str,
        text: str,
        client_id: ClientId = None,
        retry: bool = False,
        action: bool = False,
    ) -> PrivateMessage:
        """A private line to one user; the sender is told if that user is away."""
        text = validate_text(text, self.limits.max_text_chars)
        with self._lock:
            self._require_member(member)
            self._require_voice(member)
            recipient = self._members.get(nick_key(to))
            if recipient is None:
                raise RemoteProtocolError(ErrorCode.NO_SUCH_NICK, f"nobody is called {to}")
            earlier = self._earlier(member, client_id, retry, text)
            if earlier is not None:
                return earlier  # type: ignore[no-any-return]
            message = PrivateMessage(
                next(self._message_ids), member.nick, recipient.nick, text, self._clock(), action
            )
            recipient.send(message)
            self._acknowledge(member, client_id, message)
            if recipient.away:
                member.send(Notice(f"{recipient.nick} is away: {recipient.away}"))
            if self.store_private:
                self.history.append(
                    StoredMessage(
                        message.id, "", member.nick, text, message.ts, action, recipient.nick
                    )
                )
            return message

    def _earlier(self, member: Member, client_id: ClientId, retry: bool, text: str) -> Any:
        if retry and client_id is not None:
            earlier = self._recent.find(member.nick, client_id, text)
            if earlier is not None:
                member.send(Ack(client_id, earlier.id, earlier.ts))
                return earlier
        return None

    def _acknowledge(
        self, member: Member, client_id: ClientId, message: ChatMessage | PrivateMessage
    ) -> None:
        member.send(Ack(client_id, message.id, message.ts))
        if client_id is not None:
            self._recent.remember(member.nick, client_id, message)

    def help(self, member: Member) -> None:
        with self._lock:
            for line in help_lines(member.oper):
                member.send(Notice(line))

    # --- operators --------------------------------------------------------------------

    def oper(self, member: Member, password: str) -> None:
        """Make ``member`` an operator if ``password`` is right; failures are rate-limited."""
        key = host_of(member.address)
        wait = self.oper_failures.blocked(key)
        if wait:
            raise RemoteProtocolError(
                ErrorCode.RATE_LIMITED, f"too many failed attempts: try again in {wait:.0f} s"
            )
        expected = self.access.oper_password
        if expected is None or not verify_password(password, expected):
            self.oper_failures.failed(key)
            raise RemoteProtocolError(ErrorCode.BAD_PASSWORD, "wrong operator password")
        with self._lock:
            self._require_member(member)
            member.oper = True
            log.info("%s: %s is now an operator", member.address, member.nick)
            member.send(Notice("You are now an operator. /help lists the operator commands."))

    def kick(self, op: Member, nick: str, reason: str = "") -> Member:
        reason = clean_reason(reason)
        with self._lock:
            target = self._operate_on(op, nick)
            said = f"kicked by {op.nick}" + (f": {reason}" if reason else "")
            self._announce(target, f"{target.nick} was {said}")
            target.send(ErrorReply(ErrorCode.KICKED, f"you were {said}", fatal=True))
            self._remove(target, UserLeft(target.nick, said, self._clock()))
        target.disconnect(said)
        return target

    def ban(self, op: Member, target: str, minutes: float | None, reason: str = "") -> None:
        """Ban a nick (and the address it is connected from) or an address; kicks the banned.

        The bans are written to the database outside the lock: nobody waits for the disk.
        """
        reason = clean_reason(reason)
        _check_minutes(minutes)
        with self._lock:
            self._require_operator(op)
            victims = [
                m
                for m in self._members.values()
                if m is not op
                and (nick_key(m.nick) == nick_key(target) or host_of(m.address) == target)
            ]
            addresses = [host_of(m.address) for m in victims if m.address]
        for t in dict.fromkeys([target, *addresses]):
            self.bans.add(t, reason, op.nick, minutes)
        span = "for good" if minutes is None else f"for {minutes:g} minute(s)"
        said = f"banned by {op.nick} {span}" + (f": {reason}" if reason else "")
        with self._lock:
            op.send(Notice(f"{target} is {said}"))
            victims = [m for m in victims if self._members.get(nick_key(m.nick)) is m]
            for victim in victims:
                self._announce(victim, f"{victim.nick} was {said}")
                victim.send(ErrorReply(ErrorCode.BANNED, f"you were {said}", fatal=True))
                self._remove(victim, UserLeft(victim.nick, said, self._clock()))
        for victim in victims:
            victim.disconnect(said)

    def unban(self, op: Member, target: str) -> None:
        with self._lock:
            self._require_operator(op)
        found = self.bans.remove(target)  # the database, outside the lock
        with self._lock:
            done = "is no longer banned" if found else "was not banned"
            op.send(Notice(f"{target} {done}"))

    def mute(self, op: Member, nick: str, minutes: float | None) -> None:
        _check_minutes(minutes)
        with self._lock:
            target = self._operate_on(op, nick)
            target.muted_until = math.inf if minutes is None else self._clock() + minutes * 60
            span = "" if minutes is None else f" for {minutes:g} minute(s)"
            self._announce(target, f"{target.nick} was muted by {op.nick}{span}")

    def unmute(self, op: Member, nick: str) -> None:
        with self._lock:
            target = self._operate_on(op, nick)
            target.muted_until = None
            self._announce(target, f"{target.nick} may talk again ({op.nick})")

    def _operate_on(self, op: Member, nick: str) -> Member:
        self._require_operator(op)
        target = self._members.get(nick_key(nick))
        if target is None:
            raise RemoteProtocolError(ErrorCode.NO_SUCH_NICK, f"nobody is called {nick}")
        return target

    def _announce(self, target: Member, text: str) -> None:
        """Lock held: an operator action, told in every room of its target (and logged)."""
        log.info("operator action: %s", text)
        told: set[int] = set()  # once per member, even if it shares several rooms
        for room in target.rooms.values():
            fresh = [m for m in room.members.values() if id(m) not in told]
            told.update(id(m) for m in fresh)
            self._send_all(fresh, Notice(text, room.name))
        if not target.rooms:
            target.send(Notice(text))

    # --- shutdown ---------------------------------------------------------------------

    def close_all(self, reason: str) -> list[Member]:
        """Tell every member goodbye (server shutting down) and forget them all."""
        with self._lock:
            self._closed = True
            members = list(self._members.values())
            self._members.clear()
            self._send_all(members, Goodbye(reason))
            for room in self._rooms.values():
                room.members.clear()
            return members

    # --- internals (lock held) --------------------------------------------------------

    def _check_nick_ban(self, nick: str) -> None:
        ban = self.bans.find(nick=nick)
        if ban is not None:
            raise RemoteProtocolError(ErrorCode.BANNED, describe_ban(ban, self._clock()))

    def _require_open(self) -> None:
        if self._closed:
            raise RemoteProtocolError(
                ErrorCode.SHUTTING_DOWN, "the server is shutting down", fatal=True
            )

    def _require_member(self, member: Member) -> None:
        if self._members.get(nick_key(member.nick)) is not member:
            raise LocalProtocolError(f"{member.nick} is not a member")

    def _require_operator(self, member: Member) -> None:
        self._require_member(member)
        if not member.oper:
            raise RemoteProtocolError(
                ErrorCode.NOT_OPERATOR, "only operators can do that (/oper PASSWORD)"
            )

    def _require_voice(self, member: Member) -> None:
        until = member.muted_until
        if until is not None:
            if until > self._clock():
                raise RemoteProtocolError(ErrorCode.MUTED, "you are muted")
            member.muted_until = None

    def _member_room(self, member: Member, name: str | None) -> Room:
        self._require_member(member)
        if not name:
            raise RemoteProtocolError(ErrorCode.NOT_IN_ROOM, "join a room first (/join #room)")
        room = member.rooms.get(nick_key(name))
        if room is None:
            code = (
                ErrorCode.NOT_IN_ROOM if nick_key(name) in self._rooms else (ErrorCode.NO_SUCH_ROOM)
            )
            raise RemoteProtocolError(code, f"you are not in {name}")
        return room

    def _sharing(self, member: Member) -> list[Member]:
        """The member and everyone who shares a room with it, each once."""
        seen: dict[int, Member] = {id(member): member}
        for room in member.rooms.values():
            for m in room.members.values():
                seen.setdefault(id(m), m)
        return list(seen.values())

    @staticmethod
    def _send_all(
        members: Iterable[Member], message: ServerMessage, exclude: Member | None = None
    ) -> None:
        # Encoded at most once per variant, the same bytes object for every recipient.
        room = getattr(message, "room", None)
        rich = current = other = None
        rich_dialect = Dialect.RICH  # this loop runs once per recipient: no lookups in it
        for m in members:
            if m is exclude:
                continue
            if m.dialect == rich_dialect:
                if rich is None:
                    rich = encode_for(message, Dialect.RICH)
                m.mailbox.put(rich)
            elif room is None or m.current_room == room:
                if current is None:
                    current = encode_for(message, Dialect.PLAIN, room)
                m.mailbox.put(current)
            else:
                if other is None:
                    other = encode_for(message, Dialect.PLAIN, None if room is None else "")
                m.mailbox.put(other)


def _rekey(members: dict[str, Member], old: str, new: str) -> dict[str, Member]:
    return {(new if key == old else key): m for key, m in members.items()}


def _check_minutes(minutes: float | None) -> None:
    if minutes is not None and not 0 < minutes < 10**7:
        raise RemoteProtocolError(
            ErrorCode.BAD_COMMAND, "minutes must be a positive number (or none: for good)"
        )
