"""Room lines kept in Redis/Valkey streams: the cluster's source of truth for order and history.

One stream per room (``{ns}:room:{room key}``; private lines go to a stream of the recipient's
node, ``{ns}:room:~pm:{node}``). A line is appended by one Lua script that, in one atomic
step, checks the line's origin (the node and its submission number), takes the next id from
the cluster-wide counter (``{ns}:ids``, INCR: ids are never reused while Redis keeps its data),
adds the entry to the stream *under that id* (entry id ``<id>-0``) and remembers the origin and
the client's retry key. So:

* a line's chat id is its stream entry id: the stream's order is the id order, the same on
  every node, and "the lines after id N" is one ``XRANGE`` or ``XREAD`` from ``N-0``;
* a line sent again by its node after a lost reply (same origin) returns the first append's
  id and adds nothing; a client's retry, on any node, finds the first line by its retry key
  (:meth:`RoomLog.find_key`);
* the script is atomic, so two nodes appending to one room at once get distinct ids in the
  order their entries stand in the stream.

Nothing here holds a lock or a thread; every call is one round trip (a batch of lines is one
pipeline) and raises :class:`ClusterError` when Redis cannot be reached or answers with an
error, :class:`ClusterDataError` when an entry is not one this module wrote.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import redis

from ..protocol.errors import ChatError
from ..server.history import ACTION, NOTICE, StoredMessage, line_kind

#: Atomic append: KEYS ids counter, stream, origin key ("" for none), retry key ("" for none),
#: a second stream that gets the same entry ("" for none: a private line to another node);
#: ARGV max length, key lifetime (ms), room, nick, text, ts, action ("1"/"0"; "2": a notice),
#: digest (hex), origin, private recipient ("" for a room line).
#: Returns {1, id} for a new line, {0, "id ts digest"} when the origin was appended already.
_APPEND = """
if KEYS[3] ~= '' then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {0, seen} end
end
local id = redis.call('INCR', KEYS[1])
local fields = {'room', ARGV[3], 'nick', ARGV[4], 'text', ARGV[5], 'ts', ARGV[6],
  'action', ARGV[7], 'origin', ARGV[9], 'to', ARGV[10]}
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], id .. '-0', unpack(fields))
if KEYS[5] ~= '' and KEYS[5] ~= KEYS[2] then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[1], id .. '-0', unpack(fields))
end
local sent = id .. ' ' .. ARGV[6] .. ' ' .. ARGV[8]
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], sent, 'PX', ARGV[2]) end
if KEYS[4] ~= '' then redis.call('SET', KEYS[4], sent, 'PX', ARGV[2]) end
return {1, tostring(id)}
"""

#: Atomic append of a presence event (join, part, leave, nick, away) to the cluster's event
#: stream: KEYS events stream, origin key; ARGV max length, key lifetime (ms), payload (the
#: server message's JSON), rooms (room keys joined by newlines), origin; with a topic change,
#: KEYS topics hash, ARGV room key ("" for none), topic ("": none any more).
#: Returns {1, entry id} for a new event, {0, "seen"} when the origin was appended already.
_EVENT = """
if redis.call('GET', KEYS[2]) then return {0, 'seen'} end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  'msg', ARGV[3], 'rooms', ARGV[4], 'origin', ARGV[5])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
if ARGV[6] ~= '' then
  if ARGV[7] == '' then redis.call('HDEL', KEYS[3], ARGV[6])
  else redis.call('HSET', KEYS[3], ARGV[6], ARGV[7]) end
end
return {1, entry}
"""

#: Raise the id counter to at least ARGV[1] (a node saw ids Redis has since lost).
_RAISE_FLOOR = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if now < floor then redis.call('SET', KEYS[1], floor) return floor end
return now
"""


#: Events kept in the event stream (nodes read them as they come; only a node that is
#: away longer than it takes to add this many misses some).
EVENTS_CAP = 10_000


class ClusterError(ChatError):
    """Redis/Valkey could not be reached or refused a command (the connection's fault, not a
    peer's): the caller keeps its lines and tries again later. One line, fit for a log."""


class ClusterDataError(ClusterError):
    """An entry in our keys is not one game_chat wrote (another program, or a damaged store)."""


@contextlib.contextmanager
def redis_errors(what: str, error: type[Exception] = ClusterError) -> Iterator[None]:
    """Turn a Redis failure inside the block into ``error``: "cannot {what}: {reason}"."""
    try:
        yield
    except redis.RedisError as exc:
        raise error(f"cannot {what}: {exc}") from exc


