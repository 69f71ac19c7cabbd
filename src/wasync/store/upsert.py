"""`INSERT … ON CONFLICT` for both SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

# Given the `excluded` pseudo-table, return {column: new value expression}.
UpdateFn = Callable[[Any], Mapping[str, Any]]


def insert_for(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT construct (both offer `on_conflict_do_update/_nothing`)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Iterable[str],
    update: UpdateFn | Iterable[str] | None = None,
    where: Callable[[Any], ColumnElement[bool]] | None = None,
) -> None:
    """Insert `rows`; on a key conflict update columns (or do nothing when `update` is None).

    `update` is column names (each set to its incoming value) or a function of
    `excluded` returning expressions; `where` (also a function of `excluded`) limits
    which conflicting rows are updated.
    """
    if not rows:
        return
    stmt = insert_for(conn, table)
    index_elements = list(keys)
    if update is None:
        stmt = stmt.on_conflict_do_nothing(index_elements=index_elements)
    else:
        excluded = stmt.excluded
        set_ = (
            dict(update(excluded))
            if callable(update)
            else {name: excluded[name] for name in update}
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=index_elements,
            set_=set_,
            where=where(excluded) if where is not None else None,
        )
    conn.execute(stmt, list(rows))
