"""run_server.py with TLS, as a real process: --tls-self-signed kept across runs, the
certificate reloaded on SIGHUP with a client staying connected, setup errors, and
run_client.py --no-gui over TLS."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trustme
from tls_helpers import any_certificate, cert_files, tls_rich, trusting

from game_chat.client.known_servers import KnownServers
from game_chat.protocol.tls import fingerprint
from game_chat.server import ChatServer
from game_chat.server.tls import TlsSetupError, ensure_self_signed

ROOT = Path(__file__).resolve().parent.parent


class Server:
    """run_server.py on 127.0.0.1, a free port; its output read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "run_server.py"), "--host", "127.0.0.1", "--port", "0",
             "--no-history", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        for stream in (self.process.stdout, self.process.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()
        first = self.wait_for("game_chat server listening on")
        self.port = int(first.rsplit(":", 1)[1])
        self.address = ("127.0.0.1", self.port)

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r}") from None
            assert "Traceback" not in line, line
            if text in line:
                return line

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=5)
        finally:
            self.process.kill()


def served_fingerprint(address: tuple[str, int]) -> str:
    raw = socket.create_connection(address)
    with any_certificate().wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return fingerprint(der)


def test_a_self_signed_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    fingerprints = []
    for _ in range(2):
        server = Server("--tls-self-signed")
        try:
            line = server.wait_for("TLS certificate SHA-256 fingerprint:")
            fingerprints.append(line.rsplit(" ", 1)[1])
            server.wait_for("self-signed: clients trust it on first use")
            assert served_fingerprint(server.address) == fingerprints[-1]
        finally:
            assert server.stop() == 0
    assert fingerprints[0] == fingerprints[1]


def test_sighup_reloads_the_certificate_and_nobody_is_dropped(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert, key = cert_files(ca, tmp_path)
    first = served = None
    server = Server("--tls-cert", cert, "--tls-key", key, "--no-flood-limits")
    try:
        first = served_fingerprint(server.address)
        alice, _ = tls_rich(server.address, trusting(ca), "alice")
        cert_files(ca, tmp_path)  # a new certificate and key in the same files
        server.process.send_signal(signal.SIGHUP)
        reloaded = server.wait_for("TLS certificate reloaded")
        served = served_fingerprint(server.address)
        assert served != first and served in reloaded
        bob, _ = tls_rich(server.address, trusting(ca), "bob")
        alice.send_json(type="chat", text="still here", id=1)  # on the old certificate
        assert alice.recv_until(lambda m: m["type"] == "ack")["id"] == 1
        assert bob.recv_until(lambda m: m["type"] == "chat")["text"] == "still here"
        Path(cert).write_text("not a certificate\n")
        server.process.send_signal(signal.SIGHUP)
        server.wait_for("TLS certificate not reloaded, the one in use stays")
        assert served_fingerprint(server.address) == served
        alice.send_json(type="chat", text="and still", id=2)
        assert bob.recv_until(lambda m: m["type"] == "chat")["text"] == "and still"
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--tls-cert", "/nonexistent/cert.pem"), "cannot read /nonexistent/cert.pem"),
        (("--plain-port", "0"), "--plain-port is the clear-text port beside TLS"),
        (("--tls-self-signed", "--tls-cert", "x.pem"), "not both"),
    ],
)
def test_tls_setup_errors_are_one_line(args: tuple[str, ...], said: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_server.py"), "--host", "127.0.0.1", "--port", "0",
         "--no-history", *args],
        capture_output=True, text=True, timeout=20, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], result.stderr


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert, _ = cert_files(ca, tmp_path, "one")
    _, other_key = cert_files(ca, tmp_path, "two")
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_server.py"), "--host", "127.0.0.1", "--port", "0",
         "--no-history", "--tls-cert", cert, "--tls-key", other_key],
        capture_output=True, text=True, timeout=20, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2 and "the key must be the certificate's" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_terminal_client_trusts_on_first_use_and_refuses_a_change(
    server_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """run_client.py --no-gui --server tls://...: the notice once, then a loud refusal (exit
    1) when the pin is not the server's, then --accept-fingerprint."""
    cert, key, _ = ensure_self_signed(tmp_path / "data", "test")
    server: ChatServer = server_factory(tls_cert=str(cert), tls_key=str(key))
    assert server.tls is not None
    address = f"tls://127.0.0.1:{server.address[1]}"
    peer, _ = tls_rich(server.address, any_certificate(), "peer")

    def client(*extra: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "run_client.py", "--no-gui", "--server", address, "--nick", "term",
             *extra],
            input=stdin, capture_output=True, text=True, timeout=20, cwd=ROOT,
            env={"GAME_CHAT_CONFIG_DIR": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip

    first = client(stdin="hello over tls\n")
    assert first.returncode == 0, first.stderr
    assert "First encrypted connection" in first.stdout and server.tls.fingerprint in first.stdout
    said = peer.recv_until(lambda m: m["type"] == "chat")
    assert (said["nick"], said["text"]) == ("term", "hello over tls")
    known = KnownServers(tmp_path / "config" / "known_servers")
    known.pin("127.0.0.1", server.address[1], ":".join(["EF"] * 32))
    refused = client()
    assert refused.returncode == 1
    assert "REFUSED" in refused.stdout and "--accept-fingerprint" in refused.stdout
    accepted = client("--accept-fingerprint", server.tls.fingerprint)
    assert accepted.returncode == 0 and "You accepted the new TLS certificate" in accepted.stdout
    assert known.get("127.0.0.1", server.address[1]) == server.tls.fingerprint


def test_the_system_trust_store_verifies_a_real_certificate(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """No --tls-ca: the client's default context reads the system's store, which
    SSL_CERT_FILE points at the test's CA here. Verified, so nothing is pinned or said."""
    ca = trustme.CA()
    cert, key = cert_files(ca, tmp_path)
    server = server_factory(tls_cert=cert, tls_key=key)
    ca.cert_pem.write_to_path(str(tmp_path / "system-ca.pem"))
    result = subprocess.run(
        [sys.executable, "run_client.py", "--no-gui", "--server",
         f"tls://localhost:{server.address[1]}", "--nick", "verified"],
        input="hi\n", capture_output=True, text=True, timeout=20, cwd=ROOT,
        env={"GAME_CHAT_CONFIG_DIR": str(tmp_path / "config"), "PATH": "/usr/bin:/bin",
             "SSL_CERT_FILE": str(tmp_path / "system-ca.pem")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connected to game_chat as verified" in result.stdout
    assert "First encrypted connection" not in result.stdout
    assert not (tmp_path / "config" / "known_servers").exists()


def test_without_cryptography_self_signed_is_a_plain_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cryptography is needed only to make the certificate: without it, one sentence."""
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(TlsSetupError, match="needs the cryptography package"):
        ensure_self_signed(tmp_path / "data", "test")
    assert not (tmp_path / "data").exists()
