"""Session: dialect detection and each frame's handling, without sockets."""

from __future__ import annotations

import json

from fakes import RecordingMailbox

from game_chat.protocol.errors import ErrorCode, RemoteProtocolError
from game_chat.server.session import Session
from game_chat.server.state import ChatState


def new_session(state: ChatState) -> tuple[Session, RecordingMailbox]:
    box = RecordingMailbox()
    return Session(state, box, "127.0.0.1:1"), box


def hello(nick: str, **extra: object) -> bytes:
    return json.dumps({"type": "hello", "nick": nick, "version": 1, **extra}).encode()


def test_keepalive_does_not_start_a_session() -> None:
    session, box = new_session(ChatState())
    assert session.handle_frame(b"")
    assert not session.registered
    assert box.frames == []


def test_rich_hello_then_chat() -> None:
    state = ChatState()
    session, box = new_session(state)
    assert session.handle_frame(hello("alice"))
    assert session.registered and session.dialect == "rich"
    assert box.types() == ["welcome", "joined"]
    assert session.handle_frame(b'{"type":"chat","id":9,"text":"hi"}')
    session.settle()  # the ack comes once the line is stored (the connection waits so too)
    assert box.messages()[-1]["type"] == "ack"
    assert box.messages()[-1]["id"] == 9


def test_refused_hello_can_be_retried() -> None:
    state = ChatState()
    new_session(state)[0].handle_frame(hello("alice"))
    session, box = new_session(state)
    assert session.handle_frame(hello("ALICE"))
    assert box.messages()[-1]["code"] == ErrorCode.NICK_TAKEN
    assert session.handle_frame(b'{"type":"chat","text":"sneaky"}')
    assert box.messages()[-1]["code"] == ErrorCode.NOT_REGISTERED
    assert session.handle_frame(hello("alice2"))
    assert box.types()[-2:] == ["welcome", "joined"]


def test_bad_version_is_refused() -> None:
    session, box = new_session(ChatState())
    session.handle_frame(hello("alice", version=99))
    assert box.messages()[-1]["code"] == ErrorCode.BAD_VERSION
    assert session.member is None


def test_rich_errors_keep_the_connection() -> None:
    session, box = new_session(ChatState())
    session.handle_frame(hello("alice"))
    for payload in (b"{bad json", b"\xff\xfe", b'{"type":"chat","text":"' + b"x" * 1001 + b'"}'):
        assert session.handle_frame(payload)
    codes = [m["code"] for m in box.messages()[2:]]
    assert codes == [ErrorCode.BAD_JSON, ErrorCode.BAD_UTF8, ErrorCode.TEXT_TOO_LONG]


def test_rich_ping_and_goodbye() -> None:
    state = ChatState()
    session, box = new_session(state)
    session.handle_frame(hello("alice"))
    session.handle_frame(b'{"type":"ping","token":"t"}')
    assert box.messages()[-1] == {"type": "pong", "token": "t"}
    assert not session.handle_frame(b'{"type":"bye","reason":"dinner"}')
    session.end()
    assert state.nicks() == []


def test_goodbye_reason_reaches_the_others() -> None:
    state = ChatState()
    other, other_box = new_session(state)
    other.handle_frame(hello("bob"))
    session, _ = new_session(state)
    session.handle_frame(hello("alice"))
    session.handle_frame(b'{"type":"bye","reason":"dinner"}')
    session.end()
    assert other_box.messages()[-1]["reason"] == "dinner"


def test_any_other_first_frame_makes_a_plain_guest() -> None:
    state = ChatState()
    watcher, watcher_box = new_session(state)
    watcher.handle_frame(hello("watcher"))
    session, box = new_session(state)
    assert session.handle_frame(b"hello everyone")
    session.settle()
    assert session.dialect == "plain"
    assert box.texts() == ["Message was Sent!"]  # no welcome: tutorial clients expect this
    assert watcher_box.messages()[-1]["text"] == "hello everyone"
    assert watcher_box.messages()[-1]["nick"].startswith("guest-")


def test_json_that_is_not_a_hello_is_plain_text() -> None:
    session, _ = new_session(ChatState())
    session.handle_frame(b'{"type":"chat","text":"x"}')
    assert session.dialect == "plain"


def test_plain_nick_and_commands() -> None:
    state = ChatState()
    session, box = new_session(state)
    session.handle_frame(b"hi")
    assert session.handle_frame(b"/nick carol")
    assert box.texts()[-1].endswith("is now known as carol")
    assert session.handle_frame(b"/nick bad!name")
    assert box.texts()[-1].startswith("ERROR nick_invalid:")
    assert session.handle_frame(b"/dance")
    assert box.texts()[-1].startswith("ERROR unknown_command:")
    assert session.handle_frame(b"/who")
    assert box.texts()[-2:] == ["* Users in #lobby: carol", "* You are carol"]
    assert session.handle_frame(b"//dance")
    session.settle()
    assert box.texts()[-1] == "Message was Sent!"


