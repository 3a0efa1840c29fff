"""Chat text from peers: made safe to show before it reaches anybody else's screen."""

from __future__ import annotations

import re

from .errors import ErrorCode, RemoteProtocolError

# C0/C1 controls (ESC starts ANSI sequences), DEL, and the bidirectional overrides/isolates
# that can make text display in a different order than it was typed.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\n\r]+")


def strip_controls(text: str) -> str:
    """Drop control characters and bidi overrides; tabs and line breaks become one space."""
    return _UNSAFE.sub("", _LINE_BREAKS.sub(" ", text))


def clean_text(text: str) -> str:
    """:func:`strip_controls`, then surrounding white space trimmed."""
    return strip_controls(text).strip()


def clean_reason(text: str, max_chars: int = 200) -> str:
    """A leave or quit reason from a peer: cleaned like chat text and cut to ``max_chars``."""
    return clean_text(text)[:max_chars].rstrip()


def validate_text(text: str, max_chars: int) -> str:
    """Return the cleaned chat text, or raise RemoteProtocolError if empty or too long."""
    cleaned = clean_text(text)
    if not cleaned:
        raise RemoteProtocolError(ErrorCode.EMPTY_TEXT, "empty messages are not sent")
    if len(cleaned) > max_chars:
        raise RemoteProtocolError(
            ErrorCode.TEXT_TOO_LONG,
            f"message of {len(cleaned)} characters is over the limit of {max_chars}",
        )
    return cleaned


def decode_utf8(payload: bytes) -> str:
    """Decode a frame payload, or raise RemoteProtocolError (not fatal) for invalid UTF-8."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(
            ErrorCode.BAD_UTF8, f"frame payload is not valid UTF-8 (byte {exc.start})"
        ) from None
