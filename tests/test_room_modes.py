"""Room modes (PROTOCOL.md 4.6): moderated, no lines from outside, secret, topic by
operators, bans and voice; set by a room's operators from any dialect, shown to IRC clients
as channel modes."""

from __future__ import annotations

import pytest
from fakes import RecordingMailbox
from test_irc import irc
from test_state import join, make_state

from game_chat.protocol.commands import parse_command
from game_chat.protocol.errors import ErrorCode, RemoteProtocolError
from game_chat.protocol.messages import SetRoomMode, encode_message, parse_client_message
from game_chat.server.state import ChatState, ban_mask


def room_with_owner() -> tuple[ChatState, object, RecordingMailbox, object, RecordingMailbox]:
    state = make_state()
    owner, obox = join(state, "owner")
    guest, gbox = join(state, "guest")
    state.join_room(owner, "#den")  # made by owner: its operator
    state.join_room(guest, "#den")
    return state, owner, obox, guest, gbox


def code_of(call: object) -> str:
    with pytest.raises(RemoteProtocolError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code


def test_only_room_operators_change_modes_and_the_room_is_told() -> None:
    state, owner, obox, guest, gbox = room_with_owner()
    assert code_of(lambda: state.set_room_mode(guest, "#den", "+m")) == ErrorCode.NOT_OPERATOR
    state.set_room_mode(owner, "#den", "+m")
    told = gbox.messages()[-1]
    assert told == {"type": "room_mode", "room": "#den", "mode": "+m", "by": "owner", "ts": 100.0}
    assert obox.messages()[-1] == told
    count = len(gbox.frames)
    state.set_room_mode(owner, "#den", "+m")  # nothing changes: nothing told
    assert len(gbox.frames) == count
    assert state.room_modes(owner, "#den")[1] == "+mn"
    for bad in ("m", "+x", "+", "++m"):
        assert code_of(lambda b=bad: state.set_room_mode(owner, "#den", b)) == "bad_message"
    assert code_of(lambda: state.set_room_mode(owner, "#den", "+v")) == "bad_message"


def test_a_moderated_room_hears_only_its_operators_and_voiced_members() -> None:
    state, owner, obox, guest, gbox = room_with_owner()
    state.set_room_mode(owner, "#den", "+m")
    assert code_of(lambda: state.say(guest, "hi", room="#den")) == ErrorCode.CANNOT_SEND
    state.say(owner, "operators talk", room="#den")
    state.set_room_mode(owner, "#den", "+v", "GUEST")
    assert gbox.messages()[-1]["arg"] == "guest"  # the member's own spelling
    assert any(m.get("voice") for m in state.room_view(owner, "#den").members)
    state.say(guest, "with a voice", room="#den")
    assert obox.messages()[-1]["text"] == "with a voice"
    state.set_room_mode(owner, "#den", "-v", "guest")
    assert code_of(lambda: state.say(guest, "again", room="#den")) == ErrorCode.CANNOT_SEND


def test_no_external_lines_is_on_until_an_operator_opens_the_room() -> None:
    state, owner, obox, _, _ = room_with_owner()
    outsider, _ = join(state, "outsider")
    assert code_of(lambda: state.say(outsider, "in?", room="#den")) == ErrorCode.NOT_IN_ROOM
    state.set_room_mode(owner, "#den", "-n")
    state.say(outsider, "from outside", room="#den")
    line = obox.messages()[-1]
    assert (line["type"], line["nick"], line["room"]) == ("chat", "outsider", "#den")


def test_topic_lock_leaves_the_topic_to_operators() -> None:
    state, owner, _, guest, gbox = room_with_owner()
    state.set_topic(guest, "#den", "anyone may")
    state.set_room_mode(owner, "#den", "+t")
    assert code_of(lambda: state.set_topic(guest, "#den", "no")) == ErrorCode.NOT_OPERATOR
    state.set_topic(owner, "#den", "operators may")
    assert gbox.messages()[-1]["topic"] == "operators may"
    newcomer, nbox = join(state, "newcomer")
    state.join_room(newcomer, "#den")
    joined = [m for m in nbox.messages() if m["type"] == "joined"][-1]
    assert (joined["topic"], joined["topic_by"], joined["topic_ts"]) == (
        "operators may",
        "owner",
        100.0,
    )
    assert "secret" not in joined


def test_a_secret_room_is_listed_only_to_its_members() -> None:
    state, owner, obox, _, _ = room_with_owner()
    outsider, obox2 = join(state, "outsider")
    state.set_room_mode(owner, "#den", "+s")
    state.list_rooms(outsider)
    assert "#den" not in [r["room"] for r in obox2.messages()[-1]["rooms"]]
    state.list_rooms(owner)
    assert "#den" in [r["room"] for r in obox.messages()[-1]["rooms"]]
    state.join_room(owner, "#den")  # again: joined says what it is
    assert obox.messages()[-1]["secret"] is True


def test_bans_keep_matching_members_out_and_quiet() -> None:
    state, owner, _obox, guest, _gbox = room_with_owner()
    state.set_room_mode(owner, "#den", "+b", "ba*")
    assert state.room_bans(owner, "#den") == [("ba*!*@*", "owner", 100.0)]
    bad, _ = join(state, "Bar")
    assert code_of(lambda: state.join_room(bad, "#den")) == ErrorCode.BANNED_FROM_ROOM
    state.set_room_mode(owner, "#den", "+b", "guest!*@*")
    assert code_of(lambda: state.say(guest, "hi", room="#den")) == ErrorCode.CANNOT_SEND
    state.set_room_mode(owner, "#den", "-b", "ba*")
    state.join_room(bad, "#den")
    assert ban_mask("Nick") == "Nick!*@*" and ban_mask("*!*@host") == "*!*@host"


def test_op_and_voice_follow_a_nick_change_and_end_on_leaving() -> None:
    state, owner, _, guest, _ = room_with_owner()
    state.set_room_mode(owner, "#den", "+v", "guest")
    state.rename(guest, "visitor")
    assert any(
        m["nick"] == "visitor" and m.get("voice") for m in state.room_view(owner, "#den").members
    )
    state.part_room(guest, "#den")
    state.join_room(guest, "#den")
    assert not any(m.get("voice") for m in state.room_view(owner, "#den").members)


def test_the_rich_request_and_the_plain_commands() -> None:
    payload = encode_message(SetRoomMode("#den", "+b", "bob"))
    assert parse_client_message(payload) == SetRoomMode("#den", "+b", "bob")
    assert parse_command("/mode +m", "#den") == SetRoomMode("#den", "+m")
    assert parse_command("/mode #x -b bob", "#den") == SetRoomMode("#x", "-b", "bob")
    assert parse_command("/voice bob", "#den") == SetRoomMode("#den", "+v", "bob")
    assert parse_command("/deop bob", "#den") == SetRoomMode("#den", "-o", "bob")
    with pytest.raises(RemoteProtocolError):
        parse_command("/mode m", "#den")


def test_plain_members_read_mode_changes() -> None:
    state = make_state()
    owner, _ = join(state, "owner")
    state.join_room(owner, "#den")
    tut, box = join(state, "tut", "plain")
    state.join_room(tut, "#den")
    state.set_room_mode(owner, "#den", "+m")
    assert box.texts()[-1] == "* owner set +m on #den"


# --- IRC ----------------------------------------------------------------------------------


def test_irc_mode_sets_lists_and_refuses_as_daemons_do() -> None:
    state = ChatState()
    op, obox = irc(state, "chanop", "multi-prefix")
    guest, gbox = irc(state, "baz")
    op.handle_frame(b"JOIN #chan")
    guest.handle_frame(b"JOIN #chan")
    op.handle_frame(b"MODE #chan")
    assert [x.split(" ")[1] for x in obox.lines()[-2:]] == ["324", "329"]
    assert obox.lines()[-2].endswith(" #chan :+n")
    op.handle_frame(b"MODE #chan +mt")
    assert gbox.lines()[-2:] == [
        ":chanop!u@game_chat MODE #chan +m",
        ":chanop!u@game_chat MODE #chan +t",
    ]
    guest.handle_frame(b"PRIVMSG #chan :hi")
    assert gbox.lines()[-1].split(" ")[1] == "404"
    guest.handle_frame(b"MODE #chan -m")
    assert gbox.lines()[-1].split(" ")[1] == "482"
    op.handle_frame(b"MODE #chan +v baz")
    op.handle_frame(b"NAMES #chan")
    assert any(x.endswith(":@chanop +baz") for x in obox.lines() if " 353 " in x)
    op.handle_frame(b"MODE #chan +b bar!*@*")
    op.handle_frame(b"MODE #chan +b")
    ban = [x for x in obox.lines() if " 367 " in x][-1].split(" ")
    assert ban[3:6] == ["#chan", "bar!*@*", "chanop!u@game_chat"]
    bar, bbox = irc(state, "Bar")
    bar.handle_frame(b"JOIN #chan")
    assert bbox.lines()[-1].split(" ")[1] == "474"
    op.handle_frame(b"MODE #chan +k key")
    assert obox.lines()[-1].split(" ")[1] == "472"


def test_irc_secret_and_external_modes() -> None:
    state = ChatState()
    first, fbox = irc(state, "first")
    second, sbox = irc(state, "second")
    first.handle_frame(b"JOIN #gen")
    first.handle_frame(b"MODE #gen +s")
    first.handle_frame(b"NAMES #gen")
    assert any(" 353 first @ #gen " in x for x in fbox.lines())  # RFC 2812: @ is secret
    second.handle_frame(b"LIST")
    assert not [x for x in sbox.lines() if " 322 " in x and "#gen" in x]
    second.handle_frame(b"NAMES #gen")
    assert sbox.lines()[-1].split(" ")[1] == "366"
    third, tbox = irc(state, "third")
    third.handle_frame(b"JOIN #gen")  # the names of the join mark it secret too
    assert any(" 353 third @ #gen :" in x for x in tbox.lines())
    second.handle_frame(b"PRIVMSG #gen :from outside")
    assert sbox.lines()[-1].split(" ")[1] == "404"
    first.handle_frame(b"MODE #gen -n")
    second.handle_frame(b"PRIVMSG #gen :from outside")
    second.settle()
    assert fbox.lines()[-1] == ":second!u@game_chat PRIVMSG #gen :from outside"


def test_a_room_holds_at_most_its_share_of_bans_and_masks_are_cut() -> None:
    state, owner, _, _, _ = room_with_owner()
    for n in range(100):
        state.set_room_mode(owner, "#den", "+b", f"n{n}")
    assert code_of(lambda: state.set_room_mode(owner, "#den", "+b", "one-more")) == "bad_message"
    state.set_room_mode(owner, "#den", "-b", "n0")
    state.set_room_mode(owner, "#den", "+b", "x" * 7000)  # cut like a reason (200 characters)
    assert max(len(mask) for mask, _, _ in state.room_bans(owner, "#den")) == 204