def test_plain_disconnect_commands() -> None:
    for command in (b"Client Disconnected", b"!DISCONNECT"):
        state = ChatState()
        session, _ = new_session(state)
        session.handle_frame(b"hi")
        assert not session.handle_frame(command)
        session.end()
        assert state.nicks() == []


def test_plain_disconnect_as_first_frame() -> None:
    session, _ = new_session(ChatState())
    assert not session.handle_frame(b"Client Disconnected")


def test_plain_errors_are_text() -> None:
    session, box = new_session(ChatState())
    session.handle_frame(b"hi")
    assert session.handle_frame(b"\xff")
    assert box.texts()[-1].startswith("ERROR bad_utf8:")


def test_fatal_rejection_sets_the_leave_reason() -> None:
    session, box = new_session(ChatState())
    session.reject(RemoteProtocolError(ErrorCode.BAD_HEADER, "bad header", fatal=True))
    assert box.messages()[-1] == {
        "type": "error",
        "code": "bad_header",
        "message": "bad header",
        "fatal": True,
        "id": None,
    }
    assert session.leave_reason == "bad header"


def test_refused_chat_names_its_client_id() -> None:
    session, box = new_session(ChatState())
    session.handle_frame(hello("alice"))
    session.handle_frame(b'{"type":"chat","id":"m7","text":"' + b"x" * 1001 + b'"}')
    assert box.messages()[-1]["id"] == "m7"
    session.handle_frame(b'{"type":"ping","token":"t"}')
    assert box.messages()[-1] == {"type": "pong", "token": "t"}


def test_a_chat_over_the_rate_limit_names_its_client_id() -> None:
    box = RecordingMailbox()
    session = Session(ChatState(), box, "127.0.0.1:1", clock=lambda: 0.0)  # time stands still
    session.handle_frame(hello("alice"))  # a hello costs 1 of the 20 lines of the burst
    for n in range(20):
        assert session.handle_frame(b'{"type":"chat","id":%d,"text":"hi"}' % n)
    session.settle()
    error = box.messages()[-1]
    assert (error["code"], error["fatal"], error["id"]) == (ErrorCode.RATE_LIMITED, False, 19)
    assert error["message"].startswith("slow down: too many messages; try again in ")
    assert [m["id"] for m in box.messages() if m["type"] == "ack"] == list(range(19))


def test_lone_surrogates_are_refused_not_crashing() -> None:
    state = ChatState()
    other, _ = new_session(state)
    other.handle_frame(hello("bob"))
    session, box = new_session(state)
    session.handle_frame(hello("alice"))
    for payload in (
        b'{"type":"chat","text":"x\\ud800"}',
        b'{"type":"ping","token":"\\udfff"}',
        b'{"type":"bye","reason":"\\ud800"}',
    ):
        assert session.handle_frame(payload)
        assert box.messages()[-1]["code"] == ErrorCode.BAD_MESSAGE


def test_leave_reason_is_cleaned_and_capped() -> None:
    state = ChatState()
    other, other_box = new_session(state)
    other.handle_frame(hello("bob"))
    session, _ = new_session(state)
    session.handle_frame(b"hi")
    session.handle_frame(b"/quit \x1b[2J\xe2\x80\xae" + b"y" * 500)
    session.end()
    reason = other_box.messages()[-1]["reason"]
    assert reason == "[2J" + "y" * 197


def test_rename_keeps_place_and_same_nick_answers_only_the_asker() -> None:
    state = ChatState()
    first, box = new_session(state)
    first.handle_frame(hello("ann"))
    second, _ = new_session(state)
    second.handle_frame(hello("bea"))
    other_box = second.mailbox
    assert isinstance(other_box, RecordingMailbox)
    before = len(other_box.frames)
    first.handle_frame(b'{"type":"nick","nick":"ann"}')
    assert box.messages()[-1]["old"] == box.messages()[-1]["new"] == "ann"
    assert len(other_box.frames) == before  # nobody else hears of it
    first.handle_frame(b'{"type":"nick","nick":"Anna"}')
    assert state.nicks() == ["Anna", "bea"]


def test_goodbye_for_unregistered_peer() -> None:
    session, box = new_session(ChatState())
    session.say_goodbye("server shutting down")
    assert box.messages() == [{"type": "bye", "reason": "server shutting down"}]


def test_no_joins_once_shutting_down() -> None:
    state = ChatState()
    state.close_all("server shutting down")
    session, box = new_session(state)
    assert not session.handle_frame(hello("late"))
    assert box.messages()[-1]["code"] == ErrorCode.SHUTTING_DOWN


def test_every_client_message_type_has_a_handler() -> None:
    from game_chat.protocol.messages import CLIENT_TYPES
    from game_chat.server.session import _HANDLERS

    assert set(CLIENT_TYPES.values()) == set(_HANDLERS)
