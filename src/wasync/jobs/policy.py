"""Retry policy as a value: given a failure, decide when to try again, or to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry_at: float | None  # None: give up (the job becomes failed and stays visible)

    @property
    def give_up(self) -> bool:
        return self.retry_at is None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off with full jitter, capped, for at most `max_attempts` tries."""

    max_attempts: int = 10
    base_delay: float = 5.0
    max_delay: float = 300.0
    factor: float = 2.0
    jitter: float = 0.5  # fraction of the delay drawn at random, spreading retries out

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Delay before the next try, after `attempts` tries so far (>= 1)."""
        raw = min(self.max_delay, self.base_delay * self.factor ** max(0, attempts - 1))
        r = (rng or random).random()
        return raw * (1 - self.jitter) + raw * self.jitter * r

    def decide(
        self,
        attempts: int,
        now: float,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        rng: random.Random | None = None,
    ) -> RetryDecision:
        if permanent or attempts >= self.max_attempts:
            return RetryDecision(None)
        wait = self.delay(attempts, rng)
        if retry_after is not None:
            # The other side said when: never earlier than that.
            wait = max(wait, retry_after)
        return RetryDecision(now + wait)
