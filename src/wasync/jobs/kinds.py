"""A job kind: what a feature registers with the runner (jobs/runner.py).

A feature says what its jobs are and how they behave; the runner decides when and
where they run. Nothing else about the queue is the feature's business.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from wasync.jobs.outcome import JobOutcome
from wasync.jobs.policy import RetryPolicy
from wasync.jobs.queries import Job

Handler = Callable[[Job], Awaitable[JobOutcome]]
# Runs several jobs of one target at once (one broker round trip for many events):
# answers one outcome per job, in order.
BatchHandler = Callable[[list[Job]], Awaitable[list[JobOutcome]]]
# Seconds until a job of this session may start (0: now; math.inf: not until woken,
# e.g. while the session is offline). Called often: must not do I/O.
Ready = Callable[[int], float]


@dataclass(frozen=True, slots=True)
class JobKind:
    name: str
    handler: Handler
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    lease_seconds: float = 60.0
    # Jobs of this kind in flight at once: per session when `per_session`, else per
    # process.
    concurrency: int = 1
    # Per-session jobs run only in the process that runs the session (it holds the
    # engine, the rate limits and the lease); the others (deliveries) run anywhere.
    per_session: bool = True
    ready: Ready | None = None
    # At most this many jobs of one target (a delivery endpoint) in flight in this
    # process: a slow target then cannot take every slot of the kind.
    target_concurrency: int | None = None
    # Kinds that share one concurrency budget per session name the same group (the
    # history kinds: the phone answers one request at a time).
    group: str | None = None
    # With a batch handler, a slot takes up to `batch` due jobs of one target in one
    # claim and runs them in one call. A target's batches (up to `target_concurrency`
    # of them claimed at once, 1 if None) are handled one after the other in claim
    # order, so its jobs go out in the order they were enqueued.
    batch_handler: BatchHandler | None = None
    batch: int = 1

    @property
    def budget(self) -> str:
        return self.group or self.name

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"job kind {self.name}: concurrency must be at least 1")
        if self.batch < 1:
            raise ValueError(f"job kind {self.name}: the batch must be at least 1")
        if self.lease_seconds <= 0:
            raise ValueError(f"job kind {self.name}: the lease must be positive")
