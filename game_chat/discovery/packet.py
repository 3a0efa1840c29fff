"""The LAN discovery datagrams, sans I/O: bytes in, typed packets out, and back.

Every datagram is ``MAGIC`` (``b"GCLAN"`` and a format version byte) followed by one UTF-8
JSON object with a ``"type"``; the whole datagram is at most :data:`MAX_PACKET_BYTES`. The format
is specified in docs/DISCOVERY.md. :func:`decode` raises :class:`BadPacket` for anything else;
text it returns is already safe to display.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

MAGIC = b"GCLAN\x01"
MAX_PACKET_BYTES = 512
#: Longest server name shown; longer names are cut and end in an ellipsis.
MAX_NAME_CHARS = 64
MAX_PLAYERS = 1_000_000
MAX_PROTOCOL = 65_535
MIN_INTERVAL, MAX_INTERVAL = 0.01, 3600.0
DEFAULT_INTERVAL = 1.5

_TOKEN = re.compile(r"[0-9A-Za-z_-]{1,32}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_SPACES = re.compile(r"\s+")
# ANSI/VT control sequences go whole, so "\x1b[31m" leaves no "[31m" behind.
_ESCAPES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?|\x1b[ -~]?")


class BadPacket(ValueError):
    """A datagram that is not a well-formed discovery packet (garbage, hostile or too new)."""


@dataclass(frozen=True)
class Announcement:
    """What a server says about itself every ``interval`` seconds."""

    server_id: str  # random per server run: the same server heard on several interfaces
    name: str
    port: int  # the chat server's TCP port
    players: int
    password: bool
    protocol: int
    interval: float = DEFAULT_INTERVAL
    #: The chat port speaks TLS, with the certificate of this SHA-256 fingerprint (64
    #: lower-case hex digits; "" unless ``tls``).
    tls: bool = False
    fingerprint: str = ""


@dataclass(frozen=True)
class Probe:
    """A listener asks the announcing socket for a :class:`Pong` (to measure the ping)."""

    nonce: str


@dataclass(frozen=True)
class Pong:
    nonce: str


Packet = Announcement | Probe | Pong


def clean_name(text: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """A name from the network made safe to show: no controls, format or bidi characters,
    white space of any kind collapsed to one space, at most ``max_chars`` characters."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in _ESCAPES.sub("", text)
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    kept = _SPACES.sub(" ", kept).strip()
    if len(kept) > max_chars:
        kept = kept[: max_chars - 1].rstrip() + "…"
    return kept


# --- encoding --------------------------------------------------------------------------------


def encode(packet: Packet) -> bytes:
    """The datagram for ``packet``; an announcement's name is shortened to fit the size limit."""
    if isinstance(packet, Announcement):
        return _encode_announcement(packet)
    kind = "probe" if isinstance(packet, Probe) else "pong"
    _check_token(packet.nonce)
    return _pack({"type": kind, "nonce": packet.nonce})


def _encode_announcement(a: Announcement) -> bytes:
    _check_token(a.server_id)
    if a.fingerprint and not _FINGERPRINT.fullmatch(a.fingerprint):
        raise ValueError(f"not a fingerprint (64 lower-case hex digits): {a.fingerprint!r}")
    secure = {"tls": True, "fingerprint": a.fingerprint} if a.tls else {}
    name = clean_name(a.name)
    while True:
        fields = {
            "type": "announce",
            "id": a.server_id,
            "name": name,
            "port": a.port,
            "players": min(max(a.players, 0), MAX_PLAYERS),
            "password": a.password,
            "protocol": a.protocol,
            "interval": a.interval,
            **secure,
        }
        data = _pack(fields)
        if len(data) <= MAX_PACKET_BYTES or not name:
            return data
        name = name[: len(name) // 2]


def _pack(fields: dict[str, Any]) -> bytes:
    return MAGIC + json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def _check_token(token: str) -> None:
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"not a discovery token (1-32 of A-Z a-z 0-9 _ -): {token!r}")


# --- decoding --------------------------------------------------------------------------------


def decode(data: bytes) -> Packet:
    """The packet in datagram ``data``, or BadPacket. Unknown JSON keys are ignored."""
    if len(data) > MAX_PACKET_BYTES:
        raise BadPacket(f"{len(data)} bytes, over the limit of {MAX_PACKET_BYTES}")
    if not data.startswith(MAGIC):
        raise BadPacket("wrong magic or version")
    try:
        fields = json.loads(data[len(MAGIC) :].decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadPacket(f"not a UTF-8 JSON object: {exc}") from None
    if not isinstance(fields, dict):
        raise BadPacket("not a JSON object")
    kind = fields.get("type")
    if kind == "announce":
        return _decode_announcement(fields)
    if kind in ("probe", "pong"):
        nonce = _token(fields, "nonce")
        return Probe(nonce) if kind == "probe" else Pong(nonce)
    raise BadPacket(f"unknown packet type {kind!r}")


def _decode_announcement(fields: dict[str, Any]) -> Announcement:
    name = fields.get("name")
    if not isinstance(name, str):
        raise BadPacket("name is not a string")
    password = fields.get("password")
    if not isinstance(password, bool):
        raise BadPacket("password is not true or false")
    interval = fields.get("interval", DEFAULT_INTERVAL)
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not MIN_INTERVAL <= interval <= MAX_INTERVAL
    ):
        raise BadPacket("interval out of range")
    tls = fields.get("tls", False)
    if not isinstance(tls, bool):
        raise BadPacket("tls is not true or false")
    fingerprint = fields.get("fingerprint", "") if tls else ""
    if fingerprint != "" and not (
        isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint)
    ):
        raise BadPacket("fingerprint is not 64 lower-case hex digits")
    return Announcement(
        server_id=_token(fields, "id"),
        name=clean_name(name),
        port=_integer(fields, "port", 1, 65_535),
        players=_integer(fields, "players", 0, MAX_PLAYERS),
        password=password,
        protocol=_integer(fields, "protocol", 0, MAX_PROTOCOL),
        interval=float(interval),
        tls=tls,
        fingerprint=fingerprint,
    )


def _integer(fields: dict[str, Any], key: str, low: int, high: int) -> int:
    value = fields.get(key)
    if type(value) is not int or not low <= value <= high:
        raise BadPacket(f"{key} is not an integer in {low}..{high}")
    return value


def _token(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise BadPacket(f"{key} is not a token")
    return value


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not allowed")
