"""Cluster presence (heartbeats, nicks, member lists) against a real Redis/Valkey server."""

from __future__ import annotations

import threading
import time

import redis

from game_chat.cluster.presence import Presence


def node(db: redis.Redis, name: str, ttl: float = 10.0) -> Presence:
    p = Presence(redis.Redis(connection_pool=db.connection_pool), node_id=name, ttl=ttl)
    p.beat()
    return p


def test_a_nick_is_held_cluster_wide(redis_db: redis.Redis) -> None:
    a, b = node(redis_db, "a"), node(redis_db, "b")
    assert a.claim_nick("ann")
    assert not b.claim_nick("ann")
    assert a.claim_nick("ann")  # the holder asking again (a takeover on that node)
    a.release_nick("ann")
    assert b.claim_nick("ann")
    a.release_nick("ann")  # not a's any more: nothing happens
    assert not a.claim_nick("ann")


def test_two_nodes_same_nick_same_instant_one_wins(redis_db: redis.Redis) -> None:
    for round_ in range(50):
        nodes = [node(redis_db, f"n{i}") for i in range(3)]
        start = threading.Barrier(len(nodes))
        won: list[str] = []

        def ask(p: Presence, start: threading.Barrier, nick: str, won: list[str]) -> None:
            start.wait()
            if p.claim_nick(nick):
                won.append(p.node_id)

        args = (start, f"nick{round_}", won)
        threads = [threading.Thread(target=ask, args=(p, *args)) for p in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(won) == 1


def test_members_of_every_live_node_are_listed(redis_db: redis.Redis) -> None:
    a, b = node(redis_db, "a"), node(redis_db, "b")
    a.publish({"ann": {"nick": "Ann", "rooms": ["#lobby"], "away": ""}})
    b.publish({"bob": {"nick": "Bob", "rooms": ["#lobby"], "away": "lunch"}})
    listed = a.members()
    assert listed["ann"] == {"nick": "Ann", "rooms": ["#lobby"], "away": "", "node": "a"}
    assert listed["bob"]["away"] == "lunch" and listed["bob"]["node"] == "b"
    b.publish({}, gone=["bob"])
    assert set(a.members()) == {"ann"}
    a.leave()
    assert b.live_nodes() == ["b"] and b.members() == {}


def test_a_dead_node_is_reaped_once_and_frees_its_nicks(redis_db: redis.Redis) -> None:
    dead = node(redis_db, "dead", ttl=0.3)
    dead.claim_nick("ann")
    dead.publish({"ann": {"nick": "Ann", "rooms": ["#lobby"]}})
    survivors = [node(redis_db, "s1"), node(redis_db, "s2")]
    assert not survivors[0].claim_nick("ann")  # alive yet
    assert survivors[0].reap() == {}
    deadline = time.monotonic() + 5
    while "dead" in survivors[0].live_nodes():  # stops beating: gone within its ttl
        assert time.monotonic() < deadline
        time.sleep(0.05)  # an expiry inside Redis: there is nothing to wait on but the clock
    assert set(survivors[0].members()) == set()
    reaped = [s.reap() for s in survivors] + [s.reap() for s in survivors]
    assert [r for r in reaped if r] == [{"dead": [{"nick": "Ann", "rooms": ["#lobby"]}]}]
    assert survivors[1].claim_nick("ann")
