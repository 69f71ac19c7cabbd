"""Work that must happen in the same transaction as a committed batch.

A hook runs inside the write transaction of every batch (live ingestion, initial
sync, history pages), after the rows are written. Use it for durable follow-ups that
must not be lost or duplicated by a crash between "rows committed" and "follow-up
recorded": enqueueing avatar jobs for new contacts, webhook deliveries (outbox).
Hooks must be quick and must only write through `conn`.

A hook that needs to see the rows as they were *before* the batch (webhooks announce
only new messages, not replays) is a `BeforeAfterHook`: its `before_write` runs before
the batch is written and returns what it read, which is handed back to its
`after_write`. The state goes from one call to the other explicitly, so several
sessions' batches can be written in one transaction (sync/writer.py) without their
hooks mixing up whose "before" is whose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Connection

from wasync.domain.batch import Batch
from wasync.store.writes import WriteResult

TransactionHook = Callable[[Connection, int, Batch, WriteResult], None]
Hooks = Sequence[TransactionHook]


@runtime_checkable
class BeforeAfterHook(Protocol):
    def before_write(self, conn: Connection, session_id: int, batch: Batch) -> Any: ...

    def after_write(
        self, conn: Connection, session_id: int, batch: Batch, result: WriteResult, before: Any
    ) -> None: ...


def run_before_write(conn: Connection, session_id: int, batch: Batch, hooks: Hooks) -> list[Any]:
    """Call right before writing `batch`: what each hook read (None for plain hooks)."""
    return [
        hook.before_write(conn, session_id, batch) if isinstance(hook, BeforeAfterHook) else None
        for hook in hooks
    ]


def run_after_write(
    conn: Connection,
    session_id: int,
    batch: Batch,
    result: WriteResult,
    hooks: Hooks,
    befores: Sequence[Any],
) -> None:
    """Call after writing `batch`, with what `run_before_write` returned for it."""
    for hook, before in zip(hooks, befores, strict=True):
        if isinstance(hook, BeforeAfterHook):
            hook.after_write(conn, session_id, batch, result, before)
        else:
            hook(conn, session_id, batch, result)
