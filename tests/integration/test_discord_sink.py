"""Avatar changes to Discord, against a local server that implements Discord's
documented webhook contract (multipart payload_json + files[0], 429 retry_after)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from wasync.avatars.storage import AvatarStorage
from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import Contact
from wasync.engines.simulator.media import picture_jpeg
from wasync.store.db import Database
from wasync.sync.commit import commit_batch

from ..waiting import eventually
from .delivery_servers import DiscordServer, running
from .webhooks_harness import Harness, avatar_data, started

ALICE = "5511999990001@s.whatsapp.net"


@pytest.fixture
def discord_server() -> Iterator[DiscordServer]:
    with running(DiscordServer(rate_limited=1, retry_after=0.4)) as server:
        yield server


def store_picture(h: Harness, data_dir: Path, jid: str, picture: bytes) -> dict[str, object]:
    """What the avatar worker leaves behind: the picture, the contact, the outbox record."""
    AvatarStorage(h.runtime.media).write("default", jid, picture)
    batch = Batch()
    batch.add(ev.ContactsUpserted((Contact(jid, name="Alice @everyone Example"),)))
    commit_batch(h.db, h.sid, batch)
    data = avatar_data(jid, "1700000111", hashlib.sha256(picture).hexdigest())
    h.record("avatar", data)
    return data


async def test_an_avatar_is_posted_as_an_attachment_after_the_rate_limit(
    db: Database, tmp_path: Path, discord_server: DiscordServer
) -> None:
    picture = picture_jpeg(ALICE, "1700000111")
    async with started(db, tmp_path) as h:
        await h.endpoint(discord_server.url(), ["avatar"], kind="discord")
        store_picture(h, tmp_path, ALICE, picture)
        await eventually(h.settled)
        (job,) = h.deliveries()

    assert job.state == "done" and job.attempts == 1  # a 429 is not a failed try
    (post,) = discord_server.posts
    assert post.wait and post.webhook == "123456789"
    # Nothing was sent again before Discord's retry_after had passed.
    (limited,) = discord_server.limited_at
    assert post.at - limited >= 0.4
    filename, content_type, data = post.files["files[0]"]
    assert (filename, content_type, data) == ("avatar-5511999990001.jpg", "image/jpeg", picture)
    payload = post.payload
    assert payload["attachments"] == [
        {"id": 0, "filename": filename, "description": payload["attachments"][0]["description"]}
    ]
    assert payload["allowed_mentions"] == {"parse": []}  # "@everyone" in a name pings nobody
    (embed,) = payload["embeds"]
    assert embed["image"] == {"url": f"attachment://{filename}"}
    assert embed["title"] == "Alice @everyone Example (+5511999990001)"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Name"] == "Alice @everyone Example"
    assert fields["Phone"] == "+5511999990001"
    assert fields["Time"].startswith("<t:")
    assert embed["timestamp"].endswith("+00:00")
    assert "1700000111" in embed["footer"]["text"]


async def test_a_picture_above_8_mib_is_shrunk_to_fit(db: Database, tmp_path: Path) -> None:
    raw = Image.frombytes("RGB", (1800, 1800), os.urandom(1800 * 1800 * 3))
    buf = io.BytesIO()
    raw.save(buf, "PNG", compress_level=1)
    big = buf.getvalue()
    assert len(big) > DiscordServer.FILE_LIMIT
    with running(DiscordServer()) as server:
        async with started(db, tmp_path) as h:
            await h.endpoint(server.url(), ["avatar"], kind="discord")
            store_picture(h, tmp_path, ALICE, big)
            await eventually(h.settled)
        (post,) = server.posts
    assert server.refusals == []
    _, content_type, data = post.files["files[0]"]
    assert content_type == "image/jpeg" and len(data) <= DiscordServer.FILE_LIMIT
    assert Image.open(io.BytesIO(data)).size[0] <= 1800


async def test_removed_pictures_and_status_changes_are_posted_as_text(
    db: Database, tmp_path: Path
) -> None:
    with running(DiscordServer()) as server:
        async with started(db, tmp_path) as h:
            await h.endpoint(server.url(), "*", kind="discord")
            gone = {**avatar_data(ALICE, "x"), "pictureUrl": "none", "pictureId": None}
            h.record("avatar", gone)
            batch = Batch()
            batch.add(ev.LoggedOut("logged out from the phone"))
            commit_batch(h.db, h.sid, batch, [h.delivery.recorder])
            await eventually(lambda: len(server.posts) == 2)
            await eventually(h.settled)
    texts = [p.payload.get("content") for p in server.posts if p.payload.get("content")]
    assert texts == ["wasync session **default** is now **logged out**: logged out from the phone"]
    (embed_post,) = [p for p in server.posts if p.payload.get("embeds")]
    assert not embed_post.files
    assert "No profile picture" in embed_post.payload["embeds"][0]["description"]


async def test_discord_refusals_are_dead_letters(db: Database, tmp_path: Path) -> None:
    with running(DiscordServer()) as server:
        async with started(db, tmp_path) as h:
            # A deleted webhook: Discord answers 404 Unknown Webhook.
            await h.endpoint(server.base_url + "/api/webhooks/1", ["avatar"], kind="discord")
            h.record("avatar", avatar_data(ALICE, "1700000112"))
            await eventually(h.settled)
            (job,) = h.deliveries()
    assert job.state == "failed" and job.attempts == 1
    assert "Discord answered 404" in (job.last_error or "") and "Unknown Webhook" in (
        job.last_error or ""
    )
