"""Opaque keyset cursors: base64url of a small JSON list, validated on the way in."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from wasync.errors import DomainError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class InvalidCursor(DomainError):
    pass


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    """Decode a cursor made by `encode_cursor`; each part must match `types`.

    `type(None)` in `types` allows a null part.
    """
    bad = InvalidCursor(f"invalid cursor {cursor[:60]!r}: pass back a cursor the API returned")
    if len(cursor) > 1024:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad from exc
    if not isinstance(parts, list) or len(parts) != len(types):
        raise bad
    for part, kind in zip(parts, types, strict=True):
        if kind is int and (isinstance(part, bool) or not isinstance(part, int)):
            if part is None and type(None) in types:
                continue
            raise bad
        # What no column holds: integers past 64 bits (SQLite cannot even bind them)
        # and NUL characters (PostgreSQL refuses them in text).
        if kind is int and not INT64_MIN <= part <= INT64_MAX:
            raise bad
        if kind is str and (not isinstance(part, str) or "\x00" in part):
            raise bad
    return tuple(parts)
