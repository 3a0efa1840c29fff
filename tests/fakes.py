"""Test doubles that stand in for sockets: a mailbox that records decoded frames."""

from __future__ import annotations

import json
from typing import Any

from game_chat.protocol.framing import FrameDecoder


class RecordingMailbox:
    """Collects the frames put on it and decodes them for assertions."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def put(self, frame: bytes) -> None:
        self.frames.append(frame)

    def put_held(self, frame: bytes) -> bool:
        self.frames.append(frame)
        return False  # recorded: nothing to write through

    def payloads(self) -> list[bytes]:
        decoder = FrameDecoder(1 << 22)
        out = []
        for frame in self.frames:
            decoder.receive_data(frame)
            out.extend(decoder.frames())
        return out

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.payloads()]

    def texts(self) -> list[str]:
        return [p.decode() for p in self.payloads()]

    def types(self) -> list[str]:
        return [m["type"] for m in self.messages()]

    def clear(self) -> None:
        self.frames.clear()
