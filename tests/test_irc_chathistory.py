"""IRCv3 draft/chathistory on the IRC port (docs/IRC.md): requests parsed without sockets,
then a session against a ChatState with a real (in-memory SQLite) store and a clock of its own,
so that times are exact."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_irc import IrcBox

from game_chat.irc.chathistory import BadRequest, Ref, parse_request
from game_chat.irc.lines import parse_line
from game_chat.irc.render import server_time
from game_chat.irc.session import IrcSession
from game_chat.server.history import HistoryStore
from game_chat.server.state import ChatState

START = 1_800_000_000.0  # a Unix time; each line is said one second after the last


def test_requests_parse_and_mistakes_are_named() -> None:
    request = parse_request(("latest", "#dev", "*", "50"))
    assert (request.subcommand, request.target, request.refs, request.limit) == (
        "LATEST", "#dev", (Ref(),), 50
    )  # fmt: skip
    assert parse_request(("BEFORE", "#dev", "msgid=12", "500")).refs == (Ref(msgid=12),)
    assert parse_request(("BEFORE", "#dev", "msgid=12", "500")).limit == 100  # at most
    assert parse_request(("LATEST", "#dev", "*", "1000000")).limit == 100
    assert parse_request(("LATEST", "#dev", "*", "9" * 5000)).limit == 100
    assert parse_request(("LATEST", "#dev", "*", "007")).limit == 7
    ts = parse_request(("AFTER", "#dev", "timestamp=2027-01-15T08:00:00.250Z", "5")).refs[0]
    assert ts.msgid is None and ts.ts is not None
    assert server_time(ts.ts) == "2027-01-15T08:00:00.250Z"  # (round trip)
    between = parse_request(("BETWEEN", "#dev", "msgid=1", "msgid=9", "3"))
    assert between.refs == (Ref(msgid=1), Ref(msgid=9))
    for params, code in [
        ((), "INVALID_PARAMS"),
        (("FORWARD", "#dev", "*", "5"), "UNKNOWN_COMMAND"),
        (("LATEST", "#dev", "*"), "INVALID_PARAMS"),
        (("LATEST", "#dev", "*", "0"), "INVALID_PARAMS"),
        (("LATEST", "#dev", "*", "-1"), "INVALID_PARAMS"),
        (("LATEST", "#dev", "*", "²"), "INVALID_PARAMS"),
        (("BEFORE", "#dev", "*", "5"), "INVALID_PARAMS"),  # * is LATEST's only
        (("BEFORE", "#dev", "msgid=x", "5"), "INVALID_PARAMS"),
        (("BEFORE", "#dev", "msgid=99999999999999999999", "5"), "INVALID_PARAMS"),
        (("BEFORE", "#dev", "timestamp=yesterday", "5"), "INVALID_PARAMS"),
        (("BEFORE", "#dev", "timestamp=99999-01-01T00:00:00.000Z", "5"), "INVALID_PARAMS"),
        (("TARGETS", "msgid=1", "timestamp=2027-01-15T08:00:00.000Z", "5"), "INVALID_PARAMS"),
    ]:
        with pytest.raises(BadRequest) as caught:
            parse_request(params)
        assert caught.value.code == code, params


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def chat() -> Iterator[tuple[ChatState, Clock]]:
    clock = Clock()
    state = ChatState("test", history=HistoryStore(None, clock=clock), clock=clock)
    try:
        yield state, clock
    finally:
        state.close()


def member(state: ChatState, nick: str, *caps: str) -> tuple[IrcSession, IrcBox]:
    box = IrcBox()
    session = IrcSession(state, box, "127.0.0.1:6667")
    session.handle_frame(b"CAP LS 302")
    if caps:
        session.handle_frame(f"CAP REQ :{' '.join(caps)}".encode())
    session.handle_frame(f"NICK {nick}".encode())
    session.handle_frame(b"USER u 0 * :Real")
    session.handle_frame(b"CAP END")
    assert session.registered
    return session, box


def said_lines(state: ChatState, clock: Clock, count: int) -> list[int]:
    """``count`` lines said in #dev by ``talker``, a second apart; their ids."""
    talker, _ = member(state, "talker")
    talker.handle_frame(b"JOIN #dev")
    ids = []
    for n in range(count):
        clock.now = START + n
        accepted = state.say(talker.member, f"line {n}", room="#dev")  # type: ignore[arg-type]
        state.wait(accepted.ticket)
        ids.append(accepted.id)
    return ids


def ask(session: IrcSession, box: IrcBox, request: str) -> list[str]:
    """The texts of the lines a request brings, after checking its batch's frame."""
    box.clear()
    session.handle_frame(request.encode())
    messages = [parse_line(x.encode()) for x in box.lines()]
    assert messages[0].command == "BATCH" and messages[0].params[1:] == ("chathistory", "#dev")
    ref = messages[0].params[0][1:]
    assert messages[-1].command == "BATCH" and messages[-1].params == (f"-{ref}",)
    lines = messages[1:-1]
    assert all(m.tag("batch") == ref and m.tag("msgid") and m.tag("time") for m in lines)
    return [m.params[1] for m in lines]


