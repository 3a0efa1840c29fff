"""The IRC port over real sockets: IRC, rich and tutorial clients in one room, each hearing the
others once and in order; CAP negotiation with server-time and echo-message; limits."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from conftest import start_server
from wire import WireClient, rich_client

from game_chat.irc.lines import IrcMessage, parse_line
from game_chat.server import ChatServer

TIMEOUT = 10.0


class IrcClient:
    """A bare IRC client: lines in, parsed messages out."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self._buffer = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def recv(self) -> IrcMessage | None:
        """The next message (None: the server closed the connection)."""
        while b"\n" not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                return None
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return parse_line(line.rstrip(b"\r"))

    def until(self, command: str) -> IrcMessage:
        while True:
            message = self.recv()
            assert message is not None, f"closed before {command}"
            if message.command == command:
                return message

    def register(self, nick: str, *caps: str) -> list[IrcMessage]:
        if caps:
            self.send("CAP LS 302")
            self.send(f"CAP REQ :{' '.join(caps)}")
        self.send(f"NICK {nick}")
        self.send("USER u 0 * :Real Name")
        if caps:
            assert self.until("CAP").params[1] == "LS"
            ack = self.until("CAP")
            assert ack.params[1] == "ACK", ack
            self.send("CAP END")
        got = []
        while True:
            message = self.recv()
            assert message is not None
            got.append(message)
            if message.command in ("376", "422"):  # the end of the welcome
                return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def irc_server() -> Iterator[ChatServer]:
    server = start_server(irc_port=0)
    try:
        yield server
    finally:
        server.shutdown()


def test_irc_rich_and_tutorial_clients_share_a_room_once_and_in_order(
    irc_server: ChatServer,
) -> None:
    hexchat = IrcClient(irc_server.irc_address)
    welcome = hexchat.register("hex")
    assert [m.command for m in welcome[:5]] == ["001", "002", "003", "004", "005"]
    hexchat.send("JOIN #lobby")
    names = hexchat.until("353")
    assert "hex" in names.params[-1].split()
    hexchat.until("366")
    ann, _ = rich_client(irc_server.address, "ann")
    tutorial = WireClient(irc_server.address)
    tutorial.send(b"/nick tut")
    assert tutorial.recv_text() is not None  # its welcome line
    assert hexchat.until("JOIN").prefix == "ann!u@game_chat"
    # Each says three lines, interleaved; everyone hears the others' lines once, in order.
    for n in range(3):
        hexchat.send(f"PRIVMSG #lobby :irc {n}")
        ann.send_json(type="chat", text=f"rich {n}", id=n)
        tutorial.send(f"plain {n}".encode())
    heard_by_irc = []
    while len(heard_by_irc) < 6:
        message = hexchat.until("PRIVMSG")
        heard_by_irc.append(message.params[1])
    assert [t for t in heard_by_irc if t.startswith("rich")] == ["rich 0", "rich 1", "rich 2"]
    assert [t for t in heard_by_irc if t.startswith("plain")] == ["plain 0", "plain 1", "plain 2"]
    rich_heard = []
    while len(rich_heard) < 6:
        message = ann.recv_until(lambda m: m["type"] == "chat")
        rich_heard.append((message["nick"], message["text"]))
    assert [t for n, t in rich_heard if n == "hex"] == ["irc 0", "irc 1", "irc 2"]
    plain_heard = []
    while len(plain_heard) < 6:
        text = tutorial.recv_text()
        assert text is not None
        if ": " in text and not text.startswith("*"):
            plain_heard.append(text)
    assert [t for t in plain_heard if t.startswith("hex: ")] == [
        "hex: irc 0", "hex: irc 1", "hex: irc 2"
    ]  # fmt: skip
    hexchat.close()
    assert ann.recv_until(lambda m: m["type"] == "leave")["nick"] == "hex"


def test_cap_server_time_and_echo_message(irc_server: ChatServer) -> None:
    bot = IrcClient(irc_server.irc_address)
    watcher, _ = rich_client(irc_server.address, "watcher")
    check_tags_and_echo(bot, watcher)


