"""A circuit per endpoint: an endpoint that keeps failing is left alone for a while.

Without it, every queued delivery of a dead receiver takes its slot, waits for its
timeout and burns a try, one after the other, until each is dead-lettered. After
`threshold` failed tries in a row the circuit opens: the endpoint's deliveries are put
back untried (a `Defer`, which counts no try) until `until`. Then one try is let
through (half-open); success closes the circuit, failure opens it again for twice as
long, up to `cap`. Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Circuit:
    threshold: int  # failed tries in a row that open it; 0: never opens
    seconds: float  # how long it first stays open
    cap: float = 600.0
    failures: int = 0
    until: float = 0.0  # open before this time
    opened: int = 0  # times opened since the last success
    reason: str = ""  # the last failure's error, told to the deliveries kept waiting

    def open_until(self, now: float) -> float | None:
        """When the circuit closes again, or None when a try may go now."""
        return self.until if now < self.until else None

    def succeeded(self) -> None:
        self.failures = 0
        self.opened = 0

    def failed(self, now: float, reason: str = "") -> bool:
        """Count a failed try; True when it opened the circuit."""
        if reason:
            self.reason = reason
        if self.threshold <= 0 or now < self.until:
            return False  # (a try that started before the circuit opened)
        self.failures += 1
        # Half-open (opened before): one failure is enough to open it again.
        if self.failures < self.threshold and self.opened == 0:
            return False
        self.until = now + min(self.cap, self.seconds * 2**self.opened)
        self.opened += 1
        self.failures = 0
        return True
