"""TLS as bytes in, bytes out: :class:`TlsChannel`, shared by the server and the client.

An ``ssl.SSLSocket`` does its own socket I/O and must not be used from two threads at once,
but a server connection is read by its reader thread and written by whichever thread sends
for it (its sender thread, or a thread writing a batch through). A channel is the TLS state
alone: an ``ssl.SSLObject`` over two ``ssl.MemoryBIO`` (ciphertext in, ciphertext out), and
the socket I/O stays where it was.

* The reading thread hands it what it received (:meth:`TlsChannel.receive`) and takes the
  plaintext out (:meth:`TlsChannel.read`). It never sends.
* The one thread sending at a time encrypts (:meth:`TlsChannel.wrap`) and sends the bytes it
  gets back, in the order it got them.
* One lock is held around every call into OpenSSL and nothing else (pure CPU: no socket, no
  other lock under it), so OpenSSL never runs on two threads for one connection, and neither
  side waits for the other's I/O.

Bytes OpenSSL makes while reading (the answer to a TLS 1.3 key update, an alert) stay in the
outgoing BIO with :attr:`TlsChannel.output_waiting` set: only the sending thread takes them
out (the next :meth:`TlsChannel.wrap` returns them ahead of the new records), so ciphertext
always leaves in the order OpenSSL made it. The reader only wakes the sender.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import threading

from .errors import ChatError

#: The first byte of every TLS record that opens a connection (a handshake record).
TLS_HANDSHAKE_RECORD = 0x16
#: What a frame of ours can start with (a header: digits, spaces or NULs).
_FRAME_START = frozenset(b"0123456789 \x00")
_HEX = re.compile(r"[0-9A-F]{64}")


class TlsError(ChatError, ConnectionError):
    """The TLS layer failed: the handshake (a peer that is not TLS, an alert, a certificate
    the client refused) or a record later (corrupt, forged). The connection is lost.

    ``reason`` is OpenSSL's short reason (``WRONG_VERSION_NUMBER``, ``TLSV1_ALERT_UNKNOWN_CA``)
    or ``""``; ``verify_failed`` is True when our side refused the peer's certificate, with
    OpenSSL's words in ``verify_message``.
    """

    def __init__(
        self, message: str, reason: str = "", verify_failed: bool = False, verify_message: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.verify_failed = verify_failed
        self.verify_message = verify_message

    @classmethod
    def from_ssl(cls, exc: ssl.SSLError) -> TlsError:
        if isinstance(exc, ssl.SSLCertVerificationError):
            words = exc.verify_message or exc.reason or "certificate not trusted"
            return cls(f"certificate not trusted: {words}", exc.reason or "", True, words)
        if isinstance(exc, ssl.SSLEOFError):
            return cls("connection closed in the middle of TLS", exc.reason or "")
        reason = exc.reason or type(exc).__name__
        return cls(reason.lower().replace("_", " "), reason)


class TlsChannel:
    """One TLS connection's state, without a socket (see the module docstring).

    The handshake side (:meth:`handshake`) is used by one thread before any other use; after
    it, :meth:`receive` and :meth:`read` belong to the reading thread and :meth:`wrap`,
    :meth:`take_output` and :meth:`close_notify` to whichever thread sends, one at a time.
    """

    __slots__ = ("_in", "_lock", "_obj", "_out", "established", "more", "output_waiting")

    def __init__(
        self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None = None
    ) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=server_hostname
        )
        self._lock = threading.Lock()
        #: The handshake is done: application data flows.
        self.established = False
        #: :meth:`read` may give plaintext without more ciphertext (read again before waiting
        #: on the socket); False once a read found nothing.
        self.more = False
        #: OpenSSL has bytes to send (the sender's :meth:`wrap` or :meth:`take_output` takes
        #: them).
        self.output_waiting = False

    # --- handshake -------------------------------------------------------------------------

    def handshake(self, ciphertext: bytes | None = None) -> bool:
        """Feed ``ciphertext`` (``b""``: the peer closed; None: nothing, to start a client's
        handshake) and advance the handshake. True once it is done; what it has to send is
        in :meth:`take_output` either way (an alert, too, before TlsError is raised)."""
        with self._lock:
            if ciphertext is not None:
                self._feed(ciphertext)
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                return False
            except ssl.SSLError as exc:
                raise TlsError.from_ssl(exc) from exc
            finally:
                self.output_waiting = self._out.pending > 0
            self.established = True
            self.more = self._in.pending > 0  # the peer's first data came with its Finished
            return True

    def peer_certificate(self) -> bytes | None:
        """The peer's certificate (DER), once established; None if it sent none."""
        with self._lock:
            return self._obj.getpeercert(binary_form=True)

    @property
    def version(self) -> str | None:
        return self._obj.version()

    # --- the reading side ------------------------------------------------------------------

    def receive(self, ciphertext: bytes) -> None:
        """Bytes from the socket; ``b""`` means the peer closed it."""
        with self._lock:
            self._feed(ciphertext)
            self.more = True

    def read(self, max_bytes: int) -> bytes | None:
        """At most ``max_bytes`` (> 0) of plaintext; ``b""`` once the peer closed (with a TLS
        close_notify or not: the frames above tell a cut frame); None while a record is
        incomplete. Raises TlsError for a corrupt or forged record or an alert."""
        with self._lock:
            try:
                data = self._obj.read(max_bytes)
            except ssl.SSLWantReadError:
                self.more = False
                return None
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                data = b""
            except ssl.SSLError as exc:
                raise TlsError.from_ssl(exc) from exc
            finally:
                if self._out.pending:
                    self.output_waiting = True
            self.more = True
            return data

    # --- the sending side -------------------------------------------------------------------

    def wrap(self, plaintext: bytes | memoryview) -> bytes:
        """Encrypt ``plaintext`` (it may be empty); returns every byte to send now: what
        OpenSSL had waiting first, then the new records."""
        with self._lock:
            if plaintext:
                try:
                    self._obj.write(plaintext)
                except ssl.SSLError as exc:
                    raise TlsError.from_ssl(exc) from exc
            self.output_waiting = False
            return self._out.read()

    def take_output(self) -> bytes:
        """What OpenSSL has to send (handshake messages, alerts), taken out."""
        return self.wrap(b"")

    def close_notify(self) -> bytes:
        """Our TLS close_notify (and anything still waiting), to send before closing."""
        with self._lock:
            try:
                self._obj.unwrap()
            except ssl.SSLError:  # want-read (the peer's close_notify): we do not wait for it
                pass
            self.output_waiting = False
            return self._out.read()

    def _feed(self, ciphertext: bytes) -> None:
        if ciphertext:
            self._in.write(ciphertext)
        elif not self._in.eof:
            self._in.write_eof()


