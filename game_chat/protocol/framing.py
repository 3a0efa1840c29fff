"""The frame codec: a 64-byte ASCII length header, then that many bytes of payload.

Sans-I/O: it turns bytes into frames and frames into bytes and never touches a socket, so
the server's reader threads, the client's receive thread and the tests all share it.

Writing: the header is the payload length in ASCII decimal digits, left-aligned and padded
with spaces to 64 bytes. Reading: the digits may be surrounded by spaces and NUL bytes;
anything else in the header is a :class:`RemoteProtocolError`. A zero-length frame is a
keepalive and is returned like any other (as ``b""``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from .errors import ConnectionLost, ErrorCode, LocalProtocolError, RemoteProtocolError

HEADER_SIZE: Final = 64
_HEADER_PADDING: Final = b" \x00"


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Returned by :meth:`FrameDecoder.next_frame` when more bytes are needed.
NEED_DATA: Final = _Sentinel("NEED_DATA")
#: Returned by :meth:`FrameDecoder.next_frame` once the peer closed cleanly between frames.
CLOSED: Final = _Sentinel("CLOSED")


def encode_frame(payload: bytes) -> bytes:
    """Return ``payload`` with its 64-byte length header in front."""
    return b"%-64d" % len(payload) + payload


def parse_header(header: bytes, max_payload: int) -> int:
    """Return the payload length a 64-byte header announces, or raise RemoteProtocolError."""
    digits = header.strip(_HEADER_PADDING)
    # bytes.isdigit() is ASCII-only, so signs, letters, inner spaces and non-ASCII all fail.
    if not digits.isdigit():
        shown = header.rstrip(_HEADER_PADDING)[:32]
        raise RemoteProtocolError(
            ErrorCode.BAD_HEADER,
            f"frame header must be a decimal length, got {shown!r}",
            fatal=True,
        )
    length = int(digits)
    if length > max_payload:
        raise RemoteProtocolError(
            ErrorCode.FRAME_TOO_LARGE,
            f"frame of {length} bytes is over the limit of {max_payload} bytes",
            fatal=True,
        )
    return length


class FrameDecoder:
    """Incremental decoder: feed chunks with :meth:`receive_data`, take frames out with
    :meth:`next_frame` (or iterate :meth:`frames`).

    It never holds more than ``HEADER_SIZE + max_payload`` bytes: :attr:`room` says how many
    more it accepts right now, and feeding more is a :class:`LocalProtocolError`. An oversize
    length is rejected as soon as its header is complete, before any payload is buffered.
    """

    def __init__(self, max_payload: int) -> None:
        if max_payload < 0:
            raise LocalProtocolError("max_payload must not be negative")
        self.max_payload = max_payload
        self.max_buffered = HEADER_SIZE + max_payload
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes in _buf
        self._payload_len: int | None = None  # set once the current header is parsed
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buf) - self._pos

    @property
    def room(self) -> int:
        """How many bytes :meth:`receive_data` accepts right now (0 after EOF)."""
        return 0 if self._eof else self.max_buffered - self.buffered

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side (EOF)."""
        if self._eof:
            raise LocalProtocolError("receive_data() after EOF")
        if not data:
            self._eof = True
            return
        if len(data) > self.room:
            raise LocalProtocolError(
                f"fed {len(data)} bytes but only {self.room} fit; read at most .room bytes"
            )
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos > 4096 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> bytes | _Sentinel:
        """Return the next complete payload, :data:`NEED_DATA` or :data:`CLOSED`.

        Raises RemoteProtocolError for a bad header and ConnectionLost when the peer closed
        in the middle of a frame.
        """
        buf, pos = self._buf, self._pos
        if self._payload_len is None:
            if len(buf) - pos < HEADER_SIZE:
                return self._short()
            self._payload_len = parse_header(bytes(buf[pos : pos + HEADER_SIZE]), self.max_payload)
            pos += HEADER_SIZE
            self._pos = pos
        end = pos + self._payload_len
        if len(buf) < end:
            return self._short()
        self._payload_len = None
        self._pos = end
        return bytes(buf[pos:end])

    def frames(self) -> Iterator[bytes]:
        """Yield every complete payload buffered now (stops at NEED_DATA or CLOSED).

        Errors are raised where they occur, after the good frames before them were yielded.
        """
        while True:
            frame = self.next_frame()
            if not isinstance(frame, bytes):
                return
            yield frame

    @property
    def closed(self) -> bool:
        """True once EOF was received and every frame before it was returned."""
        return self._eof and self.buffered == 0 and self._payload_len is None

    def _short(self) -> _Sentinel:
        if not self._eof:
            return NEED_DATA
        if self.buffered == 0 and self._payload_len is None:
            return CLOSED
        raise ConnectionLost(f"peer closed in the middle of a frame ({self.buffered} bytes left)")
