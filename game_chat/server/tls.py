"""The server's certificate: loaded into the SSL context new handshakes use, reloaded on
SIGHUP (connections keep the context they started with), or made self-signed for a LAN.

TLS 1.2 and 1.3 only, with the ssl module's defaults for a server
(``ssl.create_default_context(Purpose.CLIENT_AUTH)``): no compression, no renegotiation, the
system's cipher list. No session tickets: a client reconnects with a full handshake.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from ..protocol.tls import TlsChannel, compact_fingerprint, fingerprint

log = logging.getLogger("game_chat.server")

#: The files --tls-self-signed makes and keeps in the server's data directory.
SELF_SIGNED_CERT = "tls-self-signed.pem"
SELF_SIGNED_KEY = "tls-self-signed.key"
SELF_SIGNED_DAYS = 3650

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.DOTALL)
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9-]{1,63})*")


class TlsSetupError(ValueError):
    """The certificate or key cannot be used; the message says why in plain words."""


def server_context(cert_file: str, key_file: str | None) -> ssl.SSLContext:
    """A server context with ``cert_file`` (PEM, the chain after the certificate) and its key
    (``key_file``, or inside ``cert_file`` when None)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.num_tickets = 0
    try:
        context.load_cert_chain(cert_file, key_file)
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise TlsSetupError(
                f"cannot use the certificate {cert_file} with the key {key_file or cert_file}: "
                f"{exc.reason or exc} (both PEM, and the key must be the certificate's)"
            ) from None
        raise TlsSetupError(
            f"cannot read {exc.filename or cert_file}: {exc.strerror or exc}"
        ) from None
    return context


def certificate_fingerprint(cert_file: str) -> str:
    """The SHA-256 fingerprint of the first certificate in a PEM file (the server's own)."""
    try:
        text = Path(cert_file).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise TlsSetupError(f"cannot read {cert_file}: {exc.strerror or exc}") from None
    match = _PEM_CERT.search(text)
    if match is None:
        raise TlsSetupError(f"{cert_file} holds no PEM certificate")
    return fingerprint(ssl.PEM_cert_to_DER_cert(match.group(0)))


@dataclass(frozen=True)
class _Loaded:
    context: ssl.SSLContext
    fingerprint: str


class ServerTls:
    """The certificate new handshakes use. :meth:`reload` swaps in one read from the same
    files, in one assignment: a handshake under way, and every connection made, keep the
    context they were made with (an ``SSLObject`` holds its own)."""

    def __init__(self, cert_file: str, key_file: str | None = None) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self._loaded = self._load()  # TlsSetupError

    def _load(self) -> _Loaded:
        context = server_context(self.cert_file, self.key_file)
        return _Loaded(context, certificate_fingerprint(self.cert_file))

    def reload(self) -> None:
        """Read the files again; on TlsSetupError the certificate in use stays."""
        self._loaded = self._load()

    @property
    def fingerprint(self) -> str:
        return self._loaded.fingerprint

    @property
    def compact_fingerprint(self) -> str:
        return compact_fingerprint(self._loaded.fingerprint)

    def channel(self) -> TlsChannel:
        """The TLS state of a new connection (accept thread)."""
        return TlsChannel(self._loaded.context, server_side=True)


def default_tls_dir() -> Path:
    """Where --tls-self-signed keeps its certificate: the server's data directory."""
    from .history import default_history_path

    return default_history_path().parent


def self_signed_paths(directory: Path) -> tuple[Path, Path]:
    return directory / SELF_SIGNED_CERT, directory / SELF_SIGNED_KEY


def ensure_self_signed(directory: Path, server_name: str) -> tuple[Path, Path, bool]:
    """The self-signed certificate and key kept in ``directory``: made there on first use
    (an ECDSA P-256 key, readable by this user only, valid 10 years). Returns
    (certificate, key, made now). Needs the ``cryptography`` package to make one."""
    cert_path, key_path = self_signed_paths(directory)
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path, False
    try:
        cert_pem, key_pem = _make_self_signed(server_name)
    except ImportError:
        raise TlsSetupError(
            "--tls-self-signed needs the cryptography package to make a certificate "
            "(python3 -m pip install cryptography), or give --tls-cert and --tls-key"
        ) from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_private(key_path, key_pem)
        _write_private(cert_path, cert_pem, mode=0o644)
    except OSError as exc:
        raise TlsSetupError(
            f"cannot keep a certificate in {directory}: {exc.strerror or exc}"
        ) from None
    return cert_path, key_path, True


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` whole or not at all (a temporary file renamed), with ``mode``."""
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _make_self_signed(server_name: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a new self-signed certificate for this machine."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()
    common = f"game_chat {server_name} on {host}"[:64]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if host.isascii() and _HOSTNAME.fullmatch(host) and host != "localhost":
        names.insert(0, x509.DNSName(host))
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