@dataclass(frozen=True)
class NewLine:
    """A line to append. ``origin`` (node and submission number; "" for none) makes sending
    it again harmless; ``retry_key`` (the sender's nick and client id) lets a client's retry
    find it from any node."""

    room_key: str  # the room's nick_key, or private_stream(node): names its stream
    room: str  # the room's name as shown ("" for a private line)
    nick: str
    text: str
    ts: float
    action: bool = False
    retry_key: str | None = None
    digest: bytes = b""
    origin: str = ""
    private_to: str | None = None
    #: Another stream (room key) that gets the same entry: the recipient's node's, for a
    #: private line to a member of another node (the sender's node reads its own).
    copy_to: str | None = None
    notice: bool = False


@dataclass(frozen=True)
class NewEvent:
    """A presence event for the members of ``rooms`` on the other nodes: a server message
    (its JSON), and the origin that makes sending it again harmless."""

    payload: bytes
    rooms: tuple[str, ...]  # room keys: whose local members are told
    origin: str = ""
    #: (room key, topic): the room's topic as every node will show it from now on.
    topic: tuple[str, str] | None = None


@dataclass(frozen=True)
class FeedEvent:
    """An event read from the event stream."""

    payload: bytes
    rooms: tuple[str, ...]
    origin: str


@dataclass(frozen=True)
class FeedLine:
    """A line read from a stream: the stream's room key, the line, and where it came from."""

    room_key: str
    message: StoredMessage
    origin: str


def private_stream(node_id: str) -> str:
    """The room key of the stream that carries private lines to members of ``node_id``."""
    return f"~pm:{node_id}"


@dataclass(frozen=True)
class Appended:
    """Where a line went: its id and time; ``again`` True when its retry key had been seen
    (nothing was added; id, ts and digest are the first append's)."""

    id: int
    ts: float
    again: bool = False
    digest: bytes = b""


