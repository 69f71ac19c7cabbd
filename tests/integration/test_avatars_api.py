"""The avatar endpoints and `/media/avatars/...` over HTTP (ASGI), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import update

from wasync.api.app import create_app
from wasync.api.install import api_services
from wasync.config import Settings
from wasync.engines.simulator import Faults, PictureState
from wasync.store.db import Database
from wasync.store.schema import jobs

from ..waiting import eventually
from .avatars_harness import SESSION, Harness, fast_config, running

KEY = "avatar-test-key-0123456789"


@asynccontextmanager
async def api(
    db: Database,
    tmp_path: Path,
    *,
    public: bool = False,
    faults: Faults | None = None,
    settle: bool = True,
) -> AsyncIterator[tuple[Harness, httpx.AsyncClient]]:
    settings = Settings(data_dir=tmp_path, public_avatars=public)
    async with running(
        db, tmp_path, settings=settings, faults=faults, before_start=api_services
    ) as h:
        app = create_app(h.runtime, api_key=KEY)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://wasync.test",
            headers={"X-Api-Key": KEY},
        ) as client:
            if settle:
                await h.settle()
            yield h, client


def shown(h: Harness, state: PictureState = PictureState.SET) -> list[str]:
    return [j for j in h.mirrored_jids() if h.network.picture_state(j) is state]


async def test_check_one_jid_now(db: Database, tmp_path: Path) -> None:
    async with api(db, tmp_path) as (h, client):
        jid = shown(h)[0]
        url = f"/api/sessions/{SESSION}/avatars/{jid}"
        same = (await client.post(url)).json()
        assert same["outcome"] == "unchanged" and same["queued"] is False
        assert same["profilePictureId"] == h.network.picture_id(jid)

        new_id = h.network.change_picture(jid)  # changed on WhatsApp, no event seen yet
        body = (await client.post(url)).json()
        assert body == {
            "jid": jid,
            "outcome": "new",
            "profilePicture": f"/media/avatars/{SESSION}/{jid}.jpg",
            "profilePictureId": new_id,
            "profilePictureTimestamp": body["profilePictureTimestamp"],
            "queued": False,
        }
        assert isinstance(body["profilePictureTimestamp"], int)
        h.assert_pictures_mirrored([jid])

        hidden = shown(h, PictureState.FORBIDDEN) + shown(h, PictureState.NOT_SET)
        none = (await client.post(f"/api/sessions/{SESSION}/avatars/{hidden[0]}")).json()
        assert (none["outcome"], none["profilePicture"]) == ("none", "none")

        # A phone number in any human format is a JID too; a stranger gets a contact row.
        stranger = "+1 555 777 0101"
        r = await client.post(f"/api/sessions/{SESSION}/avatars/{quote(stranger)}")
        assert r.status_code == 200 and r.json()["jid"] == "15557770101@s.whatsapp.net"
        assert r.json()["outcome"] in ("new", "none")
        assert "15557770101@s.whatsapp.net" in h.rows()


BAD_REQUESTS = [
    (f"/api/sessions/{SESSION}/avatars/not-a-jid", 400),
    (f"/api/sessions/{SESSION}/avatars/status@broadcast", 400),
    ("/api/sessions/ghost/avatars/15550100002@s.whatsapp.net", 404),
    ("/api/sessions/ghost/avatars/sync", 404),
]


async def test_bad_requests_are_clear_json_errors(db: Database, tmp_path: Path) -> None:
    async with api(db, tmp_path) as (_, client):
        for path, status in BAD_REQUESTS:
            r = await client.post(path)
            assert r.status_code == status, path
            assert set(r.json()) == {"error", "detail"} and r.json()["detail"], path
            assert (await client.post(path, headers={"X-Api-Key": "wrong"})).status_code == 401


async def test_bulk_enqueue_answers_202_and_deduplicates(db: Database, tmp_path: Path) -> None:
    async with api(db, tmp_path) as (h, client):
        url = f"/api/sessions/{SESSION}/avatars/sync"
        h.worker.limiter.pause(3_600)  # keep them queued while we look
        first = await client.post(url)
        assert first.status_code == 202 and first.json() == {"enqueued": len(h.mirrored_jids())}
        assert (await client.post(url)).json() == {"enqueued": 0}
        status = (await client.get(f"/api/sessions/{SESSION}/avatars")).json()
        assert status["states"]["queued"] == len(h.mirrored_jids())
        assert status["states"]["none"] == len(h.mirrored_jids()) - len(shown(h))
        assert status["pausedFor"] > 0 and status["running"] is True
        queues = (await client.get("/api/queues")).json()
        avatar = next(q for q in queues["queues"] if q["kind"] == "avatar")
        assert avatar["stats"]["configuredRate"] == fast_config().pace.rate
        assert {"currentRate", "none"} <= set(avatar["stats"])
        h.worker.limiter.resume()
        await h.settle()
        h.assert_pictures_mirrored()


async def test_rate_limited_answers_at_once_and_queues_the_check(
    db: Database, tmp_path: Path
) -> None:
    faults = Faults(picture_burst=1, picture_burst_window=0.05, picture_retry_after=60.0)
    async with api(db, tmp_path, faults=faults, settle=False) as (h, client):
        # The worker meets the 429 while syncing: the session is paused for a minute.
        await eventually(lambda: bool(h.engine.picture_refusals))
        assert h.worker.limiter.paused_for > 30
        asked = len(h.engine.picture_requests)
        jid = shown(h)[0]
        r = await client.post(f"/api/sessions/{SESSION}/avatars/{jid}")
        body = r.json()
        assert r.status_code == 200 and body["outcome"] == "rate_limited"
        assert body["queued"] is True and body["retryAfter"] > 30
        assert int(r.headers["retry-after"]) > 30
        assert len(h.engine.picture_requests) == asked  # WhatsApp was not asked again
        # A minute later: the pause is over and the deferred checks are due.
        h.engine.faults.picture_burst = None
        h.worker.limiter.resume()
        with db.write() as conn:
            conn.execute(update(jobs).values(run_at=0))
        await h.settle()
        h.assert_pictures_mirrored()
        assert h.job_counts()["failed"] == 0


async def test_avatar_files_are_served_with_etag_and_auth(db: Database, tmp_path: Path) -> None:
    async with api(db, tmp_path) as (h, client):
        jid = shown(h)[0]
        url = f"/media/avatars/{SESSION}/{jid}.jpg"
        r = await client.get(url)
        data = h.network.picture_bytes(jid, h.network.picture_id(jid) or "")
        assert r.status_code == 200 and r.content == data
        assert r.headers["content-type"] == "image/jpeg"
        assert r.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        assert r.headers["cache-control"].startswith("private")
        again = await client.get(url, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        other = await client.get(url, headers={"If-None-Match": '"0000"'})
        assert other.status_code == 200
        head = await client.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data))

        anonymous = await client.get(url, headers={"X-Api-Key": ""})
        assert anonymous.status_code == 401
        assert (await client.get(f"{url}?key={KEY}", headers={"X-Api-Key": ""})).status_code == 401
        bearer = await client.get(url, headers={"X-Api-Key": "", "Authorization": f"Bearer {KEY}"})
        assert bearer.status_code == 200

        hidden = shown(h, PictureState.NOT_SET)[0]
        assert (await client.get(f"/media/avatars/{SESSION}/{hidden}.jpg")).status_code == 404


ESCAPES = [
    "/media/avatars/default/..%2F..%2Fwasync.db",
    "/media/avatars/default/%2E%2E%2Fwasync.db",
    "/media/avatars/..%2F..%2F/wasync.db",
    "/media/avatars/%2E%2E/wasync.db",
    "/media/avatars/default/..",
    "/media/avatars/default/wasync.db",
    "/media/avatars/default/15550100002@c.us.jpg",
]
NUL_ESCAPE = "/media/avatars/default/15550100002@s.whatsapp.net.jpg%00.png"


async def test_nothing_outside_the_avatars_folder_is_served(db: Database, tmp_path: Path) -> None:
    async with api(db, tmp_path) as (_, client):
        for path in ESCAPES:
            r = await client.get(path)
            assert r.status_code == 404, path
            assert b"SQLite" not in r.content
        r = await client.get(NUL_ESCAPE)  # refused before any route looks at it
        assert r.status_code == 400 and "NUL" in r.json()["detail"]


async def test_public_avatars_need_no_key(db: Database, tmp_path: Path) -> None:
    async with api(db, tmp_path, public=True) as (h, client):
        jid = shown(h)[0]
        r = await client.get(f"/media/avatars/{SESSION}/{jid}.jpg", headers={"X-Api-Key": ""})
        assert r.status_code == 200 and r.headers["cache-control"].startswith("public")
        # Only the files: the API itself still wants the key.
        api_call = await client.post(
            f"/api/sessions/{SESSION}/avatars/{jid}", headers={"X-Api-Key": ""}
        )
        assert api_call.status_code == 401
