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


async def test_a_connection_in_use_when_the_database_closes_is_closed_when_it_returns(
    pg_schema_url: str,
) -> None:
    """A worker thread mid-transaction while the runtime stops: its connection comes
    back to the pool the close replaced, and is closed then, not by the collector."""
    import warnings

    db = Database(pg_schema_url)
    with db.read() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        driver = conn.connection.driver_connection
        db.close()  # while this connection is checked out
        assert driver is not None and not driver.closed
    assert driver.closed  # closed as it came back
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()
    admin = create_engine(normalize_url(pg_schema_url))
    try:
        with admin.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one()
        assert found == 0
        with db.read() as conn:  # a closed Database can still be used (a new pool)
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        admin.dispose()
        db.close()
