"""The picture request limiter on a virtual clock: gaps, bounds, full use of the rate, pauses."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from wasync.avatars.config import AvatarConfig, Pace
from wasync.avatars.pace import PictureRateLimiter
from wasync.errors import ConfigError


class VirtualClock:
    """time.monotonic() and asyncio.sleep() for the limiter, where sleeping is free."""

    def __init__(self, overshoot: float = 0.0) -> None:
        self.now = 1_000.0
        self.overshoot = overshoot  # real sleeps wake a little late

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + self.overshoot


def limiter(pace: Pace, clock: VirtualClock, seed: int = 1, **kwargs: float) -> PictureRateLimiter:
    return PictureRateLimiter(
        pace, rng=random.Random(seed), clock=clock, sleep=clock.sleep, **kwargs
    )


async def grants(lim: PictureRateLimiter, clock: VirtualClock, n: int, work: float) -> list[float]:
    times = []
    for _ in range(n):
        await lim.acquire()
        times.append(clock())
        clock.now += work  # the request itself, the download, the database
    return times


@pytest.mark.parametrize("pace", [Pace.every(3.0), Pace.every(0.05), Pace(1.0, 1.0, 1.0)])
@pytest.mark.parametrize("overshoot", [0.0, 0.001])
async def test_gaps_stay_in_bounds_and_the_rate_is_used_fully(pace: Pace, overshoot: float) -> None:
    clock = VirtualClock(overshoot)
    lim = limiter(pace, clock)
    times = await grants(lim, clock, 3_000, work=pace.min_gap / 4)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= pace.min_gap - 1e-9
    assert max(gaps) <= pace.max_gap + overshoot + 1e-9
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved == pytest.approx(pace.rate, rel=0.02)
    # No window of requests is denser than the documented bound.
    burst = pace.max_gap - pace.min_gap
    for i in range(0, len(times), 7):
        for j in range(i + 1, min(len(times), i + 40)):
            n = j - i
            assert times[j] - times[i] >= max(n * pace.min_gap, n * pace.interval - burst) - 1e-9


async def test_jitter_really_varies_the_gaps() -> None:
    clock = VirtualClock()
    pace = Pace.every(3.0)
    times = await grants(limiter(pace, clock), clock, 500, work=0.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) < 2.3 and max(gaps) > 4.5  # 2-5 s, not a metronome
    assert len({round(g, 3) for g in gaps}) > 300  # some land on a bound of the grid


async def test_slow_work_never_earns_a_burst_afterwards() -> None:
    clock = VirtualClock()
    pace = Pace.every(1.0)
    lim = limiter(pace, clock)
    await grants(lim, clock, 5, work=0.0)
    clock.now += 600  # idle for ten minutes
    times = await grants(lim, clock, 20, work=0.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= pace.min_gap - 1e-9
    assert times[-1] - times[0] >= 19 * pace.interval - (pace.max_gap - pace.min_gap) - 1e-9


async def test_a_429_pauses_for_retry_after_or_a_doubling_backoff() -> None:
    clock = VirtualClock()
    lim = limiter(Pace.every(0.1), clock, pause_base=2.0, pause_max=10.0)
    await lim.acquire()
    assert lim.rate_limited(7.5) == 7.5
    start = clock()
    await lim.acquire()
    assert clock() - start >= 7.5
    assert [lim.rate_limited(None) for _ in range(5)] == [4.0, 8.0, 10.0, 10.0, 10.0]
    lim.answered()
    assert lim.rate_limited(None) == 2.0  # an answer that was not a 429 starts over
    assert lim.paused_for > 0
    lim.resume()
    assert lim.paused_for == 0


async def test_callers_take_turns_in_order() -> None:
    clock = VirtualClock()
    lim = limiter(Pace(1.0, 1.0, 1.0), clock)
    order: list[int] = []

    async def caller(i: int) -> None:
        await lim.acquire()
        order.append(i)

    await asyncio.gather(*(caller(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert lim.granted == 5


async def test_current_rate_counts_the_last_minute() -> None:
    clock = VirtualClock()
    lim = limiter(Pace(0.5, 0.5, 0.5), clock)
    await grants(lim, clock, 240, work=0.0)  # two minutes at 2/s
    assert lim.current_rate() == pytest.approx(2.0, rel=0.05)
    clock.now += 120
    assert lim.current_rate() == 0.0


@pytest.mark.parametrize(
    ("interval", "low", "high"),
    [(3.0, 4.0, 5.0), (3.0, 2.0, 2.5), (0.0, None, None), (-1.0, None, None)],
)
def test_inconsistent_paces_are_refused(
    interval: float, low: float | None, high: float | None
) -> None:
    with pytest.raises(ConfigError):
        Pace.every(interval, low, high)


def test_defaults_are_one_request_per_3s_with_gaps_of_2_to_5s() -> None:
    pace = AvatarConfig().pace
    assert (pace.interval, pace.min_gap, pace.max_gap) == (3.0, 2.0, 5.0)
    config = AvatarConfig(session_intervals={"slow": 6.0})
    assert config.pace_for("slow") == Pace(6.0, 4.0, 10.0)
    assert config.pace_for("other") == pace
    with pytest.raises(ConfigError):
        AvatarConfig(session_intervals={"bad": 0.0})


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from wasync.config import Settings

    monkeypatch.setenv("WASYNC_AVATAR_INTERVAL", "4")
    monkeypatch.setenv("WASYNC_AVATAR_SESSION_INTERVALS", '{"sales": 8}')
    monkeypatch.setenv("WASYNC_AVATAR_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("WASYNC_PUBLIC_AVATARS", "true")
    settings = Settings()
    config = AvatarConfig.from_settings(settings)
    assert config.pace_for("x") == Pace.every(4.0)
    assert config.pace_for("sales").interval == 8.0 and config.max_attempts == 2
    assert settings.public_avatars is True

    monkeypatch.setenv("WASYNC_AVATAR_MIN_GAP", "5")  # more than the interval: refused
    with pytest.raises(ConfigError, match="min_gap <= interval"):
        AvatarConfig.from_settings(Settings())
