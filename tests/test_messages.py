"""Rich-dialect messages: JSON form, parsing and rejection of malformed payloads."""

from __future__ import annotations

import json

import pytest

from game_chat.protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from game_chat.protocol.messages import (
    Ack,
    ChatMessage,
    ErrorReply,
    Goodbye,
    Hello,
    Ping,
    SendChat,
    UserLeft,
    Welcome,
    encode_message,
    is_hello,
    parse_client_message,
    parse_server_message,
)
from game_chat.protocol.plain import render_plain


@pytest.mark.parametrize(
    "message",
    [
        Welcome("alice", "srv", 1, {"max_text_chars": 1000}, ("alice", "bob")),
        ChatMessage(7, "bob", "hi ✓", 1700000000.25),
        Ack("c-1", 7, 1700000000.25),
        Ack(None, 8, 1.0),
        UserLeft("bob", "quit", 2.0),
        ErrorReply(ErrorCode.NICK_TAKEN, "taken", False),
        Goodbye("server shutting down"),
    ],
)
def test_server_messages_round_trip(message: object) -> None:
    assert parse_server_message(encode_message(message)) == message


@pytest.mark.parametrize(
    "message", [Hello("alice"), Hello("bob", 1, "pw"), SendChat("hi", "id1"), Ping(3)]
)
def test_client_messages_round_trip(message: object) -> None:
    assert parse_client_message(encode_message(message)) == message


def test_wire_form_is_compact_json_with_type() -> None:
    payload = encode_message(ChatMessage(1, "a", "hi", 1.5))
    assert payload == b'{"type":"chat","id":1,"nick":"a","text":"hi","ts":1.5,"room":"#lobby"}'
    assert b"action" not in payload and b"history" not in payload  # false flags stay off


def test_optional_fields_take_defaults() -> None:
    assert parse_client_message(b'{"type":"hello","nick":"a"}') == Hello("a", 1, None)
    assert parse_client_message(b'{"type":"chat","text":"x"}') == SendChat("x", None)


def test_unknown_keys_are_ignored() -> None:
    assert parse_client_message(b'{"type":"chat","text":"x","extra":1}') == SendChat("x")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff", ErrorCode.BAD_UTF8),
        (b"{not json", ErrorCode.BAD_JSON),
        (b"[1, 2]", ErrorCode.BAD_JSON),
        (b'{"type":"warp"}', ErrorCode.BAD_MESSAGE),
        (b'{"no_type":1}', ErrorCode.BAD_MESSAGE),
        (b'{"type":"chat"}', ErrorCode.BAD_MESSAGE),
        (b'{"type":"chat","text":5}', ErrorCode.BAD_MESSAGE),
        (b'{"type":"hello","nick":"a","version":true}', ErrorCode.BAD_MESSAGE),
        (b'{"type":"chat","text":"x","id":[1]}', ErrorCode.BAD_MESSAGE),
        (b'{"type":"chat","text":"x","id":"' + b"i" * 65 + b'"}', ErrorCode.BAD_MESSAGE),
    ],
)
def test_malformed_payloads_are_remote_errors(payload: bytes, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_client_message(payload)
    assert info.value.code == code
    assert not info.value.fatal


def test_encoding_a_non_message_is_our_mistake() -> None:
    with pytest.raises(LocalProtocolError):
        encode_message({"type": "chat"})


def test_is_hello() -> None:
    assert is_hello(json.dumps({"type": "hello", "nick": "a"}).encode())
    assert is_hello(b' {"type":"hello"}')
    assert not is_hello(b'{"type":"chat","text":"x"}')
    assert not is_hello(b"hello")
    assert not is_hello(b"{oops")


def test_plain_rendering() -> None:
    assert render_plain(ChatMessage(1, "bob", "hi", 0)) == "bob: hi"
    assert render_plain(Ack("x", 1, 0)) == "Message was Sent!"
    assert render_plain(UserLeft("bob", "quit", 0)) == "* bob left (quit)"
    assert render_plain(ErrorReply("nick_taken", "taken")) == "ERROR nick_taken: taken"
