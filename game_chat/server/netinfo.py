"""The addresses other machines can use to reach this one (for the startup banner)."""

from __future__ import annotations

import ipaddress

from ..discovery.interfaces import ipv4_interfaces


def lan_addresses() -> list[str]:
    """IPv4 addresses of this machine's interfaces, loopback and link-local excluded."""
    usable = []
    for address in ipv4_interfaces():
        ip = ipaddress.IPv4Address(address)
        if not (ip.is_loopback or ip.is_link_local):
            usable.append(address)
    return usable
