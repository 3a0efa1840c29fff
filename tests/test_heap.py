"""HeapTrimmer: freed heap memory goes back to the system on a timer (glibc), nothing elsewhere."""

from __future__ import annotations

import sys

from game_chat.server import heap


def test_the_trimmer_waits_its_interval_then_trims() -> None:
    calls: list[int] = []
    trimmer = heap.HeapTrimmer(interval=3600)
    real, heap._TRIM = heap._TRIM, calls.append  # type: ignore[assignment]
    try:
        trimmer.available = True
        trimmer.tick()
        assert calls == []  # not due for an hour
        due = trimmer.due_in()
        assert due is not None and 3500 < due <= 3600
        trimmer._next = 0.0
        assert trimmer.due_in() == 0.0
        trimmer.tick()
        assert calls == [0]
    finally:
        heap._TRIM = real


def test_glibc_linux_has_a_trim_and_other_systems_need_none() -> None:
    trimmer = heap.HeapTrimmer()
    if sys.platform.startswith("linux") and heap._TRIM is not None:
        assert trimmer.available and trimmer.due_in() is not None
    else:
        assert trimmer.due_in() is None
