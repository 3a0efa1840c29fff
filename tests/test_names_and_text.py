"""Nickname rules and chat-text cleaning."""

from __future__ import annotations

import pytest

from game_chat.protocol.errors import ErrorCode, RemoteProtocolError
from game_chat.protocol.names import nick_key, validate_nick
from game_chat.protocol.text import clean_text, decode_utf8, validate_text


@pytest.mark.parametrize(
    "nick",
    ["alice", "Bob_2", "x", "a-b", "Ørjan", "Σωκράτης", "Владимир", "山田", "नमस्ते", "a" * 24],
)
def test_valid_nicks(nick: str) -> None:
    assert validate_nick(nick) == nick


@pytest.mark.parametrize(
    "nick",
    [
        "",
        "a" * 25,
        "has space",
        "tab\t",
        "bell\x07",
        "zero\u200bwidth",
        "\u3164",  # Hangul filler: renders as nothing
        "x\u3164",
        "\u0301accent-first",
        "emoji😀",
        "dot.name",
        "rtl\u202eevil",
    ],
)
def test_invalid_nicks(nick: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        validate_nick(nick)
    assert info.value.code == ErrorCode.NICK_INVALID
    assert not info.value.fatal


def test_nick_limit_is_configurable() -> None:
    assert validate_nick("abcdef", max_chars=6) == "abcdef"
    with pytest.raises(RemoteProtocolError):
        validate_nick("abcdefg", max_chars=6)


def test_nick_comparison_ignores_case_and_width() -> None:
    assert nick_key("Alice") == nick_key("ALICE") == nick_key("\uff21lice")
    assert nick_key("straße") == nick_key("STRASSE")
    assert nick_key("alice") != nick_key("alicf")


def test_clean_text_strips_controls_and_escape_sequences() -> None:
    assert clean_text("red \x1b[31mtext\x1b[0m") == "red [31mtext[0m"
    assert clean_text("a\tb\r\nc") == "a b c"
    assert clean_text("bidi \u202egnp.exe") == "bidi gnp.exe"
    assert clean_text("  padded  ") == "padded"
    assert clean_text("emoji 👍🏽 and ZWJ 👩\u200d💻") == "emoji 👍🏽 and ZWJ 👩\u200d💻"


def test_validate_text_limits() -> None:
    assert validate_text("x" * 10, 10) == "x" * 10
    with pytest.raises(RemoteProtocolError) as info:
        validate_text("x" * 11, 10)
    assert info.value.code == ErrorCode.TEXT_TOO_LONG
    with pytest.raises(RemoteProtocolError) as info:
        validate_text(" \x1b ", 10)
    assert info.value.code == ErrorCode.EMPTY_TEXT


def test_decode_utf8_error_is_not_fatal() -> None:
    assert decode_utf8("ü".encode()) == "ü"
    with pytest.raises(RemoteProtocolError) as info:
        decode_utf8(b"ok \xff")
    assert info.value.code == ErrorCode.BAD_UTF8
    assert not info.value.fatal
