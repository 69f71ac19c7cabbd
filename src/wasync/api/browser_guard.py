"""Requests that web pages of other sites make the user's browser send.

A page on any site can make the browser POST a form to `http://127.0.0.1:8420/...`
(a "simple" request: no preflight, so CORS never asks) and open WebSockets there;
and with DNS rebinding (its own name, re-pointed at 127.0.0.1) it can read the
answers too. Without an API key (`--no-auth`) nothing else would stop it, so:

- **Origin**: a state-changing request (POST, PUT, PATCH, DELETE), a WebSocket
  upgrade and every Socket.IO request that names an `Origin` must come from this
  server's own origin (same host and port as the `Host` it was sent to) or from one
  listed in `WASYNC_ALLOWED_ORIGINS`; otherwise 403. Clients that are not browsers
  send no `Origin` and are not concerned. This holds with the key too: a browser
  page elsewhere has no business changing anything here.
- **Host** (authentication off only): the `Host` header must name loopback
  (`localhost`, `127.0.0.1`, `::1`, any loopback address), the bound address or a
  name in `WASYNC_ALLOWED_HOSTS`; otherwise 400. That is what defeats DNS rebinding,
  where the page's own name is both the Host and the Origin. With a key, any name may
  reach the server (reverse proxies): a rebinding page cannot know the key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from wasync.api.errors import error_response

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _split(value: str | Iterable[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i.strip()]


def host_name(host: str) -> str | None:
    """The name in a Host header (`[::1]:8420` → `::1`), lowercased; None if malformed."""
    try:
        name = urlsplit(f"//{host.strip()}").hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def _origin(value: str) -> str | None:
    """`scheme://host[:port]` of an origin, lowercased; None for `null` or garbage."""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class BrowserPolicy:
    check_host: bool  # authentication is off
    hosts: frozenset[str]  # accepted Host names besides loopback
    origins: frozenset[str]  # accepted origins besides the server's own

    @classmethod
    def build(
        cls,
        *,
        auth: bool,
        bound_host: str,
        allowed_hosts: str | Iterable[str] = (),
        allowed_origins: str | Iterable[str] = (),
    ) -> BrowserPolicy:
        names = [bound_host, *_split(allowed_hosts)]
        # A bare IPv6 address (the bound "::1") is written in brackets in a Host header.
        names = [f"[{n}]" if n.count(":") > 1 and not n.startswith("[") else n for n in names]
        hosts = {h for h in map(host_name, names) if h}
        origins = {o for o in map(_origin, _split(allowed_origins)) if o}
        return cls(not auth, frozenset(hosts), frozenset(origins))

    def host_allowed(self, host: str | None) -> bool:
        if not self.check_host or host is None:  # no Host at all: not a browser
            return True
        name = host_name(host)
        return name is not None and (_is_loopback(name) or name in self.hosts)

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """Whether a page of `origin` may change things on the server reached as `host`."""
        normal = _origin(origin)
        if normal is None:  # "null": sandboxed frames, file: pages, redirects
            return False
        if normal in self.origins:
            return True
        # Host and port only: behind a proxy that ends TLS the scheme differs.
        return host is not None and normal.split("://", 1)[1] == host.strip().lower()


class BrowserGuard:
    def __init__(self, app: ASGIApp, policy: BrowserPolicy, socketio_path: str) -> None:
        self.app = app
        self.policy = policy
        self.socketio_path = socketio_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not self.policy.host_allowed(host):
            detail = (
                f"the host name {host!r} is not served while authentication is off: use "
                "127.0.0.1, localhost or the bound address, or list it in WASYNC_ALLOWED_HOSTS"
            )
            await self._refuse(scope, receive, send, 400, "bad_request", detail)
            return
        origin = headers.get("origin")
        if (
            origin is not None
            and self._checks_origin(scope)
            and not self.policy.origin_allowed(origin, host)
        ):
            detail = (
                f"refused a request from the web page origin {origin!r}: only this server's "
                "own pages, and origins listed in WASYNC_ALLOWED_ORIGINS, may send it"
            )
            await self._refuse(scope, receive, send, 403, "forbidden", detail)
            return
        await self.app(scope, receive, send)

    def _checks_origin(self, scope: Scope) -> bool:
        if scope["type"] == "websocket":
            return True
        path: str = scope.get("path", "")
        return scope.get("method") in STATE_CHANGING or path.startswith(self.socketio_path)

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, status: int, error: str, detail: str
    ) -> None:
        if scope["type"] == "websocket":
            # Closing before the handshake is accepted answers the upgrade with 403.
            message: dict[str, Any] = {"type": "websocket.close", "code": 1008}
            await send(message)
            return
        await error_response(status, error, detail)(scope, receive, send)
