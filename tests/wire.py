"""A minimal blocking frame client for tests: real sockets on loopback, nothing mocked."""

from __future__ import annotations

import json
import socket
from typing import Any

from game_chat.protocol.framing import (
    CLOSED,
    HEADER_SIZE,
    SELECT_HEADER_SIZE,
    FrameDecoder,
    encode_frame,
)

TIMEOUT = 5.0


class WireClient:
    """Speaks raw frames to a server. ``recv()`` waits at most ``TIMEOUT`` seconds."""

    header_size = HEADER_SIZE

    def __init__(self, address: tuple[str, int], max_payload: int = 1 << 22) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.decoder = FrameDecoder(max_payload, self.header_size)
        self._frames: list[bytes] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        self.sock.sendall(encode_frame(payload, self.header_size))

    def send_json(self, **fields: Any) -> None:
        self.send(json.dumps(fields))

    def recv(self, timeout: float = TIMEOUT) -> bytes | None:
        """The next frame's payload, or None once the server closed the connection."""
        self.sock.settimeout(timeout)
        while not self._frames:
            frame = self.decoder.next_frame()
            if isinstance(frame, bytes):
                return frame
            if frame is CLOSED:
                return None
            data = self.sock.recv(min(self.decoder.room, 65536))
            self.decoder.receive_data(data)
        return self._frames.pop(0)

    def recv_text(self, timeout: float = TIMEOUT) -> str | None:
        frame = self.recv(timeout)
        return None if frame is None else frame.decode("utf-8")

    def recv_json(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        frame = self.recv(timeout)
        assert frame is not None, "server closed the connection"
        return json.loads(frame)

    def recv_until(self, predicate, limit: int = 10_000) -> Any:  # type: ignore[no-untyped-def]
        """Skip rich messages until one matches ``predicate``; return it."""
        for _ in range(limit):
            message = self.recv_json()
            if predicate(message):
                return message
        raise AssertionError("no matching message")

    def expect_closed(self, timeout: float = TIMEOUT) -> list[bytes]:
        """Read until the server closes; return the frames that came before."""
        frames = []
        while (frame := self.recv(timeout)) is not None:
            frames.append(frame)
        return frames

    def close(self) -> None:
        self.sock.close()


def rich_client(address: tuple[str, int], nick: str) -> tuple[WireClient, dict[str, Any]]:
    """Connect and say hello; returns the client and its welcome."""
    client = WireClient(address)
    client.send_json(type="hello", nick=nick, version=1)
    welcome = client.recv_json()
    assert welcome["type"] == "welcome", welcome
    joined = client.recv_json()  # the lobby: topic and members (its history may follow)
    assert joined["type"] == "joined", joined
    client.joined = joined  # type: ignore[attr-defined]
    return client, welcome


class SelectClient(WireClient):
    """A client of the select-chatroom tutorial: 10-byte headers, its username as its first
    frame, and every line it gets as two frames, a username and a message."""

    header_size = SELECT_HEADER_SIZE

    def __init__(self, address: tuple[str, int], username: str | None = None) -> None:
        super().__init__(address)
        if username is not None:
            self.send(username)

    def recv_pair(self, timeout: float = TIMEOUT) -> tuple[str, str]:
        """The next line: (username, message)."""
        name, text = self.recv_text(timeout), self.recv_text(timeout)
        assert name is not None and text is not None, "server closed the connection"
        return name, text

    def expect_pairs_then_closed(self, timeout: float = TIMEOUT) -> list[tuple[str, str]]:
        frames = [frame.decode("utf-8") for frame in self.expect_closed(timeout)]
        assert len(frames) % 2 == 0, frames
        return list(zip(frames[::2], frames[1::2], strict=True))
