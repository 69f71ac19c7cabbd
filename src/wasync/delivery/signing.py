"""HMAC-SHA256 signatures of webhook deliveries, and their verification.

The signed content is `"<timestamp>.<body>"`: the timestamp header is covered, so a
captured delivery cannot be replayed later with a fresh timestamp, and receivers
reject deliveries whose timestamp is too far from their clock (`tolerance`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from wasync import __version__

SIGNATURE_HEADER = "X-Wasync-Signature"
TIMESTAMP_HEADER = "X-Wasync-Timestamp"
EVENT_ID_HEADER = "X-Wasync-Event-Id"
EVENT_HEADER = "X-Wasync-Event"
ATTEMPT_HEADER = "X-Wasync-Attempt"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>." + body)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(
    secret: str, *, event_id: str, event: str, body: bytes, attempt: int, timestamp: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": f"wasync/{__version__}",
        EVENT_ID_HEADER: event_id,
        # The conventional name too, for receivers with generic idempotency support.
        "Idempotency-Key": event_id,
        EVENT_HEADER: event,
        ATTEMPT_HEADER: str(attempt),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """What a receiver does: a valid signature over a recent timestamp.

    `headers` must be case-insensitive or use the exact names above.
    """
    given = headers.get(SIGNATURE_HEADER)
    stamp = headers.get(TIMESTAMP_HEADER)
    if not given or not stamp or not stamp.isdigit():
        return False
    timestamp = int(stamp)
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(given, signature(secret, timestamp, body))
