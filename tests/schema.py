"""The difference between a database's schema and schema.py's metadata, as the schema
tests compare them: every object but the search objects migration 0009 makes per
dialect outside the metadata (exactly those named in SEARCH_OBJECTS)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from wasync.store.schema import metadata
from wasync.store.search import SEARCH_OBJECTS


def _include(name: str | None, type_: str, parent_names: Any) -> bool:
    return name not in SEARCH_OBJECTS


def schema_diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"include_name": _include})
    return list(compare_metadata(context, metadata))
