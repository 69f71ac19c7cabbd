"""The REST API of webhook endpoints and dead letters, over real HTTP semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from wasync.api.errors import install_error_handlers
from wasync.api.routes_webhooks import router
from wasync.store.db import Database

from ..waiting import eventually
from .delivery_servers import Script, WebhookReceiver, running
from .webhooks_harness import SECRET, Harness, avatar_data, started

KEY = "test-api-key"
ALICE = "5511999990001@s.whatsapp.net"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running(WebhookReceiver(SECRET)) as server:
        yield server


@pytest.fixture
async def harness(db: Database, tmp_path: Path) -> AsyncIterator[Harness]:
    async with started(db, tmp_path) as h:
        yield h


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.runtime = harness.runtime
    app.state.api_key = KEY
    install_error_handlers(app)
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://wasync.test", headers={"X-Api-Key": KEY}
    ) as client:
        yield client


BASE = "/api/sessions/default/webhooks"


async def test_add_list_get_remove(api: httpx.AsyncClient, receiver: WebhookReceiver) -> None:
    url = receiver.script("/crm", Script()) + "?token=abc123"
    created = await api.post(BASE, json={"url": url, "events": ["message", "avatar"]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["url"] == url
    assert body["events"] == ["message", "avatar"] and body["kind"] == "webhook"

    listed = (await api.get(BASE)).json()["items"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0] and "abc123" not in listed[0]["url"]  # shown once only
    assert (await api.get(f"{BASE}/{body['id']}")).json()["events"] == ["message", "avatar"]

    removed = await api.delete(f"{BASE}/{body['id']}")
    assert removed.json() == {"removed": body["id"], "cancelledDeliveries": 0}
    assert (await api.get(BASE)).json()["items"] == []
    missing = await api.get(f"{BASE}/{body['id']}")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({"url": "http://10.0.0.1/hook"}, 400, "private address"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, 400, "metadata"),
        ({"url": "http://[::1]:8080/"}, 400, "loopback"),
        ({"url": "ftp://example.com/x"}, 400, "https://"),
        ({"url": "http://127.0.0.1:9/x", "events": ["messages"]}, 400, "unknown event type"),
        ({"url": "http://127.0.0.1:9/x", "secret": "short"}, 400, "16 characters"),
        ({"url": "http://127.0.0.1:9/x", "kind": "discord", "events": ["message"]}, 400, "Discord"),
        ({"events": ["message"]}, 422, "url"),
    ],
)
async def test_bad_endpoints_are_refused_with_a_reason(
    api: httpx.AsyncClient, payload: dict[str, object], status: int, words: str
) -> None:
    answer = await api.post(BASE, json=payload)
    assert answer.status_code == status, answer.text
    assert words in str(answer.json()["detail"])
    assert "Traceback" not in answer.text


async def test_conflicts_unknown_sessions_and_auth(api: httpx.AsyncClient) -> None:
    payload = {"url": "http://127.0.0.1:9/x", "secret": SECRET}
    assert (await api.post(BASE, json=payload)).status_code == 201
    again = await api.post(BASE, json=payload)
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    ghost = await api.post("/api/sessions/ghost/webhooks", json=payload)
    assert ghost.status_code == 404 and "no session named 'ghost'" in ghost.json()["detail"]
    anonymous = await api.get(BASE, headers={"X-Api-Key": "wrong"})
    assert anonymous.status_code == 401


async def test_dead_letters_are_listed_and_retried(
    api: httpx.AsyncClient, harness: Harness, receiver: WebhookReceiver
) -> None:
    url = receiver.script("/hook", Script(statuses=[404], then=200))
    created = (
        await api.post(BASE, json={"url": url, "events": ["avatar"], "secret": SECRET})
    ).json()
    harness.record("avatar", avatar_data(ALICE, "1700000009"))
    await eventually(harness.settled)

    dead = (await api.get(f"{BASE}/deliveries")).json()
    assert dead["counts"]["failed"] == 1
    (item,) = dead["items"]
    assert item["endpoint"] == created["id"] and item["event"] == "avatar"
    assert "404" in item["lastError"] and item["attempts"] == 1

    nothing = await api.post(f"{BASE}/deliveries/retry", json={"ids": [item["id"] + 1000]})
    assert nothing.status_code == 404
    retried = await api.post(f"{BASE}/deliveries/retry", json={"ids": [item["id"]]})
    assert retried.json() == {"requeued": 1, "notFound": []}
    await eventually(harness.settled)
    assert (await api.get(f"{BASE}/deliveries")).json()["items"] == []
    done = (await api.get(f"{BASE}/deliveries", params={"state": "done"})).json()["items"]
    assert [d["eventId"] for d in done] == [item["eventId"]]
    assert [r.status for r in receiver.on("/hook")] == [404, 200]


async def test_ping_and_removal_cancels_queued_deliveries(
    api: httpx.AsyncClient, harness: Harness, receiver: WebhookReceiver
) -> None:
    url = receiver.script("/ping", Script())
    created = (await api.post(BASE, json={"url": url, "events": ["message"]})).json()
    secret = created["secret"]
    pinged = await api.post(f"{BASE}/{created['id']}/ping")
    assert pinged.status_code == 202
    await eventually(lambda: len(receiver.on("/ping")) == 1)
    (got,) = receiver.on("/ping")
    assert got.json()["id"] == pinged.json()["queued"]
    from wasync.delivery.signing import verify

    assert verify(secret, {k.title(): v for k, v in got.headers.items()}, got.body)

    # A receiver that is down for a while: the avatar waits in the queue; removing the
    # endpoint cancels it instead of leaving work for an endpoint that no longer exists.
    busy = receiver.script("/busy", Script(then=503, headers={"Retry-After": "60"}))
    payload = {"url": busy, "events": ["avatar"], "secret": SECRET}
    down = (await api.post(BASE, json=payload)).json()
    harness.record("avatar", avatar_data(ALICE, "1700000010"))

    def waiting() -> bool:
        return any(j.state == "queued" and j.attempts == 1 for j in harness.deliveries())

    await eventually(waiting)
    removed = (await api.delete(f"{BASE}/{down['id']}")).json()
    assert removed["cancelledDeliveries"] == 1
    assert [j.payload["endpoint"] for j in harness.deliveries()] == [created["id"]]
