"""The per-session limiter of picture requests: paced, jittered, pausable.

WhatsApp bans numbers that ask for pictures too fast, and a perfectly regular
rhythm looks like the robot it is. So requests follow a grid of period `interval`
(the configured rate), each one landing at a random point near its slot: never
sooner than `min_gap` after the previous one, never more than `interval - min_gap`
ahead of its slot nor `max_gap - interval` behind it. Bounded drift both ways means
steady work runs at the full configured rate on average, and no stretch of time
ever holds more than `(max_gap - min_gap) / interval + 1` requests above it.

A 429 pauses the whole session: for the retry-after WhatsApp gave, otherwise for an
exponential back-off that resets on the next answer that is not a 429.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

from wasync.avatars.config import Pace

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RATE_WINDOW = 60.0  # seconds over which `current_rate` counts requests
# Longest single sleep: a pause ended early (resume) or moved is noticed this soon.
NAP = 0.25


class PictureRateLimiter:
    def __init__(
        self,
        pace: Pace,
        *,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        pause_base: float = 60.0,
        pause_max: float = 1_800.0,
    ) -> None:
        self.pace = pace
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._pause_base = pause_base
        self._pause_max = pause_max
        self._lock = asyncio.Lock()  # FIFO: the worker and on-demand calls take turns
        self._last: float | None = None  # when the previous request went out
        self._slot: float | None = None  # grid time of the next request
        self._paused_until = 0.0
        self._strikes = 0  # 429s in a row
        self._started = clock()
        self._recent: deque[float] = deque()
        self.granted = 0
        self.on_resume: Callable[[], None] | None = None

    # Pausing.

    @property
    def paused_for(self) -> float:
        """Seconds left of a rate-limit pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def resume(self) -> None:
        """End a pause early (an operator who knows better)."""
        self._paused_until = 0.0
        if self.on_resume is not None:
            self.on_resume()  # whoever waits for the pause to end may go now

    def rate_limited(self, retry_after: float | None) -> float:
        """WhatsApp said 429: pause the session; returns how long."""
        self._strikes += 1
        if retry_after is not None and retry_after > 0:
            wait = retry_after
        else:
            wait = min(self._pause_max, self._pause_base * 2 ** (self._strikes - 1))
        self.pause(wait)
        return wait

    def answered(self) -> None:
        """An answer that was not a 429: the back-off starts over."""
        self._strikes = 0

    # Pacing.

    def _earliest(self) -> float:
        """The soonest the next request may go, whatever the jitter draws."""
        if self._last is None:
            return self._paused_until
        earliest = self._last + self.pace.min_gap
        if self._slot is not None:
            earliest = max(earliest, self._slot - (self.pace.interval - self.pace.min_gap))
        return max(earliest, self._paused_until)

    def _target(self, gap: float) -> float:
        if self._last is None:
            return self._paused_until
        target = max(self._last + gap, self._earliest())
        if self._slot is not None:
            target = min(target, self._slot + (self.pace.max_gap - self.pace.interval))
        return max(target, self._paused_until)

    def _draw_gap(self) -> float:
        """A gap in [min_gap, max_gap] whose mean is exactly `interval`."""
        low, mean, high = self.pace.min_gap, self.pace.interval, self.pace.max_gap
        if high <= low:
            return mean
        # Uniform below the mean with probability p, above it otherwise; p makes the
        # mean come out right whatever the asymmetry (2/3 for 2-3-5 s).
        p = (high - mean) / (high - low)
        if self._rng.random() < p:
            return self._rng.uniform(low, mean)
        return self._rng.uniform(mean, high)

    def ready_in(self) -> float:
        """Seconds until a request could go out (0: now), whatever the jitter draws."""
        return max(0.0, self._earliest() - self._clock())

    async def wait_ready(self) -> None:
        """Wait until a request could go out (without taking the turn)."""
        while (delay := self._earliest() - self._clock()) > 0:
            await self._sleep(min(delay, NAP))

    async def acquire(self) -> None:
        """Wait for this caller's turn; a request may be sent when this returns."""
        async with self._lock:
            gap = self._draw_gap()
            while (delay := self._target(gap) - self._clock()) > 0:
                await self._sleep(min(delay, NAP))
            self._grant(self._clock())

    def _grant(self, now: float) -> None:
        behind = self.pace.max_gap - self.pace.interval
        slot = self._slot
        if slot is None or now > slot + behind:
            # Late (idle, paused, or a sleep that overshot): move the grid only as far
            # as the bound needs, so a late wake-up costs its overshoot and no more.
            slot = now - behind
        self._slot = slot + self.pace.interval
        self._last = now
        self.granted += 1
        self._recent.append(now)
        self._trim(now)

    # Figures.

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0] < now - RATE_WINDOW:
            self._recent.popleft()

    def current_rate(self) -> float:
        """Requests per second over the last minute (or since start, if sooner)."""
        now = self._clock()
        self._trim(now)
        span = min(RATE_WINDOW, max(now - self._started, 1.0))
        return len(self._recent) / span