# --- certificates -------------------------------------------------------------------------


def fingerprint(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint as ``openssl x509 -fingerprint -sha256`` prints
    it: 32 upper-case hex pairs joined by colons."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def normalize_fingerprint(text: str) -> str:
    """A fingerprint typed or pasted (``SHA256:`` in front or not, colons, spaces, any case)
    in :func:`fingerprint`'s form; ValueError if it is not 64 hex digits."""
    core = text.strip()
    if core.upper().startswith(("SHA256:", "SHA-256:")):
        core = core.split(":", 1)[1]
    digits = re.sub(r"[\s:]", "", core).upper()
    if not _HEX.fullmatch(digits):
        raise ValueError(f"not a SHA-256 fingerprint (64 hex digits): {text!r}")
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def compact_fingerprint(text: str) -> str:
    """The 64 lower-case hex digits alone (LAN announcements carry it this way)."""
    return normalize_fingerprint(text).replace(":", "").lower()


def looks_like_tls(first: bytes) -> bool:
    """Whether a connection's first bytes can open TLS (a handshake record)."""
    return not first or first[0] == TLS_HANDSHAKE_RECORD


def looks_like_frame(first: bytes) -> bool:
    """Whether a connection's first bytes can be a frame of ours in clear text."""
    return bool(first) and first[0] in _FRAME_START
