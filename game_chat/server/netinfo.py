"""The addresses other machines can use to reach this one (for the startup banner)."""

from __future__ import annotations

import ipaddress

import ifaddr


def lan_addresses() -> list[str]:
    """IPv4 addresses of this machine's interfaces, loopback and link-local excluded."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not ip.is_IPv4:
                continue
            address = ipaddress.IPv4Address(ip.ip)
            if address.is_loopback or address.is_link_local:
                continue
            if str(address) not in found:
                found.append(str(address))
    return found
