"""TLS for tests: certificates made by the test (trustme), wire clients over real TLS, and a
ChatClient driven until it connects or gives up."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trustme
from wire import TIMEOUT, WireClient

from game_chat.client.events import Connected, Disconnected
from game_chat.client.net import ChatClient

W = TypeVar("W", bound=WireClient)


def cert_files(ca: trustme.CA, directory: Path, name: str = "server") -> tuple[str, str]:
    """A certificate for localhost and 127.0.0.1 signed by ``ca``: (cert PEM, key PEM)."""
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


def ca_file(ca: trustme.CA, directory: Path) -> str:
    path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def any_certificate() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def secure(client: W, context: ssl.SSLContext) -> W:
    """``client``'s socket wrapped in TLS (the handshake done, blocking with its timeout)."""
    client.sock = context.wrap_socket(client.sock, server_hostname="localhost")
    return client


def tls_rich(
    address: tuple[str, int], context: ssl.SSLContext, nick: str
) -> tuple[WireClient, dict[str, Any]]:
    """A rich client over TLS, welcomed and in the lobby."""
    client = secure(WireClient(address), context)
    client.send_json(type="hello", nick=nick, version=1)
    welcome = client.recv_json()
    assert welcome["type"] == "welcome", welcome
    assert client.recv_json()["type"] == "joined"
    return client, welcome


def run_client(client: ChatClient, timeout: float = 10.0) -> list[Any]:
    """Start ``client`` and gather its events until it is connected or gives up."""
    client.start()
    events: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.poll():
            events.append(event)
            if isinstance(event, Connected):
                return events
            if isinstance(event, Disconnected) and not event.will_retry:
                return events
        time.sleep(0.005)
    raise AssertionError(f"neither connected nor refused: {events}")


def closed_within(sock: socket.socket, timeout: float = TIMEOUT) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Until ``condition()`` holds (what the server logs comes from its own threads)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)
