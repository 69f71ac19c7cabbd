"""Commit a batch: rows and session status in one transaction (runs in a worker thread)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import Connection

from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.events import SessionStatus
from wasync.store.db import Database
from wasync.store.identities import prepare
from wasync.store.sessions import set_jid, set_status
from wasync.store.writes import WriteResult, write_batch
from wasync.sync.hooks import Hooks, run_after_write, run_before_write

# Opens the session's write transaction: `db.write`, or a fenced one that is refused
# once another process holds the session (sessions/ownership.py).
WriteFn = Callable[[], AbstractContextManager[Connection]]


def commit_batch(
    db: Database,
    session_id: int,
    batch: Batch,
    hooks: Hooks = (),
    write: WriteFn | None = None,
) -> WriteResult:
    """Write the batch, session status changes and every hook's work, atomically."""
    now = int(time.time())
    with (write or db.write)() as conn:
        # First: learn the batch's pairs, merge, and key it canonically for the hooks.
        prepare(conn, session_id, batch, now)
        befores = run_before_write(conn, session_id, batch, hooks)
        result = write_batch(conn, session_id, batch, now)
        record_lifecycle(conn, session_id, batch)
        run_after_write(conn, session_id, batch, result, hooks, befores)
    return result


def record_lifecycle(conn: Connection, session_id: int, batch: Batch) -> None:
    """Session status and own JID from a batch's lifecycle events."""
    for event in batch.other:
        status = status_of(event)
        if status is not None:
            set_status(conn, session_id, *status, jid=own_jid(event))
        elif isinstance(event, ev.Paired):
            set_jid(conn, session_id, event.jid)


def own_jid(event: ev.Event) -> str | None:
    return event.jid if isinstance(event, ev.Connected | ev.Paired) else None


def status_of(event: ev.Event) -> tuple[SessionStatus, str | None] | None:
    match event:
        case ev.Connected():
            return SessionStatus.CONNECTED, None
        case ev.Disconnected(reason=reason):
            return SessionStatus.DISCONNECTED, reason
        case ev.LoggedOut(reason=reason, status=status):
            return status, reason
        case ev.PairingCode():
            return SessionStatus.PAIRING, None
        case _:
            return None
