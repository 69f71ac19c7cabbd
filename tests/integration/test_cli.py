"""The command line as a user drives it: JSON summaries and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wasync.cli import app

runner = CliRunner()


def test_sync_json_summary_then_stats(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["sync", "--engine", "simulator", "--seed", "3", "--data-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) == {
        "chats",
        "contacts",
        "groups",
        "messages",
        "new_messages",
        "failed_chats",
        "seconds",
    }
    assert summary["chats"] > 0 and summary["messages"] > 0 and summary["failed_chats"] == []
    assert (tmp_path / "wasync.db").exists()

    stats = runner.invoke(app, ["stats", "--data-dir", str(tmp_path), "--json"])
    assert stats.exit_code == 0, stats.output
    counts = json.loads(stats.stdout)
    assert counts["chats"] == summary["chats"]
    assert counts["messages"] == summary["messages"]

    # Running it again is harmless: same mirror, no duplicates.
    again = runner.invoke(app, ["sync", "--seed", "3", "--data-dir", str(tmp_path), "--json"])
    assert again.exit_code == 0
    assert (
        json.loads(runner.invoke(app, ["stats", "--data-dir", str(tmp_path), "--json"]).stdout)
        == counts
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sync", "--scale", "huge"], "unknown scale 'huge'"),
        (["sync", "--engine", "nope"], "unknown engine 'nope'"),
        (["sync", "--session", "../etc"], "invalid session name"),
        (["sync", "--database", "mysql://x@y/z"], "unsupported database"),
        (["stats", "--session", "ghost"], "no database at"),
        # Nothing listens on port 1 of loopback: a database that is down.
        (["stats", "--database", "postgresql://nobody:s3cret@127.0.0.1:1/x"], "cannot open"),
        (["sync", "--database", "postgresql://nobody:s3cret@127.0.0.1:1/x"], "cannot open"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert "s3cret" not in result.output + result.stderr  # passwords are never shown


def test_a_data_dir_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a directory")
    for args in (["stats"], ["sync"]):
        result = runner.invoke(app, [*args, "--data-dir", str(taken)])
        assert result.exit_code == 1, result.output
        assert "cannot use" in result.stderr and "Traceback" not in result.stderr


def test_console_script_runs(tmp_path: Path) -> None:
    env = {**os.environ, "WASYNC_DATA_DIR": str(tmp_path)}
    exe = Path(sys.executable).parent / "wasync"
    out = subprocess.run(
        [str(exe), "sync", "--json", "--limit-per-chat", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["messages"] > 0


def test_sync_with_people_addressed_by_lid_keeps_one_contact_per_person(tmp_path: Path) -> None:
    import sqlite3

    from wasync.engines.simulator import Network

    args = ["sync", "--seed", "3", "--lid-fraction", "1", "--data-dir", str(tmp_path), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(tmp_path / "wasync.db") as conn:
        stored = {jid for (jid,) in conn.execute("SELECT jid FROM contacts")}
    people = Network.from_scale("tiny", 3, lid_fraction=1.0).people()
    assert stored == {p.jid for p in people} and all(j.endswith("@lid") for j in stored)
