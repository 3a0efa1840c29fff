"""``run_client.py --no-gui``: a line-based chat on stdin/stdout, for headless boxes and scripts.

Each line read is sent to the current room (or run as a /command: the window's commands;
``/join`` makes the room current, ``/msg`` sends without changing it); each incoming message is
printed as a line as it arrives, prefixed ``[#room]`` when it is not from the current room and
``[private]`` when it is a private conversation. The end of input waits (briefly) for the server
to confirm what was sent, then leaves.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TextIO

from .conversation import Conversation, Status, format_line
from .model import LogLine
from .net import ChatClient
from .rooms import Tab
from .submit import submit_line

_TICK = 0.02
_EOF_GRACE = 5.0  # seconds to wait for acks after the end of input


def _read_lines(stream: TextIO, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\r\n"))
    lines.put(None)


def run_terminal(client: ChatClient, stdin: TextIO, stdout: TextIO) -> int:
    """Chat until input ends, /quit, or the connection is refused for good. Returns exit code."""

    def show(tab: Tab, line: LogLine) -> None:
        if not line.own:  # the terminal already shows what the user typed
            print(terminal_line(tab, line, conversation.current), file=stdout, flush=True)

    def show_older(tab: Tab, lines: list[LogLine]) -> None:
        for line in lines:
            show(tab, line)

    conversation = Conversation(client.nick, show, show_older)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(stdin, lines), daemon=True).start()
    client.start()
    eof_at: float | None = None
    try:
        while True:
            for event in client.poll():
                conversation.apply(event)
            conversation.settle(time.monotonic())
            if conversation.status == Status.DISCONNECTED:
                return 1  # refused or gave up: the reason was printed
            if eof_at is not None:
                # Leave once everything typed is confirmed (or the grace time is over).
                settled = conversation.status == Status.CONNECTED and client.pending_count == 0
                if settled or time.monotonic() - eof_at > _EOF_GRACE:
                    return 0
                time.sleep(_TICK)
                continue
            try:
                line = lines.get(timeout=_TICK)
            except queue.Empty:
                continue
            if line is None:
                eof_at = time.monotonic()
            elif line.strip() and not _handle_input(line, client, conversation):
                return 0
    finally:
        conversation.settle()  # a "Connected" line still held back is printed
        client.close()


def terminal_line(tab: Tab, line: LogLine, current: Tab) -> str:
    """``line`` as printed: ``[private]`` before private ones, ``[#room]`` before those of a
    room other than the current one."""
    text = format_line(line)
    if not tab.is_room:
        prefix = "[private] "
    elif tab is not current:
        prefix = f"[{tab.name}] "
    else:
        return text
    stamp, _, rest = text.partition(" ")
    return f"{stamp} {prefix}{rest}"


def _handle_input(line: str, client: ChatClient, conversation: Conversation) -> bool:
    """Act on one typed line; False means the user asked to quit."""
    goodbye = submit_line(line, client, conversation, follow_private=False)
    if goodbye is not None:
        client.close(goodbye.reason)
        return False
    return True
