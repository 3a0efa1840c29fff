"""pytest plugin for tests/irctest_selection.py: which game_chat server each irctest test meets.

- ``GAME_CHAT_IRCTEST_PORTS`` lists one port per pytest-xdist worker: worker ``gwN`` takes the
  N-th and sets the ``IRCTEST_SERVER_PORT`` that irctest's external controller reads. (irctest's
  tests use fixed nicks and channels, ``foo`` and ``#chan``, so two workers talking to one
  server collide, and the count then depends on timing.)
- ``GAME_CHAT_IRCTEST_FRESH`` (the server's extra arguments, as JSON) gives each test a server
  of its own, started before it and stopped after it: the tests that count what a server has
  seen since it started (LUSERS' highest user count), as irctest's own controllers, which start
  a daemon per test, run them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    ports = os.environ.get("GAME_CHAT_IRCTEST_PORTS", "").split(",")
    worker = getattr(config, "workerinput", {}).get("workerid", "gw0")
    if ports != [""]:
        os.environ["IRCTEST_SERVER_PORT"] = ports[int(worker.removeprefix("gw")) % len(ports)]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    fresh = os.environ.get("GAME_CHAT_IRCTEST_FRESH")
    if fresh is None:
        return (yield)
    from irctest_selection import start_server, stop_servers  # (tests/ is on the path)

    log = Path(tempfile.mkdtemp(prefix="irctest-fresh-")) / "server.log"
    server, port = start_server(log, tuple(json.loads(fresh)))
    os.environ["IRCTEST_SERVER_PORT"] = str(port)
    try:
        return (yield)
    finally:
        stop_servers([server])
