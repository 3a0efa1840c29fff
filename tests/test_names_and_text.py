"""Nickname rules, confusable nicknames (TR39 skeletons) and chat-text cleaning."""

from __future__ import annotations

import time
import unicodedata
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from game_chat.protocol import unicode_tables
from game_chat.protocol.errors import ErrorCode, RemoteProtocolError
from game_chat.protocol.names import (
    MAX_NICK_MARKS,
    nick_key,
    nick_skeleton,
    skeleton,
    validate_nick,
)
from game_chat.protocol.text import (
    MAX_TEXT_MARKS,
    ZWJ,
    ZWNJ,
    clean_reason,
    clean_text,
    decode_utf8,
    strip_controls,
    validate_text,
)

ACUTE = "\u0301"

# --- nicknames: what is allowed -------------------------------------------------------------


@pytest.mark.parametrize(
    "nick",
    [
        "alice",
        "Bob_2",
        "x",
        "a-b",
        "Ørjan",
        "Σωκράτης",
        "Владимир",
        "山田",
        "नमस्ते",
        "a" * 24,
        "ကျော်",  # Burmese "Kyaw": 4 marks on one letter
        "སྒྲོལམ",  # Tibetan "Drolma": 3 stacked on one letter
        "שָּׁלוֹם",  # Hebrew with points: 3 on one letter
        "ที่",  # Thai: 2
        "x" + ACUTE * MAX_NICK_MARKS,  # (x has no precomposed form with an acute)
        "1" + ACUTE,  # a mark on a digit
    ],
)
def test_valid_nicks(nick: str) -> None:
    assert validate_nick(nick) == nick


def test_nicks_come_back_in_nfc() -> None:
    assert validate_nick("Zoe\u0308") == "Zoë"


