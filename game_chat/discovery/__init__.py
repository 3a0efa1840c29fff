"""LAN discovery: servers announce themselves by UDP, clients keep a live list of them.

No pygame here: the server imports the announcer, the client window reads the listener's
snapshot from its own loop. The packet format and the choices behind it: docs/DISCOVERY.md.
"""

from .announcer import Announcer
from .interfaces import DEFAULT_GROUP, DEFAULT_PORT, ipv4_interfaces, is_loopback_host
from .listener import DiscoveryConfig, DiscoveryListener, ServerEntry, ServerTable
from .packet import Announcement, BadPacket, Pong, Probe, decode, encode

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_PORT",
    "Announcement",
    "Announcer",
    "BadPacket",
    "DiscoveryConfig",
    "DiscoveryListener",
    "Pong",
    "Probe",
    "ServerEntry",
    "ServerTable",
    "decode",
    "encode",
    "ipv4_interfaces",
    "is_loopback_host",
]
