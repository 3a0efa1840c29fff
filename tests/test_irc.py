"""The IRC dialect without sockets: the line codec (every split point, hypothesis), rendering,
and a session against a real ChatState beside rich and plain members."""

from __future__ import annotations

import json
import time

from fakes import RecordingMailbox
from hypothesis import given
from hypothesis import strategies as st

from game_chat.irc.lines import (
    MAX_LINE_BYTES,
    IrcMessage,
    LineDecoder,
    LineTooLong,
    format_line,
    parse_line,
    split_utf8,
)
from game_chat.irc.render import broadcast, dialect_for, server_time
from game_chat.irc.session import _NOT_UTF8, IrcSession
from game_chat.protocol.limits import Limits
from game_chat.protocol.messages import ChatMessage, Goodbye, Ping, UserJoined
from game_chat.server.session import Session
from game_chat.server.state import Access, ChatState

# --- lines ------------------------------------------------------------------------------


def test_a_line_parses_into_tags_prefix_command_and_params() -> None:
    message = parse_line(b"@time=2026-01-01T00:00:00.000Z;a=b\\sc :nick!u@h privmsg #x :hi there")
    assert message == IrcMessage(
        "PRIVMSG",
        ("#x", "hi there"),
        "nick!u@h",
        (("time", "2026-01-01T00:00:00.000Z"), ("a", "b c")),
    )
    assert parse_line(b"NICK  bob").params == ("bob",)
    assert parse_line(b"USER u 0 * :Real Name").params == ("u", "0", "*", "Real Name")
    assert parse_line(b"PRIVMSG #x ::-)").params == ("#x", ":-)")
    assert parse_line(b"001 me :welcome").command == "001"
    latin = parse_line("PRIVMSG #x :caf\xe9".encode("latin-1"))
    assert latin.params[1] == "café" and not latin.utf8
    assert parse_line("PRIVMSG #x :café".encode()).utf8


def test_formatting_puts_the_last_parameter_after_a_colon_when_it_must() -> None:
    assert format_line("PRIVMSG", "#x", "hi") == b"PRIVMSG #x hi\r\n"
    assert format_line("PRIVMSG", "#x", "hi there", prefix="a!u@h") == (
        b":a!u@h PRIVMSG #x :hi there\r\n"
    )
    assert format_line("TOPIC", "#x", "") == b"TOPIC #x :\r\n"
    assert format_line("X", "y", tags={"time": "t", "k": "a;b c"}) == b"@time=t;k=a\\:b\\sc X y\r\n"


_LINE_TEXT = st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",))


@given(st.lists(st.text(alphabet=_LINE_TEXT, max_size=60), min_size=1, max_size=8))
def test_lines_split_anywhere_come_out_whole(texts: list[str]) -> None:
    lines = [format_line("PRIVMSG", "#x", t) for t in texts]
    data = b"".join(lines)
    for cut in range(len(data) + 1):
        decoder = LineDecoder()
        got = []
        for part in (data[:cut], data[cut:]):
            decoder.receive_data(part) if part else None
            got += list(decoder.lines())
        assert [parse_line(g).params[1] for g in got] == [
            parse_line(x[:-2]).params[1] for x in lines
        ]


def test_bytes_one_at_a_time_and_a_bare_lf_too() -> None:
    decoder = LineDecoder()
    got = []
    for byte in b"PING a\r\nPING b\n\r\n  \r\nPING c\r\n":
        decoder.receive_data(bytes([byte]))
        got += list(decoder.lines())
    assert got == [b"PING a", b"PING b", b"PING c"]


def test_an_overlong_line_is_refused_and_the_next_one_read() -> None:
    decoder = LineDecoder()
    decoder.receive_data(b"PRIVMSG #x :" + b"y" * MAX_LINE_BYTES + b"\r\nPING ok\r\n")
    try:
        list(decoder.lines())
        raise AssertionError("LineTooLong expected")
    except LineTooLong:
        pass
    assert list(decoder.lines()) == [b"PING ok"]
    # A line that never ends is dropped as it comes, not buffered without bound.
    decoder = LineDecoder()
    raised = 0
    for _ in range(100):
        decoder.receive_data(b"z" * 1000)
        try:
            list(decoder.lines())
        except LineTooLong:
            raised += 1
    assert raised == 1 and len(decoder._buffer) < 10_000
    decoder.receive_data(b"end\r\nPING after\r\n")
    assert list(decoder.lines()) == [b"PING after"]


