"""Which addresses to send and listen on: the discovery defaults and the machine's interfaces."""

from __future__ import annotations

import ipaddress

import ifaddr

#: The default discovery group: in 239.255.0.0/16, the IPv4 local scope, which routers keep
#: inside the site (and the announcer sends with TTL 1, so it stays on the local network).
DEFAULT_GROUP = "239.255.50.50"
#: The default UDP port for announcements (the chat server's default TCP port is 5050).
DEFAULT_PORT = 5051


def ipv4_interfaces() -> list[str]:
    """The IPv4 address of every interface that has one, loopback last.

    ifaddr cannot tell whether an interface is up or multicast-capable; sending or joining on
    one that is not fails, and the announcer and the listener skip it.
    """
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str) and ip.ip not in found:
                found.append(ip.ip)
    return sorted(found, key=lambda a: ipaddress.IPv4Address(a).is_loopback)


def parse_ipv4(text: str) -> ipaddress.IPv4Address:
    """An IPv4 address (the discovery targets are addresses, never names); ValueError if not."""
    try:
        return ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise ValueError(f"not an IPv4 address: {text!r}") from None


def is_multicast(address: str) -> bool:
    return parse_ipv4(address).is_multicast


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost": a server nobody else can reach."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