def check_tags_and_echo(bot: IrcClient, watcher: WireClient) -> None:
    """``bot`` (an IRC client, not yet registered) asks for server-time, echo-message and
    message-tags, and ``watcher`` (a rich member) joins #dev with it: the bot's line comes back
    to it once stored, with its time and the id ``watcher`` sees; ``watcher``'s is tagged."""
    bot.register("bot", "server-time", "echo-message", "message-tags")
    bot.send("JOIN #dev")
    bot.until("366")
    watcher.send_json(type="join", room="#dev")
    watcher.recv_until(lambda m: m["type"] == "joined")
    bot.until("JOIN")
    before = time.time()
    bot.send("PRIVMSG #dev :stored and echoed")
    echo = bot.until("PRIVMSG")
    assert echo.prefix == "bot!u@game_chat" and echo.params == ("#dev", "stored and echoed")
    stamp = echo.tag("time")
    assert stamp is not None and stamp.endswith("Z")
    said = watcher.recv_until(lambda m: m["type"] == "chat")
    assert echo.tag("msgid") == str(said["id"])  # the echo comes once the line is stored
    assert said["ts"] >= before - 1
    watcher.send_json(type="chat", room="#dev", text="tagged", id=1)
    heard = bot.until("PRIVMSG")
    assert heard.params[1] == "tagged" and heard.tag("time") and heard.tag("msgid")


def test_an_irc_client_that_floods_or_sends_garbage_hurts_nobody_else(
    irc_server: ChatServer,
) -> None:
    rude = IrcClient(irc_server.irc_address)
    rude.register("rude")
    rude.sock.sendall(b"\x00\xff garbage\r\n" + b"x" * 20_000 + b"\r\nJOIN #lobby\r\n")
    rude.until("417")  # the overlong line, refused and skipped
    rude.until("366")  # the next line read as usual
    watcher, _ = rich_client(irc_server.address, "watcher")
    rude.sock.sendall(b"".join(b"PRIVMSG #lobby :spam %d\r\n" % n for n in range(2000)))
    while True:  # an excess flood ends the flooder's connection, with ERROR
        message = rude.recv()
        if message is None or message.command == "ERROR":
            break
    watcher.send_json(type="chat", text="still fine", id=1)
    assert watcher.recv_until(lambda m: m["type"] == "ack")["id"] == 1


def test_a_client_back_at_once_gets_its_nick_from_its_closed_connection(
    irc_server: ChatServer,
) -> None:
    """A client that reconnects right after closing (as irctest does between tests) gets
    its nick, even if the old connection's close has not been read yet (no 433)."""
    for _ in range(20):
        old = IrcClient(irc_server.irc_address)
        old.register("comeback")
        old.close()
        new = IrcClient(irc_server.irc_address)
        assert new.register("comeback")[0].command == "001"
        new.close()


def test_a_silent_irc_connection_is_closed_at_the_registration_deadline() -> None:
    server = start_server(irc_port=0, hello_timeout=0.3)
    try:
        quiet = IrcClient(server.irc_address)
        quiet.send("NICK late")  # no USER: never registered
        closing = quiet.until("ERROR")
        assert "not registered" in closing.params[0]
    finally:
        server.shutdown()


def test_what_follows_a_line_is_answered_after_it(irc_server: ChatServer) -> None:
    """A PING sent right behind a PRIVMSG (in one write) is a client's barrier: its PONG comes
    after the line's echo; so does a refusal of the next PRIVMSG; a NICK right behind a line
    reaches the room after the line."""
    bot = IrcClient(irc_server.irc_address)
    watcher = IrcClient(irc_server.irc_address)
    bot.register("bot", "echo-message")
    watcher.register("watcher")
    for client in (bot, watcher):
        client.send("JOIN #dev")
        client.until("366")
    bot.until("JOIN")  # the watcher's
    rounds = 3  # (within the flood budget of a new connection)
    for round_ in range(rounds):
        bot.sock.sendall(f"PRIVMSG #dev :line {round_}\r\nPING :mark{round_}\r\n".encode())
        first = bot.recv()
        assert first is not None and first.command == "PRIVMSG", first
        assert first.params == ("#dev", f"line {round_}")
        assert bot.until("PONG").params[-1] == f"mark{round_}"
    bot.sock.sendall(b"PRIVMSG #dev :refused after me\r\nPRIVMSG #dev\r\n")
    assert [bot.recv().command for _ in range(2)] == ["PRIVMSG", "412"]  # type: ignore[union-attr]
    bot.sock.sendall(b"PRIVMSG #dev :before a line over the limit\r\n" + b"x" * 9000 + b"\r\n")
    assert [bot.recv().command for _ in range(2)] == ["PRIVMSG", "417"]  # type: ignore[union-attr]
    rounds += 2
    bot.sock.sendall(b"PRIVMSG #dev :last words as bot\r\nNICK bot2\r\n")
    heard = [watcher.recv() for _ in range(rounds + 1)]
    assert [m.command for m in heard if m is not None] == ["PRIVMSG"] * (rounds + 1)
    assert heard[-1].params[1] == "last words as bot" and heard[-1].prefix.startswith("bot!")
    renamed = watcher.until("NICK")
    assert renamed.prefix.startswith("bot!") and renamed.params[0] == "bot2"
    for client in (bot, watcher):
        client.close()
