"""`wasync avatars ...` as a user drives it, next to (not inside) a running server."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from wasync.cli import app
from wasync.store.db import Database
from wasync.store.schema import jobs

runner = CliRunner()


def run(*args: str, db_url: str, data_dir: Path) -> dict[str, object]:
    result = runner.invoke(
        app, [*args, "--data-dir", str(data_dir), "--database", db_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_sync_fetch_status_and_retry(db_url: str, tmp_path: Path) -> None:
    synced = run("sync", "--seed", "4", db_url=db_url, data_dir=tmp_path)
    jids = int(str(synced["contacts"])) + int(str(synced["groups"]))

    first = run("avatars", "sync", db_url=db_url, data_dir=tmp_path)
    assert first == {"session": "default", "enqueued": jids, "jids": jids}
    again = run("avatars", "sync", db_url=db_url, data_dir=tmp_path)
    assert again["enqueued"] == 0

    one = run("avatars", "fetch", "+1 555 010 0002", db_url=db_url, data_dir=tmp_path)
    assert one == {"session": "default", "jid": "15550100002@s.whatsapp.net", "enqueued": 1}

    status = run("avatars", "status", db_url=db_url, data_dir=tmp_path)
    default = status["sessions"]["default"]  # type: ignore[index]
    assert default["states"] == {
        "queued": jids + 1,
        "running": 0,
        "done": 0,
        "none": 0,
        "failed": 0,
    }
    assert default["pictures"] == {"stored": 0, "none": 0, "unchecked": jids}
    assert default["configuredRate"] == 1 / 3 and default["minGap"] == 2.0

    database = Database(db_url)
    try:
        with database.write() as conn:
            conn.execute(update(jobs).values(state="failed", last_error="boom", attempts=5))
    finally:
        database.close()
    failed = run("avatars", "status", db_url=db_url, data_dir=tmp_path)
    assert failed["sessions"]["default"]["states"]["failed"] == jids + 1  # type: ignore[index]
    assert failed["sessions"]["default"]["recentErrors"][0]["error"] == "boom"  # type: ignore[index]
    retried = run("avatars", "retry-failed", db_url=db_url, data_dir=tmp_path)
    assert retried == {"session": "default", "retried": jids + 1}
    assert run("avatars", "retry-failed", db_url=db_url, data_dir=tmp_path)["retried"] == 0


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    runner.invoke(app, ["sync", "--data-dir", str(tmp_path)])
    cases = [
        (["avatars", "fetch", "status@broadcast"], "has no profile picture"),
        (["avatars", "fetch", "not a number"], "not a phone number"),
        (["avatars", "sync", "--session", "ghost"], "no session named 'ghost'"),
        (["avatars", "status", "--session", "ghost"], "no session named 'ghost'"),
    ]
    for args, message in cases:
        result = runner.invoke(app, [*args, "--data-dir", str(tmp_path)])
        assert result.exit_code == 1, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output + result.stderr


def test_human_output_says_how_long_it_will_take(tmp_path: Path) -> None:
    runner.invoke(app, ["sync", "--data-dir", str(tmp_path)])
    result = runner.invoke(app, ["avatars", "sync", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0 and "queued" in result.stdout and "takes about" in result.stdout
    status = runner.invoke(app, ["avatars", "status", "--data-dir", str(tmp_path)])
    assert status.exit_code == 0 and "queued" in status.stdout and "0.333/s" in status.stdout


def test_queueing_while_the_worker_is_switched_off_says_so(db_url: str, tmp_path: Path) -> None:
    run("sync", db_url=db_url, data_dir=tmp_path)
    args = ["avatars", "sync", "--data-dir", str(tmp_path), "--database", db_url]
    off = runner.invoke(app, args, env={"WASYNC_AVATAR_WORKER": "false"})
    assert off.exit_code == 0 and "no worker runs these jobs" in off.stderr
    on = runner.invoke(app, args)
    assert on.exit_code == 0 and "no worker" not in on.stderr
