"""Every database any release of wasync built upgrades to today's schema.

`tests/fixtures/migrations/<commit>/` holds the migration files as each commit that
changed them left them (`git log -- src/wasync/store/migrations/versions/`). A
database is built with each set, then upgraded with today's code, and must equal a
fresh install. This is what caught migration 0002 gaining `sessions.avatar_paused_until`
after it had landed (4547311): a database that ran the first 0002 never got the
column, until 0003 brought it level.

When a commit changes the migrations, freeze them too:

    c=$(git rev-parse --short HEAD); mkdir tests/fixtures/migrations/$c
    cp src/wasync/store/migrations/versions/0*.py tests/fixtures/migrations/$c/
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select

from tests.schema import schema_diff
from wasync.store.db import Database
from wasync.store.migrate import MIGRATIONS_DIR
from wasync.store.schema import sessions
from wasync.store.sessions import ensure_session

FROZEN = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"
SNAPSHOTS = sorted(p.name for p in FROZEN.iterdir() if p.is_dir())
# The order they landed in (git log --reverse); the last is what is on main.
LANDED = ["9d41d2a", "817be1a", "4547311", "4b7d5d4", "68d5180", "de2a621", "47b39c5"]


def build_with(db: Database, snapshot: str) -> None:
    """Migrate an empty database with a frozen set of migrations, to its newest."""
    cfg = Config()
    cfg.set_main_option("script_location", str(FROZEN))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(FROZEN / snapshot))
    cfg.attributes["configure_logger"] = False
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def test_every_landed_snapshot_is_frozen() -> None:
    assert sorted(LANDED) == SNAPSHOTS


def test_landed_migrations_are_never_edited() -> None:
    """Append-only: a migration file of the newest snapshot is today's, byte for byte."""
    newest = FROZEN / LANDED[-1]
    for frozen in sorted(newest.glob("*.py")):
        current = MIGRATIONS_DIR / "versions" / frozen.name
        assert current.read_bytes() == frozen.read_bytes(), f"{frozen.name} was edited"


@pytest.mark.parametrize("snapshot", LANDED)
def test_a_database_of_every_landed_revision_upgrades_to_the_schema(
    db_url: str, snapshot: str
) -> None:
    db = Database(db_url)
    try:
        build_with(db, snapshot)
        with db.write() as conn:
            sid = ensure_session(conn, "kept", "simulator")
        db.migrate()  # today's migrations
        with db.engine.connect() as conn:
            assert schema_diff(conn) == []
            columns = {c["name"] for c in inspect(conn).get_columns("sessions")}
        assert "avatar_paused_until" in columns
        with db.read() as conn:
            assert conn.execute(select(sessions.c.id, sessions.c.name)).all() == [(sid, "kept")]
        db.migrate()  # and again: nothing left to do
    finally:
        db.close()
