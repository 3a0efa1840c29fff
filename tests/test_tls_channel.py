"""TlsChannel without sockets (two channels pumping bytes to each other), and the outbox's TLS
send path on a real socket pair."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
import trustme

from game_chat.protocol.tls import (
    TlsChannel,
    TlsError,
    compact_fingerprint,
    fingerprint,
    looks_like_frame,
    looks_like_tls,
    normalize_fingerprint,
)
from game_chat.server.outbox import BLOCKED, DRAINED, Outbox


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def contexts(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def pair(ca: trustme.CA) -> tuple[TlsChannel, TlsChannel]:
    server_context, client_context = contexts(ca)
    server = TlsChannel(server_context, server_side=True)
    client = TlsChannel(client_context, server_side=False, server_hostname="localhost")
    return server, client


def handshake(server: TlsChannel, client: TlsChannel, chunk: int = 1 << 20) -> None:
    """Pump handshake bytes both ways, ``chunk`` bytes at a time, until both are done."""
    done = client.handshake(None)
    server_done = False
    for _ in range(100_000):
        if done and server_done:
            return
        to_server = client.take_output()
        for i in range(0, len(to_server), chunk):
            server_done = server.handshake(to_server[i : i + chunk])
        to_client = server.take_output()
        for i in range(0, len(to_client), chunk):
            done = client.handshake(to_client[i : i + chunk])
    raise AssertionError("no handshake")


def read_all(channel: TlsChannel, size: int = 1 << 20) -> bytes:
    out = b""
    while (data := channel.read(size)) is not None:
        if not data:
            break
        out += data
    return out


def test_handshake_then_data_both_ways(ca: trustme.CA) -> None:
    server, client = pair(ca)
    handshake(server, client)
    assert server.established and client.established
    assert client.version in ("TLSv1.2", "TLSv1.3")
    server.receive(client.wrap(b"hello server"))
    assert read_all(server) == b"hello server"
    client.receive(server.wrap(b"hello client"))
    assert read_all(client) == b"hello client"


def test_chunk_boundaries_one_byte_at_a_time(ca: trustme.CA) -> None:
    server, client = pair(ca)
    handshake(server, client, chunk=1)
    wire = client.wrap(b"x" * 5000 + b"end")
    got = b""
    for i in range(len(wire)):
        server.receive(wire[i : i + 1])
        got += read_all(server)
    assert got == b"x" * 5000 + b"end"


def test_reads_are_bounded_and_more_says_when_to_read_again(ca: trustme.CA) -> None:
    server, client = pair(ca)
    handshake(server, client)
    server.receive(client.wrap(b"a" * 40_000))  # three records
    pieces = []
    while server.more:
        data = server.read(100)
        if data is None:
            break
        assert 0 < len(data) <= 100
        pieces.append(data)
    assert b"".join(pieces) == b"a" * 40_000
    assert server.read(100) is None and not server.more


def test_close_notify_is_a_clean_end_and_a_cut_is_an_end_too(ca: trustme.CA) -> None:
    server, client = pair(ca)
    handshake(server, client)
    server.receive(client.wrap(b"bye") + client.close_notify())
    assert server.read(100) == b"bye"
    assert server.read(100) == b""
    server, client = pair(ca)
    handshake(server, client)
    server.receive(b"")  # EOF without a close_notify
    assert server.read(100) == b""


def test_a_forged_record_is_a_tls_error_and_the_alert_waits_for_the_sender(
    ca: trustme.CA,
) -> None:
    server, client = pair(ca)
    handshake(server, client)
    record = bytearray(client.wrap(b"important"))
    record[-1] ^= 1
    server.receive(bytes(record))
    with pytest.raises(TlsError) as caught:
        server.read(100)
    assert isinstance(caught.value, OSError) and caught.value.reason
    assert server.output_waiting  # the alert: only the sending side takes it out
    assert server.take_output() and not server.output_waiting


@pytest.mark.parametrize(
    "garbage",
    [b"43" + b" " * 62 + b'{"type":"hello"}', b"GET / HTTP/1.1\r\n\r\n", b"\x00" * 100],
)
def test_garbage_instead_of_a_client_hello_is_a_tls_error(ca: trustme.CA, garbage: bytes) -> None:
    server, _ = pair(ca)
    with pytest.raises(TlsError) as caught:
        server.handshake(garbage)
    assert caught.value.reason
    assert not caught.value.verify_failed


def test_a_closed_handshake_and_an_untrusted_certificate(ca: trustme.CA) -> None:
    server, _ = pair(ca)
    with pytest.raises(TlsError, match="closed"):
        server.handshake(b"")
    server_context, _ = contexts(ca)
    server = TlsChannel(server_context, server_side=True)
    stranger = TlsChannel(ssl.create_default_context(), server_side=False, server_hostname="x")
    with pytest.raises(TlsError) as caught:
        handshake(server, stranger)
    assert caught.value.verify_failed and caught.value.verify_message


def test_peer_certificate_and_fingerprints(ca: trustme.CA) -> None:
    server, client = pair(ca)
    handshake(server, client)
    der = client.peer_certificate()
    assert der is not None
    printed = fingerprint(der)
    assert len(printed) == 95 and printed.count(":") == 31 and printed == printed.upper()
    assert normalize_fingerprint("SHA256:" + printed.lower().replace(":", " ")) == printed
    assert compact_fingerprint(printed) == printed.replace(":", "").lower()
    with pytest.raises(ValueError):
        normalize_fingerprint("AB:CD")
    assert looks_like_tls(b"\x16\x03\x01") and not looks_like_tls(b"43  ")
    assert looks_like_frame(b"43  ") and looks_like_frame(b"\x00") and not looks_like_frame(b"\x16")


def test_a_reader_and_a_writer_thread_share_one_channel(ca: trustme.CA) -> None:
    """The server's reader decrypts what the client sends while its sender encrypts what the
    client reads, at the same time on one channel: both streams arrive whole and in order."""
    server, client = pair(ca)
    handshake(server, client)
    count = 3000
    up = [client.wrap(b"up%06d." % i) for i in range(count)]  # encrypted ahead
    received: list[bytes] = []
    down: list[bytes] = []

    def reader() -> None:
        for record in up:
            server.receive(record)
            received.append(read_all(server))

    def writer() -> None:
        for i in range(count):
            down.append(server.wrap(b"down%06d." % i))

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert b"".join(received) == b"".join(b"up%06d." % i for i in range(count))
    client.receive(b"".join(down))
    assert read_all(client) == b"".join(b"down%06d." % i for i in range(count))


# --- the outbox over TLS --------------------------------------------------------------------


def tls_outbox(ca: trustme.CA, limit: int) -> tuple[Outbox, TlsChannel, list[int]]:
    server, client = pair(ca)
    handshake(server, client)
    wakes: list[int] = []
    box = Outbox(limit, lambda: wakes.append(1), lambda: wakes.append(-1), tls=server)
    return box, client, wakes


def test_outbox_encrypts_at_send_time_and_keeps_what_a_send_left(ca: trustme.CA) -> None:
    box, client, _ = tls_outbox(ca, 1 << 24)
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    frames = [b"frame%05d|" % i * 100 for i in range(200)]
    for frame in frames:
        box.put(frame)
    assert box.size == sum(map(len, frames))  # plaintext until it is sent
    assert box.send_to(a) == BLOCKED
    plain = b""
    for _ in range(100_000):
        try:
            client.receive(b.recv(1 << 20))
            plain += read_all(client)
        except BlockingIOError:
            pass
        if box.send_to(a) == DRAINED and plain == b"".join(frames):
            break
    assert plain == b"".join(frames)
    assert box.size == 0


def test_outbox_sends_what_the_channel_has_waiting_without_frames(ca: trustme.CA) -> None:
    box, client, _ = tls_outbox(ca, 1 << 20)
    a, b = socket.socketpair()
    assert box.send_to(a) == DRAINED  # nothing at all
    tls = box.tls
    assert tls is not None
    tls.output_waiting = True  # as after the reader saw a key update
    assert box.send_to(a) == DRAINED
    box.put(b"after")
    assert box.send_to(a) == DRAINED
    client.receive(b.recv(1 << 16))
    assert read_all(client) == b"after"


def test_outbox_overflow_counts_plaintext_and_the_leftover(ca: trustme.CA) -> None:
    box, _, wakes = tls_outbox(ca, 10_000)
    a, _b = socket.socketpair()
    a.setblocking(False)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    box.put(b"x" * 9000)
    assert box.send_to(a) == BLOCKED
    assert box.size > 0  # the ciphertext the socket did not take
    for _ in range(10):
        box.put(b"y" * 1000)
    assert box.overflowed and -1 in wakes
    assert box.send_to(a) == DRAINED


def test_outbox_close_notify_only_once_everything_went(ca: trustme.CA) -> None:
    box, client, _ = tls_outbox(ca, 1 << 20)
    a, b = socket.socketpair()
    box.put(b"last words")
    box.close_tls(a)  # something is queued: no close_notify before it
    assert box.send_to(a) == DRAINED
    box.close_tls(a)
    a.close()
    data = b""
    while chunk := b.recv(1 << 16):
        data += chunk
    client.receive(data)
    assert client.read(100) == b"last words"
    assert client.read(100) == b""  # a clean close
