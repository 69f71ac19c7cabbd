"""The queues dashboard endpoint and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

from wasync.jobs import queries as queue
from wasync.jobs.policy import RetryDecision

from .conftest import SESSION, Api


def _seed_jobs(api: Api) -> dict[str, int]:
    now = time.time()
    ids: dict[str, int] = {}
    with api.runtime.db.write() as conn:
        for i in range(5):
            queue.enqueue(conn, "avatar", session_id=api.session_id, unique_key=f"q{i}", now=now)
        for key in ("ok", "bad", "flaky"):
            job_id = queue.enqueue(
                conn, "avatar", session_id=api.session_id, unique_key=key, now=now
            )
            assert job_id is not None
            ids[key] = job_id
        claimed = queue.claim(conn, ["avatar"], "w", limit=8, now=now)
        by_key = {job.unique_key: job for job in claimed}
        queue.complete(conn, by_key["ok"].id, "w", now=now)
        queue.fail(conn, by_key["bad"].id, "w", "404 no picture", RetryDecision(None), now=now)
        queue.fail(conn, by_key["flaky"].id, "w", "timeout", RetryDecision(now + 60), now=now)
        queue.enqueue(conn, "history", session_id=api.session_id, unique_key="h", now=now)
    return ids


async def test_queues_show_counts_rates_errors_and_worker_figures(api: Api) -> None:
    ids = _seed_jobs(api)
    api.runtime.queue_stats["avatar"] = lambda: {"configuredRate": 0.5, "enabled": True}
    api.runtime.queue_stats["webhook"] = lambda: {"endpoints": 0}
    body = (await api.client.get("/api/queues")).json()
    queues: dict[str, Any] = {q["kind"]: q for q in body["queues"]}
    assert sorted(queues) == ["avatar", "history", "webhook"]
    avatar = queues["avatar"]
    # All eight were claimed: five still leased, "flaky" back in the queue to retry.
    assert avatar["counts"] == {"queued": 1, "running": 5, "done": 1, "failed": 1}
    assert avatar["donePerMinute"] == 0.2 and avatar["failedPerMinute"] == 0.2
    errors = {e["key"]: e for e in avatar["recentErrors"]}
    assert errors["bad"]["state"] == "failed" and errors["bad"]["error"] == "404 no picture"
    assert errors["flaky"]["state"] == "queued"
    assert avatar["stats"] == {"configuredRate": 0.5, "enabled": True}
    assert queues["webhook"]["counts"] == {"queued": 0, "running": 0, "done": 0, "failed": 0}
    assert queues["history"]["counts"]["queued"] == 1
    # Per session, and retrying a failed job.
    per = (await api.client.get(f"/api/queues?session={SESSION}")).json()
    assert {q["kind"] for q in per["queues"]} >= {"avatar", "history"}
    assert (await api.client.get("/api/queues?session=ghost")).status_code == 404
    r = await api.client.post(f"/api/queues/jobs/{ids['bad']}/retry")
    assert r.status_code == 200 and r.json()["state"] == "queued"
    r = await api.client.post(f"/api/queues/jobs/{ids['bad']}/retry")
    assert r.status_code == 409
    assert (await api.client.post("/api/queues/jobs/999999/retry")).status_code == 404


async def test_a_broken_stats_provider_does_not_hide_the_dashboard(api: Api) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("worker gone")

    api.runtime.queue_stats["avatar"] = broken
    body = (await api.client.get("/api/queues")).json()
    assert body["queues"][0]["stats"] == {"error": "worker gone"}


async def test_metrics_in_prometheus_text_format(api: Api) -> None:
    _seed_jobs(api)
    api.runtime.queue_stats["avatar"] = lambda: {
        "currentRate": 0.25,
        "label": "x",
        "sessions": {SESSION: {"outcomes": {"new": 3, "unchanged": 2, "rate_limited": 1}}},
    }
    await api.engine.push_live(7)
    await api.engine.drained()
    await api.runtime.session(SESSION).sync.flush()
    await api.client.post(f"/api/sessions/{SESSION}/sync-chats?limitPerChat=2")
    r = await api.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    lines = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in r.text.splitlines()
        if line and not line.startswith("#")
    }
    assert lines['wasync_events_ingested_total{session="default"}'] >= 8  # Connected + 7
    # Every committed event counted once in the commit lag histogram.
    assert lines["wasync_commit_lag_seconds_count"] == api.runtime.writer.committed_events >= 8
    assert (
        lines['wasync_commit_lag_seconds_bucket{le="+Inf"}']
        == lines["wasync_commit_lag_seconds_count"]
    )
    assert lines['wasync_sessions{status="connected"}'] == 1
    assert lines['wasync_jobs{kind="avatar",state="failed"}'] == 1
    assert lines['wasync_jobs{kind="avatar",state="done"}'] == 1
    assert lines['wasync_queue_stat{kind="avatar",name="currentRate"}'] == 0.25
    assert lines['wasync_avatar_checks_total{outcome="new",session="default"}'] == 3
    assert lines['wasync_avatar_checks_total{outcome="rate_limited",session="default"}'] == 1
    contacts = len(api.network.contacts())
    assert lines['wasync_avatars{outcome="pending",table="contacts"}'] == contacts
    assert lines['wasync_sync_duration_seconds_count{outcome="ok"}'] == 1
    assert "wasync_realtime_dropped_events_total" in lines
