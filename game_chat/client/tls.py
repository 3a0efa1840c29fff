"""The client's TLS: which certificates it trusts, and the handshake over its socket.

Trust (docs/SECURITY.md):

1. A certificate the system trusts (or ``ca_file``) for the host name is accepted, as a
   browser would. A server with a real certificate needs nothing more.
2. Otherwise (a self-signed LAN server): trust on first use. The first connection to
   ``host:port`` pins the certificate's SHA-256 fingerprint in ``known_servers``
   (:mod:`~game_chat.client.known_servers`) and says so once; later connections must show the
   same certificate. A fingerprint announced on the LAN, when given, must match a first one.
3. Any other certificate is refused, loudly, naming the known and the new fingerprint. It is
   accepted only deliberately: ``accept_fingerprint`` (``--accept-fingerprint``, or the
   connect screen's "Trust the new certificate").

The handshake runs on the client's network thread through a
:class:`~game_chat.protocol.tls.TlsChannel` (the same as the server's), with the socket
non-blocking, the connect timeout as its deadline, and the client's wake-up socket watched so
that closing the client does not wait for it.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..protocol.tls import TlsChannel, TlsError, fingerprint, normalize_fingerprint
from .events import CertificateChanged, CertificatePinned
from .known_servers import KnownServers, server_key

log = logging.getLogger("game_chat.client")

TLS_SCHEME = "tls://"
#: Disconnected codes of a refused certificate (the connection is not retried).
CERTIFICATE_CHANGED = "certificate_changed"
CERTIFICATE_MISMATCH = "certificate_mismatch"  # not the one announced on the LAN

#: OpenSSL's reasons when the other side does not speak TLS at all.
_NOT_TLS = frozenset(
    {"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"}
)


@dataclass(frozen=True)
class TlsOptions:
    """How a :class:`~game_chat.client.net.ChatClient` uses TLS (``tls=TlsOptions(...)``;
    ``tls=True`` is ``TlsOptions()``)."""

    #: A CA certificate (PEM) to trust besides the system's, e.g. a club's own CA.
    ca_file: str | None = None
    #: The file of trusted-on-first-use fingerprints (None: known_servers in the config dir).
    known_servers: str | None = None
    #: Accept this certificate (its SHA-256 fingerprint) for the server even though another
    #: one is pinned: how a person accepts a changed certificate deliberately.
    accept_fingerprint: str | None = None
    #: The fingerprint LAN discovery announced for this server: a first connection must see
    #: it (discovery is unauthenticated: it never overrides a pin).
    expected_fingerprint: str | None = None


class TrustRefused(Exception):
    """The server's certificate is not the one trusted: never retried on its own."""

    def __init__(self, code: str, message: str, event: CertificateChanged) -> None:
        super().__init__(message)
        self.code, self.message, self.event = code, message, event


def split_scheme(text: str) -> tuple[bool, str]:
    """``tls://a:5050,tls://b:5050`` -> (True, ``a:5050,b:5050``): every address of a list
    must say the same. ValueError in plain words for a mix or another scheme."""
    parts = [part.strip() for part in text.split(",")]
    secure = [part.lower().startswith(TLS_SCHEME) for part in parts if part]
    if any(secure) and not all(secure):
        raise ValueError("write tls:// before every address of the list, or before none")
    stripped = [part[len(TLS_SCHEME) :] if secure and secure[0] else part for part in parts]
    if any("://" in part for part in stripped):
        raise ValueError("the only scheme is tls:// (encrypted); no scheme is clear text")
    return bool(secure) and secure[0], ",".join(stripped)


def describe_tls_error(exc: TlsError) -> str:
    """A handshake failure in plain words."""
    if exc.reason in _NOT_TLS:
        return "the server does not speak TLS on this port (try without tls://)"
    if exc.message.startswith("connection closed"):
        return (
            "the server closed the connection during the TLS handshake (is it full, are you "
            "banned, or does it not speak TLS?)"
        )
    return f"TLS failed: {exc.message}"