def test_every_subcommand_by_msgid_and_by_time(chat: tuple[ChatState, Clock]) -> None:
    state, clock = chat
    ids = said_lines(state, clock, 10)
    reader, box = member(state, "reader", "batch", "message-tags", "server-time")
    reader.handle_frame(b"JOIN #dev")
    text = [f"line {n}" for n in range(10)]

    assert ask(reader, box, "CHATHISTORY LATEST #dev * 3") == text[7:]
    assert ask(reader, box, f"CHATHISTORY LATEST #dev msgid={ids[7]} 5") == text[8:]
    assert ask(reader, box, f"CHATHISTORY BEFORE #dev msgid={ids[5]} 2") == text[3:5]
    assert ask(reader, box, f"CHATHISTORY AFTER #dev msgid={ids[5]} 2") == text[6:8]
    assert ask(reader, box, f"CHATHISTORY AROUND #dev msgid={ids[5]} 4") == text[3:7]
    forwards = f"CHATHISTORY BETWEEN #dev msgid={ids[2]} msgid={ids[8]} 3"
    assert ask(reader, box, forwards) == text[3:6]  # from the first reference on
    backwards = f"CHATHISTORY BETWEEN #dev msgid={ids[8]} msgid={ids[2]} 3"
    assert ask(reader, box, backwards) == text[5:8]
    at = [server_time(START + n) for n in range(10)]
    assert ask(reader, box, f"CHATHISTORY BEFORE #dev timestamp={at[5]} 2") == text[3:5]
    assert ask(reader, box, f"CHATHISTORY AFTER #dev timestamp={at[5]} 2") == text[6:8]
    between = f"CHATHISTORY BETWEEN #dev timestamp={at[1]} timestamp={at[4]} 10"
    assert ask(reader, box, between) == text[2:4]
    assert ask(reader, box, f"CHATHISTORY AFTER #dev msgid={ids[9]} 5") == []  # an empty batch


def test_targets_lists_the_rooms_with_lines_between_two_times(
    chat: tuple[ChatState, Clock],
) -> None:
    state, clock = chat
    said_lines(state, clock, 3)  # #dev's last line at START + 2
    reader, box = member(state, "reader", "batch")
    reader.handle_frame(b"JOIN #dev")
    reader.handle_frame(b"JOIN #quiet")
    box.clear()
    reader.handle_frame(
        f"CHATHISTORY TARGETS timestamp={server_time(START + 60)} "
        f"timestamp={server_time(START)} 10".encode()
    )
    messages = [parse_line(x.encode()) for x in box.lines()]
    assert [m.command for m in messages] == ["BATCH", "CHATHISTORY", "BATCH"]
    assert messages[0].params[1] == "draft/chathistory-targets"
    assert messages[1].params == ("TARGETS", "#dev", server_time(START + 2))


def test_refusals_are_fail_replies_and_the_batch_needs_its_capability(
    chat: tuple[ChatState, Clock],
) -> None:
    state, clock = chat
    said_lines(state, clock, 2)
    plain, box = member(state, "plainclient")
    box.clear()
    plain.handle_frame(b"CHATHISTORY LATEST #dev * 10")  # not in #dev
    plain.handle_frame(b"CHATHISTORY LATEST #nowhere * 10")
    plain.handle_frame(b"CHATHISTORY LATEST talker * 10")  # private history: not kept here
    plain.handle_frame(b"CHATHISTORY SIDEWAYS #dev * 10")
    plain.handle_frame(b"CHATHISTORY LATEST #dev * many")
    assert box.lines() == [
        ":test FAIL CHATHISTORY INVALID_TARGET LATEST #dev :not a channel you are in",
        ":test FAIL CHATHISTORY INVALID_TARGET LATEST #nowhere :not a channel you are in",
        ":test FAIL CHATHISTORY INVALID_TARGET LATEST talker :not a channel you are in",
        ":test FAIL CHATHISTORY UNKNOWN_COMMAND SIDEWAYS :unknown subcommand",
        ":test FAIL CHATHISTORY INVALID_PARAMS LATEST :not a limit: many",
    ]
    plain.handle_frame(b"JOIN #dev")
    box.clear()
    plain.handle_frame(b"CHATHISTORY LATEST #dev * 10")  # no batch, no tags: the lines alone
    assert box.lines() == [
        ":talker!u@game_chat PRIVMSG #dev :line 0",
        ":talker!u@game_chat PRIVMSG #dev :line 1",
    ]


def test_the_capability_and_limits_are_offered(chat: tuple[ChatState, Clock]) -> None:
    state, _ = chat
    _, box = member(state, "looker", "draft/chathistory")
    lines = box.lines()
    assert any(" CAP * LS " in x and "draft/chathistory" in x for x in lines)
    assert any(" ACK :draft/chathistory" in x for x in lines)
    assert any(" CHATHISTORY=100 " in x and " MSGREFTYPES=msgid,timestamp " in x for x in lines)
