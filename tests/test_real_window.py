"""The real window on a real X server (Xvfb), driven by xdotool as a person would: what the
dummy video driver cannot show (focus, real mouse and keyboard events from the X server).

Skips, saying why, where Xvfb or xdotool is not installed (`.ci/run` installs both with
apt-get where it can; by hand: ``apt-get install -y xvfb xdotool``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wire import rich_client

from game_chat.server import ChatServer

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.ui,  # run again on pygame-ce by .ci/run
    pytest.mark.skipif(
        not (shutil.which("Xvfb") and shutil.which("xdotool")),
        reason="needs Xvfb and xdotool (apt-get install -y xvfb xdotool)",
    ),
]


@pytest.fixture
def x_display() -> Iterator[str]:
    """A private Xvfb display (":N"), stopped after the test."""
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()  # Xvfb writes its display number when it is ready
    try:
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def xdotool(display: str, *args: str) -> str:
    done = subprocess.run(
        ["xdotool", *args], env={**os.environ, "DISPLAY": display},
        capture_output=True, text=True, timeout=20, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.mark.timeout(60)
def test_typing_after_scrolling_and_clicking_the_log_reaches_the_chat(
    server: ChatServer, x_display: str, tmp_path: Path
) -> None:
    watcher, _ = rich_client(server.address, "watcher")
    host, port = server.address
    env = {**os.environ, "DISPLAY": x_display, "GAME_CHAT_CONFIG_DIR": str(tmp_path)}
    env.pop("SDL_VIDEODRIVER", None)  # a real X11 window, not the dummy driver
    window = subprocess.Popen(
        [sys.executable, "run_client.py", "--server", f"{host}:{port}", "--nick", "typer",
         "--no-discovery"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert watcher.recv_until(lambda m: m["type"] == "join")["nick"] == "typer"
        # By its process: a title search misses it (xdotool's regex and the title's "—").
        win = xdotool(x_display, "search", "--sync", "--pid", str(window.pid)).split()[0]
        xdotool(x_display, "windowfocus", "--sync", win)
        geometry = dict(
            line.split("=", 1)
            for line in xdotool(x_display, "getwindowgeometry", "--shell", win).splitlines()
        )
        x, y = int(geometry["X"]), int(geometry["Y"])
        w, h = int(geometry["WIDTH"]), int(geometry["HEIGHT"])
        # Over the log (left of the member list, between the tabs and the input line):
        # a wheel notch, then a click, as a person reading back would.
        xdotool(x_display, "mousemove", "--sync", str(x + w // 3), str(y + h // 2))
        xdotool(x_display, "click", "4")
        xdotool(x_display, "click", "1")
        time.sleep(0.2)  # the window's next looks at its events (every 30 ms)
        xdotool(x_display, "type", "--delay", "20", "hello from X")
        xdotool(x_display, "key", "Return")
        said = watcher.recv_until(lambda m: m["type"] == "chat")
        assert (said["nick"], said["text"]) == ("typer", "hello from X")
    finally:
        window.terminate()
        window.wait(10)
