"""Hot statements compiled once per dialect, executed with plain tuples.

Building an `INSERT … ON CONFLICT` construct and having SQLAlchemy compile it again for
every small batch cost more than the database work itself (measured with py-spy on
100 sessions of live traffic: ~45% of the process in `SQLCompiler.__init__`). An
`Upsert` is built from the same SQLAlchemy constructs once, compiled to SQL text for
each dialect the first time it is used, and then executed with `exec_driver_sql` and
positional tuples, which also skips SQLAlchemy's per-row parameter processing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

# Given the `excluded` pseudo-table, return {column: new value expression}.
UpdateFn = Callable[[Any], Mapping[str, Any]]
WhereFn = Callable[[Any], ColumnElement[bool]]


def _positional(dialect_name: str) -> Dialect:
    """A dialect that compiles to positional parameters (so rows can be tuples)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import psycopg

        return psycopg.dialect(paramstyle="format")  # type: ignore[no-untyped-call]
    return sqlite.dialect(paramstyle="qmark")


class Upsert:
    """`INSERT INTO table (columns) VALUES (…) ON CONFLICT (keys) DO UPDATE/NOTHING`.

    `update` is column names (each set to its incoming value) or a function of
    `excluded` returning expressions; `where` (a function of `excluded`) limits which
    conflicting rows are updated; no `update` means DO NOTHING. Rows are tuples in
    `columns` order.
    """

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        keys: Sequence[str],
        update: UpdateFn | Sequence[str] | None = None,
        where: WhereFn | None = None,
        index_where: Any = None,
    ) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.keys = list(keys)
        self._update = update
        self._where = where
        self._index_where = index_where  # the predicate of a partial unique index
        self._sql: dict[str, str] = {}
        self._lock = threading.Lock()

    def sql(self, dialect_name: str) -> str:
        found = self._sql.get(dialect_name)
        if found is not None:
            return found
        with self._lock:
            make = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
            stmt: Any = make(self.table).values({c: bindparam(c) for c in self.columns})
            if self._update is None:
                stmt = stmt.on_conflict_do_nothing(
                    index_elements=self.keys, index_where=self._index_where
                )
            else:
                excluded = stmt.excluded
                set_ = (
                    dict(self._update(excluded))
                    if callable(self._update)
                    else {name: excluded[name] for name in self._update}
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=self.keys,
                    set_=set_,
                    where=self._where(excluded) if self._where is not None else None,
                )
            compiled = stmt.compile(dialect=_positional(dialect_name))
            order = tuple(compiled.positiontup or ())
            # Every parameter is a column value: a bound literal in an update expression
            # would need a value the rows do not carry.
            if order != self.columns:
                raise ValueError(
                    f"upsert into {self.table.name}: parameters {order} are not {self.columns}"
                )
            self._sql[dialect_name] = text = str(compiled)
            return text

    def run(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """Execute for every row; how many rows were inserted or updated."""
        if not rows:
            return 0
        result = conn.exec_driver_sql(self.sql(conn.dialect.name), list(rows))
        return int(result.rowcount)

    def run_dicts(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """The same with dict rows (cold paths that build dicts anyway)."""
        return self.run(conn, [tuple(r.get(c) for c in self.columns) for r in rows])
