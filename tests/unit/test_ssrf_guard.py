"""The SSRF guard: refused at configuration time and at connection time.

DNS is mocked at the resolver and connections at httpcore's network backend, so no
packet leaves the machine: the tests see exactly which addresses would be dialled.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import httpcore
import httpx
import pytest

from wasync.delivery import webhook_sink
from wasync.delivery.http import GuardedTransport, post
from wasync.delivery.ssrf import (
    Guard,
    GuardedBackend,
    InvalidURL,
    IPAddress,
    UnsafeTarget,
    parse_networks,
    why_unsafe,
)
from wasync.errors import ConfigError
from wasync.jobs.outcome import Retry

PUBLIC = "93.184.216.34"


class FakeDNS:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        return [ipaddress.ip_address(a) for a in self.answers[host]]


class RecordingBackend(httpcore.AsyncMockBackend):
    """Answers every connection from canned bytes and records where it went."""

    def __init__(self, responses: list[bytes]) -> None:
        super().__init__(responses)
        self.dialled: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.dialled.append((host, port))
        return await super().connect_tcp(host, port, *args, **kwargs)


def client_with(guard: Guard, inner: RecordingBackend) -> httpx.AsyncClient:
    transport = GuardedTransport(guard)
    transport._pool = httpcore.AsyncConnectionPool(
        network_backend=GuardedBackend(guard, inner), max_keepalive_connections=0
    )
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("https://10.0.0.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::1]:9000/hook", "loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[fd00:ec2::254]/", "metadata"),
    ],
)
async def test_literal_addresses_are_refused_at_configuration(url: str, why: str) -> None:
    dns = FakeDNS({})
    with pytest.raises(UnsafeTarget, match=why):
        await Guard(resolver=dns).check_url(url)
    assert dns.asked == []  # an address literal needs no lookup


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    dns = FakeDNS({"crm.internal.example": ["10.20.30.40"]})
    with pytest.raises(UnsafeTarget, match=r"'crm.internal.example' resolves to 10.20.30.40"):
        await Guard(resolver=dns).check_url("https://crm.internal.example/hook")
    assert dns.asked == ["crm.internal.example"]


async def test_one_private_answer_among_public_ones_is_enough_to_refuse() -> None:
    dns = FakeDNS({"mixed.example": [PUBLIC, "192.168.1.5"]})
    with pytest.raises(UnsafeTarget, match=r"192\.168\.1\.5"):
        await Guard(resolver=dns).check_url("https://mixed.example/")


async def test_public_targets_pass_and_allowed_networks_are_explicit() -> None:
    dns = FakeDNS({"hooks.example": [PUBLIC], "box.lan": ["10.1.2.3"]})
    guard = Guard(parse_networks("127.0.0.0/8, ::1"), resolver=dns)
    await guard.check_url("https://hooks.example/in")
    await guard.check_url("http://127.0.0.1:9999/in")
    await guard.check_url("http://[::1]:9999/in")
    with pytest.raises(UnsafeTarget):
        await guard.check_url("http://box.lan/in")  # 10/8 was not allowed
    with pytest.raises(UnsafeTarget):
        await guard.check_url("http://169.254.169.254/")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "https:///nohost"])
async def test_malformed_targets_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(InvalidURL):
        await Guard(resolver=FakeDNS({})).check_url(url)


def test_ip_classification_sees_through_ipv6_wrappers() -> None:
    assert why_unsafe(ipaddress.ip_address("64:ff9b::a00:1")) is not None  # NAT64 of 10.0.0.1
    assert why_unsafe(ipaddress.ip_address("2002:7f00:1::")) is not None  # 6to4 of 127.0.0.1
    assert why_unsafe(ipaddress.ip_address("168.63.129.16")) == "a cloud metadata address"
    assert why_unsafe(ipaddress.ip_address("100.64.1.1")) == "a non-public address"
    assert why_unsafe(ipaddress.ip_address(PUBLIC)) is None
    with pytest.raises(ConfigError, match="not an IP network"):
        parse_networks("10.0.0.0/8, nonsense")


async def test_connections_are_checked_again_at_delivery_time() -> None:
    # The name was public when the endpoint was configured; its DNS now says 10.x
    # (a rebinding attack, or a moved host): the connection is refused, nothing dialled.
    dns = FakeDNS({"hooks.example": [PUBLIC]})
    guard = Guard(resolver=dns)
    await guard.check_url("https://hooks.example/in")
    dns.answers["hooks.example"] = ["10.9.8.7"]
    inner = RecordingBackend([OK])
    async with client_with(guard, inner) as client:
        with pytest.raises(UnsafeTarget, match=r"10\.9\.8\.7"):
            await client.post("http://hooks.example/in", content=b"{}")
    assert inner.dialled == []


async def test_the_checked_address_is_the_one_dialled() -> None:
    dns = FakeDNS({"hooks.example": [PUBLIC]})
    inner = RecordingBackend([OK])
    async with client_with(Guard(resolver=dns), inner) as client:
        answer = await post(client, "http://hooks.example/in", content=b"{}")
    assert answer.status == 200
    assert inner.dialled == [(PUBLIC, 80)]  # the address, not the name: no second lookup


async def test_a_redirect_to_a_private_address_is_not_followed() -> None:
    dns = FakeDNS({"hooks.example": [PUBLIC]})
    redirect = (
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/latest/\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    inner = RecordingBackend([redirect, OK])
    async with client_with(Guard(resolver=dns), inner) as client:
        answer, outcome = await webhook_sink.send(client, "http://hooks.example/in", content=b"{}")
    assert answer is None
    assert isinstance(outcome, Retry) and outcome.permanent
    assert "metadata" in outcome.error
    assert inner.dialled == [(PUBLIC, 80)]  # only the first hop was ever dialled


# Addresses that are not globally reachable although this Python's `ipaddress` tables
# may say they are (3.11: fec0::1 and 192.0.0.8 are "global"), and their wrapped forms.
NOT_GLOBAL = [
    "192.0.0.8",  # IPv4 dummy address (RFC 7600)
    "192.0.0.171",  # NAT64/DNS64 discovery
    "192.88.99.1",  # deprecated 6to4 relay anycast
    "198.18.0.1",  # benchmarking
    "240.0.0.1",  # reserved
    "255.255.255.255",  # limited broadcast
    "fec0::1",  # deprecated site-local
    "100::1",  # discard-only
    "100:0:0:1::1",  # dummy IPv6 prefix (RFC 9780)
    "64:ff9b:1::1",  # local-use IPv4/IPv6 translation
    "5f00::1",  # SRv6 SIDs
    "3fff::1",  # documentation (RFC 9637)
    "2001:2::1",  # benchmarking
    "2001:db8::1",  # documentation
    "4000::1",  # outside the global unicast space
    "::ffff:192.0.0.8",  # IPv4-mapped
    "2002:c000:0008::1",  # 6to4 of 192.0.0.8
]


@pytest.mark.parametrize("address", NOT_GLOBAL)
async def test_special_purpose_addresses_are_refused(address: str) -> None:
    assert why_unsafe(ipaddress.ip_address(address)) is not None
    with pytest.raises(UnsafeTarget, match="WASYNC_WEBHOOK_ALLOWED_NETWORKS"):
        host = f"[{address}]" if ":" in address else address
        await Guard(resolver=FakeDNS({})).check_url(f"http://{host}/hook")


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2606:4700:4700::1111", "2620:4f:8000::1", "2a00:1450::1"]
)
def test_global_addresses_pass(address: str) -> None:
    assert why_unsafe(ipaddress.ip_address(address)) is None


async def test_allowed_networks_still_open_special_ones() -> None:
    guard = Guard(parse_networks("fec0::/10, 192.0.0.8/32"), resolver=FakeDNS({}))
    await guard.check_url("http://[fec0::1]/hook")
    await guard.check_url("http://192.0.0.8/hook")
    with pytest.raises(UnsafeTarget):
        await guard.check_url("http://192.0.0.171/hook")
