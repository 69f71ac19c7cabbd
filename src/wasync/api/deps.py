"""Request dependencies: the runtime, the API's services, and API key authentication."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from wasync.runtime import Runtime

if TYPE_CHECKING:
    from wasync.api.session_control import SessionControl

# Declared as security schemes so the OpenAPI page documents them (and can send them).
_header_scheme = APIKeyHeader(
    name="X-Api-Key", auto_error=False, description="The API key (see README: API key)."
)
_bearer_scheme = HTTPBearer(auto_error=False, description="The API key as a bearer token.")

UNAUTHORIZED = "missing or wrong API key: send X-Api-Key or Authorization: Bearer"


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_control(request: Request) -> SessionControl:
    control: SessionControl = request.app.state.control
    return control


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


def require_api_key(
    request: Request,
    header_key: str | None = Security(_header_scheme),
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer_scheme),
) -> None:
    expected: str | None = request.app.state.api_key
    given = header_key or (bearer.credentials if bearer is not None else None)
    if not key_matches(expected, given):
        raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


Authenticated = Depends(require_api_key)
