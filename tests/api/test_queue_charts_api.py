"""What the queues dashboard and the sync-state page read: per-minute series from the
jobs table, depth samples, dead letters with Retry and Discard, per-session counts,
and each chat's coverage."""

from __future__ import annotations

import time
from typing import Any

from wasync.history import HistoryService
from wasync.jobs import queries as queue
from wasync.jobs.depth import QueueDepth
from wasync.jobs.policy import RetryDecision

from .conftest import SESSION, Api


def _finish(api: Api, key: str, at: float, *, ok: bool, kind: str = "avatar") -> int:
    with api.runtime.db.write() as conn:
        job_id = queue.enqueue(conn, kind, session_id=api.session_id, unique_key=key, now=at)
        assert job_id is not None
        (job,) = queue.claim(conn, [kind], "w", limit=1, now=at)
        assert job.id == job_id
        if ok:
            queue.complete(conn, job_id, "w", now=at)
        else:
            queue.fail(conn, job_id, "w", f"{key} broke", RetryDecision(None), now=at)
    return job_id


async def test_series_count_jobs_finished_in_each_minute_of_the_last_hour(api: Api) -> None:
    now = time.time()
    minute = int(now // 60)
    # Done: 3 in this minute (one on its very first second), 2 ten minutes ago;
    # failed: 1 five minutes ago; one two hours ago is out of the chart.
    _finish(api, "a", minute * 60.0, ok=True)
    _finish(api, "b", now, ok=True)
    _finish(api, "c", now, ok=True)
    _finish(api, "d", (minute - 10) * 60 + 59.9, ok=True)
    _finish(api, "e", (minute - 10) * 60 + 0.1, ok=True)
    _finish(api, "f", (minute - 5) * 60 + 30, ok=False)
    _finish(api, "old", now - 7200, ok=True)
    body = (await api.client.get("/api/queues")).json()
    avatar = next(q for q in body["queues"] if q["kind"] == "avatar")
    series = avatar["series"]
    assert len(series["minutes"]) == 60 and series["minutes"][-1] == minute * 60
    done = dict(zip(series["minutes"], series["done"], strict=True))
    failed = dict(zip(series["minutes"], series["failed"], strict=True))
    assert {m: n for m, n in done.items() if n} == {minute * 60: 3, (minute - 10) * 60: 2}
    assert {m: n for m, n in failed.items() if n} == {(minute - 5) * 60: 1}
    assert series["depth"] == [] and body["depthInterval"] is None
    # Per session: the demo's session holds every job of this test.
    (row,) = [s for s in body["sessions"] if s["session"] == SESSION]
    assert row["counts"]["avatar"] == {"queued": 0, "running": 0, "done": 6, "failed": 1}


async def test_depth_samples_count_queued_and_running_jobs(api: Api) -> None:
    sampler = QueueDepth(interval=3600)
    api.runtime.add_service(sampler)
    await sampler.start(api.runtime)
    try:
        now = time.time()
        with api.runtime.db.write() as conn:
            for i in range(4):
                queue.enqueue(
                    conn, "history", session_id=api.session_id, unique_key=f"h{i}", now=now
                )
            queue.claim(conn, ["history"], "w", limit=1, now=now)
        await sampler.sample()
        body = (await api.client.get("/api/queues")).json()
        history = next(q for q in body["queues"] if q["kind"] == "history")
        last = history["series"]["depth"][-1]
        assert (last["queued"], last["running"]) == (3, 1)
        assert body["depthInterval"] == 3600
    finally:
        await sampler.stop()


async def test_dead_letters_are_retried_or_discarded(api: Api) -> None:
    now = time.time()
    bad = _finish(api, "bad", now, ok=False)
    worse = _finish(api, "worse", now + 1, ok=False)
    done = _finish(api, "fine", now, ok=True)

    async def dead() -> list[dict[str, Any]]:
        body = (await api.client.get("/api/queues")).json()
        return list(next(q for q in body["queues"] if q["kind"] == "avatar")["deadLetters"])

    letters = await dead()
    assert [d["id"] for d in letters] == [worse, bad]
    assert letters[1]["error"] == "bad broke" and letters[1]["key"] == "bad"
    assert (await api.client.delete(f"/api/queues/jobs/{bad}")).status_code == 204
    assert (await api.client.delete(f"/api/queues/jobs/{bad}")).status_code == 404
    r = await api.client.delete(f"/api/queues/jobs/{done}")
    assert r.status_code == 409 and "only failed jobs" in r.json()["detail"]
    assert (await api.client.post(f"/api/queues/jobs/{worse}/retry")).status_code == 200
    assert await dead() == []
    with api.runtime.db.read() as conn:
        assert queue.get_job(conn, bad) is None
        job = queue.get_job(conn, worse)
        assert job is not None and job.state == "queued"


async def test_session_sync_state_lists_every_chat_with_its_coverage(api: Api) -> None:
    net = api.network
    service = HistoryService()  # the sync-state page's route belongs to history
    api.runtime.add_service(service)
    await service.start(api.runtime)
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        url = f"/api/sessions/{SESSION}/sync-state?limit=4" + (
            f"&cursor={cursor}" if cursor else ""
        )
        r = await api.client.get(url)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["nextCursor"]
        if not cursor:
            break
    by_jid = {i["chatJid"]: i for i in items}
    assert set(by_jid) == set(net.chat_jids())
    for jid, item in by_jid.items():
        page = (
            await api.client.get(f"/api/sessions/{SESSION}/chats/{jid}/messages?limit=500")
        ).json()
        assert item["stored"] == len(page["items"])
        if page["items"]:
            assert item["newest"]["messageId"] == page["items"][0]["messageId"]
            assert item["oldest"]["timestamp"] == page["items"][-1]["timestamp"]
        assert item["fullySynced"] == (item["stored"] == net.message_count(jid))
    assert (await api.client.get("/api/sessions/ghost/sync-state")).status_code == 404
