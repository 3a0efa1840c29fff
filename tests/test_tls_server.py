"""TLS on the chat port, over real TLS on loopback: both dialects, trust (a CA made by the
test, trust on first use, a changed fingerprint refused), every way a handshake can go wrong,
and 200 TLS clients at once."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import trustme
from conftest import NO_FLOOD_LIMITS
from tls_helpers import (
    any_certificate,
    ca_file,
    cert_files,
    closed_within,
    run_client,
    secure,
    tls_rich,
    trusting,
    wait_for,
)
from wire import SelectClient, WireClient, rich_client

from game_chat.client.events import CertificateChanged, CertificatePinned, Connected, Disconnected
from game_chat.client.known_servers import KnownServers
from game_chat.client.net import ChatClient
from game_chat.client.tls import TlsOptions
from game_chat.protocol.framing import encode_frame
from game_chat.protocol.messages import Notice
from game_chat.server import ChatServer
from game_chat.server.tls import ensure_self_signed

WRONG = ":".join(["AB"] * 32)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(server_factory, ca: trustme.CA, tmp_path: Path) -> ChatServer:  # type: ignore[no-untyped-def]
    cert, key = cert_files(ca, tmp_path)
    return server_factory(tls_cert=cert, tls_key=key, limits=NO_FLOOD_LIMITS)  # type: ignore[no-any-return]


@pytest.fixture
def self_signed(server_factory, tmp_path: Path) -> ChatServer:  # type: ignore[no-untyped-def]
    cert, key, made = ensure_self_signed(tmp_path / "data", "test")
    assert made and (tmp_path / "data" / "tls-self-signed.key").stat().st_mode & 0o077 == 0
    return server_factory(tls_cert=str(cert), tls_key=str(key))  # type: ignore[no-any-return]


def handshake_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "TLS handshake failed" in r.getMessage()]


# --- both dialects ----------------------------------------------------------------------------


def test_rich_tutorial_and_select_clients_chat_over_tls(
    tls_server: ChatServer, ca: trustme.CA
) -> None:
    """The 64-byte header protocol inside TLS, in both dialects (and the select tutorial's
    10-byte headers): the same bytes as in clear text, encrypted."""
    context = trusting(ca)
    alice, welcome = tls_rich(tls_server.address, context, "alice")
    assert welcome["nick"] == "alice"
    bob = secure(SelectClient(tls_server.address), context)
    bob.send("bob")
    assert alice.recv_until(lambda m: m["type"] == "join")["nick"] == "bob"
    tut = secure(WireClient(tls_server.address), context)
    tut.send("Hello!")
    assert tut.recv_text() == "Message was Sent!"
    assert bob.recv_pair() == ("*", "guest-1 joined #lobby")
    assert bob.recv_pair() == ("guest-1", "Hello!")
    said = alice.recv_until(lambda m: m["type"] == "chat")
    assert (said["nick"], said["text"]) == ("guest-1", "Hello!")
    alice.send_json(type="chat", text="hi both", id="c1")
    assert alice.recv_until(lambda m: m["type"] == "ack")["id"] == "c1"
    assert tut.recv_text() == "alice: hi both"
    assert bob.recv_pair() == ("alice", "hi both")
    tut.send("/nick tut")
    assert tut.recv_text() == "* guest-1 is now known as tut"


def test_a_flood_over_tls_arrives_whole_and_in_order(
    tls_server: ChatServer, ca: trustme.CA
) -> None:
    """Many lines at once: batches, write-through and partial sends, all encrypted."""
    context = trusting(ca)
    sender, _ = tls_rich(tls_server.address, context, "sender")
    reader, _ = tls_rich(tls_server.address, context, "reader")
    count = 1500
    text = "x" * 400
    sender.send_raw(
        b"".join(
            encode_frame(b'{"type":"chat","text":"%d %s","id":%d}' % (i, text.encode(), i))
            for i in range(count)
        )
    )
    time.sleep(0.3)  # the reader reads nothing meanwhile: socket buffers fill, sends are cut
    got = [reader.recv_until(lambda m: m["type"] == "chat")["text"] for _ in range(count)]
    assert got == [f"{i} {text}" for i in range(count)]


def test_the_plain_port_beside_tls(server_factory, ca: trustme.CA, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = cert_files(ca, tmp_path)
    server = server_factory(tls_cert=cert, tls_key=key, plain_port=0)
    assert server.plain_address[1] != server.address[1]
    alice, _ = tls_rich(server.address, trusting(ca), "alice")
    bob, _ = rich_client(server.plain_address, "bob")
    bob.send_json(type="chat", text="in clear", id=1)
    assert alice.recv_until(lambda m: m["type"] == "chat")["text"] == "in clear"


def test_a_listen_first_tutorial_client_over_tls_becomes_a_guest(
    server_factory, ca: trustme.CA, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    cert, key = cert_files(ca, tmp_path)
    server = server_factory(tls_cert=cert, tls_key=key, plain_grace=0.2)
    watcher, _ = tls_rich(server.address, trusting(ca), "watcher")
    before = threading.active_count()
    listener = secure(WireClient(server.address), trusting(ca))  # handshakes, then listens
    guest = watcher.recv_until(lambda m: m["type"] == "join")["nick"]
    assert guest.startswith("guest-")
    assert threading.active_count() <= before + 1  # a quiet guest costs no thread
    watcher.send_json(type="chat", text="can you hear me", id=1)
    assert listener.recv_text() == "watcher: can you hear me"


def test_shutdown_says_goodbye_over_tls(server_factory, ca: trustme.CA, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = cert_files(ca, tmp_path)
    server = server_factory(tls_cert=cert, tls_key=key)
    alice, _ = tls_rich(server.address, trusting(ca), "alice")
    server.shutdown()
    assert alice.recv_until(lambda m: m["type"] == "bye")["reason"] == "server shutting down"
    assert alice.recv() is None  # then a clean end (close_notify), not a reset


def test_a_refusal_at_connect_is_told_inside_tls(
    server_factory, ca: trustme.CA, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    cert, key = cert_files(ca, tmp_path)
    server = server_factory(tls_cert=cert, tls_key=key, max_clients=1)
    first, _ = tls_rich(server.address, trusting(ca), "first")
    late = secure(WireClient(server.address), trusting(ca))
    refusal = late.recv_json()
    assert (refusal["code"], refusal["fatal"]) == ("server_full", True)
    assert late.recv() is None
    client = ChatClient(
        "localhost", server.address[1], "late", tls=TlsOptions(ca_file=ca_file(ca, tmp_path))
    )
    try:
        end = run_client(client)[-1]
    finally:
        client.close()
    assert isinstance(end, Disconnected) and "server full" in end.reason
    first.close()


# --- trust ------------------------------------------------------------------------------------


def test_a_certificate_from_a_ca_is_verified_and_nothing_is_pinned(
    tls_server: ChatServer, ca: trustme.CA, tmp_path: Path
) -> None:
    known = tmp_path / "known"
    options = TlsOptions(ca_file=ca_file(ca, tmp_path), known_servers=str(known))
    client = ChatClient("localhost", tls_server.address[1], "alice", tls=options)
    try:
        events = run_client(client)
    finally:
        client.close()
    assert isinstance(events[-1], Connected)
    assert not any(isinstance(e, CertificatePinned) for e in events)
    assert not known.exists()
    assert tls_server.tls is not None and client.tls_fingerprint == tls_server.tls.fingerprint


def test_a_certificate_for_another_name_is_not_verified_but_trusted_on_first_use(
    server_factory, ca: trustme.CA, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The CA signed the certificate for example.test, not for 127.0.0.1: a pin, then."""
    cert = ca.issue_cert("example.test")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "other.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    server = server_factory(
        tls_cert=str(tmp_path / "other.pem"), tls_key=str(tmp_path / "other.key")
    )
    options = TlsOptions(ca_file=ca_file(ca, tmp_path), known_servers=str(tmp_path / "known"))
    client = ChatClient("127.0.0.1", server.address[1], "alice", tls=options)
    try:
        events = run_client(client)
    finally:
        client.close()
    assert isinstance(events[-1], Connected)
    assert any(isinstance(e, CertificatePinned) for e in events)


