"""FontChain: per-character fallback, since SDL_ttf draws a box for glyphs its font lacks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pygame
import pygame.freetype
import pytest

from game_chat.client.ui.fonts import (
    BOLD_FONT,
    FALLBACK_FONT,
    REGULAR_FONT,
    FontChain,
    load_font,
    system_fallback_paths,
)
from game_chat.client.ui.theme import Theme

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


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
