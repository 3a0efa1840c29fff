"""ChatState on its own: membership, nicks, fan-out and ordering, without sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fakes import RecordingMailbox

from game_chat.protocol.errors import ErrorCode, RemoteProtocolError
from game_chat.protocol.limits import Limits
from game_chat.protocol.messages import Ack
from game_chat.server.history import HistoryStore
from game_chat.server.state import Accepted, ChatState, Dialect, Member, MemberGone

_states: list[ChatState] = []


class SyncState(ChatState):
    """A ChatState whose lines are delivered by the time say/private return (they are taken
    at once and delivered by the group commit thread; the tests look at mailboxes after)."""

    def say(self, *args: Any, **kwargs: Any) -> Accepted:
        accepted = super().say(*args, **kwargs)
        assert self.wait(accepted.ticket, timeout=10)
        return accepted

    def private(self, *args: Any, **kwargs: Any) -> Accepted:
        accepted = super().private(*args, **kwargs)
        assert self.wait(accepted.ticket, timeout=10)
        return accepted


@pytest.fixture(autouse=True)
def close_states() -> Iterator[None]:
    yield
    while _states:
        _states.pop().close()


def make_state() -> ChatState:
    # The store keeps time too (it prunes retry keys by age): the same clock, or a pruning
    # pass that comes late would take the keys of 1970 away in the middle of a test.
    history = HistoryStore(None, clock=lambda: 100.0)
    state = SyncState("test", Limits(max_text_chars=50), history=history, clock=lambda: 100.0)
    _states.append(state)
    return state


def join(
    state: ChatState, nick: str, dialect: str = Dialect.RICH
) -> tuple[Member, RecordingMailbox]:
    box = RecordingMailbox()
    return state.join(nick, dialect, box), box


def test_join_welcomes_and_announces() -> None:
    state = make_state()
    _, alice_box = join(state, "alice")
    _, bob_box = join(state, "bob")
    welcome = bob_box.messages()[0]
    assert welcome["type"] == "welcome"
    assert welcome["nick"] == "bob"
    assert welcome["users"] == ["alice", "bob"]
    assert welcome["limits"]["max_text_chars"] == 50
    assert bob_box.messages()[1]["type"] == "joined"
    assert [m["nick"] for m in bob_box.messages()[1]["members"]] == ["alice", "bob"]
    assert alice_box.messages()[2] == {"type": "join", "nick": "bob", "ts": 100.0, "room": "#lobby"}


def test_nick_taken_case_insensitively() -> None:
    state = make_state()
    join(state, "Alice")
    with pytest.raises(RemoteProtocolError) as info:
        join(state, "aLICE")
    assert info.value.code == ErrorCode.NICK_TAKEN
    assert state.nicks() == ["Alice"]


def test_say_goes_to_others_and_acks_sender() -> None:
    state = make_state()
    alice, alice_box = join(state, "alice")
    _, bob_box = join(state, "bob")
    alice_box.clear()
    bob_box.clear()
    sent = state.say(alice, "hello", client_id="c1")
    assert bob_box.messages() == [
        {
            "type": "chat",
            "id": sent.id,
            "nick": "alice",
            "text": "hello",
            "ts": 100.0,
            "room": "#lobby",
        }
    ]
    assert alice_box.messages() == [{"type": "ack", "id": "c1", "msg_id": sent.id, "ts": 100.0}]


def test_sender_name_comes_from_the_server() -> None:
    state = make_state()
    alice, _ = join(state, "alice")
    _, bob_box = join(state, "bob")
    bob_box.clear()
    state.say(alice, "bob: I am bob")
    assert bob_box.messages()[0]["nick"] == "alice"


def test_plain_members_get_text_lines() -> None:
    state = make_state()
    alice, alice_box = join(state, "alice")
    guest = state.join_guest(Dialect.PLAIN, RecordingMailbox())
    guest_box = guest.mailbox
    assert isinstance(guest_box, RecordingMailbox)
    assert guest.nick == "guest-1"
    state.say(alice, "hi")
    state.say(guest, "yo")
    assert guest_box.texts()[-2:] == ["alice: hi", "Message was Sent!"]
    assert alice_box.messages()[-1]["text"] == "yo"


def test_broadcast_frame_is_encoded_once_and_shared() -> None:
    state = make_state()
    alice, _ = join(state, "alice")
    boxes = [join(state, f"u{i}")[1] for i in range(5)]
    state.say(alice, "shared")
    last = [box.frames[-1] for box in boxes]
    assert all(frame is last[0] for frame in last)


def test_text_limits_and_cleaning() -> None:
    state = make_state()
    alice, _ = join(state, "alice")
    _, bob_box = join(state, "bob")
    with pytest.raises(RemoteProtocolError) as info:
        state.say(alice, "x" * 51)
    assert info.value.code == ErrorCode.TEXT_TOO_LONG
    state.say(alice, "\x1b[2Jclear")
    assert bob_box.messages()[-1]["text"] == "[2Jclear"


def test_rename_announces_and_frees_old_nick() -> None:
    state = make_state()
    alice, alice_box = join(state, "alice")
    _, bob_box = join(state, "bob")
    state.rename(alice, "Alicia")
    expected = {"type": "nick_changed", "old": "alice", "new": "Alicia", "ts": 100.0}
    assert bob_box.messages()[-1] == expected
    assert alice_box.messages()[-1] == expected
    join(state, "alice")  # the old nick is free again
    with pytest.raises(RemoteProtocolError):
        state.rename(alice, "BOB")
    state.rename(alice, "ALICIA")  # a change of case of one's own nick is fine


def test_leave_announces_once() -> None:
    state = make_state()
    alice, _ = join(state, "alice")
    _, bob_box = join(state, "bob")
    state.leave(alice, "quit")
    state.leave(alice, "again")
    leaves = [m for m in bob_box.messages() if m["type"] == "leave"]
    assert leaves == [{"type": "leave", "nick": "alice", "reason": "quit", "ts": 100.0}]
    with pytest.raises(MemberGone):
        state.say(alice, "ghost")


def test_close_all_says_goodbye() -> None:
    state = make_state()
    _, alice_box = join(state, "alice")
    assert len(state.close_all("server shutting down")) == 1
    assert alice_box.messages()[-1] == {"type": "bye", "reason": "server shutting down"}
    assert state.nicks() == []


def test_concurrent_senders_keep_one_order_for_everyone() -> None:
    state = make_state()
    senders = [join(state, f"s{i}")[0] for i in range(4)]
    receivers = [join(state, f"r{i}")[1] for i in range(3)]
    for box in receivers:
        box.clear()

    def run(member: Member) -> None:
        for n in range(200):
            state.say(member, f"{member.nick} {n}")

    threads = [threading.Thread(target=run, args=(m,)) for m in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    orders = [[m["text"] for m in box.messages()] for box in receivers]
    assert len(orders[0]) == 800
    assert orders[0] == orders[1] == orders[2]
    for sender in senders:
        mine = [int(t.split()[1]) for t in orders[0] if t.startswith(sender.nick + " ")]
        assert mine == list(range(200))


def test_resent_line_is_acked_again_but_delivered_once() -> None:
    state = make_state()
    alice, _ = join(state, "alice")
    _, bob_box = join(state, "bob")
    first = state.say(alice, "hello", client_id="x-1")
    state.leave(alice, "connection lost")
    alice, _ = join(state, "alice")  # reconnected under the same nick
    again = state.say(alice, "hello", client_id="x-1", retry=True)
    assert again.id == first.id
    assert again.ack == Ack("x-1", first.id, 100.0)  # the session sends it, in request order
    chats = [m for m in bob_box.messages() if m["type"] == "chat"]
    assert len(chats) == 1
    state.say(alice, "different text", client_id="x-1", retry=True)  # new text: a new line
    assert [m["text"] for m in bob_box.messages() if m["type"] == "chat"][-1] == "different text"
    state.say(alice, "hello", client_id="x-1")  # not a retry: ids may be reused, delivered
    assert [m["text"] for m in bob_box.messages() if m["type"] == "chat"][-1] == "hello"


def test_a_taken_over_member_is_gone_for_the_old_connection() -> None:
    state = ChatState(clock=lambda: 100.0)  # lines are delivered when the pipeline gets to them
    _states.append(state)
    old_box, heir_box = RecordingMailbox(), RecordingMailbox()
    alice = state.join("alice", Dialect.RICH, old_box)
    _, bob_box = join(state, "bob")
    token = old_box.messages()[0]["session"]
    pending = state.say(alice, "said just before the drop", client_id="c1")
    heir = state.join("whoever", Dialect.RICH, heir_box, session=token)
    assert heir is not alice and heir.nick == "alice" and alice.current is heir
    with pytest.raises(MemberGone):  # the old reader, a moment late
        state.say(alice, "said twice?", client_id="c2")
    with pytest.raises(MemberGone):
        state.history_page(alice, "#lobby", None, 10)
    assert state.wait(pending.ticket, timeout=10)
    assert [m["text"] for m in bob_box.messages() if m["type"] == "chat"] == [
        "said just before the drop"
    ]
    acks = [m for m in heir_box.messages() if m["type"] == "ack"]
    assert acks == [{"type": "ack", "id": "c1", "msg_id": pending.id, "ts": 100.0}]
    assert not [m for m in heir_box.messages() if m["type"] == "chat"]  # not its own line
    assert old_box.messages()[-1]["code"] == "replaced"
    state.leave(alice, "connection lost")  # the old connection ends: the heir stays
    assert state.nicks() == ["alice", "bob"]


def test_a_nick_that_looks_like_one_in_use_is_refused() -> None:
    state = make_state()
    alice, _ = join(state, "alice")
    for lookalike in ("аlice", "alıce", "Αlice", "a1ice"):  # Cyrillic а, dotless ı, Greek Α
        with pytest.raises(RemoteProtocolError) as info:
            join(state, lookalike)
        assert info.value.code == ErrorCode.NICK_TAKEN
        assert "looks too much like alice" in info.value.message
    bob, _ = join(state, "bob")
    with pytest.raises(RemoteProtocolError):
        state.rename(bob, "аlice")
    state.rename(alice, "aIice")  # one's own look-alike is fine
    state.leave(alice)
    join(state, "аlice")  # free again once its look-alike left


def test_guest_numbers_skip_a_nick_that_looks_taken() -> None:
    state = make_state()
    join(state, "guest-l")  # a small L: looks like guest-1
    guest = state.join_guest(Dialect.PLAIN, RecordingMailbox())
    assert guest.nick == "guest-2"


def test_the_look_alike_index_follows_a_takeover() -> None:
    state = make_state()
    box = RecordingMailbox()
    state.join("alice", Dialect.RICH, box)
    heir = state.join("x", Dialect.RICH, RecordingMailbox(), session=box.messages()[0]["session"])
    with pytest.raises(RemoteProtocolError):
        join(state, "аlice")
    state.leave(heir)
    join(state, "аlice")


def test_an_excess_flood_cools_the_nick_and_a_remote_address_down() -> None:
    state = make_state()
    flooder = state.join("spammer", Dialect.RICH, RecordingMailbox(), "10.0.0.5:4000")
    state.leave(flooder, "excess flood")
    state.cool_down(flooder, "10.0.0.5:4000")
    for attempt in (lambda: join(state, "spammer"), lambda: state.check_address("10.0.0.5:9")):
        with pytest.raises(RemoteProtocolError) as info:
            attempt()
        assert info.value.code == ErrorCode.BANNED
    local = state.join("local", Dialect.RICH, RecordingMailbox(), "127.0.0.1:5000")
    state.cool_down(local, "127.0.0.1:5000")
    state.check_address("127.0.0.1:6000")  # this machine itself is never cut off


class ClosedByPeer(RecordingMailbox):
    """A mailbox whose peer has closed the connection, before its reader noticed."""

    def peer_closed(self) -> bool:
        return True


def test_a_nick_held_by_a_closed_connection_is_free_once_its_holder_leaves() -> None:
    state = make_state()
    ghost = state.join("ghost", Dialect.RICH, ClosedByPeer())
    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(state.wait_for_ghost("GHOST")))
    waiter.start()
    state.leave(ghost)  # what the old connection's reader does when it sees the close
    waiter.join(5)
    assert waited == [True]
    state.join("ghost", Dialect.RICH, RecordingMailbox())


def test_a_nick_held_by_an_open_connection_is_taken_at_once() -> None:
    state = make_state()
    join(state, "alive")
    assert state.wait_for_ghost("alive", timeout=30) is False  # no wait: the peer is there
    assert state.wait_for_ghost("free") is True
    state.join("gone", Dialect.RICH, ClosedByPeer())
    assert state.wait_for_ghost("gone", timeout=0.05) is False  # its reader never read it
