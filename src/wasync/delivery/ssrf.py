"""Refuse webhook targets inside the server's own network (SSRF guard).

A webhook URL is user input that makes the server send requests: pointed at
`127.0.0.1`, `10.x`, `169.254.169.254` or a name that resolves there, it would let
an API user reach databases, admin panels or the cloud metadata service (and its
credentials). Every address a target resolves to must be public, by Python's tables
and by IANA's (special_addresses.py), unless an operator explicitly allows a network
(`WASYNC_WEBHOOK_ALLOWED_NETWORKS`).

The check runs when an endpoint is configured (a clear error at once) and again on
every connection (`GuardedBackend`): DNS answers change, and a redirect may point
elsewhere. The connection then goes to the very address that was checked, so a
second, different DNS answer cannot slip in between check and connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpcore

from wasync.delivery.special_addresses import special_purpose
from wasync.errors import ConfigError, DomainError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

RESOLVE_TIMEOUT = 10.0
# Instance metadata services. 168.63.129.16 (Azure's wire server) is a public address,
# so it needs naming; the others are also caught as link-local or shared space.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeTarget(DomainError):
    """The target resolves to an address webhooks may not reach."""


class UnresolvableTarget(DomainError):
    """The target's host name does not resolve (now)."""


def parse_networks(value: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """`"127.0.0.0/8, 10.1.2.3"` → networks; a bare address is a /32 (or /128)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"not an IP network: {item!r} (write e.g. 127.0.0.0/8 or 10.1.2.3)"
            ) from None
    return tuple(out)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def why_unsafe(ip: IPAddress) -> str | None:
    """Why webhooks may not reach `ip` by default, or None when it is public."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        reason = why_unsafe(inner)
        return f"{reason} (inside {ip})" if reason else None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_reserved:
        return "a non-public address"
    # Python's tables lag IANA's (and differ between versions): ours too.
    special = special_purpose(ip)
    return f"a non-public address ({special})" if special else None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        raise UnresolvableTarget(f"cannot resolve host {host!r}: {exc}") from None
    out: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = _parse_ip(str(sockaddr[0]))
        if ip is not None and ip not in out:
            out.append(ip)
    if not out:
        raise UnresolvableTarget(f"host {host!r} has no address")
    return out


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None


class Guard:
    def __init__(
        self, allowed: Sequence[IPNetwork] = (), *, resolver: Resolver | None = None
    ) -> None:
        self.allowed = tuple(allowed)
        self.resolver = resolver or system_resolver

    def check_ip(self, ip: IPAddress, host: str | None = None) -> None:
        reason = why_unsafe(ip)
        if reason is None or any(ip.version == n.version and ip in n for n in self.allowed):
            return
        name = f"{host!r} resolves to {ip}, which is" if host and host != str(ip) else f"{ip} is"
        raise UnsafeTarget(
            f"refused: {name} {reason}; webhooks may reach it only if an operator allows "
            "its network in WASYNC_WEBHOOK_ALLOWED_NETWORKS"
        )

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of `host`, each checked; refuses if any one is unsafe."""
        literal = _parse_ip(host.strip("[]"))
        addresses = [literal] if literal is not None else await self.resolver(host, port)
        for ip in addresses:
            # All, not just the first: a name with one public and one private answer
            # would otherwise reach the private one whenever the public one is down.
            self.check_ip(ip, host)
        return addresses

    async def check_url(self, url: str) -> None:
        """The configuration-time check: a well-formed http(s) URL to a public host."""
        host, port = target_of(url)
        await self.resolve(host, port)


def target_of(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL; a clear error for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidURL(
            "the URL must start with https:// (or http://; a broker: nats://, amqp://, amqps://, "
            "redis://, rediss://)"
        )
    if not parts.hostname:
        raise InvalidURL("the URL has no host name")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


class InvalidURL(DomainError):
    pass


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the guard on every TCP connection.

    TLS still verifies (and sends SNI for) the host name: httpcore starts TLS with the
    origin's name, whatever address the socket went to.
    """

    def __init__(self, guard: Guard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.guard.resolve(host, port)
        error: Exception | None = None
        for ip in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeTarget("webhooks do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
