"""Lobby member data: the small key-value pairs each user sets in a room (ready, team, ...).

Pure rules shared by server and client: what a key and a value may be, how a change merges
into what was there, and the size limits.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import ErrorCode, RemoteProtocolError
from .text import strip_controls

MAX_KEYS = 16
MAX_KEY_CHARS = 32
MAX_STRING_CHARS = 64
MAX_JSON_BYTES = 512
_KEY = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_KEY_CHARS}}}")

Value = str | int | float | bool


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"member data: {message}")


def _value(key: str, value: Any) -> Value | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) >= 2**53:
            raise _bad(f"{key!r} is out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(f"{key!r} is not a finite number")
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad(f"{key!r} is not valid Unicode") from None
        cleaned = strip_controls(value)
        if len(cleaned) > MAX_STRING_CHARS:
            raise _bad(f"{key!r} is longer than {MAX_STRING_CHARS} characters")
        return cleaned
    raise _bad(f"{key!r} must be a string, number, true/false or null")


def merge_member_data(current: dict[str, Value], change: dict[str, Any]) -> dict[str, Value]:
    """``current`` with ``change`` applied (null removes a key); RemoteProtocolError if any key
    or value breaks the rules or the result is too big."""
    merged = dict(current)
    for key, raw in change.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise _bad(f"keys are 1-{MAX_KEY_CHARS} of A-Z a-z 0-9 _ . -, not {str(key)[:40]!r}")
        value = _value(key, raw)
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_KEYS:
        raise _bad(f"at most {MAX_KEYS} keys")
    if len(json.dumps(merged, ensure_ascii=False).encode()) > MAX_JSON_BYTES:
        raise _bad(f"at most {MAX_JSON_BYTES} bytes of JSON")
    return merged
