"""The input line: the pure editing logic, then the widget driven by synthetic pygame events."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pygame
import pytest

from game_chat.client.ui.clipboard import MemoryClipboard
from game_chat.client.ui.completion import TabCompleter, matching, word_start
from game_chat.client.ui.input_box import (
    CARET_WIDTH,
    InputBox,
    InputHistory,
    TextEditBuffer,
    sanitize_input,
    scroll_to_show,
    word_left,
    word_right,
)
from game_chat.client.ui.theme import Theme

FONT_PATH = Path(__file__).resolve().parents[1] / "assets" / "fonts" / "NotoSans-Regular.ttf"
CTRL = pygame.KMOD_LCTRL
SHIFT = pygame.KMOD_LSHIFT

# ------------------------------------------------------------------ pure logic: no events


def buffer_with(text: str, cursor: int | None = None, max_chars: int = 1000) -> TextEditBuffer:
    buf = TextEditBuffer(max_chars)
    buf.set_text(text)
    if cursor is not None:
        buf.move_to(cursor)
    return buf


@pytest.mark.parametrize(
    ("text", "pos", "left", "right"),
    [
        ("hello world", 11, 6, 11),
        ("hello world", 6, 0, 11),
        ("hello world", 5, 0, 11),
        ("hello world", 0, 0, 5),
        ("hi,  there", 4, 2, 10),  # punctuation is a word of its own
        ("hi,  there", 2, 0, 3),
        ("", 0, 0, 0),
        ("née café", 8, 4, 8),
    ],
)
def test_word_motion(text: str, pos: int, left: int, right: int) -> None:
    assert word_left(text, pos) == left
    assert word_right(text, pos) == right


def test_sanitize_turns_line_breaks_into_spaces_and_drops_controls() -> None:
    assert sanitize_input("a\r\nb\nc\td") == "a b c d"
    assert sanitize_input("x\x1b[31my\u202e") == "x[31my"


def test_buffer_typing_and_cursor_moves() -> None:
    buf = TextEditBuffer()
    buf.insert("helo")
    buf.move_left()
    buf.insert("l")
    assert (buf.text, buf.cursor) == ("hello", 4)
    buf.home()
    assert buf.cursor == 0
    buf.move_left()
    assert buf.cursor == 0
    buf.end()
    buf.move_right()
    assert buf.cursor == 5


def test_buffer_backspace_and_delete_by_character_and_word() -> None:
    buf = buffer_with("one two three", 7)
    buf.backspace()
    assert (buf.text, buf.cursor) == ("one tw three", 6)
    buf.backspace(word=True)
    assert (buf.text, buf.cursor) == ("one  three", 4)
    buf.delete()
    assert buf.text == "one three"
    buf.delete(word=True)
    assert (buf.text, buf.cursor) == ("one ", 4)
    buf.delete()
    assert buf.text == "one "
    buf.home()
    buf.backspace()
    assert buf.text == "one "


def test_buffer_shift_selection_and_typing_replaces_it() -> None:
    buf = buffer_with("hello world", 11)
    buf.move_left(select=True, word=True)
    assert buf.selection == (6, 11)
    assert buf.selected_text == "world"
    buf.insert("there")
    assert (buf.text, buf.selection, buf.cursor) == ("hello there", None, 11)


def test_buffer_arrow_without_shift_collapses_selection() -> None:
    buf = buffer_with("abcdef", 2)
    buf.move_right(select=True)
    buf.move_right(select=True)
    buf.move_left()
    assert (buf.cursor, buf.selection) == (2, None)
    buf.move_right(select=True)
    buf.move_right()
    assert (buf.cursor, buf.selection) == (3, None)


def test_buffer_selection_shrinks_back_to_nothing() -> None:
    buf = buffer_with("abc", 1)
    buf.move_right(select=True)
    buf.move_left(select=True)
    assert buf.selection is None


def test_buffer_select_all_and_delete() -> None:
    buf = buffer_with("abc")
    buf.select_all()
    assert buf.selection == (0, 3)
    buf.backspace()
    assert (buf.text, buf.cursor) == ("", 0)
    assert not buf.delete_selection()


def test_buffer_caps_insertions_at_max_chars() -> None:
    buf = TextEditBuffer(max_chars=5)
    buf.insert("abc")
    buf.insert("defgh")
    assert buf.text == "abcde"
    buf.move_to(1)
    buf.move_to(3, select=True)
    buf.insert("XYZW")  # the selection frees two characters of room
    assert (buf.text, buf.cursor) == ("aXYde", 3)


def test_lowering_max_chars_cuts_the_text() -> None:
    buf = buffer_with("abcdef")
    buf.move_to(2)
    buf.move_to(6, select=True)
    buf.max_chars = 4
    assert (buf.text, buf.cursor, buf.selection) == ("abcd", 4, (2, 4))
    with pytest.raises(ValueError):
        buf.max_chars = 0


def test_history_walks_back_and_returns_to_the_draft() -> None:
    history = InputHistory()
    for line in ("one", "two", "two"):
        history.add(line)
    assert len(history) == 2  # a repeat is stored once
    assert history.newer() is None
    assert history.older("dra") == "two"
    assert history.older("two") == "one"
    assert history.older("one") is None
    assert history.newer() == "two"
    assert history.newer() == "dra"
    assert history.newer() is None


def test_history_keeps_only_the_newest_lines() -> None:
    history = InputHistory(limit=2)
    for line in ("a", "b", "c"):
        history.add(line)
    assert history.older("") == "c"
    assert history.older("") == "b"
    assert history.older("") is None


NICKS = ("alice", "Albert", "bob", "alice")


def test_matching_is_case_insensitive_sorted_and_unique() -> None:
    assert matching("AL", NICKS) == ["Albert", "alice"]
    assert word_start("hi al", 5) == 3


def test_completer_nick_at_line_start_gets_colon_and_cycles() -> None:
    completer = TabCompleter()
    first = completer.complete("al", 2, NICKS)
    assert first is not None
    assert (first.text, first.cursor) == ("Albert: ", 8)
    second = completer.complete(first.text, first.cursor, NICKS)
    assert second is not None and second.text == "alice: "
    third = completer.complete(second.text, second.cursor, NICKS)
    assert third is not None and third.text == "Albert: "


def test_completer_mid_line_keeps_text_after_cursor() -> None:
    done = TabCompleter().complete("hi B and", 4, NICKS)
    assert done is not None
    assert (done.text, done.cursor) == ("hi bob  and", 7)


def test_completer_commands_only_at_line_start() -> None:
    commands = ["/me", "msg", "/join"]
    completer = TabCompleter()
    first = completer.complete("/m", 2, NICKS, commands)
    assert first is not None and first.text == "/me "
    second = completer.complete(first.text, first.cursor, NICKS, commands)
    assert second is not None and second.text == "/msg "
    assert TabCompleter().complete("x /m", 4, NICKS, commands) is None


def test_completer_no_match_and_edit_restarts_cycle() -> None:
    completer = TabCompleter()
    assert completer.complete("zed", 3, NICKS) is None
    assert completer.complete("", 0, NICKS) is None
    first = completer.complete("b", 1, NICKS)
    assert first is not None and first.text == "bob: "
    # The line changed since: a fresh completion of the new word, not the next candidate.
    again = completer.complete("bob: al", 7, NICKS)
    assert again is not None and again.text == "bob: Albert "


def test_scroll_to_show_moves_minimally_and_fills_the_view() -> None:
    assert scroll_to_show(50, 100, 200, 0) == 0
    assert scroll_to_show(300, 300, 200, 0) == 300 + CARET_WIDTH - 200
    assert scroll_to_show(150, 300, 200, 102) == 102  # visible: unchanged
    assert scroll_to_show(90, 300, 200, 102) == 90 - 200 // 3  # off the left edge
    assert scroll_to_show(120, 150, 200, 40) == 0  # text now fits: no blank space


# ------------------------------------------------------------------ the widget, through events


@pytest.fixture(scope="module")
def font() -> pygame.font.Font:
    pygame.font.init()
    return pygame.font.Font(str(FONT_PATH), 16)


def text_input(text: str) -> pygame.event.Event:
    return pygame.event.Event(pygame.TEXTINPUT, {"text": text})


def editing(text: str, start: int | None = None) -> pygame.event.Event:
    start = len(text) if start is None else start
    return pygame.event.Event(pygame.TEXTEDITING, {"text": text, "start": start, "length": 0})


def key(k: int, mod: int = 0) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN, {"key": k, "mod": mod, "unicode": "", "scancode": 0})


def click(pos: tuple[int, int], button: int = 1) -> pygame.event.Event:
    return pygame.event.Event(pygame.MOUSEBUTTONDOWN, {"pos": pos, "button": button})


@dataclass
class Harness:
    box: InputBox
    clipboard: MemoryClipboard
    sent: list[str] = field(default_factory=list)

    def type(self, text: str) -> None:
        for ch in text:
            assert self.box.handle_event(text_input(ch))

    def press(self, k: int, mod: int = 0) -> bool:
        return self.box.handle_event(key(k, mod))


@pytest.fixture
def make(font: pygame.font.Font) -> Callable[..., Harness]:
    def build(
        width: int = 300,
        nicks: Iterable[str] = (),
        font_: object = None,
        **kwargs: object,
    ) -> Harness:
        sent: list[str] = []
        clipboard = MemoryClipboard()
        box = InputBox(
            pygame.Rect(10, 20, width, 32),
            Theme(),
            font_ or font,  # type: ignore[arg-type]
            clipboard,
            sent.append,
            completions=lambda: nicks,
            **kwargs,  # type: ignore[arg-type]
        )
        return Harness(box, clipboard, sent)

    return build


def test_typing_comes_from_textinput_only(make: Callable[..., Harness]) -> None:
    h = make()
    h.type("hé ")
    assert h.box.handle_event(text_input("日本"))
    typed_key = pygame.event.Event(pygame.KEYDOWN, {"key": pygame.K_x, "mod": 0, "unicode": "x"})
    assert h.box.handle_event(typed_key)  # eaten so the game ignores it, but adds no text
    assert (h.box.text, h.box.cursor) == ("hé 日本", 5)


def test_editing_keys(make: Callable[..., Harness]) -> None:
    h = make()
    h.type("abcd")
    h.press(pygame.K_LEFT)
    h.press(pygame.K_BACKSPACE)
    assert (h.box.text, h.box.cursor) == ("abd", 2)
    h.press(pygame.K_HOME)
    h.press(pygame.K_DELETE)
    assert (h.box.text, h.box.cursor) == ("bd", 0)
    h.press(pygame.K_RIGHT)
    h.type("c")
    h.press(pygame.K_END)
    h.type("e")
    assert (h.box.text, h.box.cursor) == ("bcde", 4)


def test_ctrl_word_motion_and_deletion(make: Callable[..., Harness]) -> None:
    h = make()
    h.type("say hello world")
    h.press(pygame.K_LEFT, CTRL)
    assert h.box.cursor == 10
    h.press(pygame.K_BACKSPACE, CTRL)
    assert (h.box.text, h.box.cursor) == ("say world", 4)
    h.press(pygame.K_DELETE, CTRL)
    assert h.box.text == "say "
    h.press(pygame.K_HOME)
    h.press(pygame.K_RIGHT, CTRL)
    assert h.box.cursor == 3


def test_shift_selects_and_typing_replaces(make: Callable[..., Harness]) -> None:
    h = make()
    h.type("hello world")
    h.press(pygame.K_LEFT, SHIFT | CTRL)
    assert h.box.selection == (6, 11)
    h.press(pygame.K_HOME, SHIFT)
    assert h.box.selection == (0, 11)
    h.type("X")
    assert (h.box.text, h.box.selection) == ("X", None)


@pytest.mark.parametrize("mod", [CTRL, pygame.KMOD_RCTRL, pygame.KMOD_LMETA, pygame.KMOD_GUI])
def test_select_all_with_ctrl_or_cmd(make: Callable[..., Harness], mod: int) -> None:
    h = make()
    h.type("abc")
    assert h.press(pygame.K_a, mod)
    assert h.box.selection == (0, 3)
    h.press(pygame.K_BACKSPACE)
    assert h.box.text == ""


def test_copy_cut_paste(make: Callable[..., Harness]) -> None:
    h = make()
    h.type("hello world")
    h.press(pygame.K_c, CTRL)  # nothing selected: the clipboard is left alone
    assert h.clipboard.get_text() == ""
    h.press(pygame.K_LEFT, CTRL | SHIFT)
    h.press(pygame.K_c, CTRL)
    assert (h.clipboard.get_text(), h.box.text) == ("world", "hello world")
    h.press(pygame.K_x, CTRL)
    assert (h.clipboard.get_text(), h.box.text) == ("world", "hello ")
    h.press(pygame.K_HOME)
    h.press(pygame.K_v, CTRL)
    assert (h.box.text, h.box.cursor) == ("worldhello ", 5)


def test_paste_turns_newlines_into_spaces_and_replaces_selection(
    make: Callable[..., Harness],
) -> None:
    h = make()
    h.type("xx")
    h.press(pygame.K_a, CTRL)
    h.clipboard.set_text("line one\r\nline two\n")
    h.press(pygame.K_v, pygame.KMOD_META)
    assert h.box.text == "line one line two "


def test_paste_and_typing_are_capped_at_max_chars(make: Callable[..., Harness]) -> None:
    h = make(max_chars=8)
    h.type("abc")
    h.clipboard.set_text("0123456789")
    h.press(pygame.K_v, CTRL)
    assert h.box.text == "abc01234"
    h.type("z")
    assert h.box.text == "abc01234"
    h.box.max_chars = 4  # e.g. the server's welcome says less
    assert (h.box.text, h.box.max_chars) == ("abc0", 4)


def test_counter_appears_near_the_limit(make: Callable[..., Harness]) -> None:
    h = make(max_chars=10)
    h.type("12345678")
    assert h.box.counter_text == ""
    h.type("9")
    assert h.box.counter_text == "9/10"


def test_enter_submits_and_clears_blank_is_not_sent(make: Callable[..., Harness]) -> None:
    h = make()
    h.press(pygame.K_RETURN)
    h.type("   ")
    h.press(pygame.K_KP_ENTER)
    assert (h.sent, h.box.text) == ([], "")
    h.type(" hi ")
    assert h.press(pygame.K_RETURN)
    assert (h.sent, h.box.text, h.box.cursor) == ([" hi "], "", 0)


def test_escape_clears_and_passes_through_when_empty(make: Callable[..., Harness]) -> None:
    h = make()
    h.type("draft")
    assert h.press(pygame.K_ESCAPE)
    assert h.box.text == ""
    assert not h.press(pygame.K_ESCAPE)  # the app may close the chat on it
    assert h.press(pygame.K_UP)  # the cleared draft is not lost: Up brings it back
    assert h.box.text == "draft"
    assert h.sent == []


def test_history_with_up_and_down_keeps_the_draft(make: Callable[..., Harness]) -> None:
    h = make()
    for line in ("first", "second"):
        h.type(line)
        h.press(pygame.K_RETURN)
    h.type("typing")
    h.press(pygame.K_UP)
    assert (h.box.text, h.box.cursor) == ("second", 6)
    h.press(pygame.K_UP)
    h.press(pygame.K_UP)
    assert h.box.text == "first"
    h.press(pygame.K_DOWN)
    assert h.box.text == "second"
    h.press(pygame.K_DOWN)
    assert h.box.text == "typing"
    h.press(pygame.K_DOWN)
    assert h.box.text == "typing"


def test_tab_completes_and_cycles_nicks(make: Callable[..., Harness]) -> None:
    h = make(nicks=["alice", "Albert", "bob"])
    h.type("AL")
    assert h.press(pygame.K_TAB)
    assert h.box.text == "Albert: "
    h.press(pygame.K_TAB)
    assert (h.box.text, h.box.cursor) == ("alice: ", 7)
    h.type("hi b")
    h.press(pygame.K_TAB)
    assert h.box.text == "alice: hi bob "
    h.press(pygame.K_TAB)  # a single candidate stays
    assert h.box.text == "alice: hi bob "


def test_tab_completes_commands(make: Callable[..., Harness]) -> None:
    h = make(nicks=["mallory"], commands=["/me", "/msg", "nick"])
    h.type("/m")
    h.press(pygame.K_TAB)
    assert h.box.text == "/me "
    h.press(pygame.K_TAB)
    assert h.box.text == "/msg "
    h.type("ma")
    h.press(pygame.K_TAB)
    assert h.box.text == "/msg mallory "


def test_tab_with_another_key_in_between_starts_over(make: Callable[..., Harness]) -> None:
    h = make(nicks=["ann", "anna"])
    h.type("an")
    h.press(pygame.K_TAB)
    assert h.box.text == "ann: "
    h.press(pygame.K_LEFT)
    h.press(pygame.K_RIGHT)
    h.press(pygame.K_TAB)  # the word before the cursor is now "" (after ": "): no completion
    assert h.box.text == "ann: "


def test_ime_composition_is_shown_then_committed(make: Callable[..., Harness]) -> None:
    h = make()
    h.type("ab")
    h.press(pygame.K_LEFT)
    caret_before = h.box.caret_rect().x
    assert h.box.handle_event(editing("にほ", start=1))
    assert (h.box.text, h.box.composition) == ("ab", "にほ")
    font = h.box.font
    assert h.box.caret_rect().x == caret_before + font.size("aに")[0] - font.size("a")[0]
    h.press(pygame.K_BACKSPACE)  # the IME's key while composing: not ours
    h.press(pygame.K_LEFT)
    assert (h.box.text, h.box.cursor) == ("ab", 1)
    h.box.handle_event(text_input("日本"))
    assert (h.box.text, h.box.composition, h.box.cursor) == ("a日本b", "", 3)


def test_key_that_ends_a_composition_is_swallowed_in_that_frame(
    make: Callable[..., Harness],
) -> None:
    h = make()
    h.box.handle_event(editing("にほん"))
    h.box.handle_event(text_input("日本"))
    h.press(pygame.K_RETURN)  # the Enter that committed the composition
    assert (h.sent, h.box.text) == ([], "日本")
    h.box.update(0.016)
    h.press(pygame.K_RETURN)
    assert h.sent == ["日本"]
    h.type("ab")
    h.box.handle_event(editing("x"))
    h.box.handle_event(editing(""))  # cancelled by the Backspace that follows
    h.press(pygame.K_BACKSPACE)
    assert (h.box.text, h.box.composition) == ("ab", "")
    h.box.update(0.016)
    h.press(pygame.K_BACKSPACE)
    assert h.box.text == "a"


def test_unfocused_box_ignores_keys_and_text(make: Callable[..., Harness]) -> None:
    h = make(focused=False)
    assert not h.box.handle_event(text_input("a"))
    assert not h.press(pygame.K_BACKSPACE)
    assert h.box.text == ""


def test_keys_without_text_pass_through(make: Callable[..., Harness]) -> None:
    h = make()
    assert not h.press(pygame.K_F1)
    assert not h.press(pygame.K_b, CTRL)
    assert h.press(pygame.K_w)  # comes back as TEXTINPUT: the game must not see it


def test_click_places_cursor_and_drag_selects(make: Callable[..., Harness]) -> None:
    h = make(focused=False)
    h.box.text = "hello world"
    x0 = h.box.rect.x + h.box.theme.padding
    font = h.box.font
    assert h.box.handle_event(click((x0 + font.size("hello")[0] + 1, 30)))
    assert h.box.focused and h.box.cursor == 5
    h.box.handle_event(click((x0, 30)))
    motion = {"pos": (x0 + font.size("hello wo")[0] - 1, 30), "rel": (0, 0), "buttons": (1, 0, 0)}
    assert h.box.handle_event(pygame.event.Event(pygame.MOUSEMOTION, motion))
    assert h.box.selection == (0, 8)
    up = pygame.event.Event(pygame.MOUSEBUTTONUP, {"pos": (0, 0), "button": 1})
    assert h.box.handle_event(up)
    assert not h.box.handle_event(pygame.event.Event(pygame.MOUSEMOTION, motion))


def test_click_outside_unfocuses(make: Callable[..., Harness]) -> None:
    h = make()
    assert not h.box.handle_event(click((0, 0)))
    assert not h.box.focused


def assert_caret_visible(box: InputBox) -> None:
    caret = box.caret_rect()
    inner = box.rect.inflate(-2 * box.theme.padding, 0)
    assert inner.left <= caret.left and caret.right <= inner.right


def test_horizontal_scroll_keeps_the_cursor_visible(make: Callable[..., Harness]) -> None:
    h = make(width=120)
    h.type("the quick brown fox jumps over the lazy dog")
    assert h.box.scroll > 0
    assert_caret_visible(h.box)
    for _ in range(len(h.box.text)):
        h.press(pygame.K_LEFT)
        assert_caret_visible(h.box)
    assert h.box.scroll == 0
    h.press(pygame.K_END)
    assert_caret_visible(h.box)
    h.box.set_rect(pygame.Rect(10, 20, 80, 32))
    assert_caret_visible(h.box)
    h.press(pygame.K_a, CTRL)
    h.press(pygame.K_BACKSPACE)
    assert h.box.scroll == 0


def test_scroll_makes_room_for_the_counter(make: Callable[..., Harness]) -> None:
    h = make(width=120, max_chars=20)
    h.type("x" * 19)
    assert h.box.counter_text == "19/20"
    caret = h.box.caret_rect()
    counter_w = h.box.font.size("19/20")[0]
    assert caret.right <= h.box.rect.right - h.box.theme.padding - counter_w


class CountingFont:
    """A real font that counts renders, to check the surface cache."""

    def __init__(self, font: pygame.font.Font) -> None:
        self._font = font
        self.renders: list[str] = []

    def size(self, text: str) -> tuple[int, int]:
        return self._font.size(text)

    def render(self, text: str, antialias: bool, color: object, background: object = None):
        self.renders.append(text)
        return self._font.render(text, antialias, color, background)  # type: ignore[arg-type]

    def get_height(self) -> int:
        return self._font.get_height()

    def get_ascent(self) -> int:
        return self._font.get_ascent()

    def get_linesize(self) -> int:
        return self._font.get_linesize()


def state_of(box: InputBox) -> tuple[object, ...]:
    return (
        box.text,
        box.cursor,
        box.selection,
        box.composition,
        box.scroll,
        box.focused,
        box.caret_rect(),
        box.counter_text,
        box._layout,
        box._blink,
        dict(box._surfaces),
    )


def test_draw_changes_nothing_and_does_not_render_text(
    make: Callable[..., Harness], font: pygame.font.Font
) -> None:
    counting = CountingFont(font)
    h = make(font_=counting, width=100, max_chars=20)
    h.type("hello there world")
    h.press(pygame.K_LEFT, SHIFT)
    h.box.handle_event(editing("ka", 1))
    h.box.update(0.1)
    surface = pygame.Surface((200, 80))
    before = state_of(h.box)
    renders = len(counting.renders)
    h.box.draw(surface)
    h.box.draw(surface)
    assert state_of(h.box) == before
    assert len(counting.renders) == renders
    assert surface.get_at((h.box.rect.x + 1, h.box.rect.y + 1)) != pygame.Color(0, 0, 0)


def test_text_surface_is_rendered_only_when_the_text_changes(
    make: Callable[..., Harness], font: pygame.font.Font
) -> None:
    counting = CountingFont(font)
    h = make(font_=counting)
    h.type("abc")
    assert counting.renders == ["a", "ab", "abc"]
    h.press(pygame.K_LEFT)
    h.press(pygame.K_HOME, SHIFT)
    for _ in range(3):
        h.box.update(0.3)
    assert counting.renders == ["a", "ab", "abc"]
    h.box.handle_event(editing("x"))  # at the cursor, which Shift+Home left at the start
    assert counting.renders[-1] == "xabc"


def test_caret_blinks_and_shows_again_after_a_key(make: Callable[..., Harness]) -> None:
    h = make()
    surface = pygame.Surface((400, 80))
    h.box.update(0.6)  # caret off
    h.box.draw(surface)
    caret = h.box.caret_rect()
    assert surface.get_at(caret.center)[:3] != h.box.theme.cursor
    h.press(pygame.K_LEFT)  # any key restarts the blink with the caret on
    h.box.draw(surface)
    assert surface.get_at(caret.center)[:3] == h.box.theme.cursor


def test_placeholder_only_when_empty_and_unfocused(make: Callable[..., Harness]) -> None:
    h = make(placeholder="Press Enter to chat", focused=False)
    plain = make(focused=False)
    a, b = pygame.Surface((400, 80)), pygame.Surface((400, 80))
    h.box.draw(a)
    plain.box.draw(b)
    assert pygame.image.tobytes(a, "RGB") != pygame.image.tobytes(b, "RGB")
    h.box.focused = True
    h.box.draw(a)
    plain.box.focused = True
    plain.box.draw(b)
    assert pygame.image.tobytes(a, "RGB") == pygame.image.tobytes(b, "RGB")


def test_update_places_the_ime_window_at_the_caret(
    make: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[pygame.Rect] = []
    monkeypatch.setattr(pygame.key, "set_text_input_rect", lambda r: calls.append(pygame.Rect(r)))
    h = make()
    h.type("abc")
    h.box.draw(pygame.Surface((400, 80)))
    assert calls == []  # never from draw
    h.box.update(0.016)
    h.box.update(0.016)
    assert calls == [h.box.caret_rect()]
    h.type("d")
    h.box.update(0.016)
    assert calls[-1] == h.box.caret_rect() and len(calls) == 2


def test_mask_hides_the_text_but_keeps_it() -> None:
    pygame.init()
    font = pygame.font.Font("assets/fonts/NotoSans-Regular.ttf", 16)
    box = InputBox(
        pygame.Rect(0, 0, 300, 30), Theme(), font, MemoryClipboard(), lambda _: None, mask="•"
    )
    box.handle_event(pygame.event.Event(pygame.TEXTINPUT, {"text": "secret"}))
    box.update(0.0)
    assert box.text == "secret"
    assert box._layout.caret_x == font.size("••••••")[0]


def test_the_wheel_never_takes_the_keys_away(make: Callable[..., Harness]) -> None:
    """A game's overlay gives keys back on a click elsewhere, but not on a scroll."""
    h = make()
    assert h.box.focused
    for button in (4, 5):
        assert not h.box.handle_event(click((500, 500), button))
        assert h.box.focused
    assert not h.box.handle_event(click((500, 500), 1))
    assert not h.box.focused  # a real click elsewhere still does


def test_keep_focus_keeps_the_keys_whatever_is_clicked(make: Callable[..., Harness]) -> None:
    h = make(keep_focus=True)
    assert not h.box.handle_event(click((500, 500), 1))
    assert h.box.focused
    h.type("still here")
    assert h.box.text == "still here"
