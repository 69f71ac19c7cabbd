"""`wasync search` as a user drives it, and writing commands leave nothing unindexed."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from wasync.cli import app
from wasync.store import search
from wasync.store.db import Database
from wasync.store.schema import messages

runner = CliRunner()


def _mirror(data_dir: Path) -> tuple[str, list[int], int]:
    """The most common word, the ids holding it newest first, and what is pending."""
    db = Database(f"sqlite:///{data_dir / 'wasync.db'}")
    try:
        with db.read() as conn:
            m = messages.c
            rows = conn.execute(select(m.id, m.timestamp, m.text)).all()
            pending = search.pending(conn)
    finally:
        db.close()
    counts = Counter(w for r in rows for w in search.message_words(r.text))
    word = max((w for w in counts if len(w) > 3), key=lambda w: counts[w])
    hits = [r for r in rows if word in search.message_words(r.text)]
    ids = [r.id for r in sorted(hits, key=lambda r: (r.timestamp, r.id), reverse=True)]
    return word, ids, pending


def _search(data_dir: Path, *args: str) -> dict[str, object]:
    result = runner.invoke(app, ["search", *args, "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_sync_leaves_everything_indexed_and_search_pages(tmp_path: Path) -> None:
    synced = runner.invoke(app, ["sync", "--limit-per-chat", "30", "--data-dir", str(tmp_path)])
    assert synced.exit_code == 0, synced.output
    word, expected, pending = _mirror(tmp_path)
    assert pending == 0 and len(expected) > 4  # sync indexed before it ended
    found: list[int] = []
    cursor: list[str] = []
    while True:
        page = _search(tmp_path, word.upper(), "--limit", "3", *cursor)
        found += [int(json.loads(_b64(h["cursor"]))[1]) for h in page["items"]]  # type: ignore[union-attr]
        if not page["nextCursor"]:
            break
        cursor = ["--before", str(page["nextCursor"])]
    assert found == expected

    table = runner.invoke(app, ["search", word, "--data-dir", str(tmp_path)])
    assert table.exit_code == 0 and "search: " + word in table.stdout


def _b64(cursor: str) -> str:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def test_search_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    here = ["--data-dir", str(tmp_path)]
    for args, words in (
        (["?!", *here], "has no words"),
        (["hello", "--data-dir", str(tmp_path / "none")], "no data directory"),
        (["hello", "--session", "../x", *here], "invalid session name"),
    ):
        result = runner.invoke(app, ["search", *args])
        assert result.exit_code == 1, result.output
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