class Trust:
    """One client's trust decisions, across its reconnections (network thread only)."""

    VERIFY, PIN = "verify", "pin"

    def __init__(self, options: TlsOptions) -> None:
        self.options = options
        self.known = KnownServers(options.known_servers)
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._unverified: set[str] = set()  # servers the system store does not vouch for
        self._session_pins: dict[str, str] = {}  # pins the file could not keep

    def first_mode(self, host: str, port: int) -> str:
        """Try the system's trust first, unless the server is already known to need a pin."""
        key = server_key(host, port)
        if key in self._unverified or self._pinned(host, port) is not None:
            return self.PIN
        return self.VERIFY

    def unverified(self, host: str, port: int) -> None:
        self._unverified.add(server_key(host, port))

    def context(self, mode: str) -> ssl.SSLContext:
        context = self._contexts.get(mode)
        if context is None:
            context = self._contexts[mode] = self._make_context(mode)
        return context

    def _make_context(self, mode: str) -> ssl.SSLContext:
        if mode == self.VERIFY:
            context = self._verifying_context()
        else:  # the pin is the check: any certificate is read, then held against the pin
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _verifying_context(self) -> ssl.SSLContext:
        """The system's CAs (and ``ca_file``), the host name checked."""
        context = ssl.create_default_context()
        if self.options.ca_file:
            try:
                context.load_verify_locations(self.options.ca_file)
            except OSError as exc:  # a file missing, or no certificate in it
                words = exc.strerror or getattr(exc, "reason", None) or exc
                message = f"cannot use the CA file {self.options.ca_file}: {words}"
                raise TlsError(message) from None
        return context

    def accept(
        self, host: str, port: int, der: bytes | None, verified: bool
    ) -> CertificatePinned | None:
        """Whether the certificate ``der`` of ``host:port`` is trusted: None (as before), a
        CertificatePinned event (pinned now: first use, or accepted deliberately); raises
        TrustRefused."""
        presented = fingerprint(der or b"")
        known = self._pinned(host, port)
        if verified:  # a CA vouches for it: a pin of an older certificate is replaced
            if known is not None and known != presented:
                self._pin(host, port, presented)
            return None
        if known == presented:
            return None
        accept = self.options.accept_fingerprint
        if accept and normalize_fingerprint(accept) == presented:
            self._pin(host, port, presented)
            return CertificatePinned(host, port, presented, replaced=known)
        if known is None:
            expected = self.options.expected_fingerprint
            if expected and normalize_fingerprint(expected) != presented:
                raise self._refusal(host, port, normalize_fingerprint(expected), presented, True)
            self._pin(host, port, presented)
            return CertificatePinned(host, port, presented)
        raise self._refusal(host, port, known, presented, False)

    def _pinned(self, host: str, port: int) -> str | None:
        session = self._session_pins.get(server_key(host, port))
        return session if session is not None else self.known.get(host, port)

    def _pin(self, host: str, port: int, presented: str) -> None:
        self._session_pins[server_key(host, port)] = presented
        try:
            self.known.pin(host, port, presented)
        except OSError as exc:
            log.warning("cannot remember the certificate in %s: %s", self.known.path, exc)

    def _refusal(
        self, host: str, port: int, known: str, presented: str, announced: bool
    ) -> TrustRefused:
        address = server_key(host, port)
        event = CertificateChanged(host, port, known, presented, announced)
        if announced:
            code = CERTIFICATE_MISMATCH
            text = (
                f"REFUSED: the TLS certificate of {address} is not the one it announced on "
                f"the LAN. Announced: {known}. Shown: {presented}."
            )
        else:
            code = CERTIFICATE_CHANGED
            text = (
                f"REFUSED: the TLS certificate of {address} has CHANGED since you first "
                f"trusted it. Known: {known}. Now: {presented}."
            )
        text += (
            " Someone may be intercepting the connection, or the server has a new "
            "certificate: ask its host. To trust the new one, connect with "
            f"--accept-fingerprint {presented} (or press Trust the new certificate)."
        )
        return TrustRefused(code, text, event)


def pinned_notice(event: CertificatePinned) -> str:
    """What the chat says, once, when a certificate is pinned."""
    address = server_key(event.host, event.port)
    if event.replaced:
        return (
            f"You accepted the new TLS certificate of {address} (SHA-256 {event.fingerprint}); "
            f"the old one ({event.replaced}) is forgotten."
        )
    return (
        f"First encrypted connection to {address}: its certificate (SHA-256 "
        f"{event.fingerprint}) is now trusted for this server, and you will be warned if it "
        "ever changes. Compare it with the one the server shows if you can."
    )


def handshake(
    sock: socket.socket,
    channel: TlsChannel,
    deadline: float,
    wake: socket.socket,
    stop: Callable[[], bool],
) -> bool:
    """Run ``channel``'s client handshake over ``sock`` (made non-blocking) until
    ``deadline`` (monotonic). False if ``stop()`` became true meanwhile (``wake`` is
    readable then). Raises TlsError (an alert is sent first), TimeoutError or OSError."""
    sock.setblocking(False)
    done = channel.handshake(None)
    pending = channel.take_output()
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        while True:
            if pending:
                pending = pending[_send(sock, pending) :]
            if done and not pending:
                return True
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            selector.modify(sock, events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the TLS handshake did not finish in time")
            for key, mask in selector.select(left):
                if key.fileobj is wake:
                    _drain(wake)
                    if stop():
                        return False
                    continue
                if mask & selectors.EVENT_READ and not done:
                    done, more = _step(sock, channel)
                    pending += more


def _step(sock: socket.socket, channel: TlsChannel) -> tuple[bool, bytes]:
    """Read what came and advance the handshake: (done, bytes to send)."""
    try:
        data = sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return False, b""
    try:
        done = channel.handshake(data)
    except TlsError:
        alert = channel.take_output()
        if alert:
            try:
                sock.send(alert)
            except OSError:
                pass
        raise
    return done, channel.take_output()


def _drain(wake: socket.socket) -> None:
    try:
        while wake.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _send(sock: socket.socket, data: bytes) -> int:
    try:
        return sock.send(data)
    except (BlockingIOError, InterruptedError):
        return 0
