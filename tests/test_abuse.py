"""Flood limits: the budgets of server/abuse.py on a fake clock, the oper backoff of
server/moderation.py, a Session that pays for every frame, and one flood over a real socket."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fakes import RecordingMailbox
from wire import WireClient, rich_client

from game_chat.protocol.errors import ErrorCode, RemoteProtocolError
from game_chat.protocol.framing import encode_frame
from game_chat.protocol.limits import DEFAULT_COSTS, SENT_FIELDS, Limits
from game_chat.protocol.messages import CLIENT_TYPES
from game_chat.server.abuse import FLOOD_REASON, Bucket, RequestLimiter
from game_chat.server.members import Access
from game_chat.server.moderation import FailureLimiter, address_key
from game_chat.server.session import Session
from game_chat.server.state import ChatState


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def refused(limiter: RequestLimiter, kind: str = "chat") -> RemoteProtocolError | None:
    """The error a request gets, or None if it is taken."""
    try:
        limiter.charge(kind)
    except RemoteProtocolError as exc:
        return exc
    return None


# --- the budgets ---------------------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    limits = Limits()
    assert (limits.chat_burst, limits.chat_per_minute) == (20, 120)
    assert (limits.data_burst, limits.data_per_second) == (60, 30)
    assert (limits.flood_seconds, limits.oper_wait_max) == (20, 60)
    assert limits.costs == DEFAULT_COSTS


def test_a_burst_is_taken_then_the_next_line_is_refused_with_the_wait() -> None:
    limiter = RequestLimiter(Limits(), Clock())
    assert [refused(limiter) for _ in range(20)] == [None] * 20
    error = refused(limiter)
    assert error is not None
    assert (error.code, error.fatal) == (ErrorCode.RATE_LIMITED, False)
    # Charged anyway: 1 line of debt, so 2 lines' worth of refill at 2 a second.
    assert error.message == "slow down: too many messages; try again in 1 s"


def test_the_budget_refills_at_its_rate_up_to_the_burst() -> None:
    clock = Clock()
    limiter = RequestLimiter(Limits(), clock)
    for _ in range(20):
        limiter.charge("chat")
    clock.advance(0.5)  # 120 a minute: one line per half second
    assert refused(limiter) is None
    assert refused(limiter) is not None
    clock.advance(3600)  # a long pause gives back the burst, never more
    assert [refused(limiter) for _ in range(20)] == [None] * 20
    assert refused(limiter) is not None


def test_waiting_as_told_gets_the_line_through() -> None:
    clock = Clock()
    limiter = RequestLimiter(Limits(), clock)
    for _ in range(30):  # a paste of 30 lines sent at once: 20 taken, 10 refused
        refused(limiter)
    error = refused(limiter)
    assert error is not None and not error.fatal
    wait = int(error.message.split("try again in ")[1].split()[0])
    clock.advance(wait)
    assert refused(limiter) is None


def test_a_person_typing_fast_is_never_refused() -> None:
    """An hour of a line a second, with a burst of 5 quick lines and a paste of 15 lines
    every minute (about 1.3 lines a second on average)."""
    clock = Clock()
    limiter = RequestLimiter(Limits(), clock)
    for second in range(3600):
        if second % 60 == 30:
            for _ in range(15):
                assert refused(limiter) is None
        if second % 60 == 0:
            for _ in range(5):
                assert refused(limiter) is None
                clock.advance(0.2)
        else:
            assert refused(limiter) is None
            clock.advance(1.0)


def test_a_script_sending_flat_out_is_refused_then_kicked() -> None:
    limiter = RequestLimiter(Limits(), Clock())
    errors = [refused(limiter) for _ in range(61)]
    assert errors[:20] == [None] * 20
    assert all(e is not None and not e.fatal for e in errors[20:60])
    last = errors[60]
    assert last is not None and last.fatal and last.code == ErrorCode.RATE_LIMITED
    assert last.message == FLOOD_REASON


def test_stopping_when_refused_never_leads_to_a_kick() -> None:
    """A paste of 50 lines: 30 of them refused, deep in debt, but then the sender waits."""
    clock = Clock()
    limiter = RequestLimiter(Limits(), clock)
    errors = [refused(limiter) for _ in range(50)]
    assert not any(e is not None and e.fatal for e in errors)
    clock.advance(16)  # 30 lines of debt and one to send: 15.5 s at 2 a second
    assert refused(limiter) is None


def test_sending_slower_than_the_refill_while_refused_recovers() -> None:
    clock = Clock()
    limiter = RequestLimiter(Limits(), clock)
    for _ in range(40):  # 20 lines of debt
        refused(limiter)
    results = []
    for _ in range(30):  # a line a second: each refused one costs 1, a second refills 2
        clock.advance(1.0)
        results.append(refused(limiter))
    assert not any(e is not None and e.fatal for e in results)
    assert results[-1] is None


def test_requests_cost_by_type() -> None:
    clock = Clock()
    limiter = RequestLimiter(Limits(), clock)
    assert [refused(limiter, "nick") for _ in range(5)] == [None] * 5  # 4 each: 20
    assert refused(limiter, "nick") is not None
    clock.advance(2.0)  # 4 lines of refill... minus the 4 the refused change cost
    assert refused(limiter, "nick") is not None
    limiter = RequestLimiter(Limits(), clock)
    assert [refused(limiter, "who") for _ in range(40)] == [None] * 40  # 0.5 each


def test_free_requests_pass_even_in_debt() -> None:
    limiter = RequestLimiter(Limits(), Clock())
    for _ in range(50):
        refused(limiter)
    assert refused(limiter, "pong") is None
    assert refused(limiter, "bye") is None


def test_member_data_has_a_budget_of_its_own() -> None:
    clock = Clock()
    limiter = RequestLimiter(Limits(), clock)
    for _ in range(20):
        limiter.charge("chat")
    assert refused(limiter) is not None
    assert [refused(limiter, "set_data") for _ in range(60)] == [None] * 60  # chat is spent
    error = refused(limiter, "set_data")
    assert error is not None and not error.fatal
    assert error.message == "slow down: too many data updates; try again in 1 s"
    clock.advance(1.0)  # the refused line's debt and one line of refill; data costs nothing here
    assert refused(limiter) is None


def test_a_game_sending_20_positions_a_second_is_never_refused() -> None:
    clock = Clock()
    limiter = RequestLimiter(Limits(), clock)
    for tick in range(20 * 600):  # ten minutes, with some chat on the side
        assert refused(limiter, "set_data") is None
        if tick % 40 == 0:
            assert refused(limiter) is None
        clock.advance(0.05)


def test_a_game_sending_unpaced_at_60_per_second_is_refused_then_kicked() -> None:
    clock = Clock()
    limiter = RequestLimiter(Limits(), clock)
    outcomes = []
    for _ in range(60 * 60):  # a minute at most
        error = refused(limiter, "set_data")
        outcomes.append(error)
        if error is not None and error.fatal:
            break
        clock.advance(1 / 60)
    assert outcomes[-1] is not None and outcomes[-1].fatal
    seconds = len(outcomes) / 60
    assert 15 < seconds < 30  # 2 s of burst, then 30 a second into 600 of debt


def test_a_rate_of_zero_turns_a_budget_off() -> None:
    limiter = RequestLimiter(Limits(chat_per_minute=0, data_per_second=0), Clock())
    for _ in range(10_000):
        limiter.charge("chat")
        limiter.charge("set_data")


def test_flood_seconds_zero_refuses_but_never_kicks() -> None:
    clock = Clock()
    limiter = RequestLimiter(Limits(flood_seconds=0), clock)
    errors = [refused(limiter) for _ in range(10_000)]
    assert errors[19] is None and errors[20] is not None
    assert not any(e is not None and e.fatal for e in errors)
    clock.advance(0.5)  # refusals cost nothing without debt: the next refill is at once usable
    assert refused(limiter) is None


def test_costs_are_configurable_and_checked() -> None:
    limits = Limits(costs={"nick": 10})
    assert limits.costs["nick"] == 10 and limits.costs["chat"] == 1
    limiter = RequestLimiter(limits, Clock())
    assert [refused(limiter, "nick") for _ in range(3)][-1] is not None
    with pytest.raises(ValueError, match="no request type"):
        Limits(costs={"dance": 1})
    with pytest.raises(ValueError, match="0 or more"):
        Limits(costs={"chat": -1})
    with pytest.raises(ValueError):
        Limits(chat_burst=0)
    with pytest.raises(ValueError):
        Limits(chat_per_minute=-1)


def test_a_cost_over_the_burst_counts_as_the_burst() -> None:
    bucket = Bucket(burst=5, rate=1.0, debt=10, now=0.0)
    assert bucket.take(50, 0.0) == 0.0  # never impossible
    assert bucket.take(50, 0.0) == pytest.approx(10.0)  # 5 charged again: 10 s to 5


def test_every_client_message_type_has_a_cost() -> None:
    assert set(CLIENT_TYPES) <= set(DEFAULT_COSTS)
    assert set(DEFAULT_COSTS) - set(CLIENT_TYPES) == {"invalid"}


def test_the_welcome_carries_the_rates_but_not_the_costs() -> None:
    limits = Limits(chat_burst=5, costs={"nick": 2})
    sent = limits.to_dict()
    assert tuple(sent) == SENT_FIELDS
    assert sent["chat_burst"] == 5 and sent["chat_per_minute"] == 120
    assert Limits.from_dict({**sent, "costs": {"x": 1}, "future": 3}).chat_burst == 5
    assert Limits.from_dict({"max_text_chars": 10}) == Limits(max_text_chars=10)


# --- failed oper attempts --------------------------------------------------------------------


def test_each_oper_failure_makes_the_next_try_wait_longer_up_to_a_minute() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock=clock)
    assert limiter.blocked("10.0.0.1") == 0
    waits = []
    for _ in range(13):
        waits.append(limiter.failed("10.0.0.1"))
        assert limiter.blocked("10.0.0.1") == waits[-1]
        clock.advance(waits[-1])
        assert limiter.blocked("10.0.0.1") == 0
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]  # four typos are free
    assert limiter.blocked("10.0.0.2") == 0  # other addresses are not concerned


def test_oper_success_and_quiet_time_start_afresh() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock=clock)
    for _ in range(6):
        limiter.failed("k")
    assert limiter.blocked("k") == 2
    limiter.succeeded("k")
    assert limiter.blocked("k") == 0
    assert [limiter.failed("k") for _ in range(5)] == [0, 0, 0, 0, 1]
    clock.advance(600)  # ten minutes without a failure
    assert limiter.failed("k") == 0


def test_an_ipv6_address_counts_as_its_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert address_key("10.1.2.3") == "10.1.2.3"
    assert address_key("not an address") == "not an address"
    limiter = FailureLimiter(free=0, clock=Clock())
    limiter.failed("2001:db8:1:2::5")
    assert limiter.blocked("2001:db8:1:2:ffff::9") == 1
    assert limiter.blocked("2001:db8:1:3::5") == 0


def test_the_failure_table_stays_bounded() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock=clock)
    for n in range(12_000):
        limiter.failed(f"key{n}")
        clock.advance(0.1)
    assert len(limiter._entries) <= 10_001


# --- a session pays for every frame ----------------------------------------------------------


def chat(text: str, client_id: object = None) -> bytes:
    return json.dumps({"type": "chat", "text": text, "id": client_id}).encode()


def hello(nick: str, **extra: object) -> bytes:
    return json.dumps({"type": "hello", "nick": nick, "version": 1, **extra}).encode()


def new_session(
    state: ChatState, clock: Clock, address: str = "10.0.0.1:5000"
) -> tuple[Session, RecordingMailbox]:
    box = RecordingMailbox()
    return Session(state, box, address, clock=clock), box


def errors_of(box: RecordingMailbox) -> list[dict[str, object]]:
    return [m for m in box.messages() if m["type"] == "error"]


def test_a_flooding_rich_client_is_refused_then_kicked() -> None:
    clock = Clock()
    state = ChatState()
    watcher, watcher_box = new_session(state, clock, "10.0.0.2:1")
    watcher.handle_frame(hello("watcher"))
    session, box = new_session(state, clock)
    session.handle_frame(hello("spammer"))  # a hello costs 1 too
    results = [session.handle_frame(chat(f"spam {n}", n)) for n in range(60)]
    session.settle()
    assert results == [True] * 59 + [False]  # the 60th frame ends the connection
    acks = [m["id"] for m in box.messages() if m["type"] == "ack"]
    assert acks == list(range(19))
    errors = errors_of(box)
    assert [e["id"] for e in errors] == list(range(19, 60))  # each names its line
    assert all(e["code"] == "rate_limited" and not e["fatal"] for e in errors[:-1])
    assert errors[-1] == {
        "type": "error",
        "code": "rate_limited",
        "message": FLOOD_REASON,
        "fatal": True,
        "id": 59,
    }
    session.end()
    assert watcher_box.messages()[-1]["type"] == "leave"
    assert watcher_box.messages()[-1]["reason"] == FLOOD_REASON
    spam = [m for m in watcher_box.messages() if m["type"] == "chat"]
    assert len(spam) == 19  # refused lines reach nobody


def test_plain_lines_and_commands_pay_too() -> None:
    clock = Clock()
    state = ChatState()
    session, box = new_session(state, clock)
    for n in range(20):
        assert session.handle_frame(b"line %d" % n)
    assert session.handle_frame(b"one too many")
    session.settle()
    assert box.texts()[-1] == "ERROR rate_limited: slow down: too many messages; try again in 1 s"
    clock.advance(10.5)  # the refused line's debt, then 20 lines of refill
    for n in range(5):
        session.handle_frame(b"/nick n%d" % n)  # 4 each
    session.handle_frame(b"/nick again")
    assert box.texts()[-1].startswith("ERROR rate_limited: slow down")
    assert state.nicks() == ["n4"]


def test_frames_that_are_no_request_pay_as_invalid() -> None:
    clock = Clock()
    session, box = new_session(ChatState(), clock)
    session.handle_frame(hello("alice"))
    for _ in range(19):
        assert session.handle_frame(b"{not json")
    assert session.handle_frame(b"{not json")
    codes = [e["code"] for e in errors_of(box)]
    assert codes == ["bad_json"] * 19 + ["rate_limited"]
    alive = True
    for _ in range(100):
        alive = session.handle_frame(b"\xff")
        if not alive:
            break
    assert not alive and errors_of(box)[-1]["fatal"]


def test_member_data_does_not_use_the_chat_budget() -> None:
    clock = Clock()
    session, box = new_session(ChatState(), clock)
    session.handle_frame(hello("player"))
    for n in range(19):
        session.handle_frame(chat(f"gg {n}", n))
    session.settle()
    data = b'{"type":"set_data","room":"#lobby","data":{"x":1}}'
    for _ in range(60):
        session.handle_frame(data)
    assert [m["type"] for m in box.messages()[-60:]] == ["data"] * 60
    session.handle_frame(data)
    assert errors_of(box)[-1]["message"].startswith("slow down: too many data updates")
    session.handle_frame(chat("still here", "c"))  # the chat budget is still exactly spent
    assert errors_of(box)[-1]["id"] == "c"


def test_operators_are_not_limited() -> None:
    clock = Clock()
    state = ChatState(access=Access(oper_password="pw"))
    session, box = new_session(state, clock)
    session.handle_frame(hello("op"))
    session.handle_frame(b'{"type":"oper","password":"pw"}')
    for n in range(200):
        assert session.handle_frame(chat(f"announcement {n}", n))
    session.settle()
    assert errors_of(box) == []


def test_a_takeover_starts_with_a_full_budget() -> None:
    clock = Clock()
    state = ChatState()
    first, first_box = new_session(state, clock)
    first.handle_frame(hello("alice"))
    token = first_box.messages()[0]["session"]
    for n in range(25):
        first.handle_frame(chat(f"x{n}", n))
    first.settle()
    assert errors_of(first_box)[-1]["code"] == "rate_limited"
    heir, heir_box = new_session(state, clock, "10.0.0.1:5001")
    heir.handle_frame(hello("alice", session=token))
    for n in range(19):  # the hello cost 1
        heir.handle_frame(chat(f"y{n}", n))
    heir.settle()
    assert errors_of(heir_box) == []


# --- failed oper attempts in a session -------------------------------------------------------


def oper(password: str) -> bytes:
    return json.dumps({"type": "oper", "password": password}).encode()


def last_error(box: RecordingMailbox) -> tuple[object, object]:
    error = errors_of(box)[-1]
    return error["code"], error["message"]


def test_oper_failures_wait_per_connection_and_per_address() -> None:
    clock = Clock()
    state = ChatState(access=Access(oper_password="right"))
    state.oper_failures = FailureLimiter(clock=clock)
    mallory, mallory_box = new_session(state, clock, "10.0.0.9:1")
    mallory.handle_frame(hello("mallory"))
    for n in range(5):  # four typos are free; the fifth failure makes the next try wait
        mallory.handle_frame(oper(f"guess{n}"))
        assert last_error(mallory_box) == ("bad_password", "wrong operator password")
    mallory.handle_frame(oper("again"))  # at once: refused, and that is no failure
    assert last_error(mallory_box) == ("rate_limited", "too many failed attempts: try again in 1 s")
    clock.advance(1)
    mallory.handle_frame(oper("guess5"))
    assert last_error(mallory_box)[0] == "bad_password"

    # The operator, behind the same address, waits what mallory's guess made it wait ...
    op, op_box = new_session(state, clock, "10.0.0.9:2")
    op.handle_frame(hello("op"))
    op.handle_frame(oper("right"))
    assert last_error(op_box)[1] == "too many failed attempts: try again in 2 s"
    clock.advance(2)
    op.handle_frame(oper("right"))
    assert op_box.messages()[-1]["text"].startswith("You are now an operator")
    # ... and its success frees the address, but not mallory's connection, which keeps count.
    assert state.oper_failures.blocked("10.0.0.9") == 0
    mallory.handle_frame(oper("guess6"))
    assert last_error(mallory_box)[0] == "bad_password"
    mallory.handle_frame(oper("guess7"))
    assert last_error(mallory_box)[1] == "too many failed attempts: try again in 4 s"
    # Another address is not concerned at all.
    other, other_box = new_session(state, clock, "10.0.0.10:1")
    other.handle_frame(hello("other"))
    other.handle_frame(oper("right"))
    assert errors_of(other_box) == []


# --- over a real socket ----------------------------------------------------------------------


def test_a_flooder_is_kicked_while_a_typist_chats_on(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(limits=Limits())  # the defaults, whatever the fixtures use
    typist, _ = rich_client(server.address, "typist")
    flooder, _ = rich_client(server.address, "flooder")
    typist.recv_until(lambda m: m["type"] == "join" and m["nick"] == "flooder")

    frames = b"".join(
        encode_frame(json.dumps({"type": "chat", "text": f"spam {n}", "id": n}).encode())
        for n in range(500)
    )
    sending = threading.Thread(target=_send_quietly, args=(flooder, frames), daemon=True)
    sending.start()
    received = [json.loads(f) for f in flooder.expect_closed()]
    sending.join(5)
    acks = [m for m in received if m["type"] == "ack"]
    errors = [m for m in received if m["type"] == "error"]
    assert 19 <= len(acks) <= 25  # the burst, and what refilled meanwhile
    assert errors and all(e["code"] == "rate_limited" for e in errors)
    assert all(not e["fatal"] for e in errors[:-1]) and errors[-1]["fatal"]
    assert errors[-1]["message"] == FLOOD_REASON
    assert len(errors) < 100  # kicked long before its 500 lines were read

    # A line a second from the typist, meanwhile and after: never refused.
    seen: list[dict[str, object]] = []
    for n in range(3):
        typist.send_json(type="chat", text=f"typing {n}", id=f"t{n}")
        seen.append(typist.recv_json())
        while seen[-1]["type"] not in ("ack", "error"):
            seen.append(typist.recv_json())
        assert seen[-1] == {**seen[-1], "type": "ack", "id": f"t{n}"}
        if n < 2:
            time.sleep(1.0)
    if not any(m["type"] == "leave" for m in seen):
        seen.append(typist.recv_until(lambda m: m["type"] == "leave"))
    (leave,) = [m for m in seen if m["type"] == "leave"]
    assert leave["nick"] == "flooder" and leave["reason"] == FLOOD_REASON
    typist.close()
    flooder.close()


def _send_quietly(client: WireClient, data: bytes) -> None:
    try:
        client.send_raw(data)
    except OSError:  # the server closed on us mid-way: expected
        pass
