"""Peer text made safe to draw: what a peer sends is shown as text, never as formatting.

The server cleans chat text too (``game_chat.protocol.text``), but the client never trusts a
peer or a server: everything that reaches the log goes through :func:`clean_display_text`.
"""

from __future__ import annotations

import re

#: Longest text the log shows of one message; a hostile server could send megabytes.
MAX_DISPLAY_CHARS = 4000
#: Longest nickname the log shows.
MAX_DISPLAY_NICK = 64

# ANSI/VT escape sequences are removed whole, so "\x1b[31m" leaves no "[31m" behind:
# CSI (ESC [ or the C1 byte 0x9b) parameters, intermediates and a final byte; OSC and the other
# string commands (DCS, SOS, PM, APC) up to BEL or ST; any other two-byte ESC sequence.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
# Line and paragraph breaks of every kind become one space: a message is one log entry.
_BREAKS = re.compile("[\t\n\v\f\r\x85\u2028\u2029]+")
# What is left of C0/C1 controls and DEL, plus the bidirectional controls (embeddings,
# overrides, isolates, marks) that would make text display in another order than it was sent,
# and the interlinear annotation characters.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufff9-\ufffb]"
)
# Lone surrogates cannot be encoded or rendered; they only come from buggy or hostile input.
_SURROGATES = re.compile("[\ud800-\udfff]")
# Everything any of the above can match, for one scan of text that needs no change.
_ANY = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ufff9-\ufffb\ud800-\udfff]"
)


def clean_display_text(text: str, max_chars: int = MAX_DISPLAY_CHARS) -> str:
    """Return ``text`` without escape sequences, control and bidi characters, on one line.

    Breaks and tabs become one space, lone surrogates U+FFFD; text over ``max_chars`` is cut
    and ends in an ellipsis. Plain text comes back as the same object (no copy).
    """
    if _ANY.search(text) is not None:
        text = _ESCAPES.sub("", text)
        text = _BREAKS.sub(" ", text)
        text = _UNSAFE.sub("", text)
        text = _SURROGATES.sub("\ufffd", text).strip()
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text
