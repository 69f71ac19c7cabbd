"""Request dependencies: the runtime and API key authentication."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request

from wasync.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def presented_key(headers: object) -> str | None:
    """The key from `X-Api-Key` or `Authorization: Bearer …` (also used by WebSockets)."""
    get = getattr(headers, "get")  # noqa: B009 - Starlette Headers or a plain mapping
    key = get("x-api-key")
    if key:
        return str(key)
    auth = get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return str(auth[7:].strip())
    return None


def key_matches(expected: str | None, given: str | None) -> bool:
    if expected is None:  # authentication switched off (loopback only; see config)
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def require_api_key(request: Request) -> None:
    expected: str | None = request.app.state.api_key
    if not key_matches(expected, presented_key(request.headers)):
        raise HTTPException(
            401, "missing or wrong API key: send X-Api-Key or Authorization: Bearer"
        )


Authenticated = Depends(require_api_key)
