"""The history endpoints the UI's "load older" / "load full history" buttons call."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from wasync.api.app import asgi_app, create_app
from wasync.api.install import api_services
from wasync.config import Settings
from wasync.engines.base import Capabilities
from wasync.engines.simulator import Faults, Network, SimulatorEngine
from wasync.store.db import Database

from .test_history_support import Harness, one_chat_network, running

KEY = "history-test-key"


class NoHistoryEngine(SimulatorEngine):
    """An engine that cannot request history, like neonize 0.5.2."""

    @property
    def capabilities(self) -> Capabilities:
        return dataclasses.replace(super().capabilities, on_demand_history=False)


@asynccontextmanager
async def serving(
    db: Database, engine: SimulatorEngine, tmp_path: Path, **options: Any
) -> AsyncIterator[tuple[Harness, httpx.AsyncClient]]:
    """A runtime with the API services and history, and an API client on its app."""
    settings = Settings(data_dir=tmp_path, limit_per_chat=20)
    async with running(db, engine, settings=settings, before_start=api_services, **options) as h:
        app = create_app(h.runtime, api_key=KEY)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi_app(app)),
            base_url="http://wasync.test",
            headers={"X-Api-Key": KEY},
        ) as client:
            yield h, client


async def test_load_older_then_full_history(db: Database, tmp_path: Path) -> None:
    net = one_chat_network(500)
    chat = net.chat_jids()[0]
    # Slow answers, so that the second request finds the first job still running.
    engine = SimulatorEngine(net, Faults(history_delay=0.05))
    async with serving(db, engine, tmp_path) as (h, client):
        base = f"/api/sessions/default/chats/{chat}"
        first = await client.post(f"{base}/history/older", params={"pages": 2})
        assert first.status_code == 202
        body = first.json()
        assert body["status"] == "queued" and isinstance(body["jobId"], int)
        again = await client.post(f"{base}/history/older", params={"pages": 1})
        assert again.status_code == 202
        assert again.json() == {"jobId": body["jobId"], "status": "already_queued"}
        job = await h.finished(body["jobId"])
        assert job.state == "done" and job.payload["done"] == 2

        state = (await client.get(f"{base}/sync-state")).json()
        assert state["chatJid"] == chat and state["fullySynced"] is False
        assert state["oldest"]["messageId"] == net.message(chat, 500 - 20 - 100).key.message_id
        assert state["newest"]["messageId"] == net.message(chat, 499).key.message_id
        assert state["backfill"]["state"] == "done" and state["backfill"]["pagesDone"] == 2
        assert state["gap"] is None and state["onDemandHistory"] is True

        full = await client.post(f"{base}/history/full")
        assert full.status_code == 202 and full.json()["status"] == "queued"
        assert (await h.finished(full.json()["jobId"])).state == "done"
        state = (await client.get(f"{base}/sync-state")).json()
        assert state["fullySynced"] is True
        assert state["oldest"]["messageId"] == net.message(chat, 0).key.message_id
        done = await client.post(f"{base}/history/older")
        assert done.json() == {"jobId": None, "status": "fully_synced"}

        # Progress went out per page on the bus, as history.progress events.
        events = [e for e in h.drain_progress() if e["jobId"] == full.json()["jobId"]]
        assert events[-1]["fullySynced"] and events[-1]["done"]


async def test_a_pending_load_older_becomes_full_when_asked(db: Database, tmp_path: Path) -> None:
    net = one_chat_network(400)
    chat = net.chat_jids()[0]
    engine = SimulatorEngine(net, Faults(history_delay=0.05))
    async with serving(db, engine, tmp_path) as (h, client):
        base = f"/api/sessions/default/chats/{chat}/history"
        older = (await client.post(f"{base}/older")).json()
        full = (await client.post(f"{base}/full")).json()
        assert full == {"jobId": older["jobId"], "status": "already_queued"}
        job = await h.finished(older["jobId"])
        assert job.state == "done" and job.payload["mode"] == "full"
        view = await h.service.sync_state("default", chat)
        assert view["fullySynced"] is True


async def test_bad_requests_get_clear_answers(db: Database, tmp_path: Path) -> None:
    net = Network.from_scale("tiny", 2)
    chat = net.chat_jids()[0]
    unknown = "12345678@s.whatsapp.net"
    async with serving(db, SimulatorEngine(net), tmp_path) as (_, client):
        cases = [
            ("post", f"/api/sessions/ghost/chats/{chat}/history/older", 404, "not_found"),
            ("post", f"/api/sessions/default/chats/{unknown}/history/full", 404, "not_found"),
            ("get", f"/api/sessions/default/chats/{unknown}/sync-state", 404, "not_found"),
            ("post", "/api/sessions/default/chats/not-a-jid/history/full", 400, "bad_request"),
            ("post", f"/api/sessions/default/chats/{chat}/history/older?pages=0", 422,
             "invalid_request"),
        ]  # fmt: skip
        for method, url, status, error in cases:
            response = await client.request(method, url)
            assert response.status_code == status, (url, response.text)
            assert response.json()["error"] == error
            assert "Traceback" not in response.text
        anonymous = await client.post(
            f"/api/sessions/default/chats/{chat}/history/full", headers={"X-Api-Key": ""}
        )
        assert anonymous.status_code == 401


async def test_an_engine_without_history_requests_answers_501(db: Database, tmp_path: Path) -> None:
    net = Network.from_scale("tiny", 2)
    chat = net.chat_jids()[0]
    engine = NoHistoryEngine(net)
    async with serving(db, engine, tmp_path, initial_sync=False) as (h, client):
        await h.runtime.sync_chats("default", 0)  # the directory only
        for path in ("history/older", "history/full"):
            response = await client.post(f"/api/sessions/default/chats/{chat}/{path}")
            assert response.status_code == 501
            assert response.json() == {
                "error": "not_available",
                "detail": "older history is not available from this engine",
            }
        state = (await client.get(f"/api/sessions/default/chats/{chat}/sync-state")).json()
        assert state["onDemandHistory"] is False and state["backfill"] is None
        assert h.jobs("history.backfill") == []