def test_trust_on_first_use_pins_once_and_says_so_once(
    self_signed: ChatServer, tmp_path: Path
) -> None:
    options = TlsOptions(known_servers=str(tmp_path / "known"))
    port = self_signed.address[1]
    first = ChatClient("127.0.0.1", port, "alice", tls=options)
    try:
        events = run_client(first)
    finally:
        first.close()
    pinned = [e for e in events if isinstance(e, CertificatePinned)]
    assert self_signed.tls is not None
    assert [p.fingerprint for p in pinned] == [self_signed.tls.fingerprint]
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and self_signed.tls.fingerprint in notices[0]
    assert KnownServers(tmp_path / "known").get("127.0.0.1", port) == self_signed.tls.fingerprint
    again = ChatClient("127.0.0.1", port, "alice2", tls=options)
    try:
        events = run_client(again)
    finally:
        again.close()
    assert isinstance(events[-1], Connected)
    assert not any(isinstance(e, CertificatePinned | Notice) for e in events)


def test_a_wrong_fingerprint_is_refused_loudly_until_accepted(
    self_signed: ChatServer, tmp_path: Path, server_log: pytest.LogCaptureFixture
) -> None:
    port = self_signed.address[1]
    known = KnownServers(tmp_path / "known")
    known.pin("127.0.0.1", port, WRONG)
    options = TlsOptions(known_servers=str(known.path))
    client = ChatClient("127.0.0.1", port, "alice", tls=options)
    try:
        events = run_client(client)
    finally:
        client.close()
    assert self_signed.tls is not None
    real = self_signed.tls.fingerprint
    changed = next(e for e in events if isinstance(e, CertificateChanged))
    assert (changed.known, changed.presented) == (WRONG, real)
    end = events[-1]
    assert isinstance(end, Disconnected) and not end.will_retry
    assert end.code == "certificate_changed"
    assert "CHANGED" in end.reason and WRONG in end.reason and real in end.reason
    assert f"--accept-fingerprint {real}" in end.reason
    assert not any(isinstance(e, Connected) for e in events)
    assert known.get("127.0.0.1", port) == WRONG  # nothing changed by a refusal
    accepting = ChatClient(
        "127.0.0.1",
        port,
        "alice",
        tls=TlsOptions(known_servers=str(known.path), accept_fingerprint=real),
    )
    try:
        events = run_client(accepting)
    finally:
        accepting.close()
    assert isinstance(events[-1], Connected)
    pinned = next(e for e in events if isinstance(e, CertificatePinned))
    assert (pinned.fingerprint, pinned.replaced) == (real, WRONG)
    assert known.get("127.0.0.1", port) == real


