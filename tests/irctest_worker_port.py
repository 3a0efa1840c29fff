"""pytest plugin for tests/irctest_selection.py: each pytest-xdist worker gets a server of its own.

irctest's tests use fixed nicks and channels (``foo``, ``#chan``), so two workers talking to one
server collide (``433`` nickname taken, a ``#chan`` someone else created): the count then
depends on timing. ``GAME_CHAT_IRCTEST_PORTS`` lists one port per worker; worker ``gwN`` takes
the N-th and sets the ``IRCTEST_SERVER_PORT`` that irctest's external controller reads.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    ports = os.environ.get("GAME_CHAT_IRCTEST_PORTS", "").split(",")
    worker = getattr(config, "workerinput", {}).get("workerid", "gw0")
    if ports != [""]:
        os.environ["IRCTEST_SERVER_PORT"] = ports[int(worker.removeprefix("gw")) % len(ports)]
