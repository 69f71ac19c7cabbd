"""Work that must happen in the same transaction as a committed batch.

A hook runs inside the write transaction of every batch (live ingestion, initial
sync, history pages), after the rows are written. Use it for durable follow-ups that
must not be lost or duplicated by a crash between "rows committed" and "follow-up
recorded": enqueueing avatar jobs for new contacts, webhook deliveries (outbox).
Hooks must be quick and must only write through `conn`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from wasync.domain.batch import Batch
from wasync.store.writes import WriteResult

TransactionHook = Callable[[Connection, int, Batch, WriteResult], None]
Hooks = Sequence[TransactionHook]


def run_before_write(conn: Connection, session_id: int, batch: Batch, hooks: Hooks) -> None:
    """Call right before `write_batch`: hooks with a `before_write(conn, session_id,
    batch)` method read what the batch is about to change (webhooks announce only
    new messages, not replays). A hook without one costs nothing here."""
    for hook in hooks:
        before = getattr(hook, "before_write", None)
        if before is not None:
            before(conn, session_id, batch)
