"""``run_client.py --no-gui``: a line-based chat on stdin/stdout, for headless boxes and scripts.

Each line read is sent (or run as a /command); each incoming message is printed as a line as it
arrives; the end of input waits (briefly) for the server to confirm what was sent, then leaves.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TextIO

from .conversation import Conversation, Status, format_line, parse_input
from .model import LogLine
from .net import ChatClient

_TICK = 0.02
_EOF_GRACE = 5.0  # seconds to wait for acks after the end of input


def _read_lines(stream: TextIO, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\r\n"))
    lines.put(None)


def run_terminal(client: ChatClient, stdin: TextIO, stdout: TextIO) -> int:
    """Chat until input ends, /quit, or the connection is refused for good. Returns exit code."""

    def show(line: LogLine) -> None:
        if not line.own:  # the terminal already shows what the user typed
            print(format_line(line), file=stdout, flush=True)

    conversation = Conversation(client.nick, show)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(stdin, lines), daemon=True).start()
    client.start()
    eof_at: float | None = None
    try:
        while True:
            for event in client.poll():
                conversation.apply(event)
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
        client.close()


def _handle_input(line: str, client: ChatClient, conversation: Conversation) -> bool:
    """Act on one typed line; False means the user asked to quit."""
    result = parse_input(line)
    if result.quit:
        return False
    if result.chat_text is not None:
        conversation.add_own(client.send_chat(result.chat_text), result.chat_text)
    elif result.nick is not None:
        client.change_nick(result.nick)
    elif result.list_users:
        client.request_users()
    elif result.local_line is not None:
        conversation.on_line(result.local_line)
    return True
