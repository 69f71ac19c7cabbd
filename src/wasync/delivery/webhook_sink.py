"""Send one signed webhook and judge the answer: done, retry (when), or give up.

- 2xx: delivered.
- 408, 429 and 5xx: try again later, no earlier than the receiver's Retry-After.
- any other 4xx: the receiver refuses this event for good (410 Gone: it stopped
  listening); retrying would not help, so the delivery is dead-lettered at once.
- 3xx other than 307/308: misconfigured URL; dead-lettered with the redirect target.
- no connection, DNS failure, timeout: try again later. The timeout is a total
  deadline for the whole try (connect, send, answer, redirects), not per read: a
  receiver that trickles its answer a byte at a time cannot hold a slot for longer.
- a target the SSRF guard refuses: dead-lettered (configuration must change).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from wasync.delivery import http
from wasync.delivery.endpoints import Endpoint
from wasync.delivery.envelope import body_of
from wasync.delivery.signing import signed_headers
from wasync.delivery.ssrf import InvalidURL, UnresolvableTarget, UnsafeTarget
from wasync.jobs.outcome import Done, Retry
from wasync.jobs.outcome import JobOutcome as Outcome


@dataclass(frozen=True, slots=True)
class Unreachable(Retry):
    """A try that never reached the receiver (DNS, connection, timeout)."""


def judge(answer: http.Answer, who: str = "the endpoint") -> Outcome:
    status = answer.status
    if 200 <= status < 300:
        return Done()
    body = http.short_body(answer)
    detail = f"{who} answered {status}" + (f": {body}" if body else "")
    if status in (408, 429) or status >= 500:
        return Retry(detail, retry_after=http.retry_after(answer))
    if 300 <= status < 400:
        location = answer.headers.get("location", "")
        where = f" to {http.redact_url(location)}" if location else ""
        return Retry(
            f"{who} answered {status} (redirect{where}); set the endpoint's URL to the "
            "final address",
            permanent=True,
        )
    return Retry(detail, permanent=True)


async def send(
    client: httpx.AsyncClient, url: str, **request: Any
) -> tuple[http.Answer | None, Outcome | None]:
    """POST through the guarded client; (answer, None) or (None, the failed outcome).

    The whole try must end within the client's timeout (httpx's own timeouts are per
    read, which a trickling receiver never trips)."""
    deadline = client.timeout.read or 10.0
    try:
        async with asyncio.timeout(deadline):
            return await http.post(client, url, **request), None
    except TimeoutError:
        return None, Unreachable(f"no full answer from {http.redact_url(url)} in {deadline:g} s")
    except (UnsafeTarget, InvalidURL, http.RedirectLoop) as exc:
        return None, Retry(str(exc), permanent=True)
    except UnresolvableTarget as exc:
        return None, Unreachable(str(exc))  # DNS may come back
    except httpx.TimeoutException:
        return None, Unreachable(f"no answer from {http.redact_url(url)} in time")
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        return None, Unreachable(f"could not reach {http.redact_url(url)}: {reason}")


async def deliver(
    client: httpx.AsyncClient, endpoint: Endpoint, envelope: dict[str, Any], attempt: int
) -> Outcome:
    if not endpoint.secret:
        return Retry(f"webhook endpoint {endpoint.id} has no secret", permanent=True)
    body = body_of(envelope)
    headers = signed_headers(
        endpoint.secret,
        event_id=str(envelope["id"]),
        event=str(envelope["event"]),
        body=body,
        attempt=attempt,
        timestamp=int(time.time()),
    )
    answer, failed = await send(client, endpoint.url, content=body, headers=headers)
    if answer is None:
        assert failed is not None
        return failed
    return judge(answer)
