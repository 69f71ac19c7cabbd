"""Endpoints from the config file and from the `wasync webhooks` command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wasync.cli import app
from wasync.delivery import admin
from wasync.errors import ConfigError
from wasync.store.db import Database
from wasync.store.sessions import ensure_session

from .webhooks_harness import SECRET, started

runner = CliRunner()
ENV = {"WASYNC_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


async def test_the_file_manages_its_own_endpoints(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SECRET", SECRET)
    conf = write(
        tmp_path / "webhooks.toml",
        """
[[endpoint]]
session = "default"
url = "http://127.0.0.1:9/crm"
events = ["message", "avatar"]
secret_env = "CRM_SECRET"
description = "CRM"

[[endpoint]]
session = "later"   # not paired yet: allowed in the file
url = "http://127.0.0.1:9/discord/api/webhooks/1/abc"
kind = "discord"
events = ["avatar"]
""",
    )
    async with started(db, tmp_path, webhooks_file=conf) as h:
        await h.endpoint("http://127.0.0.1:9/by-api", ["chat"])
        found = {e.url: e for e in admin.list_endpoints(db, None)}
    crm = found["http://127.0.0.1:9/crm"]
    assert (crm.source, crm.secret, crm.events, crm.description) == (
        "file",
        SECRET,
        ("message", "avatar"),
        "CRM",
    )
    assert found["http://127.0.0.1:9/discord/api/webhooks/1/abc"].kind == "discord"

    # Dropped from the file: gone at the next start; the API's endpoint stays.
    write(
        conf,
        '[[endpoint]]\nsession = "default"\nurl = "http://127.0.0.1:9/crm"\n'
        'events = ["*"]\nsecret_env = "CRM_SECRET"\n',
    )
    async with started(db, tmp_path, webhooks_file=conf):
        found = {e.url: e for e in admin.list_endpoints(db, None)}
    assert set(found) == {"http://127.0.0.1:9/crm", "http://127.0.0.1:9/by-api"}
    assert found["http://127.0.0.1:9/crm"].events == ("*",)
    assert found["http://127.0.0.1:9/crm"].id == crm.id  # same endpoint, updated


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[endpoint]]\nsession = 'default'\n", "endpoint #1: 'url' is missing"),
        ("[[endpoint\n", "not valid TOML"),
        (
            "[[endpoint]]\nsession='default'\nurl='http://127.0.0.1:9/'\nevents=['*']\n",
            "needs `secret` or `secret_env`",
        ),
        (
            "[[endpoint]]\nsession='default'\nurl='http://10.0.0.1/'\nevents=['*']\n"
            f"secret='{SECRET}'\n",
            "private address",
        ),
        (
            "[[endpoint]]\nsession='default'\nurl='http://127.0.0.1:9/'\nevents=['*']\n"
            "secret_env='WASYNC_TEST_NOT_SET'\n",
            "WASYNC_TEST_NOT_SET is not set",
        ),
        ("[[endpoint]]\nsession='default'\nurl='x'\nevents=['*']\ncolour='red'\n", "'colour'"),
        (
            2
            * (
                "[[endpoint]]\nsession='default'\nurl='http://127.0.0.1:9/'\nevents=['*']\n"
                f"secret='{SECRET}'\n"
            ),
            "endpoint #2: the same URL as endpoint #1",
        ),
    ],
)
async def test_a_bad_file_stops_start_up_with_a_reason(
    db: Database, tmp_path: Path, text: str, words: str
) -> None:
    conf = write(tmp_path / "webhooks.toml", text)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        async with started(db, tmp_path, webhooks_file=conf):
            pass


def cli(db: Database, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--database", db.url], env=ENV)
    return result.exit_code, result.stdout, result.stderr


def test_the_command_line(db: Database) -> None:
    with db.write() as conn:
        ensure_session(conn, "default", "simulator")
    code, out, err = cli(
        db, "webhooks", "add", "http://127.0.0.1:9/hook", "--events", "message,reaction", "--json"
    )
    assert code == 0, err
    added = json.loads(out)
    assert added["secret"].startswith("whsec_") and added["events"] == ["message", "reaction"]

    code, out, _ = cli(db, "webhooks", "list", "--json")
    assert [e["id"] for e in json.loads(out)] == [added["id"]]
    assert "secret" not in json.loads(out)[0]

    code, out, _ = cli(db, "webhooks", "deliveries", "--json")
    assert code == 0 and json.loads(out) == {
        "counts": {"queued": 0, "running": 0, "done": 0, "failed": 0},
        "deliveries": [],
        "streams": [],
    }
    code, out, _ = cli(db, "webhooks", "ping", str(added["id"]))
    assert code == 0 and "queued ping evt_" in out
    code, out, _ = cli(db, "webhooks", "retry")
    assert code == 0 and "0 deliveries queued again" in out

    code, out, _ = cli(db, "webhooks", "remove", str(added["id"]))
    assert code == 0 and "1 queued deliveries cancelled" in out  # the ping
    assert json.loads(cli(db, "webhooks", "list", "--json")[1]) == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["add", "http://10.1.2.3/x"], "private address"),
        (["add", "http://127.0.0.1:9/x", "--session", "ghost"], "no session named 'ghost'"),
        (["add", "http://127.0.0.1:9/x", "--events", "nope"], "unknown event type 'nope'"),
        (["remove", "99"], "has no webhook endpoint 99"),
        (["deliveries", "--state", "lost"], "unknown state 'lost'"),
    ],
)
def test_command_line_mistakes_are_one_line(db: Database, args: list[str], words: str) -> None:
    with db.write() as conn:
        ensure_session(conn, "default", "simulator")
    code, _, err = cli(db, "webhooks", *args)
    assert code == 1
    assert words in " ".join(err.split()) and "Traceback" not in err
