"""A background thread that sleeps in a selector and can be stopped from any thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class StoppableThread:
    """The thread, its stop flag and the socket pair that wakes its selector on stop().

    The owner's loop registers :attr:`wake_socket` in its selector, runs while
    :attr:`stopping` is unset, and closes :attr:`wake_socket` when it ends.
    """

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self.wake_socket, self._wake_w = socket.socketpair()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=target, name=name, daemon=True)

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the thread to end and wait for it (at most ``timeout`` seconds). Idempotent."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        if self.thread.is_alive():
            self.thread.join(timeout)
        elif self.thread.ident is None:  # never started: nobody else closes it
            self.wake_socket.close()
        self._wake_w.close()