class RoomLog:
    """The room streams of one cluster (``namespace`` separates clusters sharing a Redis)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "gc",
        room_cap: int = 10_000,
        key_seconds: float = 7 * 86400,
    ) -> None:
        if room_cap < 1:
            raise ValueError("room_cap must be at least 1")
        self.client = client
        self.namespace = namespace
        self.room_cap = room_cap
        self._key_ms = max(1, int(key_seconds * 1000))
        self._append = client.register_script(_APPEND)
        self._event = client.register_script(_EVENT)
        self._raise_floor = client.register_script(_RAISE_FLOOR)

    # --- keys -----------------------------------------------------------------------------

    def stream_key(self, room_key: str) -> str:
        return f"{self.namespace}:room:{room_key}"

    def _retry_key(self, key: str) -> str:
        return f"{self.namespace}:retry:{key}"

    def _origin_key(self, origin: str) -> str:
        return f"{self.namespace}:origin:{origin}"

    @property
    def _ids_key(self) -> str:
        return f"{self.namespace}:ids"

    @property
    def _topics_key(self) -> str:
        return f"{self.namespace}:topics"

    @property
    def events_key(self) -> str:
        """The stream of presence events (joins, parts, leaves, nicks, away)."""
        return f"{self.namespace}:events"

    # --- writing --------------------------------------------------------------------------

    def append(self, items: Sequence[NewLine | NewEvent]) -> list[Appended]:
        """Append lines (and events) in order, in one round trip; each is atomic on its own
        (a failure part-way leaves the first ones appended: sending them again with their
        origins is then harmless). An event's Appended has id 0."""
        if not items:
            return []
        with redis_errors("append to the room log"):
            pipe = self.client.pipeline(transaction=False)
            for item in items:
                if isinstance(item, NewEvent):
                    self._add_event(item, pipe)
                else:
                    self._add_line(item, pipe)
            replies = pipe.execute()
        return [
            Appended(0, 0.0) if isinstance(item, NewEvent) else _appended(item, reply)
            for item, reply in zip(items, replies, strict=True)
        ]

    def _add_line(self, line: NewLine, pipe: redis.client.Pipeline) -> None:
        retry = self._retry_key(line.retry_key) if line.retry_key is not None else ""
        origin = self._origin_key(line.origin) if line.origin else ""
        args = (
            self.room_cap,
            self._key_ms,
            line.room,
            line.nick,
            line.text,
            repr(line.ts),
            str(line_kind(line.action, line.notice)),
            line.digest.hex(),
            line.origin,
            line.private_to or "",
        )
        copy = self.stream_key(line.copy_to) if line.copy_to else ""
        keys = [self._ids_key, self.stream_key(line.room_key), origin, retry, copy]
        self._append(keys=keys, args=args, client=pipe)

    def _add_event(self, event: NewEvent, pipe: redis.client.Pipeline) -> None:
        origin = self._origin_key(event.origin or secrets.token_hex(8))
        room, topic = event.topic or ("", "")
        rooms = "\n".join(event.rooms)
        args = (EVENTS_CAP, self._key_ms, event.payload, rooms, event.origin, room, topic)
        keys = [self.events_key, origin, self._topics_key]
        self._event(keys=keys, args=args, client=pipe)

    def topic(self, room_key: str) -> str:
        """The room's topic as set on any node ("" for none)."""
        with redis_errors("read a topic"):
            value = self.client.hget(self._topics_key, room_key)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""

    def topics(self) -> dict[str, str]:
        """Every room's topic set on any node: room key -> topic."""
        with redis_errors("read the topics"):
            raw = self.client.hgetall(self._topics_key)
        return {
            k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
            for k, v in raw.items()
            if isinstance(k, bytes) and isinstance(v, bytes)
        }

    def events_position(self) -> str:
        """The id of the newest event (where a node starts reading events), "0-0" if none."""
        with redis_errors("read the events"):
            entries = self.client.xrevrange(self.events_key, "+", "-", 1)
        if not entries:
            return "0-0"
        raw = entries[0][0]
        return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)

    def store_id(self) -> str:
        """The cluster's name for its ids (made once, kept in Redis): a client that resumes
        on any node of the cluster names this one."""
        key = f"{self.namespace}:store_id"
        with redis_errors("read the cluster's store id"):
            self.client.set(key, secrets.token_hex(8), nx=True)
            value = self.client.get(key)
        if not isinstance(value, bytes):
            raise ClusterDataError("the cluster's store id is missing")
        return "cluster-" + value.decode("ascii", "replace")

    def raise_id_floor(self, at_least: int) -> int:
        """Make the next id greater than ``at_least`` (ids a node has seen must never come
        back, even if Redis lost its data); returns the counter's value."""
        with redis_errors("raise the id counter"):
            value = self._raise_floor(keys=[self._ids_key], args=[at_least])
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ClusterDataError(f"the id counter is damaged: {value!r}") from exc

    def find_key(self, key: str) -> tuple[int, float, bytes] | None:
        """What a client's retry key was given to: (id, ts, digest of the text), or None."""
        with redis_errors("look up a retry key"):
            value = self.client.get(self._retry_key(key))
        if value is None:
            return None
        found = _appended(None, [0, value])
        return found.id, found.ts, found.digest

    # --- reading --------------------------------------------------------------------------

    def recent(
        self,
        room_key: str,
        limit: int = 100,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[StoredMessage]:
        """The newest ``limit`` lines with ``after_id`` < id < ``before_id``, oldest first."""
        if limit <= 0:
            return []
        high = "+" if before_id is None else f"({max(0, before_id)}-0"
        low = "-" if after_id is None else f"({max(0, after_id)}-0"
        with redis_errors("read the room log"):
            entries = self.client.xrevrange(self.stream_key(room_key), high, low, limit)
        return [_message(entry) for entry in reversed(entries)]

    def following(
        self, room_key: str, after_id: int, limit: int = 100, before_id: int | None = None
    ) -> list[StoredMessage]:
        """The oldest ``limit`` lines with ``after_id`` < id < ``before_id``, oldest first."""
        if limit <= 0:
            return []
        high = "+" if before_id is None else f"({max(0, before_id)}-0"
        low = f"({max(0, after_id)}-0"
        with redis_errors("read the room log"):
            entries = self.client.xrange(self.stream_key(room_key), low, high, limit)
        return [_message(entry) for entry in entries]

    def read(
        self,
        positions: Mapping[str, int],
        block_ms: int | None = None,
        count: int = 1000,
        wake: tuple[str, str] | None = None,
        events: str | None = None,
    ) -> tuple[list[FeedLine], str | None, list[FeedEvent], str | None]:
        """Lines after each room's position (room key -> last id had), each room's oldest
        first, waiting up to ``block_ms`` for one when there is none (None: do not wait).

        ``wake`` (stream key, last entry id had) is read too, so that an entry added there
        ends the wait; ``events`` is the last event id had. Returns the lines, the wake
        stream's new position, the events and the event stream's new position (positions
        None when not asked for)."""
        streams = {self.stream_key(key): f"{max(0, last)}-0" for key, last in positions.items()}
        if wake is not None:
            streams[wake[0]] = wake[1]
        if events is not None:
            streams[self.events_key] = events
        if not streams:
            return [], None, [], None
        with redis_errors("read the room log"):
            reply = self.client.xread(streams, count=count, block=block_ms)  # type: ignore[arg-type]
        lines: list[FeedLine] = []
        found: list[FeedEvent] = []
        woken = wake[1] if wake is not None else None
        prefix = self.stream_key("")
        for raw_key, entries in reply or ():
            key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
            if not entries:
                continue
            last = entries[-1][0]
            last = last.decode("ascii") if isinstance(last, bytes) else last
            if wake is not None and key == wake[0]:
                woken = last
            elif events is not None and key == self.events_key:
                events = last
                found.extend(_event(e) for e in entries)
            else:
                room_key = key[len(prefix) :]
                lines.extend(FeedLine(room_key, _message(e), _origin(e)) for e in entries)
        return lines, woken, found, events

    def last_id(self, room_key: str) -> int:
        """The id of the room's newest line (0: none)."""
        with redis_errors("read the room log"):
            entries = self.client.xrevrange(self.stream_key(room_key), "+", "-", 1)
        return _entry_id(entries[0][0]) if entries else 0

    def trim_before(self, room_key: str, cutoff_ts: float, step: int = 500) -> int:
        """Drop the room's lines said before ``cutoff_ts`` (retention by age); returns how
        many went. Entries are in time order only roughly (nodes' clocks), so this stops at
        the first line young enough."""
        key = self.stream_key(room_key)
        with redis_errors("trim the room log"):
            entries = self.client.xrange(key, "-", "+", step)
            if not entries:
                return 0
            young = (e for e in entries if _message(e).ts >= cutoff_ts)
            keep_from = next(young, None)
            minid = keep_from[0] if keep_from else f"{_entry_id(entries[-1][0]) + 1}-0"
            return int(self.client.xtrim(key, minid=minid, approximate=False))


def _appended(line: NewLine | None, reply: object) -> Appended:
    """The script's answer, checked (a script error comes back in its place)."""
    if isinstance(reply, Exception):
        raise ClusterError(f"cannot append to the room log: {reply}")
    try:
        new, value = reply  # type: ignore[misc]
        if int(new) == 1 and line is not None:
            return Appended(int(value), line.ts)
        id_, ts, digest = bytes(value).decode("ascii").split(" ")
        return Appended(int(id_), float(ts), True, bytes.fromhex(digest))
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise ClusterDataError(f"retry key of a room line is damaged: {reply!r}") from exc


def _entry_id(raw: bytes | str) -> int:
    text = raw.decode("ascii") if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    if seq != "0" or not ms.isdigit():
        raise ClusterDataError(f"room log entry {text!r} was not written by game_chat")
    return int(ms)


def _message(entry: tuple[bytes, dict[bytes, bytes]]) -> StoredMessage:
    """A stream entry as a stored line; ClusterDataError if it is not one of ours."""
    entry_id, fields = entry
    try:
        to = fields.get(b"to", b"").decode("utf-8")
        return StoredMessage(
            _entry_id(entry_id),
            fields[b"room"].decode("utf-8"),
            fields[b"nick"].decode("utf-8"),
            fields[b"text"].decode("utf-8"),
            float(fields[b"ts"]),
            fields[b"action"] == b"%d" % ACTION,
            to or None,
            fields[b"action"] == b"%d" % NOTICE,
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ClusterDataError(f"room log entry {entry_id!r} is damaged") from exc


def _event(entry: tuple[bytes, dict[bytes, bytes]]) -> FeedEvent:
    event_id, fields = entry
    try:
        rooms = fields[b"rooms"].decode("utf-8")
        return FeedEvent(fields[b"msg"], tuple(rooms.split("\n")) if rooms else (), _origin(entry))
    except (KeyError, UnicodeDecodeError) as exc:
        raise ClusterDataError(f"event {event_id!r} is damaged") from exc


def _origin(entry: tuple[bytes, dict[bytes, bytes]]) -> str:
    return entry[1].get(b"origin", b"").decode("ascii", "replace")
