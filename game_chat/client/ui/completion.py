"""Tab completion of nicknames and /commands for the input line. No pygame here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Appended to a nickname completed at the start of the line ("alice: hi").
NICK_SUFFIX_AT_START = ": "
#: Appended to a nickname completed elsewhere, and to a completed command.
WORD_SUFFIX = " "


@dataclass(frozen=True)
class Completion:
    """The line after a completion and where the cursor goes."""

    text: str
    cursor: int


@dataclass
class _Cycle:
    """What repeated Tab presses walk through: the same word, replaced by each candidate."""

    head: str  # text before the completed word
    tail: str  # text after the cursor, kept as it was
    candidates: list[str]
    suffix: str
    index: int
    last: Completion

    def current(self) -> Completion:
        word = self.candidates[self.index] + self.suffix
        return Completion(self.head + word + self.tail, len(self.head) + len(word))


def word_start(text: str, cursor: int) -> int:
    """Index where the whitespace-delimited word ending at ``cursor`` begins."""
    start = cursor
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return start


def matching(prefix: str, names: Iterable[str]) -> list[str]:
    """Names starting with ``prefix`` (case-insensitive), sorted case-insensitively, no repeats."""
    folded = prefix.casefold()
    unique = {name for name in names if name and name.casefold().startswith(folded)}
    return sorted(unique, key=lambda name: (name.casefold(), name))


def _command_names(commands: Iterable[str]) -> list[str]:
    # Accept "me" as well as "/me", so callers can pass their dispatch table's keys.
    return [c if c.startswith("/") else "/" + c for c in commands if c.strip("/")]


class TabCompleter:
    """Completes the word before the cursor; repeated :meth:`complete` calls cycle candidates.

    A word starting with "/" at the start of the line completes from the commands; any other
    word completes from the nicknames. A cycle continues only while the line and cursor are
    exactly what the previous completion produced, so any edit in between starts afresh.
    """

    def __init__(self) -> None:
        self._cycle: _Cycle | None = None

    def reset(self) -> None:
        """Forget the current cycle (the next Tab starts from the word as typed)."""
        self._cycle = None

    def complete(
        self, text: str, cursor: int, nicks: Iterable[str], commands: Iterable[str] = ()
    ) -> Completion | None:
        """Return the completed line, or None when nothing matches the word at the cursor."""
        cycle = self._cycle
        if cycle is not None and cycle.last == Completion(text, cursor):
            cycle.index = (cycle.index + 1) % len(cycle.candidates)
            cycle.last = cycle.current()
            return cycle.last
        self._cycle = cycle = self._start(text, cursor, nicks, commands)
        return cycle.last if cycle is not None else None

    @staticmethod
    def _start(
        text: str, cursor: int, nicks: Iterable[str], commands: Iterable[str]
    ) -> _Cycle | None:
        start = word_start(text, cursor)
        prefix = text[start:cursor]
        if start == 0 and prefix.startswith("/"):
            candidates, suffix = matching(prefix, _command_names(commands)), WORD_SUFFIX
        elif prefix:
            candidates = matching(prefix, nicks)
            suffix = NICK_SUFFIX_AT_START if start == 0 else WORD_SUFFIX
        else:
            return None  # Tab on whitespace: completing every nick would be noise.
        if not candidates:
            return None
        cycle = _Cycle(text[:start], text[cursor:], candidates, suffix, 0, Completion("", 0))
        cycle.last = cycle.current()
        return cycle
