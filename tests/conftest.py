"""Shared fixtures. The SDL variables are set before anything can import pygame."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, settings

from game_chat.protocol.limits import Limits
from game_chat.server import ChatServer, ServerConfig

# The real Redis/Valkey server launcher is shared with the benchmarks.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from redis_process import RedisProcess

#: Limits for tests that send far faster than a person (bursts of hundreds of lines).
NO_FLOOD_LIMITS = Limits(chat_per_minute=0, data_per_second=0)

# The machines are shared and noisy: a slow moment must not fail a property test by the clock
# (the properties themselves are still checked on every example).
settings.register_profile("game_chat", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("game_chat")


@pytest.fixture(autouse=True)
def private_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers and clients started by a test (processes too) keep their files to themselves."""
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("GAME_CHAT_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("GAME_CHAT_CONFIG_DIR", str(base / "config"))


def start_server(**overrides: object) -> ChatServer:
    settings: dict[str, object] = {"host": "127.0.0.1", "port": 0, **overrides}
    config = ServerConfig(**settings)  # type: ignore[arg-type]
    server = ChatServer(config)
    server.start()
    return server


@pytest.fixture
def server() -> Iterator[ChatServer]:
    """A real server on 127.0.0.1, on a free port, shut down after the test."""
    srv = start_server()
    try:
        yield srv
    finally:
        srv.shutdown()


@pytest.fixture
def burst_server() -> Iterator[ChatServer]:
    """Like ``server``, without flood limits: for tests that send bursts no person could."""
    srv = start_server(limits=NO_FLOOD_LIMITS)
    try:
        yield srv
    finally:
        srv.shutdown()


@pytest.fixture
def server_factory() -> Iterator:  # type: ignore[type-arg]
    """Start servers with custom config: ``server_factory(max_clients=2)``."""
    started: list[ChatServer] = []

    def make(**overrides: object) -> ChatServer:
        srv = start_server(**overrides)
        started.append(srv)
        return srv

    try:
        yield make
    finally:
        for srv in started:
            srv.shutdown()


#: Test modules that exercise pygame; .ci/run runs them again on pygame-ce (``pytest -m ui``).
UI_MODULES = frozenset(
    {
        "test_app.py",
        "test_input_box.py",
        "test_clipboard.py",
        "test_message_log.py",
        "test_fonts.py",
        "test_overlay.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in UI_MODULES:
            item.add_marker(pytest.mark.ui)


@pytest.fixture(scope="module")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A real Redis/Valkey server on a free loopback port (tests/redis_process.py), one per
    test module; tests that use it start from an empty database (``redis_db``)."""
    process = RedisProcess(tmp_path_factory.mktemp("redis"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def redis_db(redis_process: RedisProcess) -> Iterator[redis.Redis]:
    """A client of ``redis_process``, its database emptied first."""
    client = redis_process.client()
    client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The server's log, DEBUG and up; the test fails if a line is an error or a traceback."""
    caplog.set_level(logging.DEBUG, logger="game_chat.server")
    yield caplog
    crashes = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not crashes, [r.getMessage() for r in crashes]  # one line each, never a traceback
