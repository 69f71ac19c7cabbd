"""A Database dropped without close() gives its server connections back."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import create_engine, text

from wasync.store.db import Database, normalize_url

from ..waiting import eventually

pytestmark = pytest.mark.postgres


async def test_a_dropped_database_closes_its_connections(pg_schema_url: str) -> None:
    db = Database(pg_schema_url)
    with db.read() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    del db
    gc.collect()  # no ResourceWarning from the driver: the pool was disposed
    admin = create_engine(normalize_url(pg_schema_url))
    try:

        def gone() -> bool:
            with admin.connect() as conn:
                found = conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                )
                return found.scalar_one() == 0

        await eventually(gone, within=10)
        assert gone()
    finally:
        admin.dispose()
