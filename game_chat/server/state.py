"""Who is connected, which rooms exist, and what they say: the chat's state, without sockets.

:class:`ChatState` holds members and rooms under one lock. Everything a member should receive
is put on its :class:`Mailbox`, a non-blocking bounded queue; nothing here ever waits on a
network. Each event is encoded at most once per dialect (plain: once for recipients whose
current room it is, once for the others) and the same bytes are shared by all recipients.
Because fan-out happens under the lock, every member sees all events in one order.

Chat lines and private messages take one detour: :meth:`ChatState.say` and
:meth:`ChatState.private` only number the line and hand it to the
:class:`~game_chat.server.group_commit.GroupCommit`; the line reaches its room and its ack
reaches the sender when it is stored (:meth:`ChatState._deliver`). The caller gets an
:class:`Accepted` with a ticket to :meth:`ChatState.wait` on. Replays and history pages only
ever show lines up to the last one delivered, so nobody sees a line twice (once replayed,
once live).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import hashlib
import itertools
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..irc.render import HOST, USER, is_irc
from ..protocol.commands import LOBBY, help_lines
from ..protocol.errors import ChatError, ErrorCode, RemoteProtocolError
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
    LineSettled,
    MemberData,
    NickChanged,
    Notice,
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
    decode_json_object,
    encode_json,
    encode_message,
    message_dict,
    parse_server_message,
)
from ..protocol.names import nick_key, nick_skeleton, validate_nick
from ..protocol.plain import SERVER_NAME
from ..protocol.records import quick_init
from ..protocol.text import clean_reason, validate_text
from .fanout import Fanout, write_through
from .group_commit import Deliver, GroupCommit, IdsExhausted, PendingLine
from .history import MAX_ID, HistoryError, HistoryStore, SentKey, StoredMessage
from .members import (
    MAX_ROOM_CHARS,
    MAX_TOPIC_CHARS,
    Access,
    Dialect,
    Mailbox,
    Member,
    Room,
    encode_for,
    encode_variant,
    validate_room,
)
from .moderation import (
    BanList,
    FailureLimiter,
    describe_ban,
    host_of,
    is_loopback,
    verify_password,
)
from .stream import Coalescer, RoomStream
from .throttle import Throttle

__all__ = [
    "MAX_ROOM_CHARS",
    "MAX_TOPIC_CHARS",
    "Accepted",
    "Access",
    "ChatState",
    "Dialect",
    "Mailbox",
    "Member",
    "MemberGone",
    "Room",
    "encode_for",
    "validate_room",
]

log = logging.getLogger("game_chat.server")

#: Rooms one member may be in at once (IRC daemons allow 10 to 20), and rooms in all.
MAX_ROOMS_PER_MEMBER = 20
MAX_ROOMS = 1000
#: Nicks no member may take (nor one that looks like them): the select dialect's refusals
#: come from ``server`` (protocol/plain.py).
_RESERVED = frozenset({nick_skeleton(SERVER_NAME)})
#: A quiet guest hears the lobby's lines said from this many seconds before it connected.
CATCH_UP_MARGIN = 1.0
#: How long a nick (and a remote address) kicked for excess flood stays banned.
FLOOD_BAN_MINUTES = 1.0
#: Said to an operator whose ban or unban the database could not keep.
UNSAVED_BAN = " (not saved: the history database is failing; this lasts until the server stops)"
#: A history page stops growing at about this many bytes of JSON (the client's outbox limit
#: is 1 MiB: a page must never cut the connection that asked for it).
PAGE_BYTES = 256 * 1024
#: How long a new connection waits for a nick's holder whose peer has already closed its
#: connection to be gone (wait_for_ghost), before the nick counts as taken.
GHOST_WAIT_SECONDS = 1.0
HISTORY_UNAVAILABLE = "the history is unavailable right now"


class MemberGone(ChatError):
    """The member is no longer on the server: kicked, banned, taken over by a newer
    connection, or the server is shutting down. Its connection just ends."""


@quick_init
@dataclass(frozen=True)
class Accepted:
    """A chat line or private message the server took."""

    id: int
    ts: float
    #: Wait for this with :meth:`ChatState.wait`: then the line is delivered and acked
    #: (0: it already was, e.g. a retry answered from the store).
    ticket: int
    #: A retry of a line delivered before: the ack that answers it, for the caller to send
    #: once its own earlier lines are answered (acks stay in request order).
    ack: Ack | None = None


@quick_init
@dataclass(frozen=True)
class _Delivery:
    """What delivering one line takes (PendingLine.delivery)."""

    message: ChatMessage | PrivateMessage
    sender: Member | None  # None: a line from another node of the cluster
    client_id: ClientId
    recipient: Member | None = None  # private lines


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def _session_key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _retry_key(member: Member, client_id: ClientId) -> str | None:
    """Sender + client id, as stored (an integer id and its string form stay apart)."""
    if client_id is None:
        return None
    kind = "s" if isinstance(client_id, str) else "i"
    return f"{nick_key(member.nick)}\x00{kind}{client_id}"


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
        max_rooms_per_member: int = MAX_ROOMS_PER_MEMBER,
        max_rooms: int = MAX_ROOMS,
        flood_ban_minutes: float = FLOOD_BAN_MINUTES,
        pipeline: Callable[[Deliver, Callable[..., Any]], Any] | None = None,
    ) -> None:
        """``pipeline`` (a cluster node, game_chat/cluster/pipeline.py): makes the line
        pipeline from the state's deliver and delivery_for callbacks, instead of a
        GroupCommit on ``history``."""
        self.server_name = server_name
        self.limits = limits or Limits()
        self._clock = clock
        self._lock = threading.Lock()
        #: Notified whenever a member leaves (wait_for_ghost).
        self._departures = threading.Condition(self._lock)
        self._members: dict[str, Member] = {}  # nick key -> member, in join order
        self._peak = 0  # the most members at once
        # nick skeleton (Unicode TR39) -> member: no two members' nicks look alike
        self._skeletons: dict[str, Member] = {}
        nick_skeleton("")  # the confusables table is built now, not during someone's join
        self._rooms: dict[str, Room] = {nick_key(LOBBY): Room(LOBBY, created=clock())}
        #: Flushes rooms whose streams got lines (at once, or soon when a room is busy).
        self._coalescer = Coalescer()
        self.history = history if history is not None else HistoryStore(None)
        #: Every line with an id up to this one has been delivered (and none above it). The
        #: first id of this run is the reservation left by the last one.
        self._delivered_id = self.history.reserved_id - 1
        # Cluster: room key -> the first id of the room not yet delivered here (each room's
        # lines come in their stream's order, but rooms interleave); None: one server, where
        # _delivered_id serves every room.
        self._room_tops: dict[str, int] | None = None
        if pipeline is None:
            self._group = GroupCommit(self.history, self._deliver)  # HistoryError: no write
        else:
            self._room_tops = {}
            self._group = pipeline(self._deliver, self._delivery_for)
            self._group.snapshot = self._member_snapshot
            self._group.on_event = self._cluster_event
            self._group.on_beat = self._reload_bans
            self._group.on_early = self._deliver_early
            self._group.on_unstored = self._unstored
            self._rooms[nick_key(LOBBY)].topic = self._cluster_topic(nick_key(LOBBY))
            self._group.start()  # the callbacks are set: nothing it reads goes unheard
        self._sessions: dict[bytes, Member] = {}  # session key -> member
        self._guest_numbers = itertools.count(1)
        self._closed = False  # after close_all: nobody joins any more
        self._history_trouble = Throttle(60.0)
        self.replay = replay
        self.store_private = store_private
        self.access = access or Access()
        self.bans = bans or BanList(clock=clock)
        self.oper_failures = FailureLimiter(cap=self.limits.oper_wait_max)
        self.max_rooms_per_member = max(1, max_rooms_per_member)
        self.max_rooms = max(1, max_rooms)
        self.flood_ban_minutes = flood_ban_minutes

    # --- queries ----------------------------------------------------------------------

    @property
    def _in_cluster(self) -> bool:
        """This server is a node of a cluster (``pipeline`` given): Redis holds the lines."""
        return self._room_tops is not None

    @property
    def store_id(self) -> str:
        """The name of the store whose ids this server hands out (welcome ``store``): the
        history database's, or on a cluster node the cluster's, the same on every node."""
        return getattr(self._group, "store_id", None) or self.history.store_id

    def nicks(self) -> list[str]:
        with self._lock:
            return [m.nick for m in self._members.values()]

    def rooms(self) -> dict[str, list[str]]:
        with self._lock:
            return {r.name: [m.nick for m in r.members.values()] for r in self._rooms.values()}

    def __len__(self) -> int:
        return len(self._members)

    @property
    def peak(self) -> int:
        """The most members this server has had at once since it started (LUSERS)."""
        return self._peak

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

    def join(
        self,
        nick: str,
        dialect: str,
        mailbox: Mailbox,
        address: str = "",
        *,
        session: str | None = None,
        store: str | None = None,
        resume: dict[str, Any] | None = None,
        lobby: bool = True,
        render: Callable[[ServerMessage], bytes] | None = None,
    ) -> Member:
        """Register a user under ``nick``: welcome, the lobby (or the rooms of ``resume``) and
        their history; the others are told.

        ``lobby`` False: in no room at first (IRC clients join what they ask for); ``render``:
        the member's own rendering (Member.render).

        ``session`` (a token from an earlier welcome) takes over the member it names, whatever
        ``nick`` says: the old connection gets a fatal ``replaced`` error and the others see
        nothing. ``resume`` maps rooms to the last id the client has of each (ids of ``store``).
        Raises RemoteProtocolError (nick_invalid, nick_taken, banned, bad_room, bad_message,
        shutting_down).
        """
        points = self._resume_points(resume, store)
        self.check_address(address)
        with self._lock:
            self._require_open()
            owner = self._sessions.get(_session_key(session)) if session else None
            if owner is not None:
                self._check_room_capacity(points or ())
                new_rooms = {nick_key(n) for n in points or ()} - owner.rooms.keys()
                self._check_member_rooms(owner, len(new_rooms))
                ended = owner.disconnect
                member = self._take_over(owner, dialect, mailbox, address, points)
        if owner is not None:
            ended("replaced by a newer connection")  # outside the lock, as kicks are
            return member
        nick = validate_nick(nick, self.limits.max_nick_chars)
        self._check_nick_ban(nick)
        with self._lock:
            self._ghost_gone(nick)
            self._require_open()
            self._claim(nick)
            self._check_room_capacity(points or ())
            member = Member(nick, dialect, mailbox, address, render=render)
            return self._add(member, points if lobby else points or {})

    def validate_new_nick(self, nick: str) -> str:
        """``nick`` in NFC if a new member could take it now; RemoteProtocolError
        (nick_invalid, banned, nick_taken) if not. Nothing is reserved: a later ``join``
        checks again."""
        nick = validate_nick(nick, self.limits.max_nick_chars)
        self._check_nick_ban(nick)
        with self._lock:
            self._ghost_gone(nick)
            self._claim(nick)
        return nick

    def wait_for_ghost(self, nick: str, timeout: float = GHOST_WAIT_SECONDS) -> bool:
        """True if ``nick`` is free, or was held by a member whose peer had already closed its
        connection and that member left within ``timeout`` seconds; False at once if its
        holder's connection is still open. (``join`` and ``validate_new_nick`` do this
        first.)"""
        with self._lock:
            return self._ghost_gone(nick, timeout)

    def _ghost_gone(self, nick: str, timeout: float = GHOST_WAIT_SECONDS) -> bool:
        """Lock held: :meth:`wait_for_ghost`. A client that comes back faster than the thread
        reading its old connection saw the close must not find its own nick taken: a holder
        whose peer has closed is waited for (the lock is let go meanwhile)."""
        holder = self._nick_in_use(nick)
        if holder is None:
            return True
        if not holder.mailbox.peer_closed():  # (a non-blocking peek: only for a taken nick)
            return False
        return self._departures.wait_for(lambda: self._nick_in_use(nick) is not holder, timeout)

    def join_guest(
        self, dialect: str, mailbox: Mailbox, address: str = "", since: float | None = None
    ) -> Member:
        """Register a user under the next free ``guest-N`` nick (RemoteProtocolError: banned,
        shutting_down). ``since`` (Unix time): when it connected; the lobby's lines said from
        a second before are sent at once (a listening tutorial client hears everything said
        after it connected, also while the server waited to make it a guest; the second
        covers the moment between its connection and the server's accept)."""
        self.check_address(address)  # a ban may have come since it connected
        with self._lock:
            self._require_open()
            while True:
                nick = f"guest-{next(self._guest_numbers)}"
                if self._nick_in_use(nick) is None:  # guest-1 is skipped while guest-l is here
                    try:
                        member = self._add(Member(nick, dialect, mailbox, address))
                    except RemoteProtocolError as exc:
                        if exc.code == ErrorCode.NICK_TAKEN:  # on another node: next number
                            continue
                        raise
                    if since is not None:
                        self._catch_up(member, self._rooms[nick_key(LOBBY)], since)
                    return member

    def _catch_up(self, member: Member, room: Room, since: float) -> None:
        """Lock held: the delivered lines of ``room`` said from ``CATCH_UP_MARGIN`` seconds
        before ``since`` (Unix time) on, as if live."""
        top = self._top(nick_key(room.name))
        try:
            lines = self._group.history(nick_key(room.name), self.replay, before=top)
        except HistoryError as exc:
            self._report(exc)
            return
        for s in lines:
            if s.ts >= since - CATCH_UP_MARGIN:
                member.send(self._line_of(s, room.name, history=False))

    def _nick_in_use(self, nick: str, me: Member | None = None) -> Member | None:
        """Lock held: the member other than ``me`` whose nick is ``nick`` or looks like it."""
        for other in (self._members.get(nick_key(nick)), self._skeletons.get(nick_skeleton(nick))):
            if other is not None and other is not me:
                return other
        return None

    def _claim(self, nick: str, me: Member | None = None) -> None:
        """Lock held: RemoteProtocolError nick_taken if ``nick`` is in use or looks like one
        that is (``me`` may take a nick that looks like its own), or is reserved."""
        if nick_skeleton(nick) in _RESERVED:
            raise RemoteProtocolError(ErrorCode.NICK_TAKEN, f"the nickname {nick} is reserved")
        other = self._nick_in_use(nick, me)
        if other is None:
            return
        if nick_key(other.nick) == nick_key(nick):
            raise RemoteProtocolError(ErrorCode.NICK_TAKEN, f"the nickname {nick} is taken")
        raise RemoteProtocolError(
            ErrorCode.NICK_TAKEN, f"the nickname {nick} looks too much like {other.nick}"
        )

    def _add(self, member: Member, points: dict[str, int | None] | None = None) -> Member:
        self._claim_in_cluster(member.nick)
        self._members[nick_key(member.nick)] = member
        self._skeletons[nick_skeleton(member.nick)] = member
        self._peak = max(self._peak, len(self._members))
        try:
            # Plain clients get no welcome: a tutorial client expects "Message was Sent!" as
            # the first reply to its first line.
            if member.dialect == Dialect.RICH:
                self._welcome(member)
            if points is None:
                lobby = self._rooms[nick_key(LOBBY)]
                self._enter(member, lobby, member.dialect != Dialect.RICH)
            else:
                member.current_room = ""  # in the rooms of the resume only (maybe none)
            for name, point in (points or {}).items():
                self._enter(member, self._room_named(name), after=point)
        except BaseException:  # a bug of ours: no phantom holding the nick
            self._remove(member, UserLeft(member.nick, "internal server error", self._clock()))
            raise
        return member

    def _claim_in_cluster(self, nick: str) -> None:
        """Lock held, on a cluster node: take ``nick`` cluster-wide (one atomic step in
        Redis: of two nodes asking at once, one wins), or RemoteProtocolError nick_taken
        (held on another node) / unavailable (Redis cannot be reached)."""
        if not self._in_cluster:
            return
        with self._store_reachable():
            taken = self._group.claim_nick(nick_skeleton(nick))
        if not taken:
            raise RemoteProtocolError(
                ErrorCode.NICK_TAKEN, f"the nickname {nick} is taken (on another server)"
            )

    @contextlib.contextmanager
    def _store_reachable(
        self, refusal: str = "the chat's store cannot be reached; try again"
    ) -> Iterator[None]:
        """What needs the store (SQLite, or a cluster node's Redis) is refused in the block's
        place, ``refusal`` said (RemoteProtocolError unavailable), when the store fails; the
        failure is reported in the log."""
        try:
            yield
        except HistoryError as exc:
            self._report(exc)
            raise RemoteProtocolError(ErrorCode.UNAVAILABLE, refusal) from None

    def _release_in_cluster(self, nick: str) -> None:
        """Lock held: nobody here has ``nick`` (or a look-alike) any more."""
        if self._in_cluster and nick_skeleton(nick) not in self._skeletons:
            self._group.release_nick(nick_skeleton(nick))

    def _welcome(self, member: Member) -> None:
        """Lock held: a welcome with a fresh session token (the previous one stops working)."""
        token = secrets.token_urlsafe(18)
        self._sessions.pop(member.session_key, None)
        member.session_key = _session_key(token)
        self._sessions[member.session_key] = member
        member.send(
            Welcome(
                nick=member.nick,
                server=self.server_name,
                version=PROTOCOL_VERSION,
                limits=self.limits.to_dict(),
                users=tuple(m.nick for m in self._members.values())
                + tuple(r["nick"] for r in self._remote()),
                session=token,
                store=self.store_id,
            )
        )

    def _take_over(
        self,
        member: Member,
        dialect: str,
        mailbox: Mailbox,
        address: str,
        points: dict[str, int | None] | None,
    ) -> Member:
        """Lock held: a newer connection takes ``member`` over. Its heir, a new Member with
        the same nick, rooms (and place in them), away, operator and member data, is returned;
        the old object is no longer a member, so whatever the old connection's reader still
        does with it fails as MemberGone. Lines of the old one still on their way reach the
        heir (``successor``). The old connection is told, and ends when ``disconnect`` is
        called."""
        replaced = ErrorReply(
            ErrorCode.REPLACED, "this session was taken over by a newer connection", fatal=True
        )
        member.send(replaced)
        heir = Member(
            member.nick,
            dialect,
            mailbox,
            address,
            rooms=member.rooms,
            current_room=member.current_room,
            away=member.away,
            oper=member.oper,
            muted_until=member.muted_until,
            data=member.data,
        )
        key = nick_key(member.nick)
        self._members[key] = heir
        self._skeletons[nick_skeleton(heir.nick)] = heir
        for room in heir.rooms.values():
            room.members[key] = heir  # same key: the same place in the join order
        self._sessions.pop(member.session_key, None)
        member.successor, member.rooms, member.data = heir, {}, {}
        self._refollow(member)
        self._refollow(heir)
        self._welcome(heir)
        points = points or {}
        for room_key, room in heir.rooms.items():
            # Rooms the client named resume after its last id; others replay as on a join.
            point = next((p for n, p in points.items() if nick_key(n) == room_key), None)
            self._show_room(heir, room, point, resumed=True)
        for name, point in points.items():
            if nick_key(name) not in heir.rooms:
                self._enter(heir, self._room_named(name), after=point)
        log.info("%s: %s took over its session", address, heir.nick)
        return heir

    def _resume_points(
        self, resume: dict[str, Any] | None, store: str | None
    ) -> dict[str, int | None] | None:
        """The rooms of a hello's ``resume``, checked: names valid, ids integers or null.
        Ids from another store (or none named) mean nothing here: those rooms replay anew."""
        if resume is None:
            return None
        if len(resume) > self.max_rooms_per_member:
            raise RemoteProtocolError(
                ErrorCode.BAD_MESSAGE,
                f"resume names more than {self.max_rooms_per_member} rooms",
            )
        ours = store is not None and store == self.store_id
        points: dict[str, int | None] = {}
        keys: set[str] = set()
        for name, last in resume.items():
            if last is not None and (type(last) is not int or not 0 <= last <= MAX_ID):
                raise RemoteProtocolError(
                    ErrorCode.BAD_MESSAGE, "resume ids must be integers from 0 to 2**63-1 or null"
                )
            room = validate_room(name)
            if nick_key(room) in keys:
                raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"resume names {room} twice")
            keys.add(nick_key(room))
            points[room] = last if ours else None
        return points

    def _room_named(self, name: str) -> Room:
        """Lock held: the room called ``name``, made if it does not exist (and there is room
        for one more: RemoteProtocolError too_many_rooms otherwise)."""
        key = nick_key(name)
        room = self._rooms.get(key)
        if room is None:
            self._check_room_capacity([name])
            room = self._rooms[key] = Room(name, self._cluster_topic(key), created=self._clock())
        return room

    def _cluster_topic(self, room_key: str) -> str:
        """Lock held: on a cluster node, the topic a room made here already has elsewhere."""
        if not self._in_cluster:
            return ""
        try:
            return self._group.topic(room_key)  # type: ignore[no-any-return]
        except HistoryError as exc:
            self._report(exc)
            return ""

    def _check_room_capacity(self, names: Iterable[str]) -> None:
        """Lock held: refuse if making the rooms of ``names`` that do not exist yet would
        take the server over ``max_rooms``."""
        new = {nick_key(n) for n in names} - self._rooms.keys()
        if new and len(self._rooms) + len(new) > self.max_rooms:
            raise RemoteProtocolError(
                ErrorCode.TOO_MANY_ROOMS,
                f"the server has {len(self._rooms)} rooms, the most it keeps: join one of them",
            )

    def _check_member_rooms(self, member: Member, more: int = 1) -> None:
        """Lock held: refuse a join that would put ``member`` in too many rooms."""
        if len(member.rooms) + more > self.max_rooms_per_member:
            raise RemoteProtocolError(
                ErrorCode.TOO_MANY_ROOMS,
                f"you are in {len(member.rooms)} rooms, the most one may be in: part one first",
            )

    def leave(self, member: Member, reason: str = "") -> None:
        """Remove a member from the server; those who shared a room with it are told. Nothing
        happens if it is not a member any more (kicked, banned, taken over)."""
        with self._lock:
            if self._members.get(nick_key(member.nick)) is not member:
                return
            self._remove(member, UserLeft(member.nick, reason, self._clock()))

    def _forget_skeleton(self, member: Member) -> None:
        """Lock held: ``member``'s nick no longer holds its look-alikes back."""
        skeleton = nick_skeleton(member.nick)
        if self._skeletons.get(skeleton) is member:
            del self._skeletons[skeleton]

    def _remove(self, member: Member, notice: ServerMessage) -> None:
        del self._members[nick_key(member.nick)]
        self._departures.notify_all()
        self._forget_skeleton(member)
        self._release_in_cluster(member.nick)
        self._sessions.pop(member.session_key, None)
        audience = [m for m in self._sharing(member) if m is not member]
        self._tell_cluster(notice, member.rooms.values())
        for room in list(member.rooms.values()):
            self._drop_from_room(member, room)
        self._send_all(audience, notice)

    # --- rooms ------------------------------------------------------------------------

    def join_room(self, member: Member, name: str) -> None:
        """Join (or, already a member, switch to) a room; it is made on first join."""
        name = validate_room(name)
        with self._lock:
            self._require_member(member)
            if nick_key(name) in member.rooms:
                room = member.rooms[nick_key(name)]
                member.current_room = room.name
                self._refollow(member)
                member.send(self._room_joined(room))
                return
            self._check_member_rooms(member)
            room = self._rooms.get(nick_key(name))
            if room is not None:
                self._check_room_ban(member, room)
            self._enter(member, self._room_named(name))

    def part_room(self, member: Member, name: str, reason: str = "") -> None:
        with self._lock:
            room = self._member_room(member, name)
            parted = UserParted(room.name, member.nick, clean_reason(reason), self._clock())
            self._send_all(room.members.values(), parted)
            self._tell_cluster(parted, [room])
            self._drop_from_room(member, room)

    def list_rooms(self, member: Member) -> None:
        """The rooms (on a cluster: of every node, members counted on every node)."""
        topics = self._cluster_topics()  # (out of the lock: it asks Redis)
        with self._lock:
            rooms = {
                key: [r.name, len(r.members), r.topic]
                for key, r in self._rooms.items()
                if "s" not in r.modes or key in member.rooms or member.oper  # secret: hidden
            }
            for remote in self._group_remote():
                keys, names = remote.get("rooms"), remote.get("room_names")
                if not isinstance(keys, list) or not isinstance(names, list):
                    continue  # (a node of an older version: its rooms are not listed)
                for key, name in zip(keys, names, strict=False):
                    if isinstance(key, str) and isinstance(name, str):
                        rooms.setdefault(key, [name, 0, topics.get(key, "")])[1] += 1
            listed = tuple({"room": n, "members": c, "topic": t} for n, c, t in rooms.values())
            member.send(RoomList(listed))

    def _group_remote(self) -> Iterable[dict[str, Any]]:
        """Lock held: the members of the other nodes of a cluster, as published."""
        return self._group.remote.values() if self._in_cluster else ()

    def _cluster_topics(self) -> dict[str, str]:
        """Every room's topic as the cluster has it ({} on one server, or without Redis)."""
        if not self._in_cluster:
            return {}
        try:
            return self._group.topics()  # type: ignore[no-any-return]
        except HistoryError as exc:
            self._report(exc)
            return {}

    def set_topic(self, member: Member, name: str, topic: str) -> None:
        """Members set their room's topic; operators any room's."""
        topic = clean_reason(topic, MAX_TOPIC_CHARS)
        with self._lock:
            self._require_member(member)
            room = self._existing_room(name)
            if nick_key(room.name) not in member.rooms and not member.oper:
                raise RemoteProtocolError(
                    ErrorCode.NOT_IN_ROOM, f"join {room.name} to set its topic"
                )
            if "t" in room.modes and not self._runs(member, room):
                raise RemoteProtocolError(
                    ErrorCode.NOT_OPERATOR, f"only operators of {room.name} set its topic (+t)"
                )
            changed = TopicChanged(room.name, topic, member.nick, self._clock())
            room.set_topic(changed)
            self._send_all(room.members.values(), changed)
            self._tell_cluster(changed, [room], topic=(nick_key(room.name), topic))
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
                room = self._existing_room(name)
                members, room_name = room.members.values(), room.name
            where = room if name is not None else None
            infos = [m.info(now, where) for m in members] + self._remote(where)
            member.send(WhoReply(room_name, tuple(infos)))
            if member.dialect in (Dialect.PLAIN, Dialect.SELECT):  # (they have no welcome)
                member.send(Notice(f"You are {member.nick}"))

    def history_page(
        self,
        member: Member,
        name: str,
        before: int | None,
        limit: int,
        after: int | None = None,
    ) -> None:
        """Lines of a room the member is in: the newest ``limit`` below ``before``, or with
        ``after`` the oldest ``limit`` above it. Only delivered lines: a page never shows a
        line that is still to come live. The database is read outside the lock (a page is a
        reply to its asker only, so no broadcast order is at stake)."""
        room_name, lines, more = self.history_lines(member, name, before, limit, after)
        page, cut = _fit_page([message_dict(line) for line in lines], after)
        member.send(HistoryPage(room_name, tuple(page), more or cut, after))

    def history_lines(
        self,
        member: Member,
        name: str,
        before: int | None,
        limit: int,
        after: int | None = None,
        newest: bool | None = None,
    ) -> tuple[str, list[ChatMessage], bool]:
        """(room name, lines, whether there are more) of a room the member is in, oldest
        first, with ``after`` < id < ``before``: the newest ``limit`` (at most 500) of them,
        or the oldest when ``after`` is given (``newest`` says otherwise); only delivered
        lines. RemoteProtocolError not_in_room, no_such_room, unavailable."""
        with self._lock:
            room_name = self._member_room(member, name).name
            top = self._top(nick_key(room_name))
        limit = max(1, min(limit, 500))
        newest = after is None if newest is None else newest
        upper = top if before is None else min(before, top)
        with self._store_reachable(HISTORY_UNAVAILABLE):
            stored = self._group.history(
                nick_key(room_name), limit + 1, before=upper, after=after, newest=newest
            )
        more = len(stored) > limit
        stored = stored[-limit:] if newest else stored[:limit]
        return room_name, [self._line_of(s, room_name) for s in stored], more

    @property
    def finds_times(self) -> bool:
        """:meth:`first_id_at` answers (one server: its SQLite store has the lines' times)."""
        return not self._in_cluster

    def first_id_at(self, ts: float) -> int | None:
        """The id of the first line said at Unix time ``ts`` or later (ids grow with time),
        the next id to come if none was; None when this server cannot tell (a cluster node:
        its lines are in Redis). RemoteProtocolError unavailable."""
        if self._in_cluster:
            return None
        with self._store_reachable(HISTORY_UNAVAILABLE):
            found = self.history.first_id_at(ts)
        if found is not None:
            return found
        with self._lock:
            return self._delivered_id + 1

    def _enter(
        self, member: Member, room: Room, quiet: bool = False, after: int | None = None
    ) -> None:
        """Lock held: put ``member`` in ``room``, tell the room, replay its history (with
        ``after``: the lines after that id, as a resume)."""
        if self._in_cluster:  # a cluster node delivers the room's lines from now
            with self._store_reachable():
                self._top(nick_key(room.name))
        now = self._clock()
        joined = UserJoined(member.nick, now, room.name)
        self._send_all(room.members.values(), joined)
        self._tell_cluster(joined, [room])
        if member.away:  # IRC's away-notify: an away member's joining says it is away
            irc = [m for m in room.members.values() if is_irc(m.dialect)]
            self._send_all(irc, AwayChanged(member.nick, member.away, now))
        if not room.members and nick_key(room.name) != nick_key(LOBBY):
            room.ops.add(nick_key(member.nick))  # who makes a room (or finds it empty) runs it
        room.members[nick_key(member.nick)] = member
        member.rooms[nick_key(room.name)] = room
        member.current_room = room.name
        self._refollow(member)
        if quiet:  # tutorial clients: no unasked-for lines before their first reply
            return
        self._show_room(member, room, after, resumed=after is not None)

    def _show_room(self, member: Member, room: Room, after: int | None, resumed: bool) -> None:
        """Lock held: ``joined`` and the history a member gets on entering ``room``.

        Read under the lock on purpose: the replay must reach the member before any live line
        of the room, and must end exactly where live lines begin (the last delivered id).
        Joins are rare and the read is indexed (WAL: no waiting on the writer). A resume
        replays every line after ``after`` when they are at most ``replay``; otherwise the
        newest ``replay`` of them, and ``joined.gap`` names the ones left out."""
        key = nick_key(room.name)
        top = self._top(key)
        wanted = self.replay + 1 if resumed and after is not None else self.replay
        try:
            lines = self._group.history(key, wanted, before=top, after=after)
        except HistoryError as exc:
            self._report(exc)
            member.send(self._room_joined(room))
            member.send(Notice("The history of this room is unavailable right now.", room.name))
            return
        gap = None
        if len(lines) > self.replay:
            lines = lines[len(lines) - self.replay :]
            gap = {"after": after or 0, "before": lines[0].id if lines else top}
        member.send(self._room_joined(room, gap))
        for stored in lines:
            member.send(self._line_of(stored, room.name))

    def _room_joined(self, room: Room, gap: dict[str, int] | None = None) -> RoomJoined:
        now = self._clock()
        infos = [m.info(now, room) for m in room.members.values()] + self._remote(room)
        known = bool(room.topic and room.topic_by)
        return RoomJoined(
            room.name,
            room.topic,
            tuple(infos),
            gap,
            topic_by=room.topic_by if known else None,
            topic_ts=room.topic_ts if known else None,
            secret="s" in room.modes,
        )

    def _report(self, exc: HistoryError) -> None:
        """A history read failed: logged at most once a minute; the chat goes on."""
        quiet = self._history_trouble.due()
        if quiet is not None:
            log.error("%s (%d more since the last report)", exc, quiet)

    @staticmethod
    def _line_of(stored: StoredMessage, room: str, history: bool = True) -> ChatMessage:
        """A stored room line as members get it: in ``room`` (stored under the room's key, so
        "#Team" made anew as "#team" keeps its history), replayed (``history``) or live."""
        return ChatMessage(
            stored.id,
            stored.nick,
            stored.text,
            stored.ts,
            room,
            stored.action,
            history,
            notice=stored.notice,
        )

    def _drop_from_room(self, member: Member, room: Room) -> None:
        member.data.pop(nick_key(room.name), None)
        room.members.pop(nick_key(member.nick), None)
        room.ops.discard(nick_key(member.nick))
        room.voiced.discard(nick_key(member.nick))
        member.rooms.pop(nick_key(room.name), None)
        if not room.members and nick_key(room.name) != nick_key(LOBBY):
            del self._rooms[nick_key(room.name)]
        if member.current_room == room.name:
            member.current_room = next(iter(member.rooms.values())).name if member.rooms else ""
        self._refollow(member)

    @staticmethod
    def _refollow(member: Member) -> None:
        """Lock held: ``member``'s rooms, or its current room, or its dialect changed: its
        mailbox takes the lines of exactly its rooms' streams, each as it sees them now."""
        member.mailbox.follow(
            {room.stream: _variant(member, room.name) for room in member.rooms.values()}
        )

    # --- users ------------------------------------------------------------------------

    def rename(self, member: Member, new_nick: str) -> None:
        """Change a member's nick and announce it to everyone sharing a room (and itself)."""
        new_nick = validate_nick(new_nick, self.limits.max_nick_chars)
        self._check_nick_ban(new_nick)
        with self._lock:
            self._require_member(member)
            old_key, new_key = nick_key(member.nick), nick_key(new_nick)
            self._claim(new_nick, me=member)
            old = member.nick
            if new_nick == old:  # nothing changes, but the asker still gets its answer
                member.send(NickChanged(old, new_nick, self._clock()))
                return
            if nick_skeleton(new_nick) != nick_skeleton(old):
                self._claim_in_cluster(new_nick)
            # Rebuild to keep the member's place in the (join-ordered) lists.
            self._members = _rekey(self._members, old_key, new_key)
            for room in member.rooms.values():
                room.members = _rekey(room.members, old_key, new_key)
                for holders in (room.ops, room.voiced):
                    if old_key in holders:
                        holders.discard(old_key)
                        holders.add(new_key)
            self._forget_skeleton(member)
            member.nick = new_nick
            self._skeletons[nick_skeleton(new_nick)] = member
            self._release_in_cluster(old)
            renamed = NickChanged(old, new_nick, self._clock())
            self._send_all(self._sharing(member), renamed)
            self._tell_cluster(renamed, member.rooms.values())

    def set_member_data(self, member: Member, name: str, change: dict[str, Any]) -> None:
        """Merge ``change`` into the member's data in a room; the room sees the result."""
        with self._lock:
            room = self._member_room(member, name)
            key = nick_key(room.name)
            member.data[key] = merge_member_data(member.data.get(key, {}), change)
            changed = MemberData(room.name, member.nick, member.data[key], self._clock())
            self._send_all(room.members.values(), changed)
            self._tell_cluster(changed, [room])

    def set_dialect(self, member: Member, dialect: str) -> None:
        """An IRC member's capabilities changed how it sees lines: from now on its rooms'
        lines come to it rendered so (what came before, as before)."""
        with self._lock:
            member.dialect = dialect
            self._refollow(member)

    def set_away(self, member: Member, reason: str) -> None:
        reason = clean_reason(reason)
        with self._lock:
            self._require_member(member)
            member.away = reason
            away = AwayChanged(member.nick, reason, self._clock())
            self._send_all(self._sharing(member), away)
            self._tell_cluster(away, member.rooms.values())

    def every_nick(self) -> list[str]:
        """Every member's nick, here and (on a cluster) on the other nodes."""
        with self._lock:
            return self._every_nick()

    def _every_nick(self) -> list[str]:
        return [m.nick for m in self._members.values()] + [r["nick"] for r in self._remote()]

    def member_info(self, nick: str) -> dict[str, Any] | None:
        """What is public about ``nick`` (nick, away, oper, rooms: their names), here or on
        another node of a cluster; None if nobody has that nick."""
        with self._lock:
            found = self._members.get(nick_key(nick))
            if found is not None:
                rooms = [r.name for r in found.rooms.values()]
                info = {"nick": found.nick, "away": found.away, "oper": found.oper, "rooms": rooms}
                key = nick_key(found.nick)
                info["op_rooms"] = [r.name for r in found.rooms.values() if key in r.ops]
                info["voice_rooms"] = [r.name for r in found.rooms.values() if key in r.voiced]
                info["secret_rooms"] = [r.name for r in found.rooms.values() if "s" in r.modes]
                if found.ident is not None:
                    info["user"], info["realname"] = found.ident
                return info
            remote = self._group.remote.get(nick_key(nick)) if self._in_cluster else None
        if remote is None:
            return None
        names = remote.get("room_names")
        return {
            "nick": remote.get("nick", nick),
            "away": remote.get("away", ""),
            "oper": bool(remote.get("oper")),
            "rooms": list(names) if isinstance(names, list) else [],
        }

    def room_view(self, member: Member, name: str) -> RoomJoined:
        """A room as a member joining it would see it (name, topic and who set it, members'
        info, members of other nodes included), sent to nobody. RemoteProtocolError
        no_such_room."""
        with self._lock:
            self._require_member(member)
            return self._room_joined(self._existing_room(name))

    def send_user_list(self, member: Member) -> None:
        with self._lock:
            member.send(UserList(tuple(self._every_nick())))

    # --- messages ---------------------------------------------------------------------

    def say(
        self,
        member: Member,
        text: str,
        client_id: ClientId = None,
        retry: bool = False,
        room: str | None = None,
        action: bool = False,
        notice: bool = False,
    ) -> Accepted:
        """Take a line for everyone else in ``room`` (default: the member's current room);
        ``action``: a /me; ``notice``: a notice (IRC's NOTICE, ChatMessage.notice).

        It is delivered to the room and acknowledged to the sender once stored (wait for
        ``Accepted.ticket``). A client that lost its connection before the ack resends
        unacknowledged lines after reconnecting, marked ``retry``; a retry with the same nick,
        client id and text as a line already taken (remembered in the store, so also across
        restarts) is acknowledged again with the first line's id and not delivered twice.
        Lines not marked retry are always delivered (clients may reuse ids across sessions).
        """
        text = validate_text(text, self.limits.max_text_chars)
        with self._lock:
            self._require_open()
            target = self._speaking_room(member, room or member.current_room)
            self._require_voice(member)
            key = _retry_key(member, client_id)
            earlier = self._earlier(member, key, client_id, text) if retry and key else None
            if earlier is not None:
                return earlier
            message = ChatMessage(
                self._new_id(),
                member.nick,
                text,
                self._clock(),
                target.name,
                action,
                notice=notice,
            )
            stored = StoredMessage(
                message.id,
                nick_key(target.name),
                member.nick,
                text,
                message.ts,
                action,
                notice=notice,
            )
            return self._submit(_Delivery(message, member, client_id), stored, key, text)

    def private(
        self,
        member: Member,
        to: str,
        text: str,
        client_id: ClientId = None,
        retry: bool = False,
        action: bool = False,
        notice: bool = False,
    ) -> Accepted:
        """A private line to one user, delivered and acked like :meth:`say`; the sender is
        told if that user is away. Its text is stored only with ``store_private``; its retry
        key always is."""
        text = validate_text(text, self.limits.max_text_chars)
        with self._lock:
            self._require_open()
            self._require_member(member)
            self._require_voice(member)
            recipient = self._members.get(nick_key(to))
            to_nick = recipient.nick if recipient is not None else self._remote_nick(to)
            if to_nick is None:
                raise RemoteProtocolError(ErrorCode.NO_SUCH_NICK, f"nobody is called {to}")
            key = _retry_key(member, client_id)
            earlier = self._earlier(member, key, client_id, text) if retry and key else None
            if earlier is not None:
                return earlier
            message = PrivateMessage(
                self._new_id(), member.nick, to_nick, text, self._clock(), action, notice=notice
            )
            stored = None
            if self.store_private:
                stored = StoredMessage(
                    message.id, "", member.nick, text, message.ts, action, to_nick, notice
                )
            delivery = _Delivery(message, member, client_id, recipient)
            return self._submit(delivery, stored, key, text)

    def wait(self, ticket: int, timeout: float | None = None) -> bool:
        """Wait until the line of ``ticket`` (and every line before it) is delivered."""
        return self._group.wait(ticket, timeout) if ticket else True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every line taken so far is delivered; False on timeout."""
        return self._group.flush(timeout)

    def _new_id(self) -> int:
        try:
            return self._group.next_id()
        except IdsExhausted:
            raise RemoteProtocolError(
                ErrorCode.UNAVAILABLE, "the server cannot store messages right now"
            ) from None

    def _submit(
        self, delivery: _Delivery, stored: StoredMessage | None, key: str | None, text: str
    ) -> Accepted:
        message = delivery.message
        sent = SentKey(key, message.id, message.ts, _digest(text)) if key else None
        ticket = self._group.submit(PendingLine(message.id, stored, sent, delivery))
        return Accepted(message.id, message.ts, ticket)

    def _earlier(self, member: Member, key: str, client_id: ClientId, text: str) -> Accepted | None:
        """Lock held: a retry of a line taken before is answered with that line's id (the ack
        comes with the line's delivery, or with the result when it was delivered already)."""
        with self._store_reachable("the server cannot check this retry now; try again later"):
            found = self._group.find(key)
        if isinstance(found, PendingLine):
            assert found.key is not None
            if found.key.digest != _digest(text):
                return None
            ts = found.delivery.message.ts
            if not found.delivered:  # acked with the line itself, when it is delivered
                found.extra_acks.append((member, client_id))
                return Accepted(found.id, ts, found.seq)
            return Accepted(found.id, ts, 0, Ack(client_id, found.id, ts, unsaved=not found.kept))
        if found is not None and found.digest == _digest(text):
            return Accepted(found.id, found.ts, 0, Ack(client_id, found.id, found.ts))
        return None

    def _member_snapshot(self) -> dict[str, dict[str, Any]]:
        """Cluster: this node's members as the other nodes list them."""
        with self._lock:
            return {
                key: {
                    "nick": m.nick,
                    "away": m.away,
                    "oper": m.oper,
                    "rooms": [nick_key(r.name) for r in m.rooms.values()],
                    "room_names": [r.name for r in m.rooms.values()],
                    "data": dict(m.data),
                }
                for key, m in self._members.items()
            }

    def _remote(self, room: Room | None = None) -> list[dict[str, Any]]:
        """Lock held: members of the other nodes of a cluster (of ``room``), as ``info``
        shows members (as of the last heartbeat: at most a second or two old)."""
        key = nick_key(room.name) if room is not None else None
        infos = []
        for r in self._group_remote():
            if key is not None and key not in r.get("rooms", ()):
                continue
            info = {"nick": r["nick"], "away": r.get("away", ""), "oper": r.get("oper", False),
                    "muted": False}  # fmt: skip
            data = r.get("data", {}).get(key) if key is not None else None
            if data:  # as info() does: only members who set some carry it
                info["data"] = data
            infos.append(info)
        return infos

    def _tell_cluster(
        self,
        message: ServerMessage,
        rooms: Iterable[Room],
        topic: tuple[str, str] | None = None,
    ) -> None:
        """Lock held, on a cluster node: the members of ``rooms`` on the other nodes are
        told ``message`` too (a join, part, leave, nick, away, topic or member data change
        here); ``topic``: (room key, topic) kept for nodes that make the room later."""
        if self._in_cluster:
            came_or_went = isinstance(message, UserJoined | UserParted | UserLeft | NickChanged)
            keys = [nick_key(r.name) for r in rooms]
            self._group.tell(encode_message(message), keys, topic, members_changed=came_or_went)

    def _cluster_event(self, payload: bytes, room_keys: Sequence[str]) -> None:
        """Cluster: what happened to a member of another node, for our members of
        ``room_keys`` (each told once); or an operator's order for our members."""
        try:
            if not room_keys:
                order = decode_json_object(payload)
                if "order" in order:
                    self._carry_out(order)
                    return
            message = parse_server_message(payload)
        except ChatError as exc:  # not ours: another program wrote to our keys
            log.error("a cluster event is damaged and was skipped: %s", exc)
            return
        with self._lock:
            if isinstance(message, TopicChanged):  # the room's state, not only a notice
                changed = self._rooms.get(nick_key(message.room))
                if changed is not None:
                    changed.set_topic(message)
            audience: dict[Member, None] = {}
            for key in room_keys:
                room = self._rooms.get(key)
                if room is not None:
                    audience.update(dict.fromkeys(room.members.values()))
            self._send_all(audience, message)

    def _remote_nick(self, nick: str) -> str | None:
        """Lock held: ``nick`` as a member of another node of a cluster has it, or None."""
        if not self._in_cluster:
            return None
        found = self._group.remote.get(nick_key(nick))
        return None if found is None else str(found["nick"])

    def _top(self, room_key: str) -> int:
        """Lock held: the first id of ``room_key`` not delivered yet (history ends below it,
        live lines start at it). A cluster node starts following a room here."""
        if self._room_tops is None:
            return self._delivered_id + 1
        top = self._room_tops.get(room_key)
        if top is None:
            top = self._room_tops[room_key] = self._group.follow(room_key)  # HistoryError
        return top

    def _delivery_for(self, stored: StoredMessage, own: PendingLine | None) -> _Delivery | None:
        """Cluster: the delivery of a line read back from Redis, with the id Redis gave it:
        this node's own (``own``: its sender gets the ack), or another node's (no sender
        here). None: a private line for nobody here."""
        if own is not None:
            d: _Delivery = own.delivery
            return _Delivery(
                dataclasses.replace(d.message, id=stored.id), d.sender, d.client_id, d.recipient
            )
        if stored.private_to is None:
            return _Delivery(self._line_of(stored, stored.room, history=False), None, None)
        with self._lock:
            recipient = self._members.get(nick_key(stored.private_to))
        if recipient is None:
            return None
        private = PrivateMessage(
            stored.id,
            stored.nick,
            stored.private_to,
            stored.text,
            stored.ts,
            stored.action,
            notice=stored.notice,
        )
        return _Delivery(private, None, None, recipient)

    def _deliver(self, batch: Sequence[PendingLine], kept: bool) -> Callable[[], None]:
        """GroupCommit's callback: the lines are stored (or, ``kept`` False, cannot be); fan
        them out, then acknowledge them, in order. Everything a member gets from the batch
        is queued at once; the returned callable sends it (server/fanout.py), to be called
        once the commit is let go."""
        out = Fanout()
        with self._lock:
            i, n = 0, len(batch)
            while i < n:
                room = _run_room(batch[i])
                if room is None:
                    self._deliver_one(batch[i], kept, out)
                    i += 1
                    continue
                j = i + 1
                while j < n and _run_room(batch[j]) == room:  # a run of lines in one room
                    j += 1
                self._deliver_run(batch[i:j], kept, out)
                i = j
            tops = self._room_tops  # a cluster node's: each room's lines come in their order
            for line in batch:
                line.kept, line.delivered = kept, True
                if tops is not None and isinstance(line.delivery.message, ChatMessage):
                    key = nick_key(line.delivery.message.room)
                    tops[key] = max(tops.get(key, 0), line.id + 1)
            self._delivered_id = max(self._delivered_id, batch[-1].id)
            held = out.put()
        return functools.partial(self._send_out, out.streams, held)

    def _send_out(self, streams: set[RoomStream], held: list[Any]) -> None:
        """After a delivery pass, out of every lock: the rooms' lines go (now, or soon when
        a room is busy), then what was queued for single members."""
        if streams:
            self._coalescer.flush(streams)
        write_through(held)

    def _deliver_run(self, run: Sequence[PendingLine], kept: bool, out: Fanout) -> None:
        """Lock held: lines said in one room, one after the other. Each member that said none
        of them gets one blob, shared by every member of its dialect and view of the room;
        each sender gets the others' lines with its acks in the places of its own."""
        senders: dict[Member, None] = {}
        for line in run:
            if line.delivery.sender is not None:  # None: said on another node
                senders.setdefault(line.delivery.sender.current)
        room = self._rooms.get(nick_key(run[0].delivery.message.room))  # type: ignore[union-attr]
        frames: dict[tuple[str, bool], list[bytes]] = {}  # variant -> each line's frame
        if room is not None:
            # One append for the whole room, whatever its size: each member's mailbox takes
            # the bytes of its variant from the room's stream (server/stream.py).
            stream = room.stream
            blobs = {v: b"".join(_run_frames(frames, v, run, room)) for v in stream.variants}
            skip = frozenset(sender.mailbox for sender in senders)
            out.settle()  # what members got earlier in this pass comes before these lines
            stream.append(blobs, skip, tuple(line.delivery.message for line in run))
            out.streams.add(stream)
        for sender in senders:
            in_room = room is not None and room.members.get(nick_key(sender.nick)) is sender
            theirs = None
            if in_room:
                theirs = _run_frames(frames, _variant(sender, room.name), run, room)  # type: ignore[union-attr]
            mine = []
            for k, line in enumerate(run):
                if line.delivery.sender is not None and line.delivery.sender.current is sender:
                    ts = line.delivery.message.ts
                    ack = Ack(line.delivery.client_id, line.id, ts, unsaved=not kept)
                    mine.append(sender.encode(ack))
                elif theirs is not None:
                    mine.append(theirs[k])
            out.add(sender, b"".join(mine))

    def _deliver_one(self, line: PendingLine, kept: bool, out: Fanout) -> None:
        """Lock held: a private line, or a line with acks for retries too."""
        delivery: _Delivery = line.delivery
        message = delivery.message
        sender = delivery.sender.current if delivery.sender is not None else None
        recipient = delivery.recipient.current if delivery.recipient else None
        if isinstance(message, ChatMessage):
            room = self._rooms.get(nick_key(message.room))
            if room is not None:
                members: Iterable[Member] = room.members.values()
                early = line.early_to
                if early is not None:  # shown early: they get its id, the others the line
                    settled = LineSettled(room.name, line.origin, line.id)
                    for m in _still_early(early, room):
                        out.add(m, m.encode(settled))
                    members = [m for m in members if m not in early]
                    message = dataclasses.replace(message, origin=line.origin)
                for m, data in _encoded(members, message, exclude=sender):
                    out.add(m, data)
        elif recipient is not None and self._members.get(nick_key(recipient.nick)) is recipient:
            out.add(recipient, recipient.encode(message))  # (None: on another node)
        if sender is not None:
            ack = Ack(delivery.client_id, line.id, message.ts, unsaved=not kept)
            out.add(sender, sender.encode(ack))
        for other, client_id in line.extra_acks:
            other = other.current
            out.add(other, other.encode(Ack(client_id, line.id, message.ts, unsaved=not kept)))
        # (IRC senders are told by their session, with numeric 301)
        if recipient is not None and recipient.away and sender is not None and not sender.render:
            out.add(sender, sender.encode(Notice(f"{recipient.nick} is away: {recipient.away}")))

    def _deliver_early(self, lines: Sequence[PendingLine]) -> None:
        """Cluster, the store slow or away: show room lines to their rooms' members here now,
        marked pending (their sender keeps waiting for its ack). Who got each line is kept
        in ``line.early_to``: they get its id when it is stored, not the line again."""
        out = Fanout()
        with self._lock:
            for line in lines:
                message = line.delivery.message
                room = self._rooms.get(nick_key(message.room))
                sender = line.delivery.sender.current if line.delivery.sender else None
                line.early_to = set()
                if room is None:
                    continue
                early = dataclasses.replace(message, pending=True, origin=line.origin)
                for m, data in _encoded(room.members.values(), early, exclude=sender):
                    out.add(m, data)
                    line.early_to.add(m)
            held = out.put()
        write_through(held)

    def _unstored(self, line: PendingLine) -> None:
        """Cluster: a line shown early will never be stored: its id is 0 (not sent)."""
        room_name = line.delivery.message.room
        with self._lock:
            room = self._rooms.get(nick_key(room_name))
            if room is None or not line.early_to:
                return
            settled = LineSettled(room.name, line.origin, 0)
            for m in _still_early(line.early_to, room):
                m.send(settled)

    def help(self, member: Member) -> None:
        with self._lock:
            for line in help_lines(member.oper):
                member.send(Notice(line))

    # --- operators --------------------------------------------------------------------

    def oper(self, member: Member, password: str) -> None:
        """Make ``member`` an operator if ``password`` is right; after failures from its
        address the next try must wait (a backoff, never a lock-out)."""
        key = host_of(member.address)
        wait = self.oper_failures.blocked(key)
        if wait:
            raise RemoteProtocolError(
                ErrorCode.RATE_LIMITED,
                f"too many failed attempts: try again in {math.ceil(wait)} s",
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

    def cool_down(self, member: Member | None, address: str) -> None:
        """After an excess flood: the member's nick, and its address unless it is a loopback
        one (this machine), are banned for ``flood_ban_minutes``. Never raises."""
        minutes = self.flood_ban_minutes
        if not minutes:
            return
        host = host_of(address)
        targets = [member.nick] if member is not None else []
        if host and not is_loopback(host):
            targets.append(host)
        for target in targets:
            try:
                self.bans.add(target, "excess flood", "server", minutes)
            except HistoryError as exc:  # in force all the same
                self._report(exc)
        if targets:
            log.info("excess flood: %s cooled down for %g minute(s)", ", ".join(targets), minutes)

    def kick_from_room(self, op: Member, name: str, nick: str, reason: str = "") -> None:
        """An operator of a room (or of the server) removes ``nick`` from it (IRC's KICK):
        everyone in the room, the member too, is told who did it. Members of this node only
        (on a cluster, room operators are each node's). RemoteProtocolError not_in_room,
        no_such_room, not_operator, no_such_nick (not in the room)."""
        reason = clean_reason(reason)
        with self._lock:
            room, target = self._room_target(op, name, nick)
            parted = UserParted(room.name, target.nick, reason, self._clock(), by=op.nick)
            self._send_all(room.members.values(), parted)
            self._tell_cluster(parted, [room])
            self._drop_from_room(target, room)
            log.info("%s removed %s from %s", op.nick, target.nick, room.name)

    def set_room_operator(self, op: Member, name: str, nick: str, give: bool) -> None:
        """An operator of a room (or of the server) makes ``nick`` an operator of it, or
        takes that away; the room is told. RemoteProtocolError as kick_from_room."""
        with self._lock:
            room, target = self._room_target(op, name, nick)
            key = nick_key(target.nick)
            if (key in room.ops) == give:
                return  # nothing changes: nothing to tell
            (room.ops.add if give else room.ops.discard)(key)
            changed = RoomOpChanged(room.name, target.nick, give, op.nick, self._clock())
            self._send_all(room.members.values(), changed)
            self._tell_cluster(changed, [room])

    def set_room_mode(self, op: Member, name: str, mode: str, arg: str | None = None) -> None:
        """An operator of a room (or of the server) changes one of its modes (PROTOCOL.md
        4.6): ``+m``/``-m`` moderated, ``+n``/``-n`` no lines from outside, ``+s``/``-s``
        secret, ``+t``/``-t`` topic by room operators, ``+b``/``-b MASK`` ban, ``+v``/``-v
        NICK`` voice, ``+o``/``-o NICK`` operator. The room is told (``room_mode``; ``room_op``
        for ``o``) unless nothing changes. RemoteProtocolError bad_message (an unknown mode,
        a missing argument), not_in_room, no_such_room, not_operator, no_such_nick."""
        sign, letter = mode[:1], mode[1:]
        if sign not in ("+", "-") or letter not in ROOM_MODES:
            raise RemoteProtocolError(
                ErrorCode.BAD_MESSAGE, f"unknown room mode {clean_reason(mode, 10)!r}"
            )
        give = sign == "+"
        if letter in "bov" and not arg:
            raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"{mode} needs a {_MODE_ARG[letter]}")
        if letter == "o":
            self.set_room_operator(op, name, arg or "", give)
            return
        with self._lock:
            room = self._room_run_by(op, name)
            if letter == "v":
                target = _in_room(room, arg or "")
                changed = _toggle(room.voiced, nick_key(target.nick), give)
                arg = target.nick
            elif letter == "b":
                arg = ban_mask(arg or "")
                if give and arg not in room.bans:
                    if len(room.bans) >= MAX_ROOM_BANS:
                        raise RemoteProtocolError(
                            ErrorCode.BAD_MESSAGE, f"{room.name} has {MAX_ROOM_BANS} bans already"
                        )
                    room.bans[arg] = (op.nick, self._clock())
                    changed = True
                else:
                    changed = not give and room.bans.pop(arg, None) is not None
            else:
                changed = _toggle(room.modes, letter, give)
                arg = None
            if not changed:
                return  # nothing changes: nothing to tell
            told = RoomModeChanged(room.name, mode, op.nick, self._clock(), arg)
            self._send_all(room.members.values(), told)
            self._tell_cluster(told, [room])
            if nick_key(room.name) not in op.rooms:  # a server operator from outside
                op.send(told)
            log.info("%s set %s%s on %s", op.nick, mode, f" {arg}" if arg else "", room.name)

    def room_modes(self, member: Member, name: str) -> tuple[str, str, float]:
        """(name, modes as ``+mnst``, creation time) of a room. RemoteProtocolError
        no_such_room."""
        with self._lock:
            room = self._existing_room(name)
            return room.name, "+" + "".join(sorted(room.modes)), room.created

    def room_bans(self, member: Member, name: str) -> list[tuple[str, str, float]]:
        """A room's bans: (mask, who set it, when). RemoteProtocolError no_such_room."""
        with self._lock:
            room = self._existing_room(name)
            return [(mask, by, ts) for mask, (by, ts) in room.bans.items()]

    def _existing_room(self, name: str) -> Room:
        """Lock held: the room called ``name``; RemoteProtocolError no_such_room."""
        room = self._rooms.get(nick_key(name))
        if room is None:
            raise RemoteProtocolError(ErrorCode.NO_SUCH_ROOM, f"there is no room {name}")
        return room

    def _runs(self, member: Member, room: Room) -> bool:
        """Lock held: ``member`` is an operator of ``room`` or of the server."""
        return member.oper or nick_key(member.nick) in room.ops

    def _speaking_room(self, member: Member, name: str | None) -> Room:
        """Lock held: the room a line of ``member`` goes to, if the room's modes let it say
        one: the member's room, or (``-n``) a room it is not in. RemoteProtocolError
        not_in_room, no_such_room, cannot_send."""
        room = member.rooms.get(nick_key(name)) if name else None
        if room is None:
            outside = self._rooms.get(nick_key(name)) if name else None
            if outside is None or "n" in outside.modes:
                return self._member_room(member, name)  # (its refusal)
            self._require_member(member)
            room = outside
        if ("m" in room.modes or room.bans) and not (
            self._runs(member, room) or nick_key(member.nick) in room.voiced
        ):
            if "m" in room.modes:
                raise RemoteProtocolError(
                    ErrorCode.CANNOT_SEND, f"{room.name} is moderated (+m): you have no voice"
                )
            if _banned_from(member, room):
                raise RemoteProtocolError(
                    ErrorCode.CANNOT_SEND, f"you are banned from {room.name} (+b)"
                )
        return room

    def _check_room_ban(self, member: Member, room: Room) -> None:
        """Lock held: RemoteProtocolError banned_from_room if a ban of ``room`` matches
        ``member`` (server operators pass)."""
        if room.bans and not member.oper and _banned_from(member, room):
            raise RemoteProtocolError(
                ErrorCode.BANNED_FROM_ROOM, f"you are banned from {room.name} (+b)"
            )

    def _room_target(self, op: Member, name: str, nick: str) -> tuple[Room, Member]:
        """Lock held: the room ``op`` runs (its operator, or a server operator) and the member
        ``nick`` in it. RemoteProtocolError not_in_room, no_such_room, not_operator,
        no_such_nick (not in the room)."""
        room = self._room_run_by(op, name)
        return room, _in_room(room, nick)

    def _room_run_by(self, op: Member, name: str) -> Room:
        """Lock held: ``op``'s room ``name``, which it runs (its operator, or a server
        operator). RemoteProtocolError not_in_room, no_such_room, not_operator."""
        room = self._member_room(op, name)
        if not self._runs(op, room):
            raise RemoteProtocolError(
                ErrorCode.NOT_OPERATOR, f"you are not an operator of {room.name}"
            )
        return room

    def kick(self, op: Member, nick: str, reason: str = "") -> Member | None:
        """Disconnect ``nick`` (on a cluster, wherever it is connected); the member kicked
        here, if it was here."""
        reason = clean_reason(reason)
        said = f"kicked by {op.nick}" + (f": {reason}" if reason else "")
        with self._lock:
            target = self._operate_on(op, nick)
            if target is None:  # on another node of the cluster: that node kicks it
                self._order_elsewhere(op, "kick", nick, said=said, code=ErrorCode.KICKED)
                return None
            self._kick_here(target, said, ErrorCode.KICKED)
        target.disconnect(said)
        return target

    def _kick_here(self, target: Member, said: str, code: str) -> None:
        """Lock held: ``target`` is told why, the rooms are told, and it is removed (the
        caller disconnects it once out of the lock)."""
        self._announce(target, f"{target.nick} was {said}")
        target.send(ErrorReply(code, f"you were {said}", fatal=True))
        self._remove(target, UserLeft(target.nick, said, self._clock()))

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
        unsaved = ""
        for t in dict.fromkeys([target, *addresses]):
            try:
                self.bans.add(t, reason, op.nick, minutes)
            except HistoryError as exc:  # in force all the same, until the server stops
                self._report(exc)
                unsaved = UNSAVED_BAN
        span = "for good" if minutes is None else f"for {minutes:g} minute(s)"
        said = f"banned by {op.nick} {span}" + (f": {reason}" if reason else "")
        with self._lock:
            op.send(Notice(f"{target} is {said}{unsaved}"))
            victims = [m for m in victims if self._members.get(nick_key(m.nick)) is m]
            for victim in victims:
                self._kick_here(victim, said, ErrorCode.BANNED)
            self._order("kick", target, said=said, code=ErrorCode.BANNED)  # on the other nodes
        for victim in victims:
            victim.disconnect(said)

    def unban(self, op: Member, target: str) -> None:
        with self._lock:
            self._require_operator(op)
        unsaved = ""
        try:
            found = self.bans.remove(target)  # the database, outside the lock
        except HistoryError as exc:  # lifted all the same, until the server stops
            self._report(exc)
            found, unsaved = True, UNSAVED_BAN
        with self._lock:
            done = "is no longer banned" if found else "was not banned"
            op.send(Notice(f"{target} {done}{unsaved}"))

    def mute(self, op: Member, nick: str, minutes: float | None) -> None:
        _check_minutes(minutes)
        with self._lock:
            target = self._operate_on(op, nick)
            if target is None:  # on another node of the cluster
                self._order_elsewhere(op, "mute", nick, minutes=minutes)
                return
            self._mute_here(target, op.nick, minutes)

    def _mute_here(self, target: Member, by: str, minutes: float | None) -> None:
        target.muted_until = math.inf if minutes is None else self._clock() + minutes * 60
        span = "" if minutes is None else f" for {minutes:g} minute(s)"
        self._announce(target, f"{target.nick} was muted by {by}{span}")

    def unmute(self, op: Member, nick: str) -> None:
        with self._lock:
            target = self._operate_on(op, nick)
            if target is None:  # on another node of the cluster
                self._order_elsewhere(op, "unmute", nick)
                return
            self._unmute_here(target, op.nick)

    def _unmute_here(self, target: Member, by: str) -> None:
        target.muted_until = None
        self._announce(target, f"{target.nick} may talk again ({by})")

    def _operate_on(self, op: Member, nick: str) -> Member | None:
        """Lock held: the member an operator acts on; None if it is on another node of a
        cluster (RemoteProtocolError no_such_nick if nowhere)."""
        self._require_operator(op)
        target = self._members.get(nick_key(nick))
        if target is None:
            if self._remote_nick(nick) is not None:
                return None
            raise RemoteProtocolError(ErrorCode.NO_SUCH_NICK, f"nobody is called {nick}")
        return target

    def _order(self, order: str, target: str, **fields: Any) -> None:
        """Lock held, on a cluster node: the other nodes carry out an operator's order on
        their members (kick: ``target`` a nick or an address, ``said`` and ``code``; mute:
        ``by`` and ``minutes``; unmute: ``by``)."""
        if self._in_cluster:
            self._group.tell(encode_json({"order": order, "target": target, **fields}), [])

    def _order_elsewhere(self, op: Member, order: str, nick: str, **fields: Any) -> None:
        """Lock held: ``nick`` is a member of another node: that node carries it out."""
        self._order(order, nick, by=op.nick, **fields)
        op.send(Notice(f"{nick} is on another server of this chat: {order} sent there"))

    def _reload_bans(self) -> None:
        """Cluster, at each heartbeat: bans made on other nodes hold here too."""
        try:
            self.bans.reload()
        except HistoryError as exc:
            self._report(exc)

    def _carry_out(self, order: dict[str, Any]) -> None:
        """Cluster: an operator's order from another node, for our members (lock taken)."""
        target, said = str(order.get("target", "")), str(order.get("said", ""))
        by = str(order.get("by", ""))
        kicked = []
        with self._lock:
            if order.get("order") == "kick":
                for m in list(self._members.values()):
                    if nick_key(m.nick) == nick_key(target) or host_of(m.address) == target:
                        self._kick_here(m, said, str(order.get("code") or ErrorCode.KICKED))
                        kicked.append(m)
            else:
                member = self._members.get(nick_key(target))
                minutes = order.get("minutes")
                if member is not None and order.get("order") == "mute":
                    ok = minutes is None or isinstance(minutes, int | float)
                    self._mute_here(member, by, minutes if ok else None)  # type: ignore[arg-type]
                elif member is not None and order.get("order") == "unmute":
                    self._unmute_here(member, by)
        for m in kicked:
            m.disconnect(said)

    def _announce(self, target: Member, text: str) -> None:
        """Lock held: an operator action, told in every room of its target, on every node
        of a cluster (and logged)."""
        log.info("operator action: %s", text)
        told: set[int] = set()  # once per member, even if it shares several rooms
        for room in target.rooms.values():
            fresh = [m for m in room.members.values() if id(m) not in told]
            told.update(id(m) for m in fresh)
            self._send_all(fresh, Notice(text, room.name))
            self._tell_cluster(Notice(text, room.name), [room])
        if not target.rooms:
            target.send(Notice(text))

    # --- shutdown ---------------------------------------------------------------------

    def close_all(self, reason: str, timeout: float = 2.0) -> list[Member]:
        """Take no more members or lines, deliver the lines already taken, then tell every
        member goodbye (server shutting down) and forget them all."""
        with self._lock:
            self._closed = True
        self._group.flush(timeout)
        with self._lock:
            members = list(self._members.values())
            now = self._clock()
            for m in members:  # the other nodes of a cluster see them go
                self._tell_cluster(UserLeft(m.nick, reason, now), m.rooms.values())
            self._members.clear()
            self._skeletons.clear()
            self._send_all(members, Goodbye(reason))
            for room in self._rooms.values():
                room.members.clear()
            self._sessions.clear()
            return members

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the line pipeline (after delivering what it holds). The store stays open."""
        self._group.close(timeout)
        self._coalescer.close()

    @property
    def pipeline(self) -> GroupCommit:
        """The group commit (tests and benchmarks look at its state)."""
        return self._group

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
            raise MemberGone(f"{member.nick} is not a member any more")

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
        for m, data in _encoded(members, message, exclude):
            m.mailbox.put(data)


def _encoded(
    members: Iterable[Member], message: ServerMessage, exclude: Member | None = None
) -> Iterator[tuple[Member, bytes]]:
    """Each member but ``exclude`` with the bytes of ``message`` for it (none for an event
    its dialect does not show), encoded at most once per variant: the same bytes object for
    every recipient of a variant."""
    room = getattr(message, "room", None)
    rich = None
    plain: dict[tuple[str, bool], bytes] = {}  # (dialect, in its current room) -> bytes
    rich_dialect = Dialect.RICH  # this loop runs once per recipient: no lookups in it
    for m in members:
        if m is exclude:
            continue
        if m.dialect == rich_dialect:
            if rich is None:
                rich = encode_for(message, Dialect.RICH)
            yield m, rich
            continue
        if m.render is not None and getattr(message, "nick", None) == m.nick:
            data = m.render(message)  # about itself: its own rendering (IRC: a numeric)
            if data:
                yield m, data
            continue
        variant = (m.dialect, room is None or m.current_room == room)
        data = plain.get(variant)
        if data is None:
            here = room if variant[1] else (None if room is None else "")
            data = plain[variant] = encode_for(message, m.dialect, here)
        if data:  # b"": this dialect is not shown this event
            yield m, data


def _variant(member: Member, room: str) -> tuple[str, bool]:
    """How ``member`` sees a line of ``room``: its dialect, and (plain dialects) whether
    the room is its current one (if not, the line says which room it is from)."""
    return (member.dialect, member.dialect == Dialect.RICH or member.current_room == room)


def _still_early(early: Iterable[Member], room: Room) -> list[Member]:
    """Of the members shown a line early, the rich ones still in ``room``: they are told its
    id (plain members have nothing to update)."""
    return [
        m for m in early if m.dialect == Dialect.RICH and room.members.get(nick_key(m.nick)) is m
    ]


def _run_room(line: PendingLine) -> str | None:
    """The room of a line that can go in a run (said in a room, with no retries to ack
    besides its sender's, not shown early); None for the others."""
    message = line.delivery.message
    if not isinstance(message, ChatMessage) or line.extra_acks or line.early_to is not None:
        return None
    return message.room


def _run_frames(
    cache: dict[tuple[str, bool], list[bytes]],
    variant: tuple[str, bool],
    run: Sequence[PendingLine],
    room: Room | None,
) -> list[bytes]:
    """Each line of ``run`` encoded for ``variant`` (dialect, in its current room), once."""
    frames = cache.get(variant)
    if frames is None:
        name = room.name if room is not None else ""
        frames = cache[variant] = [
            encode_variant(line.delivery.message, variant, name) for line in run
        ]
    return frames


#: Room modes a room operator may change (PROTOCOL.md 4.6).
ROOM_MODES = frozenset("bmnostv")
_MODE_ARG = {"b": "mask (nick!user@host)", "o": "nick", "v": "nick"}
#: Bans one room may hold (each is checked on every join and every line of a non-member).
MAX_ROOM_BANS = 100


def ban_mask(text: str) -> str:
    """A ban mask as kept: ``nick`` alone means ``nick!*@*``; compared case-insensitively."""
    mask = clean_reason(text, 200).split(" ")[0] or "*"
    if "!" not in mask and "@" not in mask:
        mask += "!*@*"
    return mask


def _banned_from(member: Member, room: Room) -> bool:
    """A ban of ``room`` matches ``member``'s ``nick!user@host`` (the chat shows everyone as
    ``nick!u@game_chat``, IRC's view of it; docs/IRC.md)."""
    who = f"{member.nick}!{USER}@{HOST}".casefold()
    return any(fnmatch.fnmatchcase(who, mask.casefold()) for mask in room.bans)


def _in_room(room: Room, nick: str) -> Member:
    """The member ``nick`` of ``room``; RemoteProtocolError no_such_nick (not in it)."""
    target = room.members.get(nick_key(nick))
    if target is None:
        raise RemoteProtocolError(ErrorCode.NO_SUCH_NICK, f"{nick} is not in {room.name}")
    return target


def _toggle(holders: set[str], key: str, give: bool) -> bool:
    """Add or drop ``key``; True if that changed anything."""
    if (key in holders) == give:
        return False
    (holders.add if give else holders.discard)(key)
    return True


def _rekey(members: dict[str, Member], old: str, new: str) -> dict[str, Member]:
    return {(new if key == old else key): m for key, m in members.items()}


def _check_minutes(minutes: float | None) -> None:
    if minutes is not None and not 0 < minutes < 10**7:
        raise RemoteProtocolError(
            ErrorCode.BAD_COMMAND, "minutes must be a positive number (or none: for good)"
        )


def _fit_page(page: list[dict[str, Any]], after: int | None) -> tuple[list[dict[str, Any]], bool]:
    """At most PAGE_BYTES of a history page: the newest lines of a page that goes backwards,
    the oldest of one that goes forwards (``after``). True when lines were left out."""
    total, kept = 0, 0
    ordered = page if after is not None else page[::-1]
    for item in ordered:
        total += len(encode_json(item))
        if total > PAGE_BYTES and kept:
            break
        kept += 1
    if kept == len(page):
        return page, False
    return (page[:kept] if after is not None else page[len(page) - kept :]), True
