"""Giving freed heap memory back to the system, where the C library allows it.

A chat server allocates and frees buffers of every size all day (frames, coalesced sends,
history pages), from many threads. glibc's malloc keeps freed chunks for reuse, and where they
lie between chunks still in use they stay resident: measured in bench/soak.py, the heap held
about 1 MB more free memory each minute for ten minutes while the memory in use stayed flat
(this, not Python objects or SQLite's cache, was the RSS growth of the first soak runs).
``malloc_trim(0)`` hands those free pages back (madvise), so the process's RSS follows what it
really uses. Elsewhere (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import time
from collections.abc import Callable

log = logging.getLogger("game_chat.server")

#: Seconds between two trims: often enough that RSS follows use closely, rarely enough to cost
#: nothing measurable (a trim holds malloc's lock while it walks the heap: a few milliseconds on
#: a fragmented 60 MB heap, less when the last trim was 10 s ago).
TRIM_INTERVAL = 10.0


def _load_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _load_trim()


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` at most every ``interval`` seconds; :meth:`due_in` says when."""

    def __init__(self, interval: float = TRIM_INTERVAL) -> None:
        self.interval = interval
        self.available = _TRIM is not None
        self._next = time.monotonic() + interval

    def due_in(self) -> float | None:
        """Seconds until the next trim (None: never, the C library has no trim)."""
        if not self.available:
            return None
        return max(0.0, self._next - time.monotonic())

    def tick(self) -> None:
        """Trim now if it is time."""
        if _TRIM is None or time.monotonic() < self._next:
            return
        _TRIM(0)
        self._next = time.monotonic() + self.interval
