"""IRC over TLS (``--irc-tls-port``), over real TLS on loopback: an IRC client over TLS chats
with a clear-text IRC client and a rich client in one room; CAP over TLS; what a clear-text
client, a refused one, a silent one and a shutdown get; the run_server.py flag."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from conftest import NO_FLOOD_LIMITS
from test_irc_server import IrcClient, check_tags_and_echo
from tls_helpers import any_certificate, cert_files, tls_rich, trusting, wait_for
from wire import WireClient

from game_chat.irc.lines import IrcMessage
from game_chat.server import ChatServer
from game_chat.server.server import ServerConfig, server_descriptors

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def certificate(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    cert, key = cert_files(ca, tmp_path)
    return {"tls_cert": cert, "tls_key": key}


@pytest.fixture
def irc_tls_server(server_factory, certificate: dict[str, str]) -> ChatServer:  # type: ignore[no-untyped-def]
    """TLS on the chat port, IRC in clear text and IRC over TLS, on free ports."""
    return server_factory(  # type: ignore[no-any-return]
        irc_port=0, irc_tls_port=0, limits=NO_FLOOD_LIMITS, **certificate
    )


def tls_irc(address: tuple[str, int], context: ssl.SSLContext) -> IrcClient:
    """An IRC client over TLS (the handshake done), as HexChat on port 6697."""
    client = IrcClient(address)
    client.sock = context.wrap_socket(client.sock, server_hostname="localhost")
    return client


def joined(client: IrcClient, room: str = "#lobby") -> IrcClient:
    client.send(f"JOIN {room}")
    client.until("366")
    return client


def irc_lines(client: IrcClient, until: set[str]) -> list[tuple[str, str]]:
    """(nick, text) of the PRIVMSGs ``client`` hears until it has heard each of ``until``."""
    heard: list[tuple[str, str]] = []
    while not until <= {text for _, text in heard}:
        message = client.until("PRIVMSG")
        assert message.prefix is not None
        heard.append((message.prefix.split("!")[0], message.params[1]))
    return heard


def test_an_irc_client_over_tls_chats_with_clear_text_irc_and_rich_clients(
    irc_tls_server: ChatServer, ca: trustme.CA, server_log: pytest.LogCaptureFixture
) -> None:
    secure = tls_irc(irc_tls_server.irc_tls_address, trusting(ca))
    assert isinstance(secure.sock, ssl.SSLSocket) and secure.sock.version() in (
        "TLSv1.2",
        "TLSv1.3",
    )
    welcome = secure.register("sec")
    assert [m.command for m in welcome[:5]] == ["001", "002", "003", "004", "005"]
    joined(secure)
    clear = IrcClient(irc_tls_server.irc_address)
    clear.register("hex")
    joined(clear)
    ann, _ = tls_rich(irc_tls_server.address, trusting(ca), "ann")
    assert secure.until("JOIN").prefix == "hex!u@game_chat"
    assert secure.until("JOIN").prefix == "ann!u@game_chat"
    # Each says three lines, interleaved, then "done"; each hears the others' once, in order.
    for n in range(3):
        secure.send(f"PRIVMSG #lobby :tls {n}")
        clear.send(f"PRIVMSG #lobby :clear {n}")
        ann.send_json(type="chat", text=f"rich {n}", id=n)
    secure.send("PRIVMSG #lobby :tls done")
    clear.send("PRIVMSG #lobby :clear done")
    ann.send_json(type="chat", text="rich done", id="done")
    said = {
        nick: [f"{word} {n}" for n in (0, 1, 2, "done")]
        for nick, word in (("sec", "tls"), ("hex", "clear"), ("ann", "rich"))
    }
    by_secure = irc_lines(secure, {"clear done", "rich done"})
    by_clear = irc_lines(clear, {"tls done", "rich done"})
    by_ann: list[tuple[str, str]] = []
    while not {"tls done", "clear done"} <= {text for _, text in by_ann}:
        message = ann.recv_until(lambda m: m["type"] == "chat")
        by_ann.append((message["nick"], message["text"]))
    for heard, others in ((by_secure, ("hex", "ann")), (by_clear, ("sec", "ann"))):
        assert {nick for nick, _ in heard} == set(others)
        for nick in others:
            assert [text for who, text in heard if who == nick] == said[nick]
    assert {nick for nick, _ in by_ann} == {"sec", "hex"}
    assert [text for who, text in by_ann if who == "sec"] == said["sec"]
    assert [text for who, text in by_ann if who == "hex"] == said["hex"]
    # A private line over TLS and back.
    secure.send("PRIVMSG hex :psst")
    whisper = clear.until("PRIVMSG")
    assert (whisper.prefix, whisper.params) == ("sec!u@game_chat", ("hex", "psst"))
    clear.send("PRIVMSG sec :heard you")
    answer = secure.until("PRIVMSG")
    assert (answer.prefix, answer.params) == ("hex!u@game_chat", ("sec", "heard you"))
    secure.send("QUIT :bye")
    assert clear.until("QUIT").prefix == "sec!u@game_chat"
    assert ann.recv_until(lambda m: m["type"] == "leave")["nick"] == "sec"


def test_cap_server_time_and_echo_message_over_tls(
    irc_tls_server: ChatServer, ca: trustme.CA
) -> None:
    bot = tls_irc(irc_tls_server.irc_tls_address, trusting(ca))
    watcher, _ = tls_rich(irc_tls_server.address, trusting(ca), "watcher")
    check_tags_and_echo(bot, watcher)


def test_clear_text_irc_on_the_tls_port_is_closed_without_a_frame(
    irc_tls_server: ChatServer, server_log: pytest.LogCaptureFixture
) -> None:
    sock = socket.create_connection(irc_tls_server.irc_tls_address, timeout=5)
    sock.sendall(b"NICK plain\r\nUSER u 0 * :Real Name\r\n")
    sock.settimeout(5)
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except ConnectionResetError:
        pass
    sock.close()
    assert received == b""  # neither a framed tls_required nor anything else
    wait_for(lambda: any("not TLS on the IRC" in r.getMessage() for r in server_log.records))
    lines = [r.getMessage() for r in server_log.records if "TLS handshake failed" in r.getMessage()]
    assert len(lines) == 1 and "b'NICK pla'" in lines[0], lines
    wait_for(lambda: irc_tls_server.client_count == 0)
    fine = tls_irc(irc_tls_server.irc_tls_address, any_certificate())
    assert fine.register("fine")[0].command == "001"


def test_a_clear_text_frame_on_the_irc_tls_port_gets_no_frame(
    irc_tls_server: ChatServer, server_log: pytest.LogCaptureFixture
) -> None:
    """A framed client that mistook the port is closed too: only the chat port answers
    ``tls_required``, which an IRC client could not read."""
    plain = WireClient(irc_tls_server.irc_tls_address)
    plain.send_json(type="hello", nick="alice", version=1)
    assert plain.expect_closed() == []


def test_a_refusal_reaches_an_irc_client_over_tls_as_an_error_line(
    server_factory,
    certificate: dict[str, str],
    ca: trustme.CA,
    server_log: pytest.LogCaptureFixture,
) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(irc_port=0, irc_tls_port=0, max_clients=1, **certificate)
    first, _ = tls_rich(server.address, trusting(ca), "first")
    late = tls_irc(server.irc_tls_address, trusting(ca))  # the handshake is done, then told
    closing = late.recv()
    assert closing is not None and closing.command == "ERROR", closing
    assert "server full" in closing.params[0]
    assert late.recv() is None  # then a clean end (close_notify)
    clear = IrcClient(server.irc_address)  # and in clear text, the same line
    closing = clear.recv()
    assert closing is not None and closing.command == "ERROR"
    assert "server full" in closing.params[0] and clear.recv() is None
    first.close()
    wait_for(lambda: server.client_count == 0)
    again = tls_irc(server.irc_tls_address, trusting(ca))
    assert again.register("again")[0].command == "001"


def test_a_silent_irc_client_over_tls_is_closed_at_the_registration_deadline(
    server_factory, certificate: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(irc_tls_port=0, hello_timeout=0.3, **certificate)
    quiet = tls_irc(server.irc_tls_address, any_certificate())  # no grace: never a guest
    closing = quiet.until("ERROR")
    assert "not registered" in closing.params[0]
    sent_nick = tls_irc(server.irc_tls_address, any_certificate())
    sent_nick.send("NICK late")  # no USER: never registered
    assert "not registered" in sent_nick.until("ERROR").params[0]


def test_shutdown_closes_irc_clients_over_tls(
    server_factory, certificate: dict[str, str], server_log: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """A connection still waiting to speak and a registered member are told with an IRC
    ``ERROR`` line inside TLS (not a frame), then closed."""
    server = server_factory(irc_tls_port=0, **certificate)
    member = tls_irc(server.irc_tls_address, any_certificate())
    member.register("member")
    waiting = tls_irc(server.irc_tls_address, any_certificate())  # handshake done, silent
    # (the client's side of the handshake ends before the server has read its Finished)
    wait_for(lambda: sum("TLS established" in r.getMessage() for r in server_log.records) == 2)
    server.shutdown()
    closing: IrcMessage = waiting.until("ERROR")
    assert "shutting down" in closing.params[0]
    assert waiting.recv() is None
    assert "shutting down" in member.until("ERROR").params[0]
    while member.recv() is not None:
        pass


def test_the_irc_tls_port_needs_tls() -> None:
    with pytest.raises(ValueError, match="needs TLS"):
        ChatServer(ServerConfig(host="127.0.0.1", port=0, irc_tls_port=0))
    base = server_descriptors(ServerConfig(tls_cert="cert.pem"))
    assert server_descriptors(ServerConfig(tls_cert="cert.pem", irc_tls_port=0)) == base + 1


def run_server(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_server.py"), "--host", "127.0.0.1", "--port", "0",
         "--no-history", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip


def test_the_flag_without_tls_is_a_one_line_error() -> None:
    process = run_server("--irc-tls-port", "0")
    try:
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "--irc-tls-port" in lines[0] and "needs TLS" in lines[0], stderr


def test_the_banner_gives_the_irc_tls_port_and_it_serves() -> None:
    process = run_server("--tls-self-signed", "--irc-port", "0", "--irc-tls-port", "0")
    try:
        assert process.stdout is not None
        banner = []
        while not banner or not banner[-1].startswith("IRC clients over TLS on port"):
            line = process.stdout.readline()
            assert line, f"no IRC over TLS line in {banner}"
            banner.append(line.rstrip("\n"))
        assert any(line.startswith("IRC clients (no TLS) on port") for line in banner)
        port = int(banner[-1].rsplit(" ", 1)[1])
        client = tls_irc(("127.0.0.1", port), any_certificate())
        assert client.register("cli")[0].command == "001"
        client.close()
    finally:
        process.terminate()
        try:
            assert process.wait(timeout=5) == 0
        finally:
            process.kill()
