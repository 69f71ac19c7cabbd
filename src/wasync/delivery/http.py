"""The HTTP client of deliveries: guarded connections, bounded redirects, Retry-After."""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx

from wasync.delivery.ssrf import Guard, GuardedBackend, UnsafeTarget
from wasync.delivery.streams.targets import is_broker_url, mask

MAX_REDIRECTS = 3
MAX_RETRY_AFTER = 86_400.0  # a day: beyond that a hint is more likely a bug than a plan
# Only these keep the method and body; a webhook that answers 301/302/303 is
# misconfigured (re-posting there could change the meaning), so it fails visibly.
FOLLOWED_REDIRECTS = (307, 308)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport whose every TCP connection passes the SSRF guard."""

    def __init__(self, guard: Guard, *, max_connections: int = 20) -> None:
        super().__init__(retries=0)
        # Replace the pool httpx built with one on the guarded network backend;
        # httpx's request handling (which uses `_pool`) stays as it is.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(guard),
        )


def guarded_client(guard: Guard, *, timeout: float, max_connections: int = 20) -> httpx.AsyncClient:
    # trust_env=False: a proxy from the environment would make the guard's checks moot.
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, max_connections=max_connections),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """A receiver's answer: status, headers and at most MAX_BODY bytes of body."""

    status: int
    headers: httpx.Headers
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


MAX_BODY = 64 * 1024  # of an answer: enough for any error message, bounded for any receiver


async def post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> Answer:
    """POST, following only 307/308 (each hop guarded like the first), at most 3 times."""
    for _ in range(MAX_REDIRECTS + 1):
        request = client.build_request("POST", url, **kwargs)
        response = await client.send(request, stream=True)
        try:
            body = await _read_some(response)
        finally:
            await response.aclose()
        location = response.headers.get("location")
        if response.status_code not in FOLLOWED_REDIRECTS or not location:
            return Answer(response.status_code, response.headers, body)
        url = urljoin(url, location)
        if urlsplit(url).scheme not in ("http", "https"):
            raise UnsafeTarget(f"refused a redirect to a non-HTTP URL ({redact_url(url)})")
    raise RedirectLoop(f"more than {MAX_REDIRECTS} redirects (last to {redact_url(url)})")


async def _read_some(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY:
            break
    return b"".join(chunks)[:MAX_BODY]


class RedirectLoop(Exception):
    pass


def retry_after(answer: Answer, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta or HTTP date), or None."""
    value = answer.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


_DISCORD_TOKEN = re.compile(r"(/api(?:/v\d+)?/webhooks/\d+/)[^/?#]+")


def redact_url(url: str) -> str:
    """A URL safe for logs and errors: no password, query values or webhook token.

    Broker URLs keep their user name and query (stream and exchange names), with the
    password or token masked (`streams.targets.mask`).
    """
    if is_broker_url(url):
        return mask(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = "****@" + netloc
    query = "&".join(f"{kv.split('=', 1)[0]}=****" for kv in parts.query.split("&") if kv)
    path = _DISCORD_TOKEN.sub(r"\1****", parts.path)
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def short_body(answer: Answer, limit: int = 200) -> str:
    """The start of an answer's body for an error message, on one line."""
    text = " ".join(answer.text().split())
    return text[:limit] + ("…" if len(text) > limit else "")
