"""A server announcing itself: one UDP socket and one thread.

Every ``interval`` seconds the thread sends the current :class:`Announcement` to every target:
to a multicast group once per interface (``IP_MULTICAST_IF``, TTL 1), to any other address
(unicast such as 127.0.0.1, or a broadcast address) once. Between announcements it answers
:class:`Probe` datagrams with a :class:`Pong`, so listeners can measure the round trip.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from collections.abc import Callable, Sequence

from .interfaces import DEFAULT_GROUP, DEFAULT_PORT, ipv4_interfaces, is_multicast
from .packet import (
    DEFAULT_INTERVAL,
    MAX_INTERVAL,
    MAX_PACKET_BYTES,
    MIN_INTERVAL,
    Announcement,
    BadPacket,
    Pong,
    Probe,
    decode,
    encode,
)
from .worker import StoppableThread

log = logging.getLogger("game_chat.discovery")

#: How often the interface list is read again (a VPN or Wi-Fi may come up later).
INTERFACE_REFRESH = 10.0
#: Pongs sent per second at most, whoever asks: the announcer is no reflector.
MAX_PONGS_PER_SECOND = 50
#: Datagrams read per wake-up at most, so a flood cannot delay the next announcement.
MAX_READS = 64


class Announcer:
    """``start()`` opens the socket and the thread; ``stop()`` ends both.

    ``announcement`` is called for each announcement (from the announcer thread), so the
    player count is always the current one. ``interfaces`` lists the IPv4 addresses whose
    interfaces multicast goes out of (default: every interface).
    """

    def __init__(
        self,
        announcement: Callable[[], Announcement],
        targets: Sequence[str] = (DEFAULT_GROUP,),
        port: int = DEFAULT_PORT,
        interval: float = DEFAULT_INTERVAL,
        *,
        bind_address: str = "0.0.0.0",
        interfaces: Callable[[], list[str]] = ipv4_interfaces,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._multicast = {target: is_multicast(target) for target in targets}  # ValueError
        if not 1 <= port <= 65_535:
            raise ValueError(f"announce port {port} is not in 1..65535")
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            raise ValueError(f"announce interval {interval} is not in {MIN_INTERVAL}..3600 s")
        self.announcement = announcement
        self.targets = tuple(targets)
        self.port = port
        self.interval = interval
        self.bind_address = bind_address
        self._interfaces = interfaces
        self._clock = clock
        self._iface_cache: list[str] = []
        self._iface_read_at = float("-inf")
        self._pong_window = (0.0, 0)  # (second it counts, pongs sent in it)
        self._sock: socket.socket | None = None
        self._worker = StoppableThread(self._run, "chat-announcer")
        self._stop = self._worker.stopping
        self._wake_r = self._worker.wake_socket
        self._thread = self._worker.thread
        self.sent = 0  # datagrams sent (all targets and interfaces), for tests and logs

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.bind((self.bind_address, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._sock is not None and not self._stop.is_set()

    @property
    def address(self) -> tuple[str, int]:
        """Where announcements come from and probes go to."""
        assert self._sock is not None, "announcer not started"
        host, port = self._sock.getsockname()[:2]
        return host, port

    def stop(self, timeout: float = 1.0) -> None:
        self._worker.stop(timeout)

    # --- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        assert self._sock is not None
        next_at = self._clock()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._sock, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stop.is_set():
                    now = self._clock()
                    if now >= next_at:
                        self._announce_once(now)
                        next_at = max(next_at + self.interval, now)  # no burst after a stall
                    for key, _ in selector.select(max(0.0, next_at - self._clock())):
                        if key.fileobj is self._sock:
                            self._answer_probes()
        finally:
            self._sock.close()
            self._wake_r.close()

    def _announce_once(self, now: float) -> None:
        assert self._sock is not None
        try:
            data = encode(self.announcement())
        except Exception:  # a bug in the provider must not end the announcements
            log.exception("cannot build the announcement")
            return
        for target in self.targets:
            if not self._multicast[target]:
                self._send(data, target)
                continue
            for iface in self._current_interfaces(now):
                try:
                    self._sock.setsockopt(
                        socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface)
                    )
                except OSError as exc:
                    log.debug("no multicast on interface %s: %s", iface, exc)
                    continue
                self._send(data, target, iface)

    def _send(self, data: bytes, target: str, iface: str = "") -> None:
        assert self._sock is not None
        try:
            self._sock.sendto(data, (target, self.port))
            self.sent += 1
        except OSError as exc:  # interface down, no route, buffer full: try again next time
            log.debug("announcement to %s:%d %s failed: %s", target, self.port, iface, exc)

    def _current_interfaces(self, now: float) -> list[str]:
        if now - self._iface_read_at >= INTERFACE_REFRESH:
            self._iface_read_at = now
            try:
                self._iface_cache = self._interfaces()
            except Exception:
                log.exception("cannot list the network interfaces")
        return self._iface_cache

    def _answer_probes(self) -> None:
        assert self._sock is not None
        for _ in range(MAX_READS):
            try:
                data, source = self._sock.recvfrom(MAX_PACKET_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable reported on Windows
                continue
            try:
                packet = decode(data)
            except BadPacket:
                continue
            if isinstance(packet, Probe) and self._may_pong():
                try:
                    self._sock.sendto(encode(Pong(packet.nonce)), source)
                except OSError:
                    pass

    def _may_pong(self) -> bool:
        second = int(self._clock())
        start, count = self._pong_window
        if start != second:
            start, count = second, 0
        self._pong_window = (start, count + 1)
        return count < MAX_PONGS_PER_SECOND
