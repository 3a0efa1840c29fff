"""Room streams (server/stream.py): a broadcast is one append; each mailbox takes what it
has not had, in one order with its own frames; busy rooms are flushed less often."""

from __future__ import annotations

import socket
import threading
import time

from fakes import RecordingMailbox
from test_state import join, make_state

from game_chat.server.outbox import BUSY, DRAINED, MORE, Outbox
from game_chat.server.state import Dialect
from game_chat.server.stream import SLACK_BYTES, Coalescer, RoomStream, flush_now

RICH = ("rich", True)
PLAIN = ("plain", True)


class Box(RecordingMailbox):
    """A test mailbox that counts the flushes that reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[float] = []

    def write_through(self) -> None:
        self.flushed.append(time.monotonic())


def test_a_follower_takes_its_variant_once_and_from_where_it_started() -> None:
    stream = RoomStream("#r")
    stream.append({RICH: b"before"})
    rich, plain = Box(), Box()
    rich.follow({stream: RICH})
    plain.follow({stream: PLAIN})
    stream.append({RICH: b"r1", PLAIN: b"p1"})
    stream.append({RICH: b"r2", PLAIN: b"p2"})
    assert rich.frames == [b"r1r2"]  # what came before it followed is not its
    assert plain.frames == [b"p1p2"]
    assert rich.frames == [b"r1r2"]  # taken once


def test_skipped_followers_get_their_own_bytes_in_that_place() -> None:
    stream = RoomStream("#r")
    sender, other = Box(), Box()
    for box in (sender, other):
        box.follow({stream: RICH})
    stream.append({RICH: b"a"})
    stream.append({RICH: b"mine"}, skip=frozenset({sender}))
    sender.put(b"ack")  # the sender's ack, after what came before it
    stream.append({RICH: b"b"})
    assert other.frames == [b"amineb"]
    assert sender.frames == [b"a", b"ack", b"b"]


def test_lines_of_several_rooms_come_in_the_order_they_were_delivered() -> None:
    one, two = RoomStream("#one"), RoomStream("#two")
    box = Box()
    box.follow({one: RICH, two: RICH})
    one.append({RICH: b"1"})
    two.append({RICH: b"2"})
    one.append({RICH: b"3"})
    two.append({RICH: b"4"})
    assert box.frames == [b"1234"]


def test_a_line_of_one_room_never_overtakes_an_older_one_of_another() -> None:
    """The race the soak caught (live id 7318 after 7320): a member of rooms A and B takes
    its tails; A holds nothing yet; before it reads B, another thread delivers a line to A,
    then one to B. The line of B must wait for the next take, after the line of A."""

    class Racing(RoomStream):
        race: list[RoomStream] = []

        def read(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            for stream in self.race:  # the delivering thread runs now
                stream.append({RICH: stream.room.encode()})
            self.race = []
            return super().read(*args, **kwargs)  # type: ignore[arg-type]

    a, b = RoomStream("older"), Racing("newer")
    box = Box()
    box.follow({a: RICH, b: RICH})
    b.append({RICH: b"first,"})  # gives b something to read (a has nothing)
    b.race = [a, b]
    assert box.frames == [b"first,"]  # taken before the race: the newer line waits
    box.put(b"")
    assert b"".join(box.frames) == b"first,oldernewer"


def test_following_another_way_takes_what_came_before_as_it_was() -> None:
    stream = RoomStream("#r")
    box = Box()
    box.follow({stream: PLAIN})
    stream.append({PLAIN: b"here", ("plain", False): b"elsewhere"})
    box.follow({stream: ("plain", False)})  # its current room changed
    stream.append({PLAIN: b"here2", ("plain", False): b"elsewhere2"})
    box.follow({})  # it left
    stream.append({PLAIN: b"gone", ("plain", False): b"gone"})
    assert box.frames == [b"here", b"elsewhere2"]


def test_a_variant_nobody_had_is_encoded_when_first_asked() -> None:
    asked = []

    def encoder(message: object, variant: tuple[str, bool], room: str) -> bytes:
        asked.append((message, variant, room))
        return b"late"

    stream = RoomStream("#r", encoder)
    box = Box()
    box.follow({stream: PLAIN})
    stream.append({RICH: b"rich"}, messages=("m",))  # (variants counted elsewhere)
    assert box.frames == [b"late"]
    assert asked == [("m", PLAIN, "#r")]


def test_entries_everyone_has_are_dropped() -> None:
    stream = RoomStream("#r")
    a, b = Box(), Box()
    a.follow({stream: RICH})
    b.follow({stream: RICH})
    for n in range(5):
        stream.append({RICH: b"x%d" % n})
    assert a.frames == [b"x0x1x2x3x4"]
    flush_now(stream)
    assert stream.held == 5  # b has taken nothing yet
    assert stream.behind(stream.cursors[b]) == 10
    assert b.frames == [b"x0x1x2x3x4"]
    flush_now(stream)
    assert stream.held == 0
    b.follow({})  # b leaves: only a is waited for
    stream.append({RICH: b"y"})
    assert a.frames[-1] == b"y"
    flush_now(stream)
    assert stream.held == 0
    assert stream.variants == {RICH: 1}


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.settimeout(5)
    return a, b


def test_an_outbox_puts_its_rooms_lines_before_its_own_frames() -> None:
    a, b = pair()
    box = Outbox(1 << 20, lambda: None, lambda: None, sock=a)
    stream = RoomStream("#r")
    box.follow({stream: RICH})
    stream.append({RICH: b"line1,"})
    box.put(b"ack,")
    stream.append({RICH: b"line2,"})
    assert box.send_to(a) == DRAINED
    assert b.recv(100) == b"line1,ack,line2,"
    stream.append({RICH: b"line3"})
    box.flush_room(stream)  # the short way: in this room only, nothing else queued
    assert b.recv(100) == b"line3"
    assert box.size == 0


def test_a_line_that_came_while_another_thread_sent_is_not_left_behind() -> None:
    a, b = pair()
    box = Outbox(1 << 20, lambda: None, lambda: None, sock=a)
    stream = RoomStream("#r")
    box.follow({stream: RICH})
    box.put(b"first,")
    with box._lock:
        box._sending = True  # another thread is in its send
    stream.append({RICH: b"late"})
    assert box.send_to(a) == BUSY  # this flush leaves it to the one sending...
    with box._lock:
        box._sending = False
    assert box._send(a, box._frames.popleft()) == MORE  # ...which sees it is owed more
    assert box.send_to(a) == DRAINED
    assert b.recv(100) == b"first,late"


def test_a_follower_too_far_behind_is_cut_and_stops_holding_the_stream() -> None:
    a, _b = pair()
    cut: list[int] = []
    box = Outbox(1000, lambda: None, lambda: cut.append(1), sock=a)
    other = Box()
    stream = RoomStream("#r")
    box.follow({stream: RICH})
    other.follow({stream: RICH})
    with box._lock:
        box._sending = True  # (its socket never gets to send: as if it stopped reading)
    for _ in range(3):
        stream.append({RICH: b"x" * (SLACK_BYTES // 2)})
        other.frames.clear()
        flush_now(stream)
    assert cut == [1]
    assert box.overflowed and box not in stream.cursors
    flush_now(stream)
    assert stream.held == 0


def test_a_quiet_room_is_flushed_at_once_and_a_busy_one_after_a_while() -> None:
    coalescer = Coalescer(per_member=0.05)
    try:
        stream = RoomStream("#r")
        box = Box()
        box.follow({stream: RICH})
        start = time.monotonic()
        coalescer.flush([stream])  # quiet: at once, by the caller
        assert len(box.flushed) == 1 and box.flushed[0] - start < 0.04
        coalescer.flush([stream])  # busy: 50 ms after the last flush ended
        coalescer.flush([stream])  # (one flush takes both along)
        assert len(box.flushed) == 1
        deadline = time.monotonic() + 5
        while len(box.flushed) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(box.flushed) == 2
        assert box.flushed[1] - box.flushed[0] >= 0.045
        time.sleep(0.1)
        assert len(box.flushed) == 2
    finally:
        coalescer.close()


def test_closing_the_coalescer_flushes_what_is_due() -> None:
    coalescer = Coalescer(per_member=10.0)  # (a flush would wait 10 s)
    stream = RoomStream("#r")
    box = Box()
    box.follow({stream: RICH})
    coalescer.flush([stream])
    coalescer.flush([stream])
    assert len(box.flushed) == 1
    coalescer.close()
    assert len(box.flushed) == 2


# --- through the chat state -------------------------------------------------------------


def test_a_member_of_two_rooms_gets_their_lines_in_id_order() -> None:
    state = make_state()
    alice, _ = join(state, "alice")
    bob, _ = join(state, "bob")
    carol, carol_box = join(state, "carol")
    for member in (alice, bob, carol):
        state.join_room(member, "#two")
    carol_box.clear()
    for n in range(6):
        speaker, room = (alice, "#lobby") if n % 2 else (bob, "#two")
        state.say(speaker, f"line {n}", room=room)
    chats = [m for m in carol_box.messages() if m["type"] == "chat"]
    assert [m["text"] for m in chats] == [f"line {n}" for n in range(6)]
    assert [m["id"] for m in chats] == sorted(m["id"] for m in chats)


def test_a_plain_member_sees_other_rooms_lines_tagged_after_switching() -> None:
    state = make_state()
    alice, _ = join(state, "alice")
    state.join_room(alice, "#game")
    plain, box = join(state, "tut", Dialect.PLAIN)
    state.join_room(plain, "#game")  # current room: #game
    state.say(alice, "in game", room="#game")
    state.join_room(plain, "#lobby")  # back to the lobby: #game is elsewhere now
    state.say(alice, "still in game", room="#game")
    texts = box.texts()
    assert "alice: in game" in texts
    assert any("still in game" in t and "#game" in t for t in texts)


def test_many_members_share_one_stream_entry_per_line() -> None:
    state = make_state()
    alice, _ = join(state, "alice")
    boxes = [join(state, f"u{i}")[1] for i in range(50)]
    lobby = state._rooms["#lobby"]
    before = lobby.stream.end
    state.say(alice, "one append")
    assert lobby.stream.end == before + 1
    assert all(b.messages()[-1]["text"] == "one append" for b in boxes)


def test_a_takeover_heir_follows_the_rooms_and_the_old_one_does_not() -> None:
    state = make_state()
    alice, _ = join(state, "alice")
    old_box = RecordingMailbox()
    old = state.join("bob", Dialect.RICH, old_box)
    token = old_box.messages()[0]["session"]
    new_box = RecordingMailbox()
    state.join("bob", Dialect.RICH, new_box, session=token)
    old_box.clear()
    state.say(alice, "after the takeover")
    assert [m["text"] for m in new_box.messages() if m["type"] == "chat"][-1] == (
        "after the takeover"
    )
    assert not [m for m in old_box.messages() if m["type"] == "chat"]
    assert old is not state._members["bob"]


def test_concurrent_rooms_and_members_lose_nothing() -> None:
    state = make_state()
    speakers = [join(state, f"s{i}")[0] for i in range(4)]
    listeners = [join(state, f"l{i}") for i in range(6)]
    for i, (member, _) in enumerate(listeners):
        state.join_room(member, "#x" if i % 2 else "#y")
    for s in speakers:
        state.join_room(s, "#x")
        state.join_room(s, "#y")

    def talk(member: object, n: int) -> None:
        for k in range(30):
            state.say(member, f"{n}-{k}", room="#x" if k % 2 else "#y")  # type: ignore[arg-type]

    threads = [threading.Thread(target=talk, args=(s, n)) for n, s in enumerate(speakers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (_, box) in enumerate(listeners):
        room = "#x" if i % 2 else "#y"
        chats = [m for m in box.messages() if m["type"] == "chat" and m["room"] == room]
        assert len(chats) == 4 * 15
        assert [m["id"] for m in chats] == sorted(m["id"] for m in chats)
