"""Size limits shared by the server, the client and the codec."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Frame payload a server accepts from a client by default.
DEFAULT_MAX_FRAME_BYTES = 8 * 1024
#: Frame payload a client accepts from a server by default (a welcome lists every user).
DEFAULT_CLIENT_MAX_FRAME_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What a server enforces on its clients; sent to rich clients in the welcome."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_text_chars: int = 1000
    max_nick_chars: int = 24

    def __post_init__(self) -> None:
        if self.max_frame_bytes < 64:
            raise ValueError("max_frame_bytes must be at least 64")
        if self.max_text_chars < 1 or self.max_nick_chars < 1:
            raise ValueError("text and nick limits must be positive")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        """Build limits from a welcome's ``limits`` object, ignoring unknown keys."""
        known = {k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
