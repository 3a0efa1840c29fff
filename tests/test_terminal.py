"""``run_client.py --no-gui``: a real process chatting through stdin/stdout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wire import rich_client

from game_chat.client.model import LineKind, LogLine
from game_chat.client.rooms import Tab, TabKind
from game_chat.client.terminal import terminal_line
from game_chat.protocol.names import mentions
from game_chat.server import ChatServer

ROOT = Path(__file__).resolve().parent.parent


def run_client(args: list[str], stdin: str, config_dir: Path) -> subprocess.CompletedProcess[str]:
    """run_client.py with ``args``, fed ``stdin``, its settings kept in ``config_dir``."""
    return subprocess.run(
        [sys.executable, "run_client.py", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
        env={"GAME_CHAT_CONFIG_DIR": str(config_dir), "PATH": "/usr/bin:/bin"},
    )


def test_piped_lines_are_sent_and_end_of_input_leaves(server: ChatServer, tmp_path: Path) -> None:
    host, port = server.address
    peer, _ = rich_client(server.address, "peer")
    result = run_client(
        ["--no-gui", "--server", f"{host}:{port}", "--nick", "piper"],
        "first line\n/nick piper2\nsecond line\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    chats = [peer.recv_until(lambda m: m["type"] == "chat") for _ in range(2)]
    assert [(m["nick"], m["text"]) for m in chats] == [
        ("piper", "first line"),
        ("piper2", "second line"),
    ]
    assert peer.recv_until(lambda m: m["type"] == "leave")["nick"] == "piper2"
    assert "Connected to game_chat as piper" in result.stdout


def test_incoming_messages_are_printed(server: ChatServer, tmp_path: Path) -> None:
    host, port = server.address
    process = subprocess.Popen(
        [
            sys.executable,
            "run_client.py",
            "--no-gui",
            "--server",
            f"{host}:{port}",
            "--nick",
            "reader",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"GAME_CHAT_CONFIG_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        assert "Connecting" in process.stdout.readline()
        assert "Connected" in process.stdout.readline()
        peer, _ = rich_client(server.address, "peer")
        assert process.stdout.readline().rstrip().endswith("-- peer joined")
        peer.send_json(type="chat", text="hello reader")
        assert process.stdout.readline().rstrip().endswith("peer: hello reader")
        process.stdin.close()
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


def test_rooms_and_private_lines_are_prefixed(server: ChatServer, tmp_path: Path) -> None:
    host, port = server.address
    peer, _ = rich_client(server.address, "peer")
    command = ["run_client.py", "--no-gui", "--server", f"{host}:{port}", "--nick", "reader"]
    process = subprocess.Popen(
        [sys.executable, *command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"GAME_CHAT_CONFIG_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )

    def read_until(needle: str) -> str:
        assert process.stdout is not None
        for line in process.stdout:
            if needle in line:
                return line.rstrip()
        raise AssertionError(f"no line with {needle!r}")

    try:
        assert process.stdin is not None
        process.stdin.write("/join #dev\n")
        process.stdin.flush()
        read_until("You joined #dev")
        peer.send_json(type="chat", text="lobby line")
        assert read_until("lobby line").endswith("] [#lobby] peer: lobby line")
        peer.send_json(type="msg", to="reader", text="secret")
        assert read_until("secret").endswith("] [private] peer: secret")
        process.stdin.write("in dev\n/msg peer hi there\n")
        process.stdin.close()
        assert process.wait(timeout=10) == 0
        assert peer.recv_until(lambda m: m["type"] == "msg")["text"] == "hi there"
    finally:
        process.kill()
        process.wait()


def test_refused_server_exits_1(tmp_path: Path) -> None:
    result = run_client(["--no-gui", "--server", "127.0.0.1:1"], "", tmp_path)
    assert result.returncode == 1
    assert "refused" in result.stdout


def test_lines_are_prefixed_by_where_they_come_from() -> None:
    lobby = Tab(1, TabKind.ROOM, "#lobby")
    dev = Tab(2, TabKind.ROOM, "#dev")
    bob = Tab(3, TabKind.PRIVATE, "bob")
    line = LogLine(LineKind.CHAT, "hi", "bob", ts=0)
    assert terminal_line(lobby, line, lobby).endswith("] bob: hi")
    assert "] [#dev] bob: hi" in terminal_line(dev, line, lobby)
    assert "] [private] bob: hi" in terminal_line(bob, line, lobby)
    assert terminal_line(bob, line, bob).endswith("[private] bob: hi")


def test_mentions_are_whole_words() -> None:
    assert mentions("hey Alice, look", "alice")
    assert mentions("alice", "alice")
    assert not mentions("malice aforethought", "alice")
    assert not mentions("alice_2 is here", "alice")
    assert not mentions("anything", "")


def test_local_server_hosts_and_joins_in_one_step(tmp_path: Path) -> None:
    result = run_client(
        ["--no-gui", "--local-server", "--port", "0", "--nick", "host"],
        "/who\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Connected to game_chat as host" in result.stdout
