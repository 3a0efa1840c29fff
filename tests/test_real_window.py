"""The real window on a real X server (Xvfb), driven by xdotool as a person would: what the
dummy video driver cannot show (focus, real mouse and keyboard events from the X server).

Skips, saying why, where Xvfb or xdotool is not installed (`.ci/run` installs both with
apt-get where it can; by hand: ``apt-get install -y xvfb xdotool``)."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def chat_window(server: ChatServer, display: str, config: Path, nick: str) -> Iterator[int]:
    """``run_client.py`` joined to ``server`` as ``nick`` on ``display``; yields its X window,
    focused (once the server has seen the join, which the caller waits for)."""
    host, port = server.address
    env = {**os.environ, "DISPLAY": display, "GAME_CHAT_CONFIG_DIR": str(config)}
    env.pop("SDL_VIDEODRIVER", None)  # a real X11 window, not the dummy driver
    window = subprocess.Popen(
        [sys.executable, "run_client.py", "--server", f"{host}:{port}", "--nick", nick,
         "--no-discovery"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield window.pid
    finally:
        window.terminate()
        window.wait(10)


def focus_window(display: str, pid: int) -> tuple[int, int, int, int]:
    """Focus the window of process ``pid``; its (x, y, width, height) on the screen."""
    # By its process: a title search misses it (xdotool's regex and the title's "—").
    win = xdotool(display, "search", "--sync", "--pid", str(pid)).split()[0]
    xdotool(display, "windowfocus", "--sync", win)
    geometry = dict(
        line.split("=", 1)
        for line in xdotool(display, "getwindowgeometry", "--shell", win).splitlines()
    )
    return tuple(int(geometry[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))  # type: ignore[return-value]


@pytest.mark.timeout(60)
def test_typing_after_scrolling_and_clicking_the_log_reaches_the_chat(
    server: ChatServer, x_display: str, tmp_path: Path
) -> None:
    watcher, _ = rich_client(server.address, "watcher")
    with chat_window(server, x_display, tmp_path, "typer") as pid:
        assert watcher.recv_until(lambda m: m["type"] == "join")["nick"] == "typer"
        x, y, w, h = focus_window(x_display, pid)
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


@pytest.mark.timeout(60)
def test_a_line_dragged_over_in_the_log_is_copied_with_ctrl_c(
    server: ChatServer, x_display: str, tmp_path: Path
) -> None:
    """Select with the mouse as a person would (press, drag, release on a real X server), copy
    with Ctrl+C, paste into the input line with Ctrl+V and send: what was selected arrives."""
    watcher, _ = rich_client(server.address, "watcher")
    with chat_window(server, x_display, tmp_path, "copier") as pid:
        assert watcher.recv_until(lambda m: m["type"] == "join")["nick"] == "copier"
        watcher.send_json(type="chat", text="copy me please", id=1)
        watcher.recv_until(lambda m: m["type"] == "ack")  # said: the window has it next
        x, y, w, h = focus_window(x_display, pid)
        time.sleep(0.3)  # the line is drawn (the window looks at the network every frame)
        # From high in the log (above the first line: the start of the oldest shown) down past
        # its bottom (the end of the newest line): every line shown is selected.
        xdotool(x_display, "mousemove", "--sync", str(x + 8), str(y + h // 4))
        xdotool(x_display, "mousedown", "1")
        xdotool(x_display, "mousemove", "--sync", str(x + w // 3), str(y + h // 2))
        xdotool(x_display, "mousemove", "--sync", str(x + w // 3), str(y + h - 4))
        xdotool(x_display, "mouseup", "1")
        time.sleep(0.2)
        xdotool(x_display, "key", "ctrl+c")
        time.sleep(0.2)
        xdotool(x_display, "key", "ctrl+v")
        xdotool(x_display, "key", "Return")
        said = watcher.recv_until(lambda m: m["type"] == "chat" and m["nick"] == "copier")
        assert "watcher: copy me please" in said["text"], said["text"]
