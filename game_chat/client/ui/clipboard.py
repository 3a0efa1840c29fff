"""Clipboard access for the input line: the system clipboard when pygame can reach it.

pygame and pygame-ce differ here (see /work/shared/PERFORMANCE.md):

- pygame-ce 2.2+: ``pygame.scrap.put_text(str)`` / ``get_text() -> str``; they only need the
  display module initialised and work under the dummy video driver.
- pygame 2.x: ``pygame.scrap.init()`` (after a display exists), then ``put(type, bytes)`` /
  ``get(type) -> bytes | None``. The type that maps to the system's UTF-8 text on every backend
  is "text/plain;charset=utf-8" (``pygame.SCRAP_TEXT`` is plain "text/plain", which the SDL2
  backend does not accept). ``put`` fails under the dummy driver.

Whatever fails, :class:`SystemClipboard` keeps working with an in-process copy, so copy and paste
inside the chat never break and never raise.
"""

from __future__ import annotations

import logging
import warnings
from types import ModuleType
from typing import Protocol

import pygame

log = logging.getLogger(__name__)

#: The scrap type for UTF-8 text that pygame's X11, Windows and SDL2 scrap backends understand.
SCRAP_UTF8_TEXT = "text/plain;charset=utf-8"


class Clipboard(Protocol):
    """Where Ctrl+C puts text and Ctrl+V takes it from."""

    def get_text(self) -> str:
        """The clipboard's text, or "" when it holds none."""
        ...

    def set_text(self, text: str) -> None:
        """Replace the clipboard's content with ``text``."""
        ...


class MemoryClipboard:
    """A clipboard private to this process: tests, and the fallback when there is no system one."""

    def __init__(self, text: str = "") -> None:
        self._text = text

    def get_text(self) -> str:
        """The text last set."""
        return self._text

    def set_text(self, text: str) -> None:
        """Remember ``text``."""
        self._text = text


def decode_scrap_bytes(data: bytes | None) -> str:
    """Text from old pygame's ``scrap.get``: UTF-8, or UTF-16-LE on some Windows builds."""
    if not data:
        return ""
    # Windows may hand back UTF-16-LE with a NUL terminator for the utf-8 type (pygame-ce
    # issue 3320). UTF-8 text has no NUL bytes, so a NUL inside, or a two-byte terminator on
    # an even length, gives UTF-16 away.
    body = data.rstrip(b"\x00")
    terminator = len(data) - len(body)
    if b"\x00" in body or (terminator >= 2 and len(data) % 2 == 0):
        try:
            return data.decode("utf-16-le").rstrip("\x00")
        except UnicodeDecodeError:
            pass
    return body.decode("utf-8", errors="replace")


class SystemClipboard:
    """The system clipboard through ``pygame.scrap``, falling back to a :class:`MemoryClipboard`.

    Usable before the display exists (it then uses the in-process copy) and under the dummy video
    driver. Once the system clipboard has failed with a display up, it is not tried again.
    """

    def __init__(self, scrap: ModuleType | None = None, is_ce: bool | None = None) -> None:
        """``scrap`` and ``is_ce`` exist for tests; by default they come from the running pygame."""
        self._scrap = scrap if scrap is not None else _import_scrap()
        self._is_ce = bool(getattr(pygame, "IS_CE", False)) if is_ce is None else is_ce
        self._memory = MemoryClipboard()
        self._broken = self._scrap is None

    @property
    def uses_system(self) -> bool:
        """True while the system clipboard is reachable (a display exists and nothing failed)."""
        return not self._broken and self._ready()

    def get_text(self) -> str:
        """The system clipboard's text, or the in-process copy when the system one is unusable."""
        if not self.uses_system:
            return self._memory.get_text()
        try:
            return self._system_get()
        except Exception as exc:  # pygame.error, or anything a platform backend throws
            self._give_up("read", exc)
            return self._memory.get_text()

    def set_text(self, text: str) -> None:
        """Put ``text`` on the system clipboard; always keep an in-process copy as well."""
        self._memory.set_text(text)
        if not self.uses_system:
            return
        try:
            self._system_put(text)
        except Exception as exc:
            self._give_up("write", exc)

    def _ready(self) -> bool:
        """Whether the scrap calls can be made now; initialises old pygame's scrap on first use."""
        if not pygame.display.get_init():
            return False
        if self._is_ce:
            return True
        assert self._scrap is not None
        if self._scrap.get_init():
            return True
        # Old pygame's scrap.init() needs a window on some platforms: wait until there is one.
        if pygame.display.get_surface() is None:
            return False
        try:
            with warnings.catch_warnings():
                # The SDL2 backend warns that only text is supported: that is all we need.
                warnings.simplefilter("ignore", ImportWarning)
                self._scrap.init()
        except Exception as exc:
            self._give_up("initialise", exc)
            return False
        return True

    def _system_get(self) -> str:
        assert self._scrap is not None
        if self._is_ce:
            return str(self._scrap.get_text())
        return decode_scrap_bytes(self._scrap.get(SCRAP_UTF8_TEXT))

    def _system_put(self, text: str) -> None:
        assert self._scrap is not None
        if self._is_ce:
            self._scrap.put_text(text)
        else:
            self._scrap.put(SCRAP_UTF8_TEXT, text.encode("utf-8"))

    def _give_up(self, action: str, exc: Exception) -> None:
        # Logged once: after this the in-process copy serves every call.
        log.info(
            "system clipboard unavailable (%s failed: %s); using an in-process one", action, exc
        )
        self._broken = True


def _import_scrap() -> ModuleType | None:
    # pygame.scrap is missing on some builds and platforms; that is not worth a crash.
    try:
        import pygame.scrap as scrap
    except (ImportError, NotImplementedError):
        return None
    return scrap


def make_clipboard() -> Clipboard:
    """The clipboard the client should use: the system one when pygame has a scrap module."""
    scrap = _import_scrap()
    if scrap is None:
        return MemoryClipboard()
    return SystemClipboard(scrap)
