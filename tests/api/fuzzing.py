"""Serving the API in-process to schemathesis: a runtime with real rows, its own loop.

The runtime, the app and every request live on one event loop, on a thread of its
own, so schemathesis and Hypothesis drive it from plain synchronous tests. The
requests go through `asgi_app()`, the very stack `wasync serve` runs.

Nothing leaves the machine: sessions can only be simulator sessions, webhook targets
are not resolved (no DNS) and no delivery worker runs (nothing is sent).
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from wasync.api.app import asgi_app, create_app
from wasync.api.install import api_services
from wasync.avatars import install as install_avatars
from wasync.config import Settings
from wasync.delivery import ssrf
from wasync.engines.factory import EngineFactory, SimulatorOptions
from wasync.errors import ConfigError
from wasync.history import install as install_history
from wasync.runtime import Runtime

from .conftest import API_KEY, SESSION, add_simulator

T = TypeVar("T")
# What every answer must satisfy: no server error; status, content type and body
# as the OpenAPI schema documents them.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class SimulatorOnly(EngineFactory):
    """Sessions created while fuzzing run on the simulator: no test dials WhatsApp."""

    def check(self, engine: str) -> str:
        if engine != "simulator":
            raise ConfigError(f"unknown engine {engine!r}: only the simulator runs in this test")
        return engine


async def _no_dns(host: str, port: int) -> list[ssrf.IPAddress]:
    raise ssrf.UnresolvableTarget(f"cannot resolve host {host!r}: no DNS in tests")


class Loop:
    """An event loop on its own thread, owning the runtime; requests run on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Served:
    loop: Loop
    client: httpx.AsyncClient
    known: dict[str, str]  # parameter -> a value that names a real row
    schema: Any  # schemathesis' view of /openapi.json

    def send(self, case: schemathesis.Case, *, key: str | None = API_KEY) -> httpx.Response:
        """Send a case; with the right key unless `key` is None (then: the case's own)."""
        kwargs = case.as_transport_kwargs(base_url="http://127.0.0.1")
        headers = dict(kwargs.get("headers") or {})
        if key is not None:
            # The cases are to reach the routes: the key is test_auth.py's business.
            headers = {k: v for k, v in headers.items() if k.lower() != "x-api-key"}
            headers["X-Api-Key"] = key
        request = self.client.build_request(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params"),
            headers=headers,
            json=kwargs.get("json"),
            content=kwargs.get("data"),
        )
        return self.loop.run(self.client.send(request))

    def check(self, case: schemathesis.Case, *, key: str | None = API_KEY) -> httpx.Response:
        """Send one case and validate its answer; raises schemathesis' FailureGroup."""
        response = self.send(case, key=key)
        case.validate_response(response, checks=CHECKS)
        return response


async def _start(data_dir: Path) -> tuple[Runtime, httpx.AsyncClient, dict[str, str]]:
    settings = Settings(data_dir=data_dir, session_engine="simulator", avatar_interval=0.05)
    runtime = Runtime(settings)
    api_services(runtime)
    runtime.manager.engines = SimulatorOnly(settings, SimulatorOptions(seed=1))
    install_avatars(runtime)
    install_history(runtime)
    await runtime.start()
    app = create_app(runtime, api_key=API_KEY)
    await add_simulator(runtime, SESSION)
    client = httpx.AsyncClient(
        # A 500 is an answer to check, not an exception in the test.
        transport=httpx.ASGITransport(app=asgi_app(app), raise_app_exceptions=False),
        base_url="http://127.0.0.1",
    )
    client.headers["X-Api-Key"] = API_KEY  # for the set-up; removed before fuzzing
    api = f"/api/sessions/{SESSION}"
    hook = await client.post(
        f"{api}/webhooks", json={"url": "https://93.184.216.34/hook", "events": ["message"]}
    )
    assert hook.status_code == 201, hook.text
    known = {"session": SESSION, "endpoint_id": str(hook.json()["id"])}
    # A chat with a message with media, and a stored profile picture: real rows to serve.
    chats = (await client.get(f"{api}/chats", params={"limit": 500})).json()["items"]
    for chat in chats:
        page = await client.get(f"{api}/chats/{chat['jid']}/messages", params={"limit": 500})
        media = [m for m in page.json()["items"] if m["media"]]
        if media:
            known |= {"jid": chat["jid"], "message_id": media[0]["messageId"]}
            known |= {"sender": media[0]["senderJid"]}
            break
    for chat in chats:
        check = await client.post(f"{api}/avatars/{chat['jid']}")
        if check.status_code == 200 and check.json()["outcome"] == "new":
            known["file"] = check.json()["profilePicture"].rsplit("/", 1)[1]
            break
    assert {"jid", "message_id", "file"} <= set(known), known
    del client.headers["X-Api-Key"]
    return runtime, client, known


async def _openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    with warnings.catch_warnings():
        # routes_avatars.py documents one GET+HEAD route: a duplicate operation id.
        warnings.filterwarnings("ignore", message="Duplicate Operation ID")
        spec: dict[str, Any] = (await client.get("/openapi.json")).json()
    return spec


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    monkey = pytest.MonkeyPatch()
    monkey.setattr(ssrf, "system_resolver", _no_dns)
    loop = Loop()
    runtime, client, known = loop.run(_start(tmp_path_factory.mktemp("fuzz")))
    schema = schemathesis.openapi.from_dict(loop.run(_openapi(client)))
    try:
        yield Served(loop, client, known, schema)
    finally:
        loop.run(client.aclose())
        loop.run(runtime.stop())
        loop.close()
        monkey.undo()
