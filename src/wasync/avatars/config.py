"""How fast, how often and how much the avatar worker may ask WhatsApp for pictures.

`Pace` is the per-session request rate with its jitter; `AvatarConfig` gathers every
knob of the feature. User-facing options come from `Settings` (WASYNC_AVATAR_*);
the internal timings (lease, polling, retry curve) have sane defaults that tests
shrink.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from wasync.errors import ConfigError

if TYPE_CHECKING:
    from wasync.config import Settings

# Default jitter bounds relative to the interval: 2 s and 5 s around 3 s, as asked
# for by the people who know what gets numbers banned.
MIN_GAP_RATIO = 2 / 3
MAX_GAP_RATIO = 5 / 3


@dataclass(frozen=True, slots=True)
class Pace:
    """Requests of one session: on average one per `interval` seconds.

    Each gap between two requests is drawn between `min_gap` and `max_gap`, and the
    requests stay within a bounded distance of a regular grid of period `interval`,
    so over any stretch of time T a session makes at most
    `T / interval + 1 + (max_gap - min_gap) / interval` requests, and with steady work
    it makes them at the full rate.
    """

    interval: float = 3.0
    min_gap: float = 2.0
    max_gap: float = 5.0

    def __post_init__(self) -> None:
        values = (self.interval, self.min_gap, self.max_gap)
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ConfigError(f"avatar pace: interval and gaps must be positive, got {values}")
        if not self.min_gap <= self.interval <= self.max_gap:
            raise ConfigError(
                f"avatar pace: need min_gap <= interval <= max_gap, got min_gap={self.min_gap}, "
                f"interval={self.interval}, max_gap={self.max_gap}"
            )

    @classmethod
    def every(
        cls, interval: float, min_gap: float | None = None, max_gap: float | None = None
    ) -> Pace:
        """A pace with the default jitter bounds (2/3 and 5/3 of the interval) unless given."""
        return cls(
            interval,
            interval * MIN_GAP_RATIO if min_gap is None else min_gap,
            interval * MAX_GAP_RATIO if max_gap is None else max_gap,
        )

    @property
    def rate(self) -> float:
        """Requests per second."""
        return 1.0 / self.interval

    def stretched(self, interval: float) -> Pace:
        """The same shape of jitter around another interval."""
        factor = interval / self.interval
        return Pace(interval, self.min_gap * factor, self.max_gap * factor)


@dataclass(frozen=True, slots=True)
class AvatarConfig:
    enabled: bool = True
    pace: Pace = field(default_factory=Pace)
    session_intervals: Mapping[str, float] = field(default_factory=dict)
    refresh_ttl: float = 86_400.0  # a stored picture is re-checked after this long
    none_ttl: float = 7 * 86_400.0  # 'none' (not set, or hidden from us) after this long
    refresh_every: float = 60.0  # how often the scheduler looks for stale pictures
    max_bytes: int = 5 * 2**20
    max_pixels: int = 4096 * 4096  # WhatsApp's are 640x640; anything huge is not a picture
    max_attempts: int = 5
    retry_delay: float = 30.0  # first back-off after a transient failure, then doubling
    retry_max_delay: float = 3_600.0
    rate_limit_pause: float = 60.0  # after a 429 without retry-after, doubling each time
    rate_limit_pause_max: float = 1_800.0
    lease_seconds: float = 60.0
    poll_interval: float = 1.0  # idle workers look for new jobs this often
    download_timeout: float = 30.0

    def __post_init__(self) -> None:
        for session, interval in self.session_intervals.items():
            if not (math.isfinite(interval) and interval > 0):
                raise ConfigError(f"avatar interval of session {session!r} must be positive")
        timings = (self.refresh_ttl, self.none_ttl, self.refresh_every, self.lease_seconds)
        if min(timings) <= 0 or self.poll_interval <= 0 or self.download_timeout <= 0:
            raise ConfigError("avatar TTLs, lease, poll interval and timeouts must be positive")
        if self.max_attempts < 1 or self.max_bytes < 1 or self.max_pixels < 1:
            raise ConfigError("avatar max_attempts, max_bytes and max_pixels must be at least 1")

    def pace_for(self, session: str) -> Pace:
        interval = self.session_intervals.get(session)
        return self.pace if interval is None else self.pace.stretched(interval)

    def with_changes(self, **changes: object) -> AvatarConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_settings(cls, settings: Settings) -> AvatarConfig:
        return cls(
            enabled=settings.avatar_worker,
            pace=Pace.every(
                settings.avatar_interval, settings.avatar_min_gap, settings.avatar_max_gap
            ),
            session_intervals=dict(settings.avatar_session_intervals),
            refresh_ttl=settings.avatar_refresh_ttl,
            none_ttl=settings.avatar_none_ttl,
            max_bytes=settings.avatar_max_bytes,
            max_attempts=settings.avatar_max_attempts,
            rate_limit_pause=settings.avatar_rate_limit_pause,
            rate_limit_pause_max=max(settings.avatar_rate_limit_pause, 1_800.0),
        )
