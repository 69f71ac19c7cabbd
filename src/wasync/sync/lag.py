"""How long live events wait between reaching the writer and being committed.

A histogram with fixed bounds, filled per group commit with one observation per
session batch weighted by its events (every event of a batch is committed at once; the
batch's first event waited longest, so each event is counted at that wait: an upper
bound). Read at scrape time as `wasync_commit_lag_seconds` in `/metrics`; nothing on
the hot path but a bisect and two additions per session batch.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

BOUNDS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip


@dataclass(slots=True)
class LagHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS) + 1))
    total: float = 0.0  # seconds, summed over events

    def observe(self, seconds: float, events: int = 1) -> None:
        self.counts[bisect.bisect_left(BOUNDS, seconds)] += events
        self.total += seconds * events

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (upper bound, events at or under it), '+Inf' last."""
        out, running = [], 0
        for bound, count in zip((*BOUNDS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out
