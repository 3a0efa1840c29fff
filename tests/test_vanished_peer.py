"""A peer that vanishes for real (cable pulled, lid closed) is dropped by TCP keepalive.

The client runs in a network namespace of our own, joined to the test's namespace by a veth
pair; taking its interface down makes it vanish without a FIN or RST, as on a real LAN. Needs
root and ``ip netns`` (skipped with the reason otherwise); everything is torn down after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator

import pytest
from wire import rich_client

SUBNET = "10.231.{n}.{host}"


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=10)


class Namespace:
    """``ip netns`` with a veth pair: our side ``self.near``, its side ``self.far``."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        n = int(tag, 16) % 250 + 1
        self.name = f"gc-{tag}"
        self.near_if, self.far_if = f"gca{tag}", f"gcb{tag}"
        self.near, self.far = SUBNET.format(n=n, host=1), SUBNET.format(n=n, host=2)
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "link", "add", self.near_if, "type", "veth", "peer", "name", self.far_if)
            _run("ip", "link", "set", self.far_if, "netns", self.name)
            _run("ip", "addr", "add", f"{self.near}/30", "dev", self.near_if)
            _run("ip", "link", "set", self.near_if, "up")
            inside = ("ip", "netns", "exec", self.name)
            _run(*inside, "ip", "addr", "add", f"{self.far}/30", "dev", self.far_if)
            _run(*inside, "ip", "link", "set", self.far_if, "up")
            _run(*inside, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    def exec(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def vanish(self) -> None:
        """The far side drops off the network: no FIN, no RST, nothing."""
        _run(*self.exec("ip", "link", "set", self.far_if, "down"))

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.near_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[Namespace]:
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip netns) to make a peer vanish for real")
    try:
        namespace = Namespace()
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot make a network namespace here: {exc}")
    try:
        yield namespace
    finally:
        namespace.remove()


#: A tutorial-style plain client: one line, then it only listens (prints what it gets).
PLAIN_CLIENT = textwrap.dedent(
    """
    import socket, sys
    sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
    sock.sendall(b"%-64d" % 5 + b"hello")
    print("sent", flush=True)
    while sock.recv(4096):
        pass
    """
)


def test_a_plain_client_that_vanishes_is_dropped_by_keepalive(
    netns: Namespace, server_factory
) -> None:
    server = server_factory(
        host=netns.near, keepalive_idle=1, keepalive_interval=1, keepalive_count=2
    )
    host, port = server.address
    watcher, _ = rich_client((host, port), "watcher")
    plain = subprocess.Popen(
        netns.exec(sys.executable, "-c", PLAIN_CLIENT, host, str(port)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert plain.stdout is not None and plain.stdout.readline().strip() == "sent"
        joined = watcher.recv_until(lambda m: m["type"] == "join")
        guest = joined["nick"]
        watcher.recv_until(lambda m: m["type"] == "chat" and m["nick"] == guest)
        netns.vanish()
        # Keepalive as configured: 1 s idle + 2 probes 1 s apart: gone within a few seconds
        # (the defaults, 60 + 6 x 10 s, make it two minutes).
        left = watcher.recv_until(lambda m: m["type"] == "leave")
        assert (left["nick"], left["reason"]) == (guest, "connection lost")
    finally:
        plain.kill()
        plain.wait(timeout=10)