@pytest.mark.parametrize(
    "nick",
    [
        "",
        "a" * 25,
        "has space",
        "tab\t",
        "bell\x07",
        "dot.name",
        "emoji😀",
        "\u0301accent-first",
        "_\u0301",  # a mark goes on a letter or digit
        "x" + ACUTE * (MAX_NICK_MARKS + 1),
        "z" + "\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308" * 20,  # zalgo
        # format characters (Cf): invisible, or reordering what is shown
        "zero\u200bwidth",
        "zw\u200cnj",
        "zw\u200dj",
        "lrm\u200e",
        "rlm\u200f",
        "alm\u061c",
        "rtl\u202eevil",
        "iso\u2067late",
        "\ufeffbom",
        "soft\u00adhyphen",
        "word\u2060joiner",
        "invisible\u2062times",
        "mongolian\u180e",
        "tag\U000e0041",
        # line and paragraph separators (Zl, Zp), other spaces (Zs)
        "line\u2028sep",
        "para\u2029sep",
        "nb\u00a0sp",
        "ideo\u3000space",
        # default-ignorable code points of other categories
        "\u3164",  # Hangul filler: renders as nothing
        "x\u3164",
        "x\u115f",
        "x\u1160",
        "x\uffa0",
        "alice\ufe0f",  # variation selector (a mark, but shows nothing here)
        "alice\ufe00",
        "alice\U000e0100",
        "ali\u034fce",  # combining grapheme joiner
        "\ud800lone",  # a lone surrogate
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


@given(st.text(st.characters(exclude_categories=())))
def test_validate_nick_answers_any_string_with_a_nick_or_nick_invalid(name: str) -> None:
    try:
        nick = validate_nick(name)
    except RemoteProtocolError as exc:
        assert exc.code == ErrorCode.NICK_INVALID
    else:
        assert nick == unicodedata.normalize("NFC", nick)
        assert validate_nick(nick) == nick
        assert nick_skeleton(nick)


# --- nicknames: the same, and confusable ---------------------------------------------------


def test_nick_comparison_ignores_case_and_width() -> None:
    assert nick_key("Alice") == nick_key("ALICE") == nick_key("\uff21lice")
    assert nick_key("straße") == nick_key("STRASSE")
    assert nick_key("alice") != nick_key("alicf")


CONFUSABLE_PAIRS = [
    ("alice", "\u0430lice"),  # Cyrillic а
    ("alice", "al\u0131ce"),  # dotless ı
    ("alice", "\u0391lice"),  # Greek capital Alpha
    ("Alice", "\u0391lice"),
    ("alice", "a1ice"),  # digit one
    ("alice", "aIice"),  # capital I
    ("alice", "\uff41lice"),  # fullwidth a (by NFKC after the skeleton)
    ("ALICE", "ALlCE"),  # capital I and small l look alike: the skeleton is taken first
    ("paypal", "\u0440\u0430\u0443\u0440\u0430l"),  # Cyrillic р а у
    ("mallory", "rnallory"),  # m and rn
    ("bob", "b0b"),  # zero and O, then case folding
    ("evan", "\u0435van"),  # Cyrillic е
    ("guest-1", "guest-l"),
    ("Ωmega", "\u2126mega"),  # OHM SIGN
]


@pytest.mark.parametrize(("one", "other"), CONFUSABLE_PAIRS)
def test_confusable_nicks_share_a_skeleton(one: str, other: str) -> None:
    assert nick_skeleton(validate_nick(one)) == nick_skeleton(validate_nick(other))


@pytest.mark.parametrize(
    ("one", "other"), [("alice", "bob"), ("alice", "alicf"), ("alice", "alice2"), ("ali", "all")]
)
def test_different_nicks_have_different_skeletons(one: str, other: str) -> None:
    assert nick_skeleton(one) != nick_skeleton(other)


def test_a_server_needs_both_keys() -> None:
    # Same nick, different look: ALICE shows a capital I, which TR39 takes for an l.
    assert nick_key("ALICE") == nick_key("alice")
    assert nick_skeleton("ALICE") != nick_skeleton("alice")
    # Same compatibility form, different look: a long s is the nick "s" but looks like an f.
    assert nick_key("\u017foo") == nick_key("soo")
    assert nick_skeleton("\u017foo") == nick_skeleton("foo")


def test_skeleton_is_tr39() -> None:
    assert unicode_tables.UNICODE_VERSION == "17.0.0"
    assert skeleton("m") == "rn"
    assert skeleton("1") == "l"
    assert skeleton("I") == "l"
    assert skeleton("0") == "O"
    assert skeleton("\u0430") == "a"
    assert skeleton("a\u200bb") == "ab"  # default ignorables go first
    assert skeleton("\u3164") == ""  # even one that confusables.txt maps
    assert skeleton("\u00e9") == "e\u0301"  # NFD
    assert skeleton("") == ""


# Look-alikes of lowercase ASCII letters, all from confusables.txt.
LOOKALIKES = {
    "a": "\u0430\u0251",  # Cyrillic а, Latin alpha
    "c": "\u0441\u03f2",
    "e": "\u0435",
    "i": "\u0456\u0131\u0269",
    "j": "\u0458",
    "l": "1I|\u0406\u04c0\u05c0",
    "o": "\u043e\u03bf\u0585\u0ed0",
    "p": "\u0440\u03c1",
    "s": "\u0455",
    "x": "\u0445\u00d7",  # Cyrillic х, multiplication sign
    "y": "\u0443",
}


def test_each_lookalike_has_the_skeleton_of_its_letter() -> None:
    for letter, lookalikes in LOOKALIKES.items():
        for lookalike in lookalikes:
            assert skeleton(lookalike) == skeleton(letter), (letter, lookalike)


@given(
    st.text(st.sampled_from("acdeijlmnopstxy"), min_size=1, max_size=16),
    st.randoms(use_true_random=False),
)
def test_swapping_in_lookalikes_keeps_the_skeleton(name: str, random: Random) -> None:
    disguised = "".join(
        random.choice(LOOKALIKES[ch]) if ch in LOOKALIKES and random.random() < 0.5 else ch
        for ch in name
    )
    assert nick_skeleton(disguised) == nick_skeleton(name)


@given(st.text(st.characters(exclude_categories=())))
def test_nick_skeleton_takes_any_string(name: str) -> None:
    assert isinstance(nick_skeleton(name), str)


# --- chat text ------------------------------------------------------------------------------


def test_clean_text_strips_controls_and_escape_sequences() -> None:
    assert clean_text("red \x1b[31mtext\x1b[0m") == "red [31mtext[0m"
    assert clean_text("a\tb\r\nc") == "a b c"
    assert clean_text("bidi \u202egnp.exe") == "bidi gnp.exe"
    assert clean_text("  padded  ") == "padded"
    assert clean_text("emoji 👍🏽 and ZWJ 👩\u200d💻") == "emoji 👍🏽 and ZWJ 👩\u200d💻"
    assert clean_text("c1 \x9b31m and del \x7f") == "c1 31m and del"


@pytest.mark.parametrize(
    "ch",
    [
        "\u200b",  # zero width space
        "\u200e",  # LRM
        "\u200f",  # RLM
        "\u061c",  # ALM
        "\ufeff",  # BOM
        "\u00ad",  # soft hyphen
        "\u2060",  # word joiner
        "\u2061",  # function application
        "\u2063",  # invisible separator
        "\u202a",  # LRE
        "\u202d",  # LRO
        "\u2066",  # LRI
        "\u2069",  # PDI
        "\u180e",  # Mongolian vowel separator
        "\ufff9",  # interlinear annotation anchor
        "\U000e0001",  # language tag
        "\U000e0041",  # tag A
        "\U000e007f",  # cancel tag, alone
        "\u3164",  # Hangul filler
        "\uffa0",  # halfwidth Hangul filler
        "\u115f",
        "\ud800",  # lone surrogate
        "\U000e0fff",  # reserved default ignorable
    ],
)
def test_invisible_characters_are_removed(ch: str) -> None:
    assert clean_text(f"a{ch}b {ch}c{ch}") == "ab c"


@pytest.mark.parametrize("brk", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\r\n\u2028"])
def test_every_line_break_becomes_one_space(brk: str) -> None:
    assert clean_text(f"one{brk}two") == "one two"


def test_a_blank_looking_message_is_empty() -> None:
    for blank in ("\u3164", "\u200b\u200b", "\u2028", "\u200d", "\ufeff \u2060"):
        with pytest.raises(RemoteProtocolError) as info:
            validate_text(blank, 100)
        assert info.value.code == ErrorCode.EMPTY_TEXT


@pytest.mark.parametrize(
    "text",
    [
        "👨\u200d👩\u200d👧",  # family
        "🏳\ufe0f\u200d🌈",  # rainbow flag: VS16 before the ZWJ
        "👩🏽\u200d💻",  # skin tone before the ZWJ
        "❤\ufe0f\u200d🔥",
        "🧑\u200d🤝\u200d🧑",
        "🏴\u200d☠\ufe0f",
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland
        "क्\u200dष",  # Devanagari: ZWJ after a virama
        "ශ්\u200dරී ලංකා",  # Sinhala "Sri Lanka"
        "क्\u200cष",  # ZWNJ after a virama
        "می\u200cخواهم",  # Persian: ZWNJ between joining letters
        "کتاب\u200cها",
        "لَ\u200cا",  # a mark between the letter and the ZWNJ
    ],
)
def test_joiners_stay_where_they_join(text: str) -> None:
    assert clean_text(f"see {text} here") == f"see {text} here"


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("a\u200db", "ab"),  # between Latin letters: invisible, nothing to join
        ("a\u200cb", "ab"),
        ("\u200d😀", "😀"),
        ("😀\u200d", "😀"),
        ("😀\u200d\u200d😀", "😀😀"),
        ("😀\u200d\u200b😀", "😀\u200d😀"),  # judged once the invisible ones are gone
        ("😀 \u200d😀", "😀 😀"),
        ("a😀\u200db", "a😀b"),
        ("ای\u200c", "ای"),  # nothing after it
        ("ا\u200cب", "اب"),  # alef joins nothing after it
        ("hidden\U000e0068\U000e0069 tags", "hidden tags"),
        ("🏴\U000e0067\U000e0062\U000e007f", "🏴\U000e0067\U000e0062\U000e007f"),  # 2: shortest
        ("🏴\U000e0067\U000e007f", "🏴"),
        ("🏴\U000e0067\U000e0062", "🏴"),  # no cancel tag: no flag
        ("🏴\U000e0047\U000e0042\U000e007f", "🏴"),  # capital tag letters: no flag
        ("x\U000e0067\U000e0062\U000e007f", "x"),  # not after a black flag
    ],
)
def test_joiners_and_tags_that_join_nothing_go(text: str, cleaned: str) -> None:
    assert clean_text(text) == cleaned


def test_keep_joiners_leaves_them_for_the_whole_line() -> None:
    assert strip_controls(ZWNJ, keep_joiners=True) == ZWNJ  # one keystroke on a Persian keyboard
    assert strip_controls(ZWNJ) == ""
    assert strip_controls("a\u200b\u200d", keep_joiners=True) == "a\u200d"


def test_combining_marks_are_capped() -> None:
    assert clean_text("a" + ACUTE * 999 + "b") == "a" + ACUTE * MAX_TEXT_MARKS + "b"
    zalgo = "".join(ch + "\u0301\u0316\u0302\u0317\u0303\u0318\u0304\u0319" for ch in "zalgo")
    cleaned = clean_text(zalgo)
    assert cleaned == "".join(ch + "\u0301\u0316\u0302\u0317\u0303\u0318" for ch in "zalgo")
    assert clean_text(ACUTE * 10) == ACUTE * MAX_TEXT_MARKS  # no letter to carry them
    assert clean_text("a" + "\U0001d167" * 10) == "a" + "\U0001d167" * MAX_TEXT_MARKS


def test_joiners_among_marks_do_not_restart_the_count() -> None:
    assert clean_text("a" + (ACUTE + ZWJ) * 10 + "b") == "a" + ACUTE * MAX_TEXT_MARKS + "b"
    assert clean_text("a" + (ACUTE + "\u200b") * 10) == "a" + ACUTE * MAX_TEXT_MARKS


@pytest.mark.parametrize("word", ["လျှော့", "မျှော်", "ကျော်", "སྒྲོལ", "ཧཱུྃ", "שָּׁלוֹם", "Vie\u0323\u0302t"])
def test_real_words_keep_their_marks(word: str) -> None:
    assert clean_text(word) == word


def test_clean_reason_does_not_leave_a_joiner_at_the_cut() -> None:
    assert clean_reason("ab👨\u200d👩", max_chars=4) == "ab👨"
    assert clean_reason("x" * 300) == "x" * 200


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


def test_hostile_lines_cost_linear_time() -> None:
    # Each of these took seconds or minutes with a backtracking rule; now about a millisecond.
    for hostile in (
        ZWNJ * 20_000,
        ZWJ * 20_000,
        "a" + ACUTE * 20_000,
        "a" + (ACUTE + ZWNJ) * 10_000,
        "😀\u200d" * 7_000,
        "\u200b" * 20_000,
    ):
        start = time.perf_counter()
        clean_text(hostile)
        assert time.perf_counter() - start < 1.0


# --- properties of the cleaning ---------------------------------------------------------------

# Characters the rules treat specially, so that generated text meets them often.
SPECIAL = [
    ZWJ, ZWNJ, ACUTE, "\u0316", "\u094d", "\u0dca", "\ufe0f", "\U0001f3fd", "\U000e0067",
    "\U000e0062", "\U000e007f", "\U000e0030", "\u200b", "\u202e", "\u2028", "\n", "\x1b",
    "\u3164", "\ud800", "\u00ad", " ", "a", "क", "ष", "ර", "ک", "م", "ی", "ا", "ل", "😀",
    "👨", "🏴", "☠", "\u103b", "\u0f92",
]  # fmt: skip
texts = st.one_of(
    st.text(st.characters(exclude_categories=())),
    st.lists(st.sampled_from(SPECIAL), max_size=40).map("".join),
)


@given(texts)
def test_cleaning_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once
    assert strip_controls(strip_controls(text)) == strip_controls(text)
    kept = strip_controls(text, keep_joiners=True)
    assert strip_controls(kept, keep_joiners=True) == kept


def _flag_tags(text: str) -> set[int]:
    """Positions of the tags that belong to a subdivision flag (🏴, tags, cancel tag)."""
    positions: set[int] = set()
    for i, ch in enumerate(text):
        if ch == "\U000e007f":
            j = i - 1
            while j >= 0 and "\U000e0030" <= text[j] <= "\U000e007a":
                j -= 1
            if j >= 0 and text[j] == "🏴":
                positions.update(range(j + 1, i + 1))
    return positions


@given(texts)
def test_cleaned_text_has_no_invisible_characters(text: str) -> None:
    cleaned = clean_text(text)
    flags = _flag_tags(cleaned)
    marks = 0
    for i, ch in enumerate(cleaned):
        category = unicodedata.category(ch)
        assert category not in ("Cc", "Cs", "Zl", "Zp")
        if category == "Cf":
            assert ch in (ZWJ, ZWNJ) or i in flags, f"{ch!r} left in {cleaned!r}"
        if ch in (ZWJ, ZWNJ):  # joins two visible things
            assert 0 < i < len(cleaned) - 1
            assert not cleaned[i - 1].isspace() and not cleaned[i + 1].isspace()
            assert cleaned[i - 1] not in (ZWJ, ZWNJ) and cleaned[i + 1] not in (ZWJ, ZWNJ)
        elif category[0] == "M":
            marks += 1
            assert marks <= MAX_TEXT_MARKS
        else:
            marks = 0
        assert ch not in "\u3164\uffa0\u115f\u1160"
    assert len(cleaned) <= len(text)


def test_a_space_in_a_nick_is_named_in_words() -> None:
    with pytest.raises(RemoteProtocolError) as refused:
        validate_nick("a b")
    assert refused.value.message.endswith("only: no spaces")
    with pytest.raises(RemoteProtocolError) as refused:
        validate_nick("x!")
    assert refused.value.message.endswith("only: not '!'")
