"""Editing a one-line text, without pygame: the buffer, word motion and the sent-lines history."""

from __future__ import annotations

from ...protocol.text import strip_controls


def sanitize_input(text: str) -> str:
    """Typed or pasted text as part of one line: breaks and tabs become a space, controls go.

    The server's rules (protocol/text.py), minus the trimming: what you see is what is sent.
    Joiners stay (a Persian keyboard sends ZWNJ as a keystroke of its own, before the letter it
    goes with); the server judges each one when the line is sent.
    """
    return strip_controls(text, keep_joiners=True)


def _char_class(ch: str) -> int:
    if ch.isspace():
        return 0
    return 1 if ch.isalnum() or ch == "_" else 2


def word_left(text: str, pos: int) -> int:
    """Where Ctrl+Left goes from ``pos``: the start of the word (or punctuation run) before it."""
    while pos > 0 and text[pos - 1].isspace():
        pos -= 1
    if pos > 0:
        kind = _char_class(text[pos - 1])
        while pos > 0 and _char_class(text[pos - 1]) == kind:
            pos -= 1
    return pos


def word_right(text: str, pos: int) -> int:
    """Where Ctrl+Right goes from ``pos``: the end of the word (or punctuation run) after it."""
    end = len(text)
    while pos < end and text[pos].isspace():
        pos += 1
    if pos < end:
        kind = _char_class(text[pos])
        while pos < end and _char_class(text[pos]) == kind:
            pos += 1
    return pos


class TextEditBuffer:
    """One line of text with a cursor, an optional selection and a length cap. No pygame.

    The selection runs between ``anchor`` (where Shift-movement started) and ``cursor``.
    Positions are indices into ``text`` (code points, which is what the server counts).
    """

    def __init__(self, max_chars: int = 1000) -> None:
        self._text = ""
        self._cursor = 0
        self._anchor: int | None = None
        self._max_chars = 1
        self.max_chars = max_chars

    @property
    def text(self) -> str:
        """The whole line."""
        return self._text

    @property
    def cursor(self) -> int:
        """Index the next typed character goes to."""
        return self._cursor

    @property
    def max_chars(self) -> int:
        """Longest line allowed; lowering it cuts the current text."""
        return self._max_chars

    @max_chars.setter
    def max_chars(self, value: int) -> None:
        if value < 1:
            raise ValueError("max_chars must be at least 1")
        self._max_chars = value
        if len(self._text) > value:
            self._text = self._text[:value]
            self._cursor = min(self._cursor, value)
            if self._anchor is not None:
                self._anchor = min(self._anchor, value)

    @property
    def selection(self) -> tuple[int, int] | None:
        """(start, end) of the selected text, or None when nothing is selected."""
        if self._anchor is None or self._anchor == self._cursor:
            return None
        return min(self._anchor, self._cursor), max(self._anchor, self._cursor)

    @property
    def selected_text(self) -> str:
        """The selected text ("" when nothing is selected)."""
        sel = self.selection
        return self._text[sel[0] : sel[1]] if sel else ""

    def set_text(self, text: str) -> None:
        """Replace the line (cut to the limit); the cursor goes to the end."""
        self._text = sanitize_input(text)[: self._max_chars]
        self._cursor = len(self._text)
        self._anchor = None

    def clear(self) -> None:
        """Empty the line."""
        self.set_text("")

    def insert(self, text: str) -> None:
        """Type ``text`` at the cursor, replacing the selection; text over the limit is dropped."""
        start, end = self.selection or (self._cursor, self._cursor)
        room = self._max_chars - (len(self._text) - (end - start))
        text = sanitize_input(text)[: max(0, room)]
        self._text = self._text[:start] + text + self._text[end:]
        self._cursor = start + len(text)
        self._anchor = None

    def move_to(self, pos: int, select: bool = False) -> None:
        """Put the cursor at ``pos``; with ``select`` the selection grows or shrinks to it."""
        if select:
            if self._anchor is None:
                self._anchor = self._cursor
        else:
            self._anchor = None
        self._cursor = max(0, min(len(self._text), pos))

    def move_left(self, select: bool = False, word: bool = False) -> None:
        """Left arrow: one character or (``word``) one word; collapses a selection to its start."""
        sel = self.selection
        if sel and not select and not word:
            self.move_to(sel[0])
        else:
            self.move_to(word_left(self._text, self._cursor) if word else self._cursor - 1, select)

    def move_right(self, select: bool = False, word: bool = False) -> None:
        """Right arrow: one character or (``word``) one word; collapses a selection to its end."""
        sel = self.selection
        if sel and not select and not word:
            self.move_to(sel[1])
        else:
            target = word_right(self._text, self._cursor) if word else self._cursor + 1
            self.move_to(target, select)

    def home(self, select: bool = False) -> None:
        """Cursor to the start of the line."""
        self.move_to(0, select)

    def end(self, select: bool = False) -> None:
        """Cursor to the end of the line."""
        self.move_to(len(self._text), select)

    def select_all(self) -> None:
        """Select the whole line."""
        self._anchor, self._cursor = 0, len(self._text)

    def delete_selection(self) -> bool:
        """Remove the selected text; False when nothing was selected."""
        sel = self.selection
        if sel is None:
            return False
        self._remove(*sel)
        return True

    def backspace(self, word: bool = False) -> None:
        """Delete the selection, else the character (or ``word``) before the cursor."""
        if not self.delete_selection():
            start = word_left(self._text, self._cursor) if word else self._cursor - 1
            self._remove(max(0, start), self._cursor)

    def delete(self, word: bool = False) -> None:
        """Delete the selection, else the character (or ``word``) after the cursor."""
        if not self.delete_selection():
            end = word_right(self._text, self._cursor) if word else self._cursor + 1
            self._remove(self._cursor, min(len(self._text), end))

    def _remove(self, start: int, end: int) -> None:
        self._text = self._text[:start] + self._text[end:]
        self._cursor = start
        self._anchor = None


class InputHistory:
    """Lines sent earlier, walked with Up/Down; the line being typed is kept as a draft."""

    def __init__(self, limit: int = 200) -> None:
        self._lines: list[str] = []
        self._limit = limit
        self._index: int | None = None  # None: not walking, the draft is showing
        self._draft = ""

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, line: str) -> None:
        """Remember a sent line (not twice in a row) and stop walking."""
        if line and (not self._lines or self._lines[-1] != line):
            self._lines.append(line)
            del self._lines[: -self._limit]
        self.reset()

    def reset(self) -> None:
        """Stop walking; the next Up starts from the newest line again."""
        self._index = None
        self._draft = ""

    def older(self, current: str) -> str | None:
        """The line before the one showing (Up), or None at the oldest; saves the draft first."""
        if not self._lines or self._index == 0:
            return None
        if self._index is None:
            self._draft = current
            self._index = len(self._lines)
        self._index -= 1
        return self._lines[self._index]

    def newer(self) -> str | None:
        """The line after the one showing (Down); past the newest the draft; None if not walking."""
        if self._index is None:
            return None
        if self._index >= len(self._lines) - 1:
            draft = self._draft
            self.reset()
            return draft
        self._index += 1
        return self._lines[self._index]
