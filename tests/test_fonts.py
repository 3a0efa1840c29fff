"""FontChain: per-character fallback, since SDL_ttf draws a box for glyphs its font lacks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import bidi
import pygame
import pygame.freetype
import pytest
from arabic_reshaper.letters import LETTERS_ARABIC

from game_chat.client.ui import shaping
from game_chat.client.ui.fonts import (
    BOLD_FONT,
    EMOJI_FONT,
    FALLBACK_FONT,
    REGULAR_FONT,
    FontChain,
    load_font,
    system_fallback_paths,
)
from game_chat.client.ui.shaping import display_text, has_rtl
from game_chat.client.ui.theme import Theme

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
ARABIC = "مرحبا بكم في اللعبة"  # "welcome to the game"
HEBREW = "שלום לכולם"  # "hello everyone"


@pytest.fixture(autouse=True)
def fonts() -> Iterator[None]:
    pygame.display.init()
    pygame.font.init()
    pygame.freetype.init()
    yield


@pytest.fixture
def chain() -> FontChain:
    """The bundled chain only: tests stay independent of the fonts this machine has."""
    return FontChain(REGULAR_FONT, 16, system_fallbacks=False)


def _system_font_covering(ch: str, bitmap_ok: bool = False) -> str | None:
    for path in system_fallback_paths():
        try:
            probe = pygame.freetype.Font(path, 16)
            if not probe.scalable:
                if not bitmap_ok:
                    continue
                probe = pygame.freetype.Font(path, 0)
            if probe.get_metrics(ch)[0] is not None:
                return path
        except (pygame.error, OSError, ValueError):
            continue
    return None


def test_greek_and_cyrillic_come_from_the_primary_font_in_one_run(chain: FontChain) -> None:
    text = "Ελληνικά и Кириллица"
    assert chain.runs(text) == [(str(REGULAR_FONT), text)]
    assert chain.size(text) == pygame.font.Font(REGULAR_FONT, 16).size(text)


def test_symbols_the_primary_font_lacks_fall_back_to_dejavu(chain: FontChain) -> None:
    runs = chain.runs("ok ✓ → ★ done")
    assert [path for path, _ in runs] == [
        str(REGULAR_FONT),
        str(FALLBACK_FONT),
        str(REGULAR_FONT),
        str(FALLBACK_FONT),
        str(REGULAR_FONT),
        str(FALLBACK_FONT),
        str(REGULAR_FONT),
    ]
    assert "".join(run for _, run in runs) == "ok ✓ → ★ done"
    assert chain.font_path_for("✓") == str(FALLBACK_FONT)
    assert chain.font_path_for("Ж") == str(REGULAR_FONT)


def test_mixed_text_renders_as_wide_as_it_measures_at_the_primary_height(
    chain: FontChain,
) -> None:
    text = "check ✓ Ελλάδα → ok"
    width, height = chain.size(text)
    assert height == chain.get_height() == pygame.font.Font(REGULAR_FONT, 16).get_height()
    opaque = chain.render(text, True, WHITE, BLACK)
    assert opaque.get_size() == (width, height)
    assert not opaque.get_flags() & pygame.SRCALPHA
    transparent = chain.render(text, True, WHITE)
    assert transparent.get_size() == (width, height)
    assert transparent.get_flags() & pygame.SRCALPHA
    assert transparent.get_at((0, 0)).a == 0  # corner: background stays transparent


def test_the_fallback_glyph_is_drawn_not_a_box(chain: FontChain) -> None:
    # DejaVu's check mark and the primary font's "missing glyph" box look different.
    drawn = pygame.image.tobytes(chain.render("✓", True, WHITE, BLACK), "RGB")
    primary = pygame.font.Font(REGULAR_FONT, 16)
    box = pygame.image.tobytes(primary.render("✓", True, WHITE, BLACK), "RGB")
    assert drawn != box


def test_invisible_selectors_and_joiners_never_show_as_boxes(chain: FontChain) -> None:
    assert "".join(run for _, run in chain.runs("a\ufe0fb")) == "ab"
    assert "".join(run for _, run in chain.runs("\U000e0041x")) == "x"
    assert chain.size("a\ufe0fb") == chain.size("ab")


def test_characters_no_font_has_use_the_primary_box_without_a_search(chain: FontChain) -> None:
    assert chain.font_path_for("\ue000") == str(REGULAR_FONT)  # private use
    assert chain.paths == [str(REGULAR_FONT), str(FALLBACK_FONT)]


def test_empty_text_and_nul_characters_are_safe(chain: FontChain) -> None:
    assert chain.size("")[1] == chain.get_height()
    assert chain.render("", True, WHITE).get_height() == chain.get_height()
    assert chain.render("a\x00b", True, WHITE, BLACK).get_width() > 0


def test_metrics_are_the_primary_fonts(chain: FontChain) -> None:
    primary = pygame.font.Font(REGULAR_FONT, 16)
    assert chain.get_linesize() == primary.get_linesize()
    assert chain.get_ascent() == primary.get_ascent()
    assert chain.get_descent() == primary.get_descent()


def test_load_font_follows_the_theme() -> None:
    bold = load_font(Theme(font_size=20), bold=True)
    assert bold.paths[0] == str(BOLD_FONT)
    assert bold.get_height() == pygame.font.Font(BOLD_FONT, 20).get_height()
    custom = load_font(Theme(font_path=str(FALLBACK_FONT), font_size=12))
    assert custom.paths[0] == str(FALLBACK_FONT)
    assert load_font(Theme()).paths[:2] == [str(REGULAR_FONT), str(FALLBACK_FONT)]


def test_cjk_falls_back_to_an_installed_cjk_font() -> None:
    expected = _system_font_covering("漢")
    if expected is None:
        pytest.skip("no CJK font installed on this machine (e.g. fonts-noto-cjk)")
    chain = load_font(Theme())
    path = chain.font_path_for("漢")
    assert path not in (str(REGULAR_FONT), str(FALLBACK_FONT))
    assert pygame.freetype.Font(path, 16).get_metrics("漢")[0] is not None
    runs = chain.runs("漢字 ok")
    assert runs[0] == (path, "漢字") or runs[0][1].startswith("漢")
    assert chain.render("漢字 ok", True, WHITE, BLACK).get_width() == chain.size("漢字 ok")[0]


def test_colour_emoji_are_scaled_to_the_line_height() -> None:
    emoji = next(
        (p for p in system_fallback_paths() if "emoji" in os.path.basename(p).lower()), None
    )
    if emoji is None or _system_font_covering("😀", bitmap_ok=True) is None:
        pytest.skip("no emoji font installed on this machine (e.g. fonts-noto-color-emoji)")
    chain = load_font(Theme())
    path = chain.font_path_for("😀")
    assert "emoji" in os.path.basename(path).lower()
    surface = chain.render("hi 😀", True, WHITE)
    assert surface.get_height() == chain.get_height()
    assert surface.get_width() == chain.size("hi 😀")[0]
    assert surface.get_width() < 3 * chain.get_height()  # not the ~136 px bitmap


def test_assets_are_found_in_the_checkout() -> None:
    from game_chat.client.assets import assets_dir

    assert (assets_dir() / "fonts" / "NotoSans-Regular.ttf").is_file()
    assert (assets_dir() / "icon.png").is_file()


# --- right-to-left text --------------------------------------------------------------------


def _is_presentation_form(ch: str) -> bool:
    return 0xFB50 <= ord(ch) <= 0xFDFF or 0xFE70 <= ord(ch) <= 0xFEFE


def test_arabic_is_joined_into_contextual_forms() -> None:
    shown = display_text("مرحبا")
    assert len(shown) == 5
    assert all(_is_presentation_form(ch) for ch in shown)
    # Initial meem, medial reh... not five isolated letters.
    isolated = "".join(LETTERS_ARABIC[ch][0] for ch in "مرحبا")
    assert shown != isolated[::-1]
    assert "\ufee3" in shown  # ARABIC LETTER MEEM INITIAL FORM


def test_joined_arabic_draws_narrower_than_isolated_letters(chain: FontChain) -> None:
    isolated = "".join(LETTERS_ARABIC.get(ch, (ch,))[0] for ch in ARABIC)
    assert chain.size(ARABIC)[0] < chain.size(isolated)[0]


def test_lam_alef_becomes_one_ligature() -> None:
    assert display_text("لا") == "\ufefb"  # ARABIC LIGATURE LAM WITH ALEF ISOLATED FORM


def test_pure_right_to_left_text_is_reversed() -> None:
    assert display_text("שלום") == "םולש"
    assert display_text(HEBREW) == HEBREW[::-1]
    # The first word is drawn rightmost.
    assert display_text("مرحبا بكم") == display_text("بكم") + " " + display_text("مرحبا")


def test_mixed_line_keeps_latin_first_and_reverses_only_the_hebrew() -> None:
    assert display_text("hello שלום") == "hello םולש"
    assert display_text("hello שלום world") == "hello םולש world"


@pytest.mark.skipif(
    tuple(int(part) for part in bidi.VERSION.split(".")[:2]) < (0, 5),
    reason="python-bidi 0.4's pure-Python algorithm misorders brackets next to numbers",
)
def test_a_right_to_left_line_puts_latin_and_numbers_in_reading_order() -> None:
    # The line is right-to-left (its first letter is): "123" and "(hi)" stay readable.
    assert display_text("שלום (hi) 123") == "123 (hi) םולש"


def test_brackets_in_right_to_left_text_are_mirrored() -> None:
    assert display_text("(שלום)") == "(םולש)"
    assert display_text("hello (שלום) world") == "hello (םולש) world"


def test_latin_text_takes_the_fast_path_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_shaping(text: str) -> str:
        raise AssertionError(f"shaped: {text!r}")

    monkeypatch.setattr(shaping, "_to_display", no_shaping)
    monkeypatch.setattr(shaping, "_cached_display", no_shaping)
    for text in ("hello world", "Ελληνικά и Кириллица", "ok ✓ → ★ 😀", ""):
        assert not has_rtl(text)
        assert display_text(text) is text


def test_arabic_harakat_and_tatweel_are_safe(chain: FontChain) -> None:
    voweled = "مَرْحَبًا"
    assert display_text(voweled) == display_text("مرحبا")  # marks dropped, not misplaced
    assert chain.render("كـــتاب", True, WHITE).get_width() == chain.size("كـــتاب")[0]


def test_hebrew_points_sit_on_their_letters(chain: FontChain) -> None:
    # Drawn over the letters, the points add no width (a misplaced one sticks out at an end by
    # its whole width; a pixel of ink past the last letter is fine).
    pointed, plain = chain.size("שָׁלוֹם עוֹלָם")[0], chain.size("שלום עולם")[0]
    assert plain <= pointed <= plain + 2


@pytest.mark.parametrize(
    "text", [ARABIC, HEBREW, "hello שלום", "gg مرحبا 123 שלום!", "(שלום) 😀 مرحبا"]
)
def test_right_to_left_text_measures_as_wide_as_it_draws(chain: FontChain, text: str) -> None:
    width, height = chain.size(text)
    assert chain.render(text, True, WHITE).get_size() == (width, height)
    assert chain.render(text, True, WHITE, BLACK).get_size() == (width, height)


def test_runs_are_in_display_order(chain: FontChain) -> None:
    runs = chain.runs("hello שלום")
    assert runs == [(str(REGULAR_FONT), "hello "), (str(FALLBACK_FONT), "םולש")]


def test_every_arabic_form_the_reshaper_writes_has_a_bundled_glyph(chain: FontChain) -> None:
    # Each letter alone, first, in the middle and last in a word, and the lam-alef ligatures:
    # nothing may come out as the primary font's box (Noto Sans has no Arabic). Letters that
    # DejaVu Sans lacks altogether (Urdu's heh goal...) are left to the system fonts.
    dejavu = pygame.freetype.Font(FALLBACK_FONT, 16)
    letters = [ch for ch in LETTERS_ARABIC if dejavu.get_metrics(ch)[0] is not None]
    assert len(letters) > 60
    words = [f"{ch} ب{ch}ب ب{ch} {ch}ب" for ch in letters]
    words += ["لا لأ لإ لآ بلا", "الله محمد"]
    for word in words:
        for ch in display_text(word):
            if ch != " ":
                assert chain.font_path_for(ch) == str(FALLBACK_FONT), (word, hex(ord(ch)))


# --- emoji ---------------------------------------------------------------------------------


def test_emoji_fall_back_to_the_bundled_emoji_font(chain: FontChain) -> None:
    # ``chain`` has no system fonts: as on a machine without any emoji font.
    for ch in ("😀", "👍", "🎮", "🔥", "⭐", "⌚"):
        assert chain.font_path_for(ch) == str(EMOJI_FONT), ch
    assert EMOJI_FONT.is_file()
    runs = chain.runs("gg 👍")
    assert runs == [(str(REGULAR_FONT), "gg "), (str(EMOJI_FONT), "👍")]


def test_emoji_are_drawn_not_boxes(chain: FontChain) -> None:
    primary = pygame.font.Font(REGULAR_FONT, 16)
    for ch in ("😀", "👍"):
        drawn = chain.render(ch, True, WHITE, BLACK)
        assert drawn.get_size() == chain.size(ch)
        assert drawn.get_height() == chain.get_height()
        pixels = pygame.image.tobytes(drawn, "RGB")
        assert pixels.strip(b"\x00"), "blank"
        box = primary.render(ch, True, WHITE, BLACK)
        assert drawn.get_size() != box.get_size() or pixels != pygame.image.tobytes(box, "RGB")


def test_without_an_emoji_font_emoji_are_the_primary_box() -> None:
    bare = FontChain(REGULAR_FONT, 16, system_fallbacks=False, emoji_path=None)
    assert bare.font_path_for("🎮") == str(REGULAR_FONT)
    assert str(EMOJI_FONT) not in bare.paths


def test_the_bundled_emoji_font_is_opened_only_when_an_emoji_needs_it(chain: FontChain) -> None:
    chain.render("hello ✓ שלום 漢", True, WHITE)
    assert str(EMOJI_FONT) not in chain.paths
    chain.render("🔥", True, WHITE)
    assert chain.paths[-1] == str(EMOJI_FONT)


def test_a_system_colour_emoji_font_comes_before_the_bundled_one() -> None:
    colour = _system_font_covering("😀", bitmap_ok=True)
    emoji = next(
        (p for p in system_fallback_paths() if "emoji" in os.path.basename(p).lower()), None
    )
    if emoji is None or colour is None:
        pytest.skip("no emoji font installed on this machine (e.g. fonts-noto-color-emoji)")
    assert load_font(Theme()).font_path_for("😀") != str(EMOJI_FONT)
