"""The connect hook: watermarks and the gap scan, in the transaction of `Connected`.

The session's pump commits a `Connected` event in a batch of its own
(sync/session.py), so this hook sees the mirror exactly as it was before the offline
replay that follows, and the watermarks it takes are durable together with the
connect itself. It also follows the offline replay (OfflineSyncStarted/Completed),
so the scan waits for the replay to land before it decides which chats have holes.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import Connection

from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.history import gaps
from wasync.history.kinds import GAP_SCAN, PRIORITY
from wasync.history.options import HistoryOptions
from wasync.jobs import queries as queue
from wasync.store.writes import WriteResult


class ReplayTracker:
    """Which sessions are in the middle of an offline replay (in memory, a hint only)."""

    def __init__(self) -> None:
        self._started: dict[int, float] = {}
        self._lock = threading.Lock()

    def started(self, session_id: int) -> None:
        with self._lock:
            self._started[session_id] = time.monotonic()

    def ended(self, session_id: int) -> None:
        with self._lock:
            self._started.pop(session_id, None)

    def replaying(self, session_id: int, patience: float) -> bool:
        """True while a replay runs, but not longer than `patience` seconds."""
        with self._lock:
            since = self._started.get(session_id)
        return since is not None and time.monotonic() - since < patience


class ConnectHook:
    """A transaction hook (sync/hooks.py) installed by `wasync.history.install`."""

    def __init__(self, options: HistoryOptions, replay: ReplayTracker) -> None:
        self.options = options
        self.replay = replay

    def __call__(
        self, conn: Connection, session_id: int, batch: Batch, result: WriteResult
    ) -> None:
        for event in batch.other:
            match event:
                case ev.Connected():
                    self.replay.ended(session_id)
                    if self.options.gap_fill:
                        self._connected(conn, session_id)
                case ev.OfflineSyncStarted():
                    self.replay.started(session_id)
                case ev.OfflineSyncCompleted() | ev.Disconnected() | ev.LoggedOut():
                    self.replay.ended(session_id)
                case _:
                    pass

    def _connected(self, conn: Connection, session_id: int) -> None:
        now = time.time()
        floor = gaps.open_gaps(conn, session_id, int(now))
        if floor is None:
            return
        scans = queue.pending_jobs(conn, GAP_SCAN, session_id)
        floors = [floor, *(int(j.payload.get("floor", floor)) for j in scans)]
        queued = [j for j in scans if j.state == queue.JobState.QUEUED.value]
        if queued:
            # A scan that has not started yet sees the new gaps too; it keeps the
            # oldest floor, so chats new during either outage are looked at.
            queue.replace_payload(conn, queued[0].id, {"floor": min(floors)}, now)
            return
        # None waiting (one may be running and have read the gaps already): add one.
        queue.enqueue(
            conn,
            GAP_SCAN,
            session_id=session_id,
            unique_key=f"scan-{now:.6f}",
            payload={"floor": min(floors)},
            run_at=now + self.options.gap_fill_delay,
            priority=PRIORITY[GAP_SCAN],
            max_attempts=self.options.max_attempts,
            now=now,
        )
