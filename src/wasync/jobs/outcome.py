"""What a job handler returns, so that the retry rules live in one place.

- `Done(result=None)`: the job is finished (a command's answer goes in `result`).
- `Retry(error, retry_after=None, permanent=False)`: a failed try; the kind's
  `RetryPolicy` decides when to try again, or gives up (the job stays visible as
  `failed`). An exception escaping the handler counts as a transient Retry.
- `Defer(run_at, reason)`: put back without counting a try (rate limits, pauses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Done:
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    error: str
    retry_after: float | None = None
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class Defer:
    run_at: float
    reason: str | None = None


JobOutcome = Done | Retry | Defer
