"""The avatar worker against the simulator's ground truth, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, update

from wasync.avatars import Pace, records
from wasync.avatars.enqueue import DONE_RETENTION, KIND, prune_done
from wasync.config import Settings
from wasync.engines.simulator import Faults, PictureState
from wasync.jobs import queries as queue
from wasync.store.db import Database
from wasync.store.schema import chats, contacts, jobs

from ..waiting import eventually
from .avatars_harness import SESSION, Harness, fast_config, running


def assert_within_pace(times: list[float], pace: Pace, slack: float = 0.002) -> None:
    """No stretch of requests ran faster than the pace allows (its documented bound)."""
    burst = pace.max_gap - pace.min_gap
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            n = j - i
            least = max(n * pace.min_gap, n * pace.interval - burst)
            assert times[j] - times[i] >= least - slack, (i, j, times[j] - times[i], least)


def picture_jids(h: Harness, state: PictureState) -> list[str]:
    return [j for j in h.mirrored_jids() if h.network.picture_state(j) is state]


async def test_bulk_sync_stores_every_picture_or_none_within_the_rate(
    db: Database, tmp_path: Path
) -> None:
    config = fast_config(interval=0.015)
    async with running(db, tmp_path, config=config) as h:
        await h.settle()
        h.assert_pictures_mirrored()
        jids = h.mirrored_jids()
        # Each JID asked once (a person with a chat and a contact row is one job).
        assert len(h.engine.picture_requests) == len(jids)
        assert_within_pace(h.engine.picture_requests, config.pace)
        downloads = h.server.downloads
        shown = picture_jids(h, PictureState.SET)
        assert shown and len(shown) < len(jids)  # the network has pictures and 404/401s
        assert downloads.completed == {(j, h.network.picture_id(j)): 1 for j in shown}
        assert h.job_counts()["done"] == len(jids) and h.job_counts()["failed"] == 0
        stats = h.runtime.queue_stats[KIND]()
        assert stats["configuredRate"] == config.pace.rate
        assert stats["none"] == len(jids) - len(shown)
        assert stats["outcomes"]["new"] == len(shown)


async def test_changed_picture_is_downloaded_again_and_unchanged_is_not(
    db: Database, tmp_path: Path
) -> None:
    async with running(db, tmp_path) as h:
        await h.settle()
        initial = len(picture_jids(h, PictureState.SET))
        changed, kept, removed = picture_jids(h, PictureState.SET)[:3]
        old_id = h.network.picture_id(changed)
        before = h.rows()
        await h.engine.push_picture_change(changed)
        await h.engine.push_picture_change(removed, removed=True)
        await h.ingested()
        await h.settle()
        new_id = h.network.picture_id(changed)
        assert new_id != old_id
        h.assert_pictures_mirrored([changed, removed])
        completed = h.server.downloads.completed
        assert completed[(changed, new_id)] == 1

        # A refresh after the TTL asks again about everything: unchanged costs no download.
        asked = len(h.engine.picture_requests)
        later = time.time() + config_ttl(h) + 5
        assert h.worker.refresh_once(now=later) == len(h.mirrored_jids())
        await h.settle()
        assert len(h.engine.picture_requests) == asked + len(h.mirrored_jids())
        assert completed[(kept, h.network.picture_id(kept))] == 1
        assert completed[(changed, new_id)] == 1
        assert sum(completed.values()) == initial + 1  # the changed one, nothing else
        after = h.rows()
        assert after[kept][:2] == before[kept][:2]
        assert after[kept][2] is not None and before[kept][2] is not None
        assert after[kept][2] >= before[kept][2]
        h.assert_pictures_mirrored()


def config_ttl(h: Harness) -> float:
    return max(h.service.config.refresh_ttl, h.service.config.none_ttl)


async def test_refresh_picks_only_stale_pictures_oldest_first(db: Database, tmp_path: Path) -> None:
    config = fast_config(refresh_ttl=100.0, none_ttl=1_000.0)
    async with running(db, tmp_path, config=config) as h:
        await h.settle()
        rows = h.rows()
        checked_at = max(ts for _, _, ts in rows.values() if ts is not None)
        shown = picture_jids(h, PictureState.SET)
        nones = [j for j in h.mirrored_jids() if j not in shown]
        with db.read() as conn:
            last_job = conn.exec_driver_sql("SELECT max(id) FROM jobs").scalar_one()
        # Past the picture TTL but not the 'none' one: only pictures are asked again.
        assert h.worker.refresh_once(now=checked_at + 101) == len(shown)
        with db.read() as conn:
            queued = set(
                conn.exec_driver_sql(f"SELECT unique_key FROM jobs WHERE id > {last_job}").scalars()
            )
        assert queued == set(shown)
        assert not queued & set(nones)
        await h.settle()
        # Past both: 'none' ones come back too, and nothing is queued twice.
        assert h.worker.refresh_once(now=time.time() + 1_001) == len(h.mirrored_jids())
        assert h.worker.refresh_once(now=time.time() + 1_001) == 0
        await h.settle()
        # Finished checks are forgotten after a week; the rows remember the check.
        done = h.job_counts()["done"]
        assert done == 2 * len(h.mirrored_jids()) + len(shown)
        with db.write() as conn:
            assert prune_done(conn, h.session_id, time.time()) == 0
            assert prune_done(conn, h.session_id, time.time() + DONE_RETENTION + 60) == done
        assert all(ts is not None for _, _, ts in h.rows().values())


async def test_rate_limit_pauses_the_session_and_loses_nothing(
    db: Database, tmp_path: Path
) -> None:
    faults = Faults(picture_burst=4, picture_burst_window=0.3, picture_retry_after=0.15)
    async with running(db, tmp_path, config=fast_config(interval=0.01), faults=faults) as h:
        await h.settle()
        h.assert_pictures_mirrored()
        refusals = h.engine.picture_refusals
        assert refusals, "the burst limit never fired"
        requests = h.engine.picture_requests
        for refused in refusals:
            following = [t for t in requests if t > refused]
            if following:  # the whole session waited out the retry-after
                assert following[0] - refused >= 0.15 - 0.002
        counts = h.job_counts()
        assert counts["failed"] == 0 and counts["done"] == len(h.mirrored_jids())
        outcomes = h.worker.fetcher.outcomes
        assert outcomes["rate_limited"] == len(refusals)
        with db.read() as conn:
            attempts = conn.exec_driver_sql(
                "SELECT max(attempts) FROM jobs WHERE kind = 'avatar'"
            ).scalar_one()
        assert attempts == 1  # a 429 is not a failed try


async def test_a_rate_limit_pause_outlives_a_restart(db: Database, tmp_path: Path) -> None:
    faults = Faults(picture_burst=2, picture_burst_window=60.0, picture_retry_after=30.0)
    async with running(db, tmp_path, faults=faults) as h:
        await eventually(lambda: bool(h.engine.picture_refusals))
        asked = len(h.engine.picture_requests)
    async with running(db, tmp_path, sync=False) as h:
        # WhatsApp said "30 s": the restarted worker waits them out, queue or not.
        assert 25 < h.worker.limiter.paused_for <= 30
        assert h.job_counts()["queued"] > 0
        await asyncio.sleep(0.3)
        assert h.engine.picture_requests == []
    assert asked == 3  # two answered, the third refused


async def test_rate_limit_without_retry_after_backs_off_exponentially(
    db: Database, tmp_path: Path
) -> None:
    faults = Faults(picture_burst=3, picture_burst_window=0.2, picture_retry_after=None)
    config = fast_config(interval=0.01, rate_limit_pause=0.05, rate_limit_pause_max=0.4)
    async with running(db, tmp_path, config=config, faults=faults) as h:
        await h.settle()
        h.assert_pictures_mirrored()
        assert h.job_counts()["failed"] == 0
        # 429s in a row are spaced by the doubling pause (capped), a success resets it.
        refused = set(h.engine.picture_refusals)
        streak, longest = 0, 0
        requests = h.engine.picture_requests
        for earlier, later in itertools.pairwise(requests):
            streak = streak + 1 if earlier in refused else 0
            longest = max(longest, streak)
            if streak:
                pause = min(0.4, 0.05 * 2 ** (streak - 1))
                assert later - earlier >= pause - 0.002, (streak, later - earlier)
        assert longest >= 2, "the simulated penalty outlasts the first pause"


async def test_transient_failures_retry_with_backoff_then_stay_visible(
    db: Database, tmp_path: Path
) -> None:
    faults = Faults(picture_failure_rate=1.0)
    async with running(db, tmp_path, faults=faults) as h:
        await h.settle()
        jids = h.mirrored_jids()
        counts = h.job_counts()
        assert counts["failed"] == len(jids) and counts["done"] == 0
        with db.read() as conn:
            errors = queue.recent_errors(conn, kind=KIND, session_id=h.session_id, limit=100)
        assert {e["attempts"] for e in errors} == {h.service.config.max_attempts}
        assert all("simulated fault" in e["last_error"] for e in errors)
        assert len(h.engine.picture_requests) == len(jids) * h.service.config.max_attempts

        # Failures come back with a fresh budget; flaky downloads still end up stored.
        h.engine.faults.picture_failure_rate = 0.0
        h.engine.faults.download_failure_rate = 0.5
        with db.write() as conn:
            for e in errors:
                assert queue.retry_failed(conn, e["id"])
        await h.settle()
        h.assert_pictures_mirrored()
        assert h.job_counts() == {"queued": 0, "running": 0, "done": len(jids), "failed": 0}


async def test_non_image_and_oversized_pictures_are_rejected_and_nothing_is_written(
    db: Database, tmp_path: Path
) -> None:
    config = fast_config(max_bytes=200_000)
    async with running(db, tmp_path, config=config, sync=False) as h:
        fake, huge, fine = picture_jids_of_network(h)[:3]
        h.engine.faults.non_image_pictures = frozenset({fake})
        h.engine.faults.oversized_pictures = frozenset({huge})
        await h.runtime.sync_chats(SESSION, 0)
        await h.settle()
        rows = h.rows()
        for jid in (fake, huge):
            assert rows[jid] == (None, None, None), jid
            assert not h.storage.exists(SESSION, jid)
        folder = tmp_path / "media" / "avatars" / SESSION
        if folder.exists():  # the local store
            assert not list(folder.glob(".*")), "a temporary file was left behind"
        with db.read() as conn:
            errors = {
                e["unique_key"]: e
                for e in queue.recent_errors(conn, kind=KIND, session_id=h.session_id)
            }
        assert "not a valid image" in errors[fake]["last_error"]
        assert "cap" in errors[huge]["last_error"]
        assert errors[fake]["attempts"] == errors[huge]["attempts"] == 1  # never retried
        assert errors[fake]["state"] == errors[huge]["state"] == "failed"
        # The oversized body was cut off, not read to the end.
        assert h.server.downloads.completed[(huge, h.network.picture_id(huge))] == 0
        others = [j for j in h.mirrored_jids() if j not in (fake, huge)]
        h.assert_pictures_mirrored(others)
        assert fine in others


def picture_jids_of_network(h: Harness) -> list[str]:
    return [
        c.jid for c in h.network.contacts() if h.network.picture_state(c.jid) is PictureState.SET
    ]


async def test_a_missing_file_is_fetched_again_even_when_unchanged(
    db: Database, tmp_path: Path
) -> None:
    async with running(db, tmp_path) as h:
        await h.settle()
        jid = picture_jids(h, PictureState.SET)[0]
        assert h.storage.remove(SESSION, jid)
        result, _ = await h.service.check_now(SESSION, jid)
        assert result.outcome == "new"
        h.assert_pictures_mirrored([jid])


async def test_worker_waits_while_the_session_is_offline(db: Database, tmp_path: Path) -> None:
    async with running(db, tmp_path, sync=False) as h:
        h.worker.limiter.pause(3_600)  # hold the worker while the directory comes in
        await h.runtime.sync_chats(SESSION, 0)
        await h.engine.disconnect()
        h.worker.limiter.resume()
        h.runtime.jobs.wake()
        await asyncio.sleep(0.2)  # several polls of an idle worker
        assert h.engine.picture_requests == []
        assert h.pending() == len(h.mirrored_jids())
        await h.engine.connect()
        # The session's ingestion ended with disconnect() (a stop, in this test), so no
        # Connected is committed to wake the jobs: say it, as the connect would.
        h.runtime.jobs.wake()
        await h.settle()
        h.assert_pictures_mirrored()
        assert h.job_counts()["failed"] == 0


async def test_stale_pictures_come_oldest_first_and_recent_failures_stay_out(
    db: Database, tmp_path: Path
) -> None:
    config = fast_config(refresh_ttl=100.0, none_ttl=100.0)
    async with running(db, tmp_path, config=config) as h:
        await h.settle()
        jids = sorted(h.mirrored_jids())
        with db.write() as conn:  # jids[i] was last checked at 1,000 + i
            for i, jid in enumerate(jids):
                for t in (contacts, chats):
                    conn.execute(
                        update(t)
                        .where(t.c.session_id == h.session_id, t.c.jid == jid)
                        .values(profile_picture="none", profile_picture_timestamp=1_000 + i)
                    )
        now = 1_000 + len(jids) + 100.0

        def stale(at: float, limit: int = 3) -> list[str]:
            with db.read() as conn:
                return records.stale_jids(
                    conn, h.session_id, now=at, ttl=100, none_ttl=100, limit=limit, failed_kind=KIND
                )

        assert stale(now) == jids[:3]
        assert stale(now, limit=len(jids)) == jids
        # The oldest one's check failed ten seconds ago: it waits a TTL like a success.
        with db.write() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.kind == KIND, jobs.c.unique_key == jids[0])
                .values(state=queue.JobState.FAILED.value, finished_at=now - 10)
            )
        assert stale(now) == jids[1:4]
        assert stale(now + 100)[0] == jids[0]
        # And the refresh loop does not queue it again in the meantime.
        with db.read() as conn:
            last_job = conn.exec_driver_sql("SELECT max(id) FROM jobs").scalar_one()
        assert h.worker.refresh_once(now=now) > 0
        with db.read() as conn:
            queued = set(
                conn.exec_driver_sql(f"SELECT unique_key FROM jobs WHERE id > {last_job}").scalars()
            )
        assert queued and jids[0] not in queued


async def test_with_the_database_store_a_picture_commits_with_its_row_and_event(
    db: Database, tmp_path: Path
) -> None:
    """A new picture whose transaction fails leaves neither its bytes, nor its row, nor
    its webhook event; the same check, once it can commit, stores all three."""
    settings = Settings(data_dir=tmp_path, media_store="database")
    async with running(db, tmp_path, settings=settings) as h:
        assert h.storage.transactional
        await h.settle()
        jid = picture_jids(h, PictureState.SET)[0]
        before = h.rows()[jid]
        old = h.storage.read(SESSION, jid)
        new_id = h.network.change_picture(jid)
        recorded: list[str] = []
        failing = [True]

        def record(_conn: Connection, _sid: int, topic: str, data: dict[str, Any]) -> None:
            if failing[0]:
                raise RuntimeError("the outbox refused (simulated)")
            recorded.append(data["pictureId"])

        h.runtime.outbox.listen(record)
        with pytest.raises(RuntimeError, match="simulated"):
            await h.worker.fetcher.check(jid)
        assert h.rows()[jid] == before and h.storage.read(SESSION, jid) == old
        failing[0] = False
        result = await h.worker.fetcher.check(jid)
        assert result.outcome == "new" and recorded == [new_id]
        assert h.storage.read(SESSION, jid) == h.network.picture_bytes(jid, new_id)
        assert not (tmp_path / "media").exists()  # in the database only
        h.assert_pictures_mirrored([jid])
