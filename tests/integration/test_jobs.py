"""The durable jobs queue on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading

import pytest

from wasync.jobs import queries as queue
from wasync.jobs.policy import RetryDecision, RetryPolicy
from wasync.store.db import Database
from wasync.store.sessions import ensure_session


def _sid(db: Database) -> int:
    with db.write() as conn:
        return ensure_session(conn, "s", "simulator")


def test_enqueue_dedups_pending_jobs_only(db: Database) -> None:
    sid = _sid(db)
    with db.write() as conn:
        first = queue.enqueue(conn, "avatar", session_id=sid, unique_key="a@s.whatsapp.net")
        again = queue.enqueue(conn, "avatar", session_id=sid, unique_key="a@s.whatsapp.net")
        other_kind = queue.enqueue(conn, "history", session_id=sid, unique_key="a@s.whatsapp.net")
    assert first is not None and again is None and other_kind is not None
    with db.write() as conn:
        (job,) = queue.claim(conn, ["avatar"], "w1", now=1e10)
        assert queue.enqueue(conn, "avatar", session_id=sid, unique_key="a@s.whatsapp.net") is None
        assert queue.complete(conn, job.id, "w1")
        # Once done, the same key may be queued again (a later refresh).
        assert queue.enqueue(conn, "avatar", session_id=sid, unique_key="a@s.whatsapp.net")
    with db.write() as conn:
        new = queue.enqueue_many(
            conn,
            "avatar",
            session_id=sid,
            keys_and_payloads=[("a@s.whatsapp.net", {}), ("b@s.whatsapp.net", {"x": 1})],
        )
    assert new == 1


def test_claim_respects_run_at_priority_and_lease(db: Database) -> None:
    sid = _sid(db)
    with db.write() as conn:
        low = queue.enqueue(conn, "k", session_id=sid, unique_key="low", now=100.0)
        high = queue.enqueue(conn, "k", session_id=sid, unique_key="high", priority=5, now=100.0)
        later = queue.enqueue(
            conn, "k", session_id=sid, unique_key="later", run_at=500.0, now=100.0
        )
    with db.write() as conn:
        got = queue.claim(conn, ["k"], "w1", limit=10, lease_seconds=30, now=200.0)
    assert [j.id for j in got] == [high, low]
    assert all(j.attempts == 1 and j.state == "running" for j in got)
    with db.write() as conn:
        assert queue.claim(conn, ["k"], "w2", limit=10, now=220.0) == []  # leased, not due
        # The first worker died: its leases expire and the jobs come back.
        back = queue.claim(conn, ["k"], "w2", limit=10, now=240.0)
    assert {j.id for j in back} == {high, low}
    assert all(j.attempts == 2 for j in back)
    with db.write() as conn:
        # The dead worker's late completion is refused: the job is w2's now.
        assert not queue.complete(conn, back[0].id, "w1", now=241.0)
        assert queue.complete(conn, back[0].id, "w2", now=241.0)
        assert queue.complete(conn, back[1].id, "w2", now=241.0)
        assert [j.id for j in queue.claim(conn, ["k"], "w3", now=600.0)] == [later]


def test_fail_retries_then_gives_up_and_stays_visible(db: Database) -> None:
    sid = _sid(db)
    policy = RetryPolicy(max_attempts=3, base_delay=10, max_delay=100, jitter=0)
    with db.write() as conn:
        job_id = queue.enqueue(conn, "k", session_id=sid, unique_key="x", max_attempts=3, now=0.0)
    now = 0.0
    for attempt in (1, 2, 3):
        with db.write() as conn:
            (job,) = queue.claim(conn, ["k"], "w", now=now)
            assert job.attempts == attempt
            decision = policy.decide(job.attempts, now)
            queue.fail(conn, job.id, "w", f"boom {attempt}", decision, now=now)
        if attempt < 3:
            assert decision.retry_at == now + 10 * 2 ** (attempt - 1)
            now = decision.retry_at
    with db.read() as conn:
        job = queue.get_job(conn, job_id or 0)
        assert job is not None and job.state == "failed" and job.last_error == "boom 3"
        assert queue.counts(conn, kind="k")["k"]["failed"] == 1
        assert queue.recent_errors(conn, kind="k")[0]["last_error"] == "boom 3"
    with db.write() as conn:
        assert queue.retry_failed(conn, job_id or 0, now=now)
        (job,) = queue.claim(conn, ["k"], "w", now=now + 1)
        assert job.attempts == 1


def test_defer_does_not_count_a_try(db: Database) -> None:
    sid = _sid(db)
    with db.write() as conn:
        queue.enqueue(conn, "k", session_id=sid, unique_key="x", now=0.0)
    with db.write() as conn:
        (job,) = queue.claim(conn, ["k"], "w", now=1.0)
        assert queue.defer(conn, job.id, "w", run_at=50.0, reason="rate limited", now=1.0)
        assert queue.claim(conn, ["k"], "w", now=10.0) == []
        (job,) = queue.claim(conn, ["k"], "w", now=60.0)
    assert job.attempts == 1


def test_lease_expiry_after_last_try_fails_the_job(db: Database) -> None:
    sid = _sid(db)
    with db.write() as conn:
        queue.enqueue(conn, "k", session_id=sid, unique_key="x", max_attempts=1, now=0.0)
        queue.claim(conn, ["k"], "dead-worker", lease_seconds=5, now=0.0)
    with db.write() as conn:
        assert queue.claim(conn, ["k"], "w", now=100.0) == []
        assert queue.counts(conn, kind="k")["k"]["failed"] == 1


def test_concurrent_claimers_never_share_a_job(db: Database) -> None:
    sid = _sid(db)
    with db.write() as conn:
        queue.enqueue_many(
            conn, "k", session_id=sid, keys_and_payloads=[(str(i), {}) for i in range(60)]
        )
    claimed: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            while True:
                with db.write() as conn:
                    got = queue.claim(conn, ["k"], name, limit=3)
                if not got:
                    return
                with lock:
                    claimed.extend(j.id for j in got)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(claimed) == 60 and len(set(claimed)) == 60


@pytest.mark.parametrize("attempts", [1, 2, 5, 20])
def test_retry_policy_backs_off_with_bounded_jitter(attempts: int) -> None:
    policy = RetryPolicy(max_attempts=30, base_delay=5, max_delay=300, jitter=0.5)
    rng = random.Random(attempts)
    raw = min(300, 5 * 2 ** (attempts - 1))
    for _ in range(50):
        d = policy.delay(attempts, rng)
        assert raw * 0.5 <= d <= raw
    assert policy.decide(attempts, 0.0, retry_after=1000.0).retry_at == 1000.0
    assert policy.decide(attempts, 0.0, permanent=True) == RetryDecision(None)
