"""Test doubles that stand in for sockets: a mailbox that records decoded frames."""

from __future__ import annotations

import json
from typing import Any

from game_chat.protocol.framing import FrameDecoder
from game_chat.server.stream import Follower


class RecordingMailbox(Follower):
    """Collects the frames put on it and decodes them for assertions. Room lines are taken
    from the rooms' streams (server/stream.py) when something is put and whenever
    :attr:`frames` is read, so they are always in their place."""

    def __init__(self) -> None:
        super().__init__()
        self._frames: list[bytes] = []

    @property
    def frames(self) -> list[bytes]:
        self._take_tails()
        return self._frames

    def _take_tails(self) -> None:
        tails = self._tails()
        if tails:
            self._frames.append(tails)

    def put(self, frame: bytes) -> None:
        self._take_tails()
        self._frames.append(frame)

    def put_held(self, frame: bytes) -> bool:
        self.put(frame)
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
