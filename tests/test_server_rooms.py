"""Issue 4 over real sockets: rooms, private messages, away, history, operators, bans."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from wire import WireClient, rich_client

from game_chat.server import ChatServer

ROOT = Path(__file__).resolve().parent.parent


def until(client: WireClient, kind: str, **fields: Any) -> dict[str, Any]:
    """The next rich message of ``kind`` whose fields match."""
    return client.recv_until(
        lambda m: m["type"] == kind and all(m.get(k) == v for k, v in fields.items())
    )


def plain_until(client: WireClient, predicate) -> str:  # type: ignore[no-untyped-def]
    for _ in range(200):
        line = client.recv_text()
        assert line is not None, "closed"
        if predicate(line):
            return line
    raise AssertionError("no such line")


def test_rooms_join_part_topic_and_list(server: ChatServer) -> None:
    alice, _ = rich_client(server.address, "alice")
    bob, _ = rich_client(server.address, "bob")
    alice.send_json(type="join", room="#team")
    joined = until(alice, "joined", room="#team")
    assert [m["nick"] for m in joined["members"]] == ["alice"]
    bob.send_json(type="join", room="#TEAM")  # room names compare like nicks
    joined = until(bob, "joined", room="#team")
    assert [m["nick"] for m in joined["members"]] == ["alice", "bob"]
    assert until(alice, "join", nick="bob")["room"] == "#team"
    bob.send_json(type="topic", room="#team", topic="push B")
    assert until(alice, "topic")["topic"] == "push B"
    bob.send_json(type="chat", room="#team", text="only the team sees this", id=1)
    message = until(alice, "chat")
    assert (message["room"], message["text"]) == ("#team", "only the team sees this")
    alice.send_json(type="rooms")
    rooms = until(alice, "rooms")["rooms"]
    assert {"room": "#team", "members": 2, "topic": "push B"} in rooms
    bob.send_json(type="part", room="#team", reason="brb")
    parted = until(alice, "part", nick="bob")
    assert (parted["room"], parted["reason"]) == ("#team", "brb")
    assert until(bob, "part", nick="bob")["room"] == "#team"  # the parter hears it too
    bob.send_json(type="chat", room="#team", text="gone", id=2)
    error = until(bob, "error")
    assert (error["code"], error["id"]) == ("not_in_room", 2)


def test_room_errors(server: ChatServer) -> None:
    alice, _ = rich_client(server.address, "alice")
    for payload, code in (
        ({"type": "join", "room": "team"}, "bad_room"),
        ({"type": "join", "room": "#" + "x" * 33}, "bad_room"),
        ({"type": "who", "room": "#nowhere"}, "no_such_room"),
        ({"type": "part", "room": "#nowhere"}, "no_such_room"),
        ({"type": "topic", "room": "#nowhere", "topic": "x"}, "no_such_room"),
        ({"type": "chat", "room": "#nowhere", "text": "x"}, "no_such_room"),
    ):
        alice.send_json(**payload)
        assert until(alice, "error")["code"] == code, payload


def test_private_messages_away_and_who(server: ChatServer) -> None:
    alice, _ = rich_client(server.address, "alice")
    bob, _ = rich_client(server.address, "bob")
    bob.send_json(type="away", reason="lunch")
    assert until(alice, "away")["reason"] == until(bob, "away")["reason"] == "lunch"
    alice.send_json(type="msg", to="BOB", text="psst", id="p1")
    private = until(bob, "msg")
    assert (private["nick"], private["to"], private["text"]) == ("alice", "bob", "psst")
    assert until(alice, "ack")["id"] == "p1"
    assert until(alice, "notice", text="bob is away: lunch")
    alice.send_json(type="who", room="#lobby")
    members = {m["nick"]: m for m in until(alice, "who")["members"]}
    assert members["bob"]["away"] == "lunch"
    alice.send_json(type="msg", to="nobody", text="hello?", id="p2")
    error = until(alice, "error")
    assert (error["code"], error["id"]) == ("no_such_nick", "p2")
    bob.send_json(type="away", reason="")
    assert until(alice, "away", nick="bob")["reason"] == ""


def test_me_action_and_help(server: ChatServer) -> None:
    alice, _ = rich_client(server.address, "alice")
    bob, _ = rich_client(server.address, "bob")
    alice.send_json(type="chat", text="waves", action=True)
    message = until(bob, "chat")
    assert (message["text"], message["action"]) == ("waves", True)
    alice.send_json(type="help")
    first = until(alice, "notice")
    assert first["text"].startswith("/join #ROOM")


def test_plain_client_rooms_and_private(server: ChatServer) -> None:
    alice, _ = rich_client(server.address, "alice")
    plain = WireClient(server.address)
    plain.send("hello lobby")
    assert plain.recv_text() == "Message was Sent!"
    plain.send("/nick carl")
    plain_until(plain, lambda line: line == "* guest-1 is now known as carl")
    plain.send("/join #team")
    assert plain_until(plain, lambda line: line.startswith("* You are in #team"))
    alice.send_json(type="chat", text="lobby line")
    assert plain_until(plain, lambda line: "lobby line" in line) == "[#lobby] alice: lobby line"
    alice.send_json(type="join", room="#team")
    until(alice, "joined", room="#team")
    alice.send_json(type="chat", room="#team", text="team line")
    assert plain_until(plain, lambda line: "team line" in line) == "alice: team line"
    alice.send_json(type="msg", to="carl", text="secret")
    assert plain_until(plain, lambda line: "secret" in line) == "[private] alice: secret"
    plain.send("/msg alice got it")
    assert plain_until(plain, lambda line: line == "Message was Sent!")
    assert until(alice, "msg")["text"] == "got it"
    plain.send("/me dances")
    assert until(alice, "chat", room="#team")["text"] == "dances"
    plain.send("/part")
    assert plain_until(plain, lambda line: line.startswith("* carl left #team"))
    plain.send("back in the lobby")  # the current room is the lobby again
    assert until(alice, "chat", text="back in the lobby")["room"] == "#lobby"


def test_join_replays_history_and_pages(burst_server: ChatServer) -> None:
    server = burst_server
    alice, _ = rich_client(server.address, "alice")
    for n in range(130):
        alice.send_json(type="chat", text=f"line {n}", id=n)
    for _ in range(130):
        until(alice, "ack")
    late, _ = rich_client(server.address, "late")
    replay = [late.recv_json() for _ in range(100)]
    assert all(m["type"] == "chat" and m["history"] for m in replay)
    assert [m["text"] for m in replay] == [f"line {n}" for n in range(30, 130)]
    late.send_json(type="history", room="#lobby", before=replay[0]["id"], limit=20)
    page = until(late, "history")
    assert [m["text"] for m in page["messages"]] == [f"line {n}" for n in range(10, 30)]
    assert page["more"] is True
    late.send_json(type="history", room="#lobby", before=page["messages"][0]["id"], limit=20)
    page = until(late, "history")
    assert [m["text"] for m in page["messages"]] == [f"line {n}" for n in range(10)]
    assert page["more"] is False


def test_operators_kick_ban_mute(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(oper_password="letmein")
    op, _ = rich_client(server.address, "op")
    bob, _ = rich_client(server.address, "bob")
    bob.send_json(type="kick", nick="op")
    assert until(bob, "error")["code"] == "not_operator"
    op.send_json(type="oper", password="wrong")
    assert until(op, "error")["code"] == "bad_password"
    op.send_json(type="oper", password="letmein")
    assert "operator" in until(op, "notice")["text"]
    op.send_json(type="mute", nick="bob", minutes=5)
    assert "muted" in until(bob, "notice")["text"]
    bob.send_json(type="chat", text="can I talk?", id=1)
    assert until(bob, "error")["code"] == "muted"
    op.send_json(type="unmute", nick="bob")
    until(bob, "notice")
    bob.send_json(type="chat", text="yes", id=2)
    assert until(op, "chat")["text"] == "yes"
    op.send_json(type="kick", nick="bob", reason="spam")
    error = until(bob, "error")
    assert (error["code"], error["fatal"]) == ("kicked", True)
    assert bob.expect_closed() == []
    leave = until(op, "leave", nick="bob")
    assert leave["reason"] == "kicked by op: spam"
    carol, _ = rich_client(server.address, "carol")
    op.send_json(type="ban", target="carol", minutes=10, reason="rude")
    assert until(carol, "error")["code"] == "banned"
    # Banned: the nick, and (here every client is 127.0.0.1) the address too.
    again = WireClient(server.address)
    error = again.recv_json()
    assert (error["code"], error["fatal"]) == ("banned", True)
    assert "rude" in error["message"]
    assert until(op, "notice", text="carol is banned by op for 10 minute(s): rude")
    op.send_json(type="unban", target="127.0.0.1")
    assert until(op, "notice", text="127.0.0.1 is no longer banned")
    carol_again = WireClient(server.address)
    carol_again.send_json(type="hello", nick="carol", version=1)
    assert carol_again.recv_json()["code"] == "banned"  # the nick ban is still there
    op.send_json(type="unban", target="carol")
    until(op, "notice")


def test_failed_oper_attempts_are_rate_limited(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(oper_password="right")
    mallory, _ = rich_client(server.address, "mallory")
    codes = []
    for _ in range(6):
        mallory.send_json(type="oper", password="guess")
        codes.append(until(mallory, "error")["code"])
    assert codes == ["bad_password"] * 5 + ["rate_limited"]
    mallory.send_json(type="oper", password="right")  # even the right one waits now
    assert until(mallory, "error")["code"] == "rate_limited"


def test_server_password(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(password="hunter2")
    refused = WireClient(server.address)
    refused.send_json(type="hello", nick="x", version=1)
    error = refused.recv_json()
    assert (error["code"], error["fatal"]) == ("bad_password", True)
    assert refused.expect_closed() == []  # no user list, no history
    welcome_client = WireClient(server.address)
    welcome_client.send_json(type="hello", nick="x", version=1, password="hunter2")
    assert welcome_client.recv_json()["type"] == "welcome"
    plain = WireClient(server.address)
    plain.send("hi")
    assert "ERROR bad_password" in (plain.recv_text() or "")
    plain = WireClient(server.address)
    plain.send("/pass hunter2")
    assert plain.recv_text() == "* Welcome, you are guest-1"
    plain.send("hello")
    assert plain.recv_text() == "Message was Sent!"


def run_server(db: Path, *extra: str) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_server.py"), "--host", "127.0.0.1", "--port", "0",
         "--history-db", str(db), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, ("127.0.0.1", int(line.rsplit(":", 1)[1]))


def test_history_and_bans_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    process, address = run_server(db, "--oper-password", "pw")
    try:
        alice, _ = rich_client(address, "alice")
        alice.send_json(type="chat", text="remember me", id=1)
        until(alice, "ack")
        alice.send_json(type="oper", password="pw")
        until(alice, "notice")
        alice.send_json(type="ban", target="10.9.8.7", reason="test")
        until(alice, "notice")
        process.send_signal(signal.SIGTERM)  # commits the last batch first
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()
    process, address = run_server(db, "--oper-password", "pw")
    try:
        bob, _ = rich_client(address, "bob")
        replayed = bob.recv_json()
        assert (replayed["text"], replayed["history"], replayed["nick"]) == (
            "remember me",
            True,
            "alice",
        )
        bob.send_json(type="chat", text="new", id=1)
        assert until(bob, "ack")["msg_id"] > replayed["id"]  # ids keep growing
        bob.send_json(type="oper", password="pw")
        until(bob, "notice")
        bob.send_json(type="unban", target="10.9.8.7")
        assert until(bob, "notice", text="10.9.8.7 is no longer banned")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=5)


def test_member_data_is_merged_limited_and_shown_to_the_room(server: ChatServer) -> None:
    alice, _ = rich_client(server.address, "alice")
    bob, _ = rich_client(server.address, "bob")
    alice.send_json(type="set_data", room="#lobby", data={"ready": True, "team": "red"})
    change = until(bob, "data")
    assert (change["nick"], change["room"], change["data"]) == (
        "alice",
        "#lobby",
        {"ready": True, "team": "red"},
    )
    alice.send_json(type="set_data", room="#lobby", data={"ready": None, "x": 12})
    assert until(bob, "data")["data"] == {"team": "red", "x": 12}  # merged; null removes
    carol, _ = rich_client(server.address, "carol")
    joined_members = {m["nick"]: m for m in carol.joined["members"]}  # type: ignore[attr-defined]
    assert joined_members["alice"]["data"] == {"team": "red", "x": 12}
    assert "data" not in joined_members["bob"]  # only members who set some carry it
    for data in (
        {"bad key!": 1},
        {"k": "x" * 65},
        {"k": [1, 2]},
        {f"k{n}": n for n in range(17)},
        {"k": 2**60},
    ):
        alice.send_json(type="set_data", room="#lobby", data=data)
        assert until(alice, "error")["code"] == "bad_message", data
    alice.send_json(type="set_data", room="#elsewhere", data={"a": 1})
    assert until(alice, "error")["code"] == "no_such_room"
