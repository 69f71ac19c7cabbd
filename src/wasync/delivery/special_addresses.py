"""Addresses that are not globally reachable, by IANA's registries rather than Python's.

`ipaddress`'s `is_global`/`is_private` follow the registries as they were when that
Python was released, and have been wrong both ways: on Python 3.11 `fec0::1` (a
deprecated site-local address) and `192.0.0.8` (the IPv4 dummy address) are
"global". The SSRF guard checks these tables as well, so what webhooks may reach
does not depend on the interpreter.

Sources: IANA IPv4 and IPv6 Special-Purpose Address Registries (2025-10), the IPv4
Address Space registry (multicast, reserved) and the IPv6 Address Space registry
(only 2000::/3 is global unicast). A block is listed when its "Globally Reachable"
is false or not applicable. A few globally reachable anycast services inside
otherwise non-global blocks (192.0.0.9, 192.0.0.10, 2001:1::1-3, AMT, AS112) are
refused with their block: no webhook receiver lives there. IPv6 forms that carry an
IPv4 address (mapped, 6to4, Teredo, NAT64) are unwrapped by the guard before this.
"""

from __future__ import annotations

import ipaddress

IPV4_NOT_GLOBAL: dict[str, str] = {
    "0.0.0.0/8": '"this network"',
    "10.0.0.0/8": "private use",
    "100.64.0.0/10": "shared address space",
    "127.0.0.0/8": "loopback",
    "169.254.0.0/16": "link local",
    "172.16.0.0/12": "private use",
    "192.0.0.0/24": "IETF protocol assignments",
    "192.0.2.0/24": "documentation (TEST-NET-1)",
    "192.88.99.0/24": "6to4 relay anycast (deprecated)",
    "192.168.0.0/16": "private use",
    "198.18.0.0/15": "benchmarking",
    "198.51.100.0/24": "documentation (TEST-NET-2)",
    "203.0.113.0/24": "documentation (TEST-NET-3)",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved",
    "255.255.255.255/32": "limited broadcast",
}

# Inside 2000::/3, the only global unicast space; everything outside it is refused.
IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
IPV6_NOT_GLOBAL: dict[str, str] = {
    "2001::/23": "IETF protocol assignments",
    "2001:db8::/32": "documentation",
    "3fff::/20": "documentation",
}

_V4 = [(ipaddress.IPv4Network(net), name) for net, name in IPV4_NOT_GLOBAL.items()]
_V6 = [(ipaddress.IPv6Network(net), name) for net, name in IPV6_NOT_GLOBAL.items()]


def special_purpose(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """The registry's name for the non-global block holding `ip`, or None."""
    if isinstance(ip, ipaddress.IPv4Address):
        return next((name for net, name in _V4 if ip in net), None)
    if ip not in IPV6_GLOBAL_UNICAST:
        return "outside the global unicast space 2000::/3"
    return next((name for net, name in _V6 if ip in net), None)