@given(st.text(max_size=400), st.integers(min_value=8, max_value=120))
def test_split_utf8_keeps_every_character_within_the_limit(text: str, limit: int) -> None:
    pieces = split_utf8(text, limit)
    assert all(len(p.encode()) <= limit for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_a_long_chat_line_is_split_into_lines_within_512_bytes() -> None:
    message = ChatMessage(5, "ann", "word " * 200, 0.0, "#lobby")
    data = broadcast(message, dialect_for(["server-time"]))
    lines = data.split(b"\r\n")[:-1]
    assert len(lines) >= 2
    assert all(len(line.split(b" ", 1)[1]) + 2 <= MAX_LINE_BYTES for line in lines)
    assert all(line.startswith(b"@time=1970-01-01T00:00:00.000Z :ann!u@game_chat PRIVMSG")
               for line in lines)  # fmt: skip
    assert broadcast(UserJoined("ann", 0.0, "#x"), "irc") == b":ann!u@game_chat JOIN #x\r\n"
    goodbye = broadcast(Goodbye("server shutting down"), "irct")  # to every member at once
    assert goodbye == b"ERROR :Closing link: server shutting down\r\n"
    assert server_time(1.5) == "1970-01-01T00:00:01.500Z"


# --- a session --------------------------------------------------------------------------


class IrcBox(RecordingMailbox):
    def lines(self) -> list[str]:
        return [x for f in self.frames for x in f.decode().split("\r\n") if x]

    def commands(self) -> list[str]:
        return [parse_line(x.encode()).command for x in self.lines()]


def irc(state: ChatState, nick: str, *caps: str) -> tuple[IrcSession, IrcBox]:
    box = IrcBox()
    session = IrcSession(state, box, "127.0.0.1:6667")
    if caps:
        session.handle_frame(b"CAP LS 302")
        session.handle_frame(f"CAP REQ :{' '.join(caps)}".encode())
    session.handle_frame(f"NICK {nick}".encode())
    session.handle_frame(b"USER u 0 * :Real")
    if caps:
        assert not session.registered  # held until CAP END
        session.handle_frame(b"CAP END")
    assert session.registered
    return session, box


def test_registration_gives_the_welcome_numerics_and_no_room() -> None:
    state = ChatState()
    session, box = irc(state, "hex")
    assert box.commands()[:5] == ["001", "002", "003", "004", "005"]
    assert "422" in box.commands()  # no MOTD
    assert session.member is not None and session.member.rooms == {}
    assert any("NICKLEN=24" in line for line in box.lines())
    assert any(" CLIENTTAGDENY=* " in line for line in box.lines())  # no client tags relayed


def test_nick_taken_and_invalid_get_their_numerics_and_can_be_retried() -> None:
    state = ChatState()
    irc(state, "hex")
    box = IrcBox()
    session = IrcSession(state, box, "127.0.0.1:1")
    session.handle_frame(b"NICK HEX")
    session.handle_frame(b"NICK bad|nick")
    assert box.commands() == ["433", "432"]
    session.handle_frame(b"PRIVMSG #x :hi")
    assert box.commands()[-1] == "451"
    session.handle_frame(b"NICK hex2")
    session.handle_frame(b"USER u 0 * :x")
    assert session.registered


def test_irc_rich_and_plain_members_hear_each_other_once() -> None:
    state = ChatState()
    rich_box = RecordingMailbox()
    rich = Session(state, rich_box, "127.0.0.1:2")
    rich.handle_frame(json.dumps({"type": "hello", "nick": "ann", "version": 1}).encode())
    plain_box = RecordingMailbox()
    plain = Session(state, plain_box, "127.0.0.1:3")
    plain.handle_frame(b"/nick tut")
    hexchat, box = irc(state, "hex", "echo-message", "server-time")
    hexchat.handle_frame(b"JOIN #lobby")
    joined = box.lines()
    assert any(" JOIN #lobby" in x for x in joined) and any(" 353 " in x for x in joined)
    box.clear()
    hexchat.handle_frame(b"PRIVMSG #lobby :hello from irc")
    hexchat.settle()
    echo = box.lines()[-1]
    assert echo.startswith("@time=") and echo.endswith(
        ":hex!u@game_chat PRIVMSG #lobby :hello from irc"
    )
    assert [m["text"] for m in rich_box.messages() if m["type"] == "chat"] == ["hello from irc"]
    assert "hex: hello from irc" in plain_box.texts()
    rich.handle_frame(b'{"type":"chat","text":"hi hex","id":1}')
    rich.settle()
    plain.handle_frame(b"hi from the tutorial")
    plain.settle()
    said = [x for x in box.lines() if " PRIVMSG " in x and "hello from irc" not in x]
    assert [x.split(" ", 1)[1] for x in said] == [
        ":ann!u@game_chat PRIVMSG #lobby :hi hex",
        ":tut!u@game_chat PRIVMSG #lobby :hi from the tutorial",
    ]


def test_private_lines_actions_topics_and_away() -> None:
    state = ChatState()
    a, abox = irc(state, "aa", "away-notify")
    b, bbox = irc(state, "bb")
    a.handle_frame(b"JOIN #dev")
    b.handle_frame(b"JOIN #dev")
    a.handle_frame(b"PRIVMSG bb :\x01ACTION waves\x01")
    a.settle()
    assert bbox.lines()[-1] == ":aa!u@game_chat PRIVMSG bb :\x01ACTION waves\x01"
    b.handle_frame(b"TOPIC #dev :ship it")
    assert abox.lines()[-1] == ":bb!u@game_chat TOPIC #dev :ship it"
    b.handle_frame(b"TOPIC #dev")
    topic, who_when = (x.split(" ", 1)[1] for x in bbox.lines()[-2:])
    assert topic == "332 bb #dev :ship it"
    assert who_when.startswith("333 bb #dev bb :")  # who set it, when (RPL_TOPICWHOTIME)
    assert abs(int(who_when.rsplit(":", 1)[1]) - time.time()) < 60
    late, late_box = irc(state, "cc")
    late.handle_frame(b"JOIN #dev")
    assert [x.split(" ")[1] for x in late_box.lines()[-4:]] == ["332", "333", "353", "366"]
    b.handle_frame(b"AWAY :lunch")
    assert bbox.lines()[-1].split(" ", 1)[1].startswith("306 bb")
    assert parse_line(abox.lines()[-1].encode()) == IrcMessage("AWAY", ("lunch",), "bb!u@game_chat")
    a.handle_frame(b"WHOIS bb")
    assert [x.split(" ")[1] for x in abox.lines()[-5:]] == ["311", "312", "301", "319", "318"]
    a.handle_frame(b"PRIVMSG nobody :hi")
    assert abox.lines()[-1].split(" ")[1] == "401"
    a.handle_frame(b"PART #dev :bye")
    assert bbox.lines()[-1] == ":aa!u@game_chat PART #dev :bye"
    a.handle_frame(b"PRIVMSG #dev :still here?")
    assert abox.lines()[-1].split(" ")[1] == "442" or abox.lines()[-1].split(" ")[1] == "404"


def test_garbage_and_unknown_commands_hurt_nobody() -> None:
    state = ChatState()
    s, box = irc(state, "hex")
    for line in [b":", b"@", b"\xff\xfe", b"FOO bar", b"PRIVMSG", b"JOIN", b"MODE", b"KICK #x"]:
        assert s.handle_frame(line)
    assert set(box.commands()[-5:]) <= {"421", "461", "411"}
    assert not s.handle_frame(b"QUIT :bye")
    assert box.lines()[-1].startswith("ERROR")


def test_who_takes_masks_and_oper_says_its_mode() -> None:
    state = ChatState(access=Access(oper_password="sesame"))
    a, abox = irc(state, "alpha")
    irc(state, "alphonse")
    irc(state, "bravo")
    abox.clear()
    a.handle_frame(b"WHO alph*")
    found = [parse_line(x.encode()) for x in abox.lines() if " 352 " in x]
    assert sorted(m.params[5] for m in found) == ["alpha", "alphonse"]
    assert (found[0].params[2], found[0].params[-1]) == ("u", "0 Real")  # its USER line
    a.handle_frame(b"OPER alpha sesame")
    assert [parse_line(x.encode()).command for x in abox.lines()[-2:]] == ["381", "MODE"]


def test_a_room_s_maker_is_its_operator_kicks_from_it_and_makes_others_operators() -> None:
    """The member who makes a room runs it (IRC's channel operator): @ in NAMES and WHO, KICK
    removes from the room (everyone sees KICK), MODE +o hands it on; others are refused."""
    state = ChatState()
    owner, obox = irc(state, "owner")
    guest, gbox = irc(state, "guest")
    third, tbox = irc(state, "third")
    owner.handle_frame(b"JOIN #den")
    assert any(x.endswith(":@owner") for x in obox.lines() if " 353 " in x)
    guest.handle_frame(b"JOIN #den")
    third.handle_frame(b"JOIN #den")
    assert any("@owner" in x and "guest" in x for x in tbox.lines() if " 353 " in x)
    guest.handle_frame(b"KICK #den third :no")  # not an operator of #den
    assert gbox.lines()[-1].split(" ")[1] == "482"
    owner.handle_frame(b"MODE #den +o guest")
    mode = ":owner!u@game_chat MODE #den +o guest"
    assert tbox.lines()[-1] == mode and gbox.lines()[-1] == mode
    guest.handle_frame(b"KICK #den third :out")
    kick = ":guest!u@game_chat KICK #den third :out"
    assert tbox.lines()[-1] == kick and obox.lines()[-1] == kick
    assert third.member is not None and third.member.rooms == {}
    guest.handle_frame(b"KICK #den third")  # no longer in #den
    assert gbox.lines()[-1].split(" ")[1] == "441"
    owner.handle_frame(b"PART #den")  # its operator status goes with it
    owner.handle_frame(b"JOIN #den")
    assert any("@guest" in x and "@owner" not in x for x in obox.lines() if " 353 " in x)
    owner.handle_frame(b"JOIN #lobby")  # nobody makes the lobby: no operator there
    assert not any("@owner" in x for x in obox.lines() if " 353 " in x and "#lobby" in x)


_COMMANDS = ["PRIVMSG", "NOTICE", "JOIN", "PART", "TOPIC", "NAMES", "LIST", "WHO", "WHOIS",
             "AWAY", "NICK", "MODE", "KICK", "OPER", "CAP", "PASS", "USER", "PING", "PONG",
             "ISON", "USERHOST", "MOTD", "LUSERS", "VERSION", "FOO"]  # fmt: skip
_SAMPLE_WORDS = ["#a", "#b", "#lobby", "a", "b", "*", "0", "+o", "-o", "+b", "+mnst", "-n", "+v",
                 "b", "+k", "LS", "REQ", "END",
                 ":x y", ":", "", "\x01ACTION hi\x01", ",", "#a,#b"]  # fmt: skip
_WORDS = st.one_of(st.sampled_from(_SAMPLE_WORDS), st.text(max_size=12))


@given(st.lists(st.tuples(st.sampled_from(_COMMANDS), st.lists(_WORDS, max_size=4)), max_size=30))
def test_any_sequence_of_commands_gets_answers_never_an_exception(
    script: list[tuple[str, list[str]]],
) -> None:
    """Every input path is total: whatever an IRC client sends, in any order, the session
    answers (or ignores it) and keeps going; the other member is never hurt."""
    state = ChatState()
    other, _ = irc(state, "other")
    other.handle_frame(b"JOIN #a")
    box = IrcBox()
    session = IrcSession(state, box, "127.0.0.1:9")
    for command, words in [("NICK", ["x"]), ("USER", ["u", "0", "*", ":r"]), *script]:
        line = " ".join([command, *words]).encode("utf-8", "surrogateescape")
        if session.handle_frame(line.replace(b"\r", b"").replace(b"\n", b"")) is False:
            break
    other.handle_frame(b"PRIVMSG #a :still here")
    other.settle()
    assert other.member is not None


def test_a_closed_irc_session_and_its_renderer_stop_pointing_at_each_other() -> None:
    """Session and renderer point at each other while the connection lives; detach (the
    connection closed) breaks that cycle, so the session goes with its last reference, not
    at the cyclic collector's next pass."""
    import gc

    state = ChatState()
    session, _ = irc(state, "gone", "echo-message")
    session.handle_frame(b"JOIN #x")
    assert session in gc.get_referents(session.renderer._nick)  # the cycle, while it lives
    session.end()
    session.detach()
    assert session not in gc.get_referents(session.renderer._nick)
    assert session.renderer.render(Ping(1)).startswith(b":")  # still renders, as "*"


def test_a_line_that_would_pass_512_bytes_relayed_is_refused_not_cut() -> None:
    state = ChatState()
    hexchat, box = irc(state, "hex", "echo-message")
    other, obox = irc(state, "weechat")
    for s in (hexchat, other):
        s.handle_frame(b"JOIN #lobby")
    overhead = len(b":hex!u@game_chat ")
    fits = "a" * (MAX_LINE_BYTES - overhead - len("PRIVMSG #lobby :\r\n"))
    for text, said in ((fits, True), (fits + "a", False), (fits[:-2] + "\U0001f603", False)):
        box.clear()
        obox.clear()
        hexchat.handle_frame(f"PRIVMSG #lobby :{text}".encode())
        hexchat.settle()
        if said:  # relayed whole, in one line of exactly 512 bytes
            assert obox.lines()[-1] == f":hex!u@game_chat PRIVMSG #lobby :{text}"
            assert box.lines()[-1].endswith(text)  # the echo
        else:  # 417, and nobody hears a part of it
            assert box.commands() == ["417"] and obox.lines() == []
    box.clear()
    hexchat.handle_frame(f"NOTICE #lobby :{fits}aa".encode())  # no reply to a NOTICE
    hexchat.settle()
    assert box.lines() == [] and obox.lines() == []


def test_a_line_that_is_not_utf8_is_refused_with_fail() -> None:
    state = ChatState()
    sender, box = irc(state, "hex")
    other, obox = irc(state, "weechat")
    for s in (sender, other):
        s.handle_frame(b"JOIN #lobby")
    box.clear()
    obox.clear()
    sender.handle_frame(b"PRIVMSG #lobby :caf\xe9")
    sender.handle_frame(b"NOTICE #lobby :caf\xe9")  # refused too, but silently
    sender.handle_frame(b"PRIVMSG #lobby :caf\xc3\xa9")
    sender.settle()
    assert box.lines() == [":game_chat FAIL PRIVMSG INVALID_UTF8 :" + _NOT_UTF8]
    assert obox.lines() == [":hex!u@game_chat PRIVMSG #lobby :café"]


def test_a_notice_reaches_others_as_a_notice_and_is_kept_as_one() -> None:
    state = ChatState()
    bot, bbox = irc(state, "bot", "echo-message")
    human, hbox = irc(state, "human")
    rich_box = RecordingMailbox()
    rich = Session(state, rich_box, "127.0.0.1:2")
    rich.handle_frame(json.dumps({"type": "hello", "nick": "ann", "version": 1}).encode())
    for s in (bot, human):
        s.handle_frame(b"JOIN #lobby")
    bot.handle_frame(b"NOTICE #lobby :build green")
    bot.handle_frame(b"NOTICE human :psst")
    bot.settle()
    assert hbox.lines()[-2:] == [
        ":bot!u@game_chat NOTICE #lobby :build green",
        ":bot!u@game_chat NOTICE human :psst",
    ]
    assert bbox.lines()[-2:] == hbox.lines()[-2:]  # the echoes
    chat = [m for m in rich_box.messages() if m["type"] == "chat"][-1]
    assert (chat["text"], chat["notice"]) == ("build green", True)
    late, lbox = irc(state, "late", "server-time")  # the replay on joining keeps it a notice
    late.handle_frame(b"JOIN #lobby")
    replayed = [x for x in lbox.lines() if "build green" in x]
    assert len(replayed) == 1 and replayed[0].startswith("@time=")
    assert replayed[0].endswith(":bot!u@game_chat NOTICE #lobby :build green")


def test_lusers_counts_the_members_now_and_the_most_at_once() -> None:
    state = ChatState()
    first, box = irc(state, "first")
    second, _ = irc(state, "second")
    second.end()
    box.clear()
    first.handle_frame(b"LUSERS")
    by_code = {x.split(" ")[1]: x for x in box.lines()}
    assert by_code["251"].endswith(":There are 1 users and 0 invisible on 1 servers")
    assert by_code["265"].split(" ")[3:5] == ["1", "2"]  # now, and the most at once
    assert by_code["266"].endswith(":Current global users 1, max 2")


def test_lines_that_are_not_utf8_count_against_the_flood_budget() -> None:
    state = ChatState(limits=Limits())
    flooder, box = irc(state, "flooder")
    ended = [flooder.handle_frame(b"PRIVMSG #lobby :caf\xe9") for _ in range(200)]
    assert False in ended  # an excess flood ends it, as for any line
    assert box.lines()[-1].startswith("ERROR :Closing link:")
