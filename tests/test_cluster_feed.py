"""The cluster's writer and reader of room streams, through a Redis restart (real servers)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis
from redis_process import RedisProcess

from game_chat.cluster.appender import Appender
from game_chat.cluster.client import connect
from game_chat.cluster.feed import RoomFeed
from game_chat.cluster.room_log import Appended, ClusterError, FeedLine, NewLine, RoomLog
from game_chat.server.history import StoredMessage


class Collector:
    def __init__(self) -> None:
        self.lines: queue.Queue[tuple[str, StoredMessage]] = queue.Queue()

    def __call__(self, lines: Sequence[FeedLine]) -> None:
        for f in lines:
            self.lines.put((f.room_key, f.message))

    def take(self, n: int, timeout: float = 20) -> list[tuple[str, StoredMessage]]:
        return [self.lines.get(timeout=timeout) for _ in range(n)]


def line(text: str, room: str = "#lobby") -> NewLine:
    return NewLine(room.lower(), room, "ann", text, 1000.0)


def test_a_feed_hands_on_each_followed_rooms_lines_once_in_order(redis_db: redis.Redis) -> None:
    log = RoomLog(redis_db)
    log.append([line("old")])
    got = Collector()
    feed = RoomFeed(RoomLog(redis.Redis(connection_pool=redis_db.connection_pool)), got,
                    node_id="n1")  # fmt: skip
    feed.start()
    try:
        feed.follow("#lobby", 0)
        assert [(k, m.text) for k, m in got.take(1)] == [("#lobby", "old")]
        log.append([line(f"l{i}") for i in range(50)] + [line("not followed", "#other")])
        assert [m.text for _k, m in got.take(50)] == [f"l{i}" for i in range(50)]
        feed.follow("#other", 0)  # takes effect at once, not after the blocking read
        assert [m.text for _k, m in got.take(1, timeout=0.9)] == ["not followed"]
        assert got.lines.empty() and feed.position("#lobby") == 51
    finally:
        feed.stop()


def test_acked_lines_arrive_once_in_order_across_a_redis_kill_and_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "game_chat.cluster")
    server = RedisProcess(tmp_path / "redis")
    server.start()
    writer = Appender(RoomLog(connect(server.url, timeout=1)), node_id="w", batch=5)
    got = Collector()
    feed = RoomFeed(RoomLog(connect(server.url, timeout=1)), got, node_id="r", block_ms=200)
    acked: queue.Queue[Appended | ClusterError] = queue.Queue()
    writer.start()
    feed.start()
    feed.follow("#lobby", 0)
    try:
        restarted = threading.Timer(0.5, server.start)

        count = iter(range(1, 301))

        def kill_at_the_100th(result: Appended | ClusterError) -> None:
            acked.put(result)
            if next(count) == 100:  # on the writer's thread: its next batch meets a dead Redis
                server.kill()
                restarted.start()

        for i in range(300):
            writer.submit(line(f"l{i}"), kill_at_the_100th)
        results = [acked.get(timeout=20) for _ in range(300)]
        restarted.join()
        assert all(isinstance(r, Appended) for r in results)
        ids = [r.id for r in results]  # type: ignore[union-attr]
        assert ids == sorted(ids) and len(set(ids)) == 300
        seen = got.take(300)
        assert [m.text for _k, m in seen] == [f"l{i}" for i in range(300)]
        assert [m.id for _k, m in seen] == ids
        assert got.lines.empty()
        said = [r.getMessage() for r in caplog.records]
        assert sum("unreachable" in m for m in said) == 2  # writer and feed: once each
        assert sum("is back" in m for m in said) == 2
    finally:
        feed.stop()
        writer.stop()
        server.stop()
