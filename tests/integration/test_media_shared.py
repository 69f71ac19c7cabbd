"""Two nodes on one PostgreSQL, each with its own data directory: what one stores
(pictures, message media) the other serves, and a session that moves is not fetched
or announced again."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Connection, select

from wasync.api.app import asgi_app, create_app
from wasync.api.install import api_services
from wasync.avatars import AvatarService, install
from wasync.avatars.storage import AvatarStorage
from wasync.config import Settings
from wasync.domain.models import Message, MessageKind
from wasync.engines.factory import EngineFactory, SimulatorOptions
from wasync.engines.simulator import MediaServer, Network, PictureState, SimulatorEngine
from wasync.media.database import DatabaseMediaStore
from wasync.runtime import Runtime
from wasync.store.db import Database
from wasync.store.schema import contacts

from ..waiting import eventually
from .avatars_harness import fast_config

pytestmark = pytest.mark.postgres

API_KEY = "test-key-0123456789abcdef"
SESSION = "default"
SEED = 7


@dataclass
class Node:
    runtime: Runtime
    avatars: AvatarService
    client: httpx.AsyncClient
    announced: list[str] = field(default_factory=list)  # outbox records, by topic


@asynccontextmanager
async def node(url: str, data_dir: Path) -> AsyncIterator[Node]:
    settings = Settings(data_dir=data_dir, database_url=url, simulator_seed=SEED)
    runtime = Runtime(settings, db=Database(url))
    api_services(runtime)
    avatars = install(runtime, fast_config())
    runtime.manager.engines = EngineFactory(settings, SimulatorOptions(seed=SEED))
    await runtime.start()
    app = create_app(runtime, api_key=API_KEY)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi_app(app)),
        base_url="http://wasync.test",
        headers={"X-Api-Key": API_KEY},
    ) as client:
        found = Node(runtime, avatars, client)

        def record(_conn: Connection, _sid: int, topic: str, _data: dict[str, Any]) -> None:
            found.announced.append(topic)

        runtime.outbox.listen(record)
        try:
            yield found
        finally:
            await runtime.stop()
            runtime.db.close()


def pending_avatar_jobs(db: Database) -> int:
    from wasync.avatars.enqueue import KIND
    from wasync.jobs import queries as queue

    with db.read() as conn:
        counts = queue.counts(conn, kind=KIND)[KIND]
    return int(counts["queued"] + counts["running"])


def an_image(network: Network) -> Message:
    return next(
        m
        for jid in network.chat_jids()
        for m in network.newest(jid, 30)
        if m.kind is MessageKind.IMAGE and m.media is not None
    )


def media_path(m: Message) -> str:
    key = m.key
    return (
        f"/api/sessions/{SESSION}/chats/{key.chat_jid}/messages/{key.message_id}/media"
        f"?sender={quote(key.sender_jid)}"
    )


async def test_what_one_node_stores_every_node_serves(pg_schema_url: str, tmp_path: Path) -> None:
    network = Network.from_scale("tiny", SEED)
    pictured = sorted(
        c.jid for c in network.contacts() if network.picture_state(c.jid) is PictureState.SET
    )
    assert pictured
    image = an_image(network)
    with MediaServer(network) as server:
        async with (
            node(pg_schema_url, tmp_path / "a") as a,
            node(pg_schema_url, tmp_path / "b") as b,
        ):
            assert isinstance(a.runtime.media, DatabaseMediaStore)  # auto, on PostgreSQL
            engine_a = SimulatorEngine(network, media_server=server)
            await a.runtime.add_session(SESSION, engine_a, engine_name="simulator")
            await a.runtime.sync_chats(SESSION, 30)
            await eventually(lambda: pending_avatar_jobs(a.runtime.db) == 0, within=30)
            downloads = sum(server.downloads.completed.values())
            assert downloads >= len(pictured)
            announced = list(a.announced)
            assert announced.count("avatar") >= len(pictured)
            r = await a.client.get(media_path(image))
            assert r.status_code == 200 and engine_a.stats.downloads == 1

            # B serves them although the session does not run there; nothing on its disk.
            assert SESSION not in b.runtime.sessions
            for jid in pictured:
                picture = network.picture_bytes(jid, network.picture_id(jid) or "")
                r = await b.client.get(f"/media/avatars/{SESSION}/{jid}.jpg")
                assert r.status_code == 200 and r.content == picture, jid
                etag = f'"{hashlib.sha256(picture).hexdigest()}"'
                assert r.headers["etag"] == etag and "max-age" in r.headers["cache-control"]
                again = await b.client.get(
                    f"/media/avatars/{SESSION}/{jid}.jpg", headers={"If-None-Match": etag}
                )
                assert again.status_code == 304 and again.content == b""
                head = await b.client.head(f"/media/avatars/{SESSION}/{jid}.jpg")
                assert head.status_code == 200 and head.headers["etag"] == etag
                assert head.headers["content-length"] == str(len(picture))
            r = await b.client.get(media_path(image))
            assert r.status_code == 200
            assert r.content == network.media_bytes(image.key.chat_jid, image.key.message_id)
            assert int(r.headers["content-length"]) == len(r.content)
            assert not (tmp_path / "b" / "media").exists()

            # The session moves to B, and B checks every picture again.
            await a.runtime.remove_session(SESSION)
            engine_b = SimulatorEngine(network, media_server=server)
            await b.runtime.add_session(SESSION, engine_b, engine_name="simulator")
            queued = await b.avatars.enqueue_all(SESSION)
            assert queued > 0
            await eventually(lambda: pending_avatar_jobs(b.runtime.db) == 0, within=30)
            outcomes = b.avatars.workers[SESSION].fetcher.outcomes
            assert outcomes["new"] == 0 and outcomes["unchanged"] >= len(pictured), outcomes
            assert sum(server.downloads.completed.values()) == downloads  # none again
            assert b.announced == [] and a.announced == announced  # nothing announced
            with b.runtime.db.read() as conn:
                found = conn.execute(select(contacts.c.jid, contacts.c.profile_picture)).all()
            rows = {row.jid: row.profile_picture for row in found}
            for jid in pictured:
                assert rows[jid] == f"/media/avatars/{SESSION}/{jid}.jpg"

            # Deleted through B: gone on A too.
            r = await b.client.delete(f"/api/sessions/{SESSION}")
            assert r.status_code == 204, r.text
            for jid in pictured:
                r = await a.client.get(f"/media/avatars/{SESSION}/{jid}.jpg")
                assert r.status_code == 404
            assert not AvatarStorage(a.runtime.media).exists(SESSION, pictured[0])
            assert a.runtime.media.keys("messages/") == []
            assert a.runtime.media.keys("avatars/") == []
