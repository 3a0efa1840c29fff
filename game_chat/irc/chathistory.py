"""IRCv3 ``draft/chathistory`` requests, sans-I/O: what a CHATHISTORY line asks for.

``CHATHISTORY <subcommand> <params...>`` (https://ircv3.net/specs/extensions/chathistory):
``BEFORE``, ``AFTER``, ``LATEST``, ``AROUND`` and ``BETWEEN`` ask for a channel's lines around
message references (``msgid=<id>``, the chat's message id; ``timestamp=<ISO 8601 UTC>``;
``*`` for LATEST's "the newest"), ``TARGETS`` for the channels with lines between two times.
:func:`parse_request` checks a request and gives a :class:`Request`, or raises
:class:`BadRequest` with the standard reply's code; the session turns references into ids
(a timestamp needs the store) and reads the lines.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

#: Most lines one request returns (ISUPPORT CHATHISTORY=).
MAX_LINES = 100
SUBCOMMANDS = ("AFTER", "AROUND", "BEFORE", "BETWEEN", "LATEST", "TARGETS")


class BadRequest(Exception):
    """A request that cannot be answered: ``code`` is the FAIL reply's (INVALID_PARAMS,
    UNKNOWN_COMMAND...), ``params`` what goes between it and the description."""

    def __init__(self, code: str, params: tuple[str, ...], description: str) -> None:
        super().__init__(description)
        self.code = code
        self.params = params
        self.description = description


@dataclass(frozen=True)
class Ref:
    """A message reference: a message id, or a Unix time (``timestamp=``); neither: ``*``."""

    msgid: int | None = None
    ts: float | None = None

    @property
    def newest(self) -> bool:
        return self.msgid is None and self.ts is None


@dataclass(frozen=True)
class Request:
    subcommand: str
    target: str  # the channel ("" for TARGETS)
    refs: tuple[Ref, ...]  # one (two for BETWEEN and TARGETS)
    limit: int


def parse_time(text: str) -> float:
    """``2026-12-02T08:00:00.123Z`` as Unix time; ValueError if it is not one."""
    if not text.endswith("Z"):
        raise ValueError(text)
    moment = datetime.datetime.fromisoformat(text[:-1] + "+00:00")
    return moment.timestamp()


def parse_ref(text: str, subcommand: str, star: bool = False) -> Ref:
    kind, _, value = text.partition("=")
    try:
        if text == "*" and star:
            return Ref()
        if kind == "msgid" and value.isascii() and value.isdigit() and len(value) < 19:
            return Ref(msgid=int(value))
        if kind == "timestamp":
            return Ref(ts=parse_time(value))
    except (ValueError, OverflowError):
        pass
    raise BadRequest("INVALID_PARAMS", (subcommand,), f"not a message reference: {text[:40]}")


def parse_request(params: tuple[str, ...]) -> Request:
    """The request of a CHATHISTORY line's parameters; BadRequest if it is not one."""
    if not params:
        raise BadRequest("INVALID_PARAMS", ("*",), "no subcommand")
    sub = params[0].upper()
    if sub not in SUBCOMMANDS:
        raise BadRequest("UNKNOWN_COMMAND", (params[0][:20],), "unknown subcommand")
    wanted = 5 if sub == "BETWEEN" else 4  # (the subcommand, what it takes, the limit)
    if len(params) < wanted:
        raise BadRequest("INVALID_PARAMS", (sub,), "not enough parameters")
    limit_text = params[wanted - 1]
    digits = limit_text.lstrip("0") if limit_text.isascii() and limit_text.isdigit() else ""
    if not digits:  # not a number, or 0
        raise BadRequest("INVALID_PARAMS", (sub,), f"not a limit: {limit_text[:20]}")
    # (int() of thousands of digits is slow: any number past MAX_LINES asks for MAX_LINES)
    limit = MAX_LINES if len(digits) > 3 else min(int(digits), MAX_LINES)
    if sub == "TARGETS":
        refs = (parse_ref(params[1], sub), parse_ref(params[2], sub))
        if refs[0].ts is None or refs[1].ts is None:
            raise BadRequest("INVALID_PARAMS", (sub,), "TARGETS takes two timestamps")
        return Request(sub, "", refs, limit)
    target = params[1]
    if sub == "BETWEEN":
        refs = (parse_ref(params[2], sub), parse_ref(params[3], sub))
    else:
        refs = (parse_ref(params[2], sub, star=sub == "LATEST"),)
    return Request(sub, target, refs, limit)
