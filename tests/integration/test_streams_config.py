"""Broker endpoints configured by the command line, the REST API and the config file:
no SSRF guard, one-line errors, credentials masked everywhere they are shown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from wasync.api.errors import install_error_handlers
from wasync.api.routes_webhooks import router
from wasync.cli import app
from wasync.delivery import admin
from wasync.delivery.streams import log as stream_log
from wasync.errors import ConfigError
from wasync.store.db import Database
from wasync.store.sessions import ensure_session, get_session

from .webhooks_harness import Harness, started

runner = CliRunner()
PASSWORD = "s3cret-Broker-pw"
AMQP = f"amqp://wasync:{PASSWORD}@127.0.0.1:5672/%2F?exchange=wa.events"
AMQP_SHOWN = "amqp://wasync:****@127.0.0.1:5672/%2F?exchange=wa.events"
NATS_TOKEN = "tok-0123456789abcdef"
NATS = f"nats://{NATS_TOKEN}@127.0.0.1:4222/wasync"
REDIS = "redis://127.0.0.1:6379/0?stream=wa:events&maxlen=5000"


def cli(db: Database, *args: str) -> tuple[int, str, str]:
    # No WASYNC_WEBHOOK_ALLOWED_NETWORKS: loopback brokers need none.
    result = runner.invoke(app, [*args, "--database", db.url], env={})
    return result.exit_code, result.stdout, result.stderr


def test_the_command_line_adds_and_lists_brokers_masked(db: Database) -> None:
    with db.write() as conn:
        ensure_session(conn, "default", "simulator")
    code, out, err = cli(db, "webhooks", "add", AMQP, "--events", "message,chat", "--json")
    assert code == 0, err
    added = json.loads(out)
    assert (added["kind"], added["url"], added["secret"]) == ("rabbitmq", AMQP_SHOWN, None)
    code, out, err = cli(db, "webhooks", "add", NATS)
    assert code == 0, err
    assert "added nats endpoint" in out and NATS_TOKEN not in out
    code, out, err = cli(db, "webhooks", "add", REDIS, "--kind", "redis", "--events", "*")
    assert code == 0, err

    code, out, _ = cli(db, "webhooks", "list", "--json")
    listed = {e["kind"]: e["url"] for e in json.loads(out)}
    assert listed == {
        "rabbitmq": AMQP_SHOWN,
        "nats": "nats://****@127.0.0.1:4222/wasync",
        "redis": REDIS,
    }
    code, out, _ = cli(db, "webhooks", "list")
    assert code == 0 and PASSWORD not in out and NATS_TOKEN not in out
    # The stored URL keeps the credentials: publishing needs them.
    assert {e.url for e in admin.list_endpoints(db, "default")} == {AMQP, NATS, REDIS}

    # Events waiting for the broker (no server runs here to publish them) are listed
    # with their log: a count, since when, and the pump that will publish them.
    with db.write() as conn:
        sid = get_session(conn, "default").id
        entries = [(f"evt_{i}", "message", "{}", 1_700_000_000.0 + i) for i in range(3)]
        stream_log.append(conn, added["id"], sid, entries)
    code, out, _ = cli(db, "webhooks", "deliveries", "--json")
    listed = json.loads(out)
    assert listed["counts"]["queued"] == 3 and listed["deliveries"] == []
    assert listed["streams"] == [
        {
            "endpoint": added["id"],
            "kind": "rabbitmq",
            "waiting": 3,
            "published": 0,
            "oldestWaiting": 1_700_000_000.0,
            "pump": "queued",
            "nextTryAt": listed["streams"][0]["nextTryAt"],
            "lastError": None,
        }
    ]
    code, out, _ = cli(db, "webhooks", "deliveries")
    assert code == 0 and "broker logs" in out and "2023-11-14 22:13:20 UTC" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["add", "kafka://127.0.0.1:9092/x"],
            "must start with https:// (or http://; a broker: nats://",
        ),
        (["add", "nats://127.0.0.1:4222"], "needs a subject prefix"),
        (["add", "amqp://guest:guest@127.0.0.1:5672/"], "needs an exchange"),
        (["add", "redis://127.0.0.1:6379/0"], "needs a stream"),
        (["add", "redis://127.0.0.1:70000/0?stream=s"], "bad port"),
        (["add", "redis://127.0.0.1/0?stream=s", "--secret", "x" * 20], "not signed"),
        (["add", "nats://127.0.0.1/w", "--kind", "redis"], "makes a nats endpoint"),
    ],
)
def test_bad_broker_urls_are_one_line_errors(db: Database, args: list[str], words: str) -> None:
    with db.write() as conn:
        ensure_session(conn, "default", "simulator")
    code, _, err = cli(db, "webhooks", *args)
    assert code == 1
    assert words in " ".join(err.split()) and "Traceback" not in err
    assert "\n" not in err.strip()


@pytest.fixture
async def harness(db: Database, tmp_path: Path) -> AsyncIterator[Harness]:
    async with started(db, tmp_path, webhook_allowed_networks="") as h:
        yield h


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    web = FastAPI()
    web.state.runtime = harness.runtime
    web.state.api_key = "k"
    install_error_handlers(web)
    web.include_router(router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web),
        base_url="http://wasync.test",
        headers={"X-Api-Key": "k"},
    ) as client:
        yield client


async def test_the_rest_api_adds_brokers_and_never_shows_credentials(
    api: httpx.AsyncClient,
) -> None:
    base = "/api/sessions/default/webhooks"
    created = await api.post(base, json={"url": AMQP, "events": ["message"]})
    assert created.status_code == 201, created.text
    assert created.json()["url"] == AMQP_SHOWN and created.json()["kind"] == "rabbitmq"
    listed = await api.get(base)
    one = await api.get(f"{base}/{created.json()['id']}")
    for text in (created.text, listed.text, one.text):
        assert PASSWORD not in text
    assert [e["url"] for e in listed.json()["items"]] == [AMQP_SHOWN]

    bad = await api.post(base, json={"url": "amqp://127.0.0.1/?exchange=amq.topic"})
    assert bad.status_code in (400, 422)
    assert "bad exchange name" in bad.json()["detail"]

    duplicate = await api.post(base, json={"url": AMQP, "events": ["chat"]})
    assert duplicate.status_code == 409 and PASSWORD not in duplicate.text


async def test_the_config_file_takes_broker_urls_from_the_environment(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_URL", AMQP)
    conf = tmp_path / "webhooks.toml"
    conf.write_text(
        '[[endpoint]]\nsession = "default"\nurl_env = "EVENTS_URL"\nevents = ["*"]\n\n'
        f'[[endpoint]]\nsession = "default"\nurl = "{REDIS}"\nevents = ["message"]\n',
        encoding="utf-8",
    )
    async with started(db, tmp_path, webhooks_file=conf, webhook_allowed_networks=""):
        found = {e.kind: e for e in admin.list_endpoints(db, "default")}
    assert found["rabbitmq"].url == AMQP and found["rabbitmq"].source == "file"
    assert found["redis"].events == ("message",)

    conf.write_text(
        f'[[endpoint]]\nsession = "default"\nurl = "{REDIS}"\nevents = ["*"]\n'
        f'secret = "{"x" * 20}"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="endpoint #1: broker endpoints are not signed"):
        async with started(db, tmp_path, webhooks_file=conf):
            pass
    monkeypatch.delenv("EVENTS_URL")
    conf.write_text(
        '[[endpoint]]\nsession = "default"\nurl_env = "EVENTS_URL"\nevents = ["*"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="environment variable EVENTS_URL is not set"):
        async with started(db, tmp_path, webhooks_file=conf):
            pass
