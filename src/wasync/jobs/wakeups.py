"""How a runner learns that jobs were enqueued, without polling the table.

- In this process: `enqueued()` announces the job on the enqueueing transaction; once
  it commits, the database hands the announcement to the runner (store/db.py).
- In other processes on PostgreSQL: the same transaction sends `NOTIFY wasync_jobs`,
  delivered at commit to every node listening (cluster/notify.py).
- In other processes on one machine with SQLite (a CLI command next to `wasync
  serve`): the command touches a wake file next to the database, whose change the
  runner notices within a second (`WakeFile`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy import Connection, func, select

from wasync.store.db import Database, announce

TOPIC = "jobs"
CHANNEL = "wasync_jobs"


def payload(kind: str, session_id: int | None) -> str:
    return f"{kind}|{'' if session_id is None else session_id}"


def parse(text: str) -> tuple[str, int | None] | None:
    kind, _, sid = text.partition("|")
    if not kind:
        return None
    try:
        return kind, int(sid) if sid else None
    except ValueError:
        return None


def enqueued(conn: Connection, kind: str, session_id: int | None) -> None:
    """Call in the transaction that enqueued (or re-queued) a job of `kind`."""
    if announce(conn, TOPIC, (kind, session_id)) and conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_notify(CHANNEL, payload(kind, session_id))))


class WakeFile:
    """A file whose modification says "jobs were enqueued" to a runner of another
    process on this machine (SQLite only: PostgreSQL has NOTIFY)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen = self._stamp()

    @classmethod
    def of(cls, db: Database) -> WakeFile | None:
        found = db.sqlite_path
        return cls(found.with_name(found.name + ".jobs-wake")) if found is not None else None

    def _stamp(self) -> int:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return 0

    def touch(self) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
            os.utime(self.path)

    def changed(self) -> bool:
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        return True


def tell_other_processes(db: Database) -> None:
    """After enqueueing from a command: wake a server's runner on the same SQLite file
    (on PostgreSQL the transaction's NOTIFY did it already)."""
    wake = WakeFile.of(db)
    if wake is not None:
        wake.touch()
