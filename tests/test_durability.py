"""Durability across kill -9: real ``run_server.py`` processes on one history file, killed with
SIGKILL and started again (bench/crash.py's ServerProcess; only processes started here are
signalled).

* the crash benchmark on a small load: 300 lines at 300/s, one kill -9 mid-stream; every
  acked line is stored once, no id is reused, the reader (reconnecting with ``resume``) gets
  every line exactly once, also when it stays away long enough for a ``joined.gap``;
* a line acked before the kill and resent with ``retry`` after the restart is acked again with
  the same id and is not delivered again;
* ids handed out after a restart are above every id acked before it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wire import WireClient, rich_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
crash = importlib.import_module("crash")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    """A run_server.py process on tmp_path/history.sqlite3, ready to be killed and restarted."""
    proc = crash.ServerProcess(tmp_path / "history.sqlite3", tmp_path / "server.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        proc.close()


def is_ack(message: dict[str, Any]) -> bool:
    return message["type"] == "ack"


def is_chat(message: dict[str, Any]) -> bool:
    return message["type"] == "chat"


def restart_after_kill(server: Any, *clients: WireClient) -> tuple[str, int]:
    """kill -9, close the clients' dead connections, start again on the same file."""
    server.kill()
    for client in clients:
        client.close()
    return server.start()


def history(client: WireClient, **request: Any) -> dict[str, Any]:
    client.send_json(type="history", room="#lobby", limit=500, **request)
    return client.recv_until(lambda m: m["type"] == "history")


# --- the benchmark, small -------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("away", [0.0, 0.5], ids=["reader-back-at-once", "reader-gap"])
def test_kill_9_mid_stream_loses_no_acked_line_and_stores_none_twice(
    tmp_path: Path, away: float
) -> None:
    options = crash.Options(
        lines=300,
        rate=300,
        restarts=1,
        seed=20240611,
        reader="resume",
        reader_away=away,
        timeout=40,
        history_db=tmp_path / "history.sqlite3",
    )
    result = crash.run(options)
    for name in crash.MUST_BE_ZERO:
        assert result[name] == 0, (name, result)
    assert result["ok"], result
    assert result["lines_acked"] == 300
    assert result["history_rows"] == 300
    assert len(result["kills_at_s"]) == 1
    assert result["sender_connections"] == 2 and result["reader_connections"] == 2
    assert result["resume_works"] is True
    if away:  # ~150 lines were said while the reader was away: more than the 100 replayed
        assert len(result["resume_gaps"]) == 1, result
        assert result["reader_paged"] > 0, result


# --- retries across a crash -----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_line_acked_before_kill_9_and_retried_after_is_acked_with_its_id_and_not_redelivered(
    server: Any,
) -> None:
    alice, _ = rich_client(server.address, "alice")
    bob, bob_welcome = rich_client(server.address, "bob")
    text = "said just before the crash"
    alice.send_json(type="chat", text=text, id="c1")
    first = alice.recv_until(is_ack)
    assert first["id"] == "c1"
    live = bob.recv_until(is_chat)
    assert (live["id"], live["text"]) == (first["msg_id"], text)

    address = restart_after_kill(server, alice, bob)

    # bob comes back where he was: nothing after his last id yet.
    bob = WireClient(address)
    bob.send_json(
        type="hello",
        nick="bob",
        version=1,
        store=bob_welcome["store"],
        resume={"#lobby": live["id"]},
    )
    welcome = bob.recv_json()
    assert welcome["type"] == "welcome" and welcome["store"] == bob_welcome["store"]
    joined = bob.recv_json()
    assert joined["type"] == "joined" and "gap" not in joined, joined
    # carol joins plainly: she gets the line once, replayed from the history.
    carol, _ = rich_client(address, "carol")
    replayed = carol.recv_until(is_chat)
    assert (replayed["id"], replayed["text"], replayed.get("history")) == (
        first["msg_id"],
        text,
        True,
    )

    # alice never saw her ack arrive (say): she resends the line, marked retry.
    alice, _ = rich_client(address, "alice")
    alice.send_json(type="chat", text=text, id="c1", retry=True)
    again = alice.recv_until(is_ack)
    assert (again["id"], again["msg_id"]) == ("c1", first["msg_id"])
    alice.send_json(type="chat", text="said after the restart", id="c2")
    after = alice.recv_until(is_ack)
    assert after["id"] == "c2" and after["msg_id"] > first["msg_id"]

    # Lines arrive in id order: had the retry been delivered, it would come before c2.
    for reader in (bob, carol):
        following = reader.recv_until(is_chat)
        assert (following["id"], following["text"]) == (after["msg_id"], "said after the restart")
        assert not following.get("history")
    page = history(bob)
    assert [(m["id"], m["text"]) for m in page["messages"]] == [
        (first["msg_id"], text),
        (after["msg_id"], "said after the restart"),
    ]
    for client in (alice, bob, carol):
        client.close()


@pytest.mark.timeout(30)
def test_ids_after_kill_9_are_above_every_id_acked_before(server: Any) -> None:
    alice, _ = rich_client(server.address, "alice")
    for n in range(1, 21):  # pipelined: they share commits
        alice.send_json(type="chat", text=f"line {n}", id=f"c{n}")
    acks = [alice.recv_until(is_ack) for _ in range(20)]
    assert [a["id"] for a in acks] == [f"c{n}" for n in range(1, 21)]
    before = [a["msg_id"] for a in acks]
    assert before == sorted(set(before))

    restart_after_kill(server, alice)
    # Killed again at once, before any line: the reservation made at start holds all the same.
    address = restart_after_kill(server)
    alice, _ = rich_client(address, "alice")
    alice.send_json(type="chat", text="line 21", id="c21")
    new = alice.recv_until(is_ack)["msg_id"]
    assert new > max(before)
    page = history(alice)
    assert [m["id"] for m in page["messages"]] == [*before, new]
    assert [m["text"] for m in page["messages"]] == [f"line {n}" for n in range(1, 22)]
    alice.close()

    # A clean stop gives back the unused ids: the next run goes on right after the last one.
    server.stop()
    alice, _ = rich_client(server.start(), "alice")
    alice.send_json(type="chat", text="line 22", id="c22")
    assert alice.recv_until(is_ack)["msg_id"] == new + 1
    alice.close()