def test_a_first_connection_must_match_the_fingerprint_announced_on_the_lan(
    self_signed: ChatServer, tmp_path: Path
) -> None:
    port = self_signed.address[1]
    options = TlsOptions(known_servers=str(tmp_path / "known"), expected_fingerprint=WRONG)
    client = ChatClient("127.0.0.1", port, "alice", tls=options)
    try:
        events = run_client(client)
    finally:
        client.close()
    end = events[-1]
    assert isinstance(end, Disconnected) and end.code == "certificate_mismatch"
    assert not (tmp_path / "known").exists()
    assert self_signed.tls is not None
    right = TlsOptions(
        known_servers=str(tmp_path / "known"), expected_fingerprint=self_signed.tls.fingerprint
    )
    client = ChatClient("127.0.0.1", port, "alice", tls=right)
    try:
        assert isinstance(run_client(client)[-1], Connected)
    finally:
        client.close()


def test_a_tls_client_against_a_clear_text_server_says_so(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = ChatClient(
        "127.0.0.1", server.address[1], "alice", tls=TlsOptions(known_servers=str(tmp_path / "k"))
    )
    try:
        end = run_client(client)[-1]
    finally:
        client.close()
    assert isinstance(end, Disconnected) and "does not speak TLS" in end.reason


# --- what a peer can do wrong during the handshake ------------------------------------------


def test_a_clear_text_frame_on_the_tls_port_is_told_to_use_tls(
    tls_server: ChatServer, server_log: pytest.LogCaptureFixture
) -> None:
    plain = WireClient(tls_server.address)
    plain.send_json(type="hello", nick="alice", version=1)
    error = plain.recv_json()
    assert (error["type"], error["code"], error["fatal"]) == ("error", "tls_required", True)
    assert "tls://" in error["message"]
    assert plain.recv() is None
    wait_for(lambda: handshake_lines(server_log))
    assert "clear-text frame" in handshake_lines(server_log)[0]
    client = ChatClient("127.0.0.1", tls_server.address[1], "alice")  # the bundled one, in clear
    try:
        end = run_client(client)[-1]
    finally:
        client.close()
    assert isinstance(end, Disconnected) and end.code == "tls_required" and not end.will_retry


@pytest.mark.parametrize(
    ("sent", "logged"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not TLS"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 50, "closed by the peer"),
        (b"\x16\x03\x01\x00\x05hello", "TLS handshake failed: "),
    ],
)
def test_garbage_or_a_cut_handshake_is_one_log_line(
    tls_server: ChatServer,
    server_log: pytest.LogCaptureFixture,
    sent: bytes,
    logged: str,
) -> None:
    sock = socket.create_connection(tls_server.address)
    sock.sendall(sent)
    if logged == "closed by the peer":  # a ClientHello cut short, then the peer goes
        time.sleep(0.1)
        sock.close()
    else:
        assert closed_within(sock)
        sock.close()
    wait_for(lambda: handshake_lines(server_log))
    lines = handshake_lines(server_log)
    assert len(lines) == 1 and logged in lines[0], lines
    wait_for(lambda: tls_server.client_count == 0)
    rich, _ = tls_rich(tls_server.address, any_certificate(), "still_fine")
    rich.close()


def test_a_stalled_handshake_is_timed_out_and_costs_no_thread(
    server_factory, ca: trustme.CA, tmp_path: Path, server_log: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    cert, key = cert_files(ca, tmp_path)
    server = server_factory(tls_cert=cert, tls_key=key, hello_timeout=0.5)
    before = threading.active_count()
    stalled = [socket.create_connection(server.address) for _ in range(20)]
    for sock in stalled[:10]:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
    time.sleep(0.2)
    assert threading.active_count() <= before  # no thread for any of them
    started = time.monotonic()
    assert all(closed_within(sock, 3.0) for sock in stalled)
    assert time.monotonic() - started < 2.0
    for sock in stalled:
        sock.close()
    wait_for(lambda: len(handshake_lines(server_log)) == 20)
    assert all("not done within 0.5 s" in line for line in handshake_lines(server_log))


def test_200_tls_clients_at_once(server_factory, ca: trustme.CA, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = cert_files(ca, tmp_path)
    server = server_factory(tls_cert=cert, tls_key=key, limits=NO_FLOOD_LIMITS)
    context = trusting(ca)
    started = time.monotonic()
    with ThreadPoolExecutor(100) as pool:
        clients = list(
            pool.map(lambda n: tls_rich(server.address, context, f"c{n}")[0], range(200))
        )
    try:
        connected = time.monotonic() - started
        assert server.client_count == 200
        clients[0].send_json(type="chat", text="to all 200", id=1)
        with ThreadPoolExecutor(100) as pool:
            heard = list(
                pool.map(lambda c: c.recv_until(lambda m: m["type"] == "chat")["text"], clients[1:])
            )
        assert heard == ["to all 200"] * 199
        assert connected < 10, connected  # about a second on the 2-core machine
    finally:
        for client in clients:
            client.close()
