"""The frame codec, fed bytes one at a time, at every split point and by hypothesis; and how
a server's decoder tells 64-byte headers from the select tutorial's 10-byte ones."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from game_chat.protocol.errors import (
    ConnectionLost,
    ErrorCode,
    LocalProtocolError,
    RemoteProtocolError,
)
from game_chat.protocol.framing import (
    CLOSED,
    HEADER_SIZE,
    NEED_DATA,
    SELECT_HEADER_SIZE,
    FrameDecoder,
    encode_frame,
    parse_header,
    sniff_header_size,
)

LIMIT = 8192


def feed(decoder: FrameDecoder, data: bytes, chunk: int) -> list[bytes]:
    """Feed ``data`` in chunks of at most ``chunk`` bytes, draining frames as they complete."""
    frames: list[bytes] = []
    pos = 0
    while pos < len(data):
        size = min(chunk, decoder.room, len(data) - pos)
        decoder.receive_data(data[pos : pos + size])
        pos += size
        frames.extend(decoder.frames())
    return frames


def test_encode_header_is_left_aligned_and_space_padded() -> None:
    assert encode_frame(b"hello") == b"5" + b" " * 63 + b"hello"
    assert encode_frame(b"") == b"0" + b" " * 63
    assert len(encode_frame(b"x" * 12345)) == HEADER_SIZE + 12345


def test_round_trip_one_byte_at_a_time() -> None:
    payloads = [b"hello", b"", "héllo wörld ✓".encode(), b"x" * 1000]
    data = b"".join(encode_frame(p) for p in payloads)
    assert feed(FrameDecoder(LIMIT), data, 1) == payloads


def test_every_split_point() -> None:
    payloads = [b"first", b"", b"third frame"]
    data = b"".join(encode_frame(p) for p in payloads)
    for split in range(len(data) + 1):
        decoder = FrameDecoder(LIMIT)
        frames = []
        for part in (data[:split], data[split:]):
            if part:
                decoder.receive_data(part)
            frames.extend(decoder.frames())
        assert frames == payloads, split


def test_many_frames_in_one_chunk() -> None:
    payloads = [b"m%d" % i for i in range(100)]
    decoder = FrameDecoder(LIMIT)
    decoder.receive_data(b"".join(encode_frame(p) for p in payloads))
    assert list(decoder.frames()) == payloads
    assert decoder.next_frame() is NEED_DATA


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(1, 500))
def test_round_trip_property(payloads: list[bytes], chunk: int) -> None:
    data = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder(LIMIT)
    assert feed(decoder, data, chunk) == payloads
    decoder.receive_data(b"")
    assert decoder.next_frame() is CLOSED


@given(st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE))
def test_any_header_is_a_length_or_a_typed_error(header: bytes) -> None:
    try:
        length = parse_header(header, LIMIT)
    except RemoteProtocolError as exc:
        assert exc.fatal
        assert exc.code in (ErrorCode.BAD_HEADER, ErrorCode.FRAME_TOO_LARGE)
    else:
        assert 0 <= length <= LIMIT


@pytest.mark.parametrize(
    "header",
    [b"  12  ", b"12\0\0\0", b"\x0012", b"0000012", b" \0 12 \0 "],
)
def test_accepts_spaces_and_nul_padding(header: bytes) -> None:
    assert parse_header(header.ljust(HEADER_SIZE, b" "), LIMIT) == 12


@pytest.mark.parametrize(
    "header",
    [b"", b"abc", b"-5", b"+5", b"1 2", b"5a", b"0x10", b"\xd9\xa3", b"1.5", b"5\n"],
)
def test_rejects_bad_headers(header: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_header(header.ljust(HEADER_SIZE, b" "), LIMIT)
    assert info.value.code == ErrorCode.BAD_HEADER
    assert info.value.fatal


def test_rejects_64_digit_length() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_header(b"9" * HEADER_SIZE, LIMIT)
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE


def test_oversize_rejected_before_any_payload_is_buffered() -> None:
    decoder = FrameDecoder(100)
    decoder.receive_data(b"101".ljust(HEADER_SIZE))
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_frame()
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE


def test_exact_limit_is_accepted() -> None:
    decoder = FrameDecoder(100)
    assert feed(decoder, encode_frame(b"x" * 100), 1000) == [b"x" * 100]


def test_never_buffers_more_than_header_plus_limit() -> None:
    decoder = FrameDecoder(100)
    assert decoder.room == HEADER_SIZE + 100
    decoder.receive_data(b"100".ljust(HEADER_SIZE) + b"x" * 50)
    assert decoder.room == 50
    with pytest.raises(LocalProtocolError):
        decoder.receive_data(b"x" * 51)


def test_clean_eof_between_frames() -> None:
    decoder = FrameDecoder(LIMIT)
    decoder.receive_data(encode_frame(b"bye"))
    decoder.receive_data(b"")
    assert decoder.next_frame() == b"bye"
    assert decoder.next_frame() is CLOSED
    assert decoder.closed


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 2])
def test_eof_mid_frame_is_connection_lost(cut: int) -> None:
    decoder = FrameDecoder(LIMIT)
    decoder.receive_data(encode_frame(b"hello")[:cut])
    assert decoder.next_frame() is NEED_DATA
    decoder.receive_data(b"")
    with pytest.raises(ConnectionLost):
        decoder.next_frame()


def test_data_after_eof_is_our_mistake() -> None:
    decoder = FrameDecoder(LIMIT)
    decoder.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        decoder.receive_data(b"x")


def test_good_frames_before_a_bad_header_are_returned_first() -> None:
    decoder = FrameDecoder(LIMIT)
    decoder.receive_data(encode_frame(b"ok") + b"bad".ljust(HEADER_SIZE))
    frames = decoder.frames()
    assert next(frames) == b"ok"
    with pytest.raises(RemoteProtocolError):
        next(frames)


def test_long_stream_keeps_buffer_small() -> None:
    decoder = FrameDecoder(LIMIT)
    frame = encode_frame(b"y" * 100)
    for _ in range(10_000):
        decoder.receive_data(frame)
        assert list(decoder.frames()) == [b"y" * 100]
    assert decoder.buffered == 0


# --- 64 or 10 bytes: the first bytes decide ----------------------------------------------


def ten(payload: bytes) -> bytes:
    return encode_frame(payload, SELECT_HEADER_SIZE)


def test_a_ten_byte_header_is_left_aligned_and_space_padded() -> None:
    assert ten(b"alice") == b"5         alice"


@pytest.mark.parametrize(
    ("prefix", "size"),
    [
        (b"5         alice", SELECT_HEADER_SIZE),  # the tutorial's username frame
        (b"        15hello there", SELECT_HEADER_SIZE),  # right-aligned, some copies do so
        (b"2         42", SELECT_HEADER_SIZE),  # digits after the padding: a second run
        (b"6            bob", SELECT_HEADER_SIZE),  # a payload starting with spaces
        (b"0         5         alice", SELECT_HEADER_SIZE),  # a keepalive first
        (b"5" + b" " * 63 + b"Hello", HEADER_SIZE),  # the 64-byte tutorial
        (b"5" + b" " * 63, HEADER_SIZE),
        (b" " * 62 + b"12", HEADER_SIZE),  # right-aligned 64-byte header
        (b"5\x00\x00", HEADER_SIZE),  # NUL padding: only in 64-byte headers
        (b"{", HEADER_SIZE),
        (b"GET / HTTP/1.1", HEADER_SIZE),  # not a header at all: bad_header there
        (b"1234567890abc", HEADER_SIZE),  # ten digits: over any limit, said by the 64 reading
        (b"5  x", HEADER_SIZE),
        (b"5", None),
        (b"5        ", None),  # nine bytes
        (b"5         ", None),  # a 10-byte header with nothing after it yet
        (b"5" + b" " * 62, None),  # 63 bytes of a 64-byte header
        (b"", None),
        (b"   ", None),
        (b" " * 10, HEADER_SIZE),  # no length in ten bytes
    ],
)
def test_sniffing_the_header_size(prefix: bytes, size: int | None) -> None:
    assert sniff_header_size(prefix) == size


def stream(payloads: list[bytes], header_size: int) -> bytes:
    return b"".join(encode_frame(p, header_size) for p in payloads)


@pytest.mark.parametrize("header_size", [HEADER_SIZE, SELECT_HEADER_SIZE])
def test_a_deciding_decoder_reads_either_at_every_split_point(header_size: int) -> None:
    data = stream([b"alice", b"", b"hello everyone", b"x" * 100], header_size)
    for cut in range(len(data) + 1):
        decoder = FrameDecoder(LIMIT, header_size=None)
        frames = feed(decoder, data[:cut], len(data)) + feed(decoder, data[cut:], len(data))
        assert frames == [b"alice", b"", b"hello everyone", b"x" * 100], cut
        assert decoder.header_size == header_size


@pytest.mark.parametrize("header_size", [HEADER_SIZE, SELECT_HEADER_SIZE])
def test_a_deciding_decoder_one_byte_at_a_time(header_size: int) -> None:
    decoder = FrameDecoder(LIMIT, header_size=None)
    data = stream([b"bob", b"hi"], header_size)
    assert feed(decoder, data, 1) == [b"bob", b"hi"]


@given(
    st.lists(st.text(min_size=1, max_size=40).map(str.encode), min_size=1, max_size=8),
    st.sampled_from([HEADER_SIZE, SELECT_HEADER_SIZE]),
    st.integers(1, 300),
)
def test_deciding_round_trip_property(payloads: list[bytes], header_size: int, chunk: int) -> None:
    """Any stream of non-blank frames is read as it was written, whatever the chunks (a first
    frame of 54 spaces or more would read as a 64-byte header: no nick is one)."""
    if header_size == SELECT_HEADER_SIZE and not payloads[0].strip(b" \x00"):
        payloads[0] = b"x" + payloads[0]
    decoder = FrameDecoder(LIMIT, header_size=None)
    assert feed(decoder, stream(payloads, header_size), chunk) == payloads
    assert decoder.header_size == header_size


def test_an_oversize_ten_byte_header_is_refused_before_its_payload() -> None:
    decoder = FrameDecoder(LIMIT, header_size=None)
    decoder.receive_data(b"9999999   xyz")
    with pytest.raises(RemoteProtocolError) as info:
        list(decoder.frames())
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE and info.value.fatal


def test_eof_before_the_header_size_is_known_is_connection_lost() -> None:
    decoder = FrameDecoder(LIMIT, header_size=None)
    decoder.receive_data(b"5         ")
    decoder.receive_data(b"")
    with pytest.raises(ConnectionLost):
        list(decoder.frames())
