"""The durable jobs queue: one table, one runner per process, kinds that features register.

- `queries`: every statement on the `jobs` table;
- `kinds`: `JobKind`, what a feature registers (handler, retry policy, lease,
  concurrency, per-session or not, a readiness check);
- `outcome`: what a handler returns (`Done`, `Retry`, `Defer`);
- `policy`: `RetryPolicy`, exponential back-off with jitter, as a value;
- `runner`: `JobRunner`, claiming due jobs across kinds for the sessions this process
  runs, woken by notifications (`wakeups`), with a slow poll as the fallback.
"""

from __future__ import annotations

from wasync.jobs.kinds import JobKind
from wasync.jobs.outcome import Defer, Done, JobOutcome, Retry
from wasync.jobs.policy import RetryDecision, RetryPolicy
from wasync.jobs.queries import Job, JobState
from wasync.jobs.runner import JobRunner

__all__ = [
    "Defer",
    "Done",
    "Job",
    "JobKind",
    "JobOutcome",
    "JobRunner",
    "JobState",
    "Retry",
    "RetryDecision",
    "RetryPolicy",
]
