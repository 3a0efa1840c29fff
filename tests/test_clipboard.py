"""Clipboards: the in-process one, and the system one's choices and fallbacks (with fake scraps)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pygame
import pytest

from game_chat.client.ui import clipboard as clipboard_module
from game_chat.client.ui.clipboard import (
    SCRAP_UTF8_TEXT,
    MemoryClipboard,
    SystemClipboard,
    decode_scrap_bytes,
    make_clipboard,
)


@pytest.fixture
def display() -> Iterator[None]:
    """The display module initialised (dummy driver), quit again only if this fixture started it."""
    was_up = pygame.display.get_init()
    pygame.display.init()
    try:
        yield
    finally:
        if not was_up:
            pygame.display.quit()


@pytest.fixture
def window(display: None) -> pygame.Surface:
    return pygame.display.set_mode((8, 8))


class FakeCeScrap:
    """pygame-ce's new API: put_text / get_text."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.text = ""
        self.calls = 0

    def put_text(self, text: str) -> None:
        self.calls += 1
        if self.fail:
            raise pygame.error("no clipboard")
        self.text = text

    def get_text(self) -> str:
        self.calls += 1
        if self.fail:
            raise pygame.error("no clipboard")
        return self.text


class FakeOldScrap:
    """pygame 2's API: init first, then bytes by MIME type."""

    def __init__(self, put_fails: bool = False, init_fails: bool = False) -> None:
        self.put_fails, self.init_fails = put_fails, init_fails
        self.initialised = False
        self.data: dict[str, bytes] = {}

    def init(self) -> None:
        if self.init_fails:
            raise pygame.error("scrap needs a window")
        self.initialised = True

    def get_init(self) -> bool:
        return self.initialised

    def put(self, kind: str, data: bytes) -> None:
        assert self.initialised
        if self.put_fails:
            raise pygame.error("content could not be placed in clipboard.")
        self.data[kind] = bytes(data)

    def get(self, kind: str) -> bytes | None:
        assert self.initialised
        return self.data.get(kind)


def system(scrap: Any, is_ce: bool) -> SystemClipboard:
    return SystemClipboard(scrap, is_ce=is_ce)


def test_memory_clipboard_round_trip() -> None:
    clip = MemoryClipboard()
    assert clip.get_text() == ""
    clip.set_text("héllo 日本")
    assert clip.get_text() == "héllo 日本"


def test_ce_api_is_used_when_the_display_is_up(display: None) -> None:
    scrap = FakeCeScrap()
    clip = system(scrap, is_ce=True)
    clip.set_text("hi ✓")
    assert scrap.text == "hi ✓"
    scrap.text = "from another app"
    assert clip.get_text() == "from another app"
    assert clip.uses_system


def test_old_api_inits_scrap_and_uses_the_utf8_type(window: pygame.Surface) -> None:
    scrap = FakeOldScrap()
    clip = system(scrap, is_ce=False)
    clip.set_text("née")
    assert scrap.initialised
    assert scrap.data == {SCRAP_UTF8_TEXT: "née".encode()}
    scrap.data[SCRAP_UTF8_TEXT] = b"ok\x00"
    assert clip.get_text() == "ok"


def test_old_api_waits_for_a_window_before_init(display: None) -> None:
    if pygame.display.get_surface() is not None:
        pytest.skip("another test left a window open")
    scrap = FakeOldScrap()
    clip = system(scrap, is_ce=False)
    clip.set_text("kept")
    assert not scrap.initialised
    assert clip.get_text() == "kept"


def test_without_a_display_the_memory_copy_serves() -> None:
    if pygame.display.get_init():
        pytest.skip("the display was left initialised by another test")
    scrap = FakeCeScrap()
    clip = system(scrap, is_ce=True)
    clip.set_text("local")
    assert clip.get_text() == "local"
    assert scrap.calls == 0
    assert not clip.uses_system


@pytest.mark.parametrize(
    "scrap",
    [FakeCeScrap(fail=True), FakeOldScrap(put_fails=True), FakeOldScrap(init_fails=True)],
    ids=["ce-raises", "old-put-fails", "old-init-fails"],
)
def test_failures_fall_back_to_memory_without_raising(window: pygame.Surface, scrap: Any) -> None:
    clip = system(scrap, is_ce=isinstance(scrap, FakeCeScrap))
    clip.set_text("copied")
    assert clip.get_text() == "copied"
    assert not clip.uses_system
    clip.set_text("again")  # not tried again once broken
    assert clip.get_text() == "again"


def test_read_failure_falls_back(display: None) -> None:
    scrap = SimpleNamespace(put_text=lambda text: None, get_text=lambda: 1 / 0)
    clip = system(scrap, is_ce=True)
    clip.set_text("mine")
    assert clip.get_text() == "mine"
    assert not clip.uses_system


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (None, ""),
        (b"", ""),
        ("héllo".encode(), "héllo"),
        ("日本\x00".encode(), "日本"),
        ("hi".encode("utf-16-le") + b"\x00\x00", "hi"),
        ("日本".encode("utf-16-le") + b"\x00\x00", "日本"),
        (b"bad \xff byte", "bad \ufffd byte"),
    ],
)
def test_decode_scrap_bytes(data: bytes | None, text: str) -> None:
    assert decode_scrap_bytes(data) == text


def test_real_pygame_clipboard_never_raises(window: pygame.Surface) -> None:
    # pygame-ce: the system clipboard works headless; pygame 2: put fails under the dummy
    # driver and the in-process copy takes over. Either way copy then paste gives the text back.
    clip = make_clipboard()
    clip.set_text("round trip ✓")
    assert clip.get_text() == "round trip ✓"


def test_make_clipboard_without_scrap_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clipboard_module, "_import_scrap", lambda: None)
    assert isinstance(make_clipboard(), MemoryClipboard)
