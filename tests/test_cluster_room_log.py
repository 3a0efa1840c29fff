"""The cluster's room streams against a real Redis/Valkey server (never a mock)."""

from __future__ import annotations

import threading

import pytest
import redis

from game_chat.cluster.client import connect
from game_chat.cluster.room_log import (
    ClusterDataError,
    ClusterError,
    FeedEvent,
    FeedLine,
    NewEvent,
    NewLine,
    RoomLog,
    private_stream,
)


def line(text: str, room: str = "#lobby", nick: str = "ann", **kw: object) -> NewLine:
    return NewLine(room.lower(), room, nick, text, kw.pop("ts", 1000.0), **kw)  # type: ignore[arg-type]


def test_lines_get_increasing_ids_and_read_back_in_order(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    done = log.append([line(f"hi {i}") for i in range(5)] + [line("elsewhere", "#Team")])
    assert [a.id for a in done] == [1, 2, 3, 4, 5, 6]
    assert not any(a.again for a in done)
    got = log.recent("#lobby")
    assert [(m.id, m.text, m.room, m.nick) for m in got] == [
        (i + 1, f"hi {i}", "#lobby", "ann") for i in range(5)
    ]
    assert [m.text for m in log.recent("#team")] == ["elsewhere"]
    assert log.last_id("#lobby") == 5 and log.last_id("#nowhere") == 0


def test_paging_by_id_both_ways(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    log.append([line(str(i)) for i in range(1, 11)])  # ids 1..10
    assert [m.id for m in log.recent("#lobby", 3)] == [8, 9, 10]
    assert [m.id for m in log.recent("#lobby", 3, before_id=8)] == [5, 6, 7]
    assert [m.id for m in log.recent("#lobby", 10, before_id=8, after_id=5)] == [6, 7]
    assert [m.id for m in log.following("#lobby", 2, 3)] == [3, 4, 5]
    assert [m.id for m in log.following("#lobby", 8)] == [9, 10]
    assert [m.id for m in log.following("#lobby", 2, 10, before_id=5)] == [3, 4]
    assert log.recent("#lobby", 0) == [] and log.recent("#lobby", 5, before_id=1) == []


def test_an_origin_makes_an_append_idempotent(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    first = log.append([line("once", origin="n1:1", digest=b"\x01\x02")])[0]
    again = log.append([line("once", origin="n1:1", digest=b"\x01\x02", ts=2000.0)])[0]
    assert not first.again and again.again
    assert (again.id, again.ts, again.digest) == (first.id, 1000.0, b"\x01\x02")
    assert [m.text for m in log.recent("#lobby")] == ["once"]


def test_a_retry_key_finds_the_line_but_does_not_swallow_a_new_one(redis_db: redis.Redis) -> None:
    """Clients may reuse client ids across sessions: only a retry is matched, by the state."""
    log = RoomLog(redis_db)
    first = log.append([line("hi", retry_key="ann\x00i1", digest=b"\x07")])[0]
    assert log.find_key("ann\x00i1") == (first.id, 1000.0, b"\x07")
    assert log.find_key("bob\x00i1") is None
    second = log.append([line("hi again", retry_key="ann\x00i1", digest=b"\x08")])[0]
    assert not second.again and second.id == first.id + 1
    assert log.find_key("ann\x00i1") == (second.id, 1000.0, b"\x08")


def test_private_lines_carry_their_recipient(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    key = private_stream("n1")
    log.append([NewLine(key, "", "ann", "psst", 5.0, private_to="Bob", origin="n2:1")])
    lines = log.read({key: 0})[0]
    assert [(f.room_key, f.message.private_to, f.message.text, f.origin) for f in lines] == [
        (key, "Bob", "psst", "n2:1")
    ]


def test_actions_and_notices_keep_their_kind(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    log.append(
        [
            NewLine("lobby", "#lobby", "ann", "waves", 5.0, action=True),
            NewLine("lobby", "#lobby", "bot", "build green", 6.0, notice=True),
        ]
    )
    lines = log.read({"lobby": 0})[0]
    assert [(f.message.action, f.message.notice) for f in lines] == [(True, False), (False, True)]


def test_the_room_cap_trims_old_lines(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db, room_cap=10)
    for _ in range(30):
        log.append([line(str(i)) for i in range(10)])
    kept = log.recent("#lobby", 1000)
    # MAXLEN ~ trims whole internal nodes: about the cap, never below it, newest kept
    assert 10 <= len(kept) < 300 and kept[-1].id == 300


def test_retention_by_age(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    log.append([line("old", ts=100.0), line("old too", ts=200.0), line("new", ts=900.0)])
    assert log.trim_before("#lobby", 500.0) == 2
    assert [m.text for m in log.recent("#lobby")] == ["new"]
    assert log.trim_before("#lobby", 1000.0) == 1 and log.recent("#lobby") == []
    assert log.trim_before("#lobby", 1000.0) == 0


def test_read_waits_for_lines_after_a_position(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    log.append([line("before")])
    assert log.read({"#lobby": 0})[0] == [FeedLine("#lobby", log.recent("#lobby")[0], "")]
    assert log.read({"#lobby": 1}) == ([], None, [], None)
    got: list[str] = []
    reader = threading.Thread(
        target=lambda: got.extend(f.message.text for f in log.read({"#lobby": 1, "#x": 0}, 5000)[0])
    )
    reader.start()
    RoomLog(redis.Redis(connection_pool=redis_db.connection_pool)).append([line("later")])
    reader.join(10)
    assert got == ["later"]


def test_two_writers_at_once_get_distinct_ids_in_stream_order(redis_db: redis.Redis) -> None:
    start = threading.Barrier(2)

    def write(nick: str) -> None:
        log = RoomLog(redis.Redis(connection_pool=redis_db.connection_pool))
        start.wait()
        for i in range(200):
            log.append([line(f"{nick} {i}", nick=nick)])

    writers = [threading.Thread(target=write, args=(n,)) for n in ("ann", "bob")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(30)
    got = RoomLog(redis_db).recent("#lobby", 1000)
    assert [m.id for m in got] == list(range(1, 401))
    for nick in ("ann", "bob"):  # each writer's lines in its own order
        assert [m.text for m in got if m.nick == nick] == [f"{nick} {i}" for i in range(200)]


def test_the_id_floor_keeps_ids_from_coming_back(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    log.append([line("a")])
    assert log.raise_id_floor(1000) == 1000
    assert log.append([line("b")])[0].id == 1001
    assert log.raise_id_floor(5) == 1001


def test_foreign_entries_are_a_data_error_not_a_crash(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    redis_db.xadd(log.stream_key("#lobby"), {"something": "else"}, id="5-1")
    with pytest.raises(ClusterDataError):
        log.recent("#lobby")


def test_an_unreachable_server_is_a_cluster_error() -> None:
    log = RoomLog(connect("redis://127.0.0.1:1/0"))
    with pytest.raises(ClusterError):
        log.append([line("x")])
    with pytest.raises(ClusterError):
        log.recent("#lobby")


def test_acked_lines_survive_kill_9_of_redis_with_appendonly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """appendonly yes, appendfsync always: Redis has the append in its file before it
    answers, so a killed Redis process loses no acknowledged append. (With everysec it
    usually has too, but while a background fsync is slow Redis postpones its writes by up
    to 2 s and answers meanwhile: seen once here, under load. docs/SCALING.md says so.)"""
    from redis_process import RedisProcess

    server = RedisProcess(tmp_path / "redis")  # appendfsync always
    server.start()
    try:
        log = RoomLog(server.client())
        acked = [a.id for a in log.append([line(f"l{i}", origin=f"k{i}") for i in range(200)])]
        server.kill()
        server.start()
        log = RoomLog(server.client())
        assert [m.id for m in log.recent("#lobby", 1000)] == acked
        assert log.append([line("l7", origin="k7")])[0].again  # origins survive too
        assert log.append([line("next")])[0].id == acked[-1] + 1  # no id comes back
    finally:
        server.stop()


def test_events_are_read_after_a_position_with_their_rooms(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    start = log.events_position()
    assert start == "0-0"
    log.append([NewEvent(b'{"type":"join"}', ("#lobby",), "n1:1"), line("a line")])
    log.append([NewEvent(b'{"type":"join"}', ("#lobby",), "n1:1")])  # sent again: not added
    lines, _, events, position = log.read({"#lobby": 0}, events=start)
    assert [f.message.text for f in lines] == ["a line"]
    assert events == [FeedEvent(b'{"type":"join"}', ("#lobby",), "n1:1")]
    assert position == log.events_position() != start
    assert log.read({}, events=position)[2] == []
