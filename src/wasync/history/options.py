"""Tunables of history work, read from Settings once per service."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from wasync.config import Settings
from wasync.jobs.policy import RetryPolicy


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    page_size: int = 50
    max_attempts: int = 8
    retry_delay: float = 5.0
    retry_max_delay: float = 300.0
    lease_seconds: float = 30.0
    gap_fill: bool = True
    gap_fill_delay: float = 2.0
    # How long a job works per claim before it steps back in the queue, so one long
    # backfill cannot hold the worker while gap fills or other chats wait.
    slice_seconds: float = 2.0
    # Group commit of pages, as for live events (sync/writer.py): fetched pages wait
    # until they hold this many messages or the first waited this long, then commit
    # together; a transaction has a fixed cost that small pages would pay each time.
    group_messages: int = 5000
    group_seconds: float = 0.1
    poll_interval: float = 1.0
    # How long the gap scan waits for an offline replay that never says it is complete.
    replay_patience: float = 60.0
    # The retry policy, when not the one made of the fields above (tests record it).
    retry_policy: RetryPolicy | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> HistoryOptions:
        options = cls(
            page_size=settings.history_page_size,
            max_attempts=settings.history_max_attempts,
            retry_delay=settings.history_retry_delay,
            retry_max_delay=settings.history_retry_max_delay,
            lease_seconds=settings.history_lease_seconds,
            gap_fill=settings.gap_fill,
            gap_fill_delay=settings.gap_fill_delay,
        )
        return dataclasses.replace(options, **overrides)

    @property
    def policy(self) -> RetryPolicy:
        if self.retry_policy is not None:
            return self.retry_policy
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay=self.retry_delay,
            max_delay=self.retry_max_delay,
        )
