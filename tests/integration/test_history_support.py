"""Helpers shared by the history tests (no tests here): a runtime with history
installed over a simulator engine, and ways to wait for and read history jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from wasync.bus import Subscription
from wasync.config import Settings
from wasync.domain.models import Message
from wasync.engines.simulator import Network, NetworkConfig, SimulatorEngine
from wasync.history import HistoryOptions, HistoryService, install
from wasync.jobs import queries as queue
from wasync.runtime import Runtime, SessionHandle
from wasync.store.db import Database
from wasync.store.schema import jobs

from ..waiting import eventually
from .mirror import comparable, stored_messages

FAST = HistoryOptions(
    page_size=50,
    max_attempts=4,
    retry_delay=0.05,
    retry_max_delay=0.2,
    lease_seconds=5.0,
    gap_fill_delay=0.05,
    poll_interval=0.02,
)


def one_chat_network(messages: int, seed: int = 1) -> Network:
    """A network with a single individual chat holding every message."""
    return Network(
        NetworkConfig(seed=seed, contacts=2, groups=0, individual_chats=1, messages=messages)
    )


@dataclass
class Harness:
    runtime: Runtime
    service: HistoryService
    handle: SessionHandle
    progress: Subscription
    seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.runtime.db

    @property
    def session_id(self) -> int:
        return self.handle.session_id

    def drain_progress(self) -> list[dict[str, Any]]:
        """Every history.progress payload published so far (kept across calls)."""
        while not self.progress._queue.empty():
            event = self.progress._queue.get_nowait()
            if event is not None:
                self.seen.append(event.data)
        return self.seen

    def job(self, job_id: int) -> queue.Job:
        with self.db.read() as conn:
            found = queue.get_job(conn, job_id)
        assert found is not None
        return found

    def jobs(self, kind: str) -> list[queue.Job]:
        with self.db.read() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.id))
            return [queue.Job.from_row(r) for r in rows]

    async def finished(self, job_id: int, within: float = 60.0) -> queue.Job:
        await eventually(lambda: self.job(job_id).state in ("done", "failed"), within)
        return self.job(job_id)

    async def reconnect(self, engine: SimulatorEngine) -> None:
        """Connect again, and wait until the connect is committed (a gap scan queued,
        or the one still waiting told about it)."""

        def last_scan_change() -> float:
            with self.db.read() as conn:
                found = conn.execute(
                    select(func.max(jobs.c.updated_at)).where(jobs.c.kind == "history.gapscan")
                ).scalar_one_or_none()
            return float(found or 0.0)

        before = last_scan_change()
        await engine.connect()
        await eventually(lambda: last_scan_change() > before)

    async def settle(self, engine: SimulatorEngine) -> None:
        """Until everything delivered is committed and no history job is left to run."""
        await engine.drained()
        await self.handle.sync.flush()
        await self.idle()

    async def idle(self, within: float = 60.0) -> None:
        """Until no history job is queued or running."""

        def quiet() -> bool:
            with self.db.read() as conn:
                counts = queue.counts(conn, session_id=self.session_id)
            return all(
                c["queued"] == 0 and c["running"] == 0
                for kind, c in counts.items()
                if kind.startswith("history.")
            )

        await eventually(quiet, within, step=0.02)


@asynccontextmanager
async def running(
    db: Database,
    engine: SimulatorEngine,
    *,
    options: HistoryOptions = FAST,
    limit_per_chat: int = 20,
    initial_sync: bool = True,
    settings: Settings | None = None,
    before_start: Callable[[Runtime], object] | None = None,
) -> AsyncIterator[Harness]:
    runtime = Runtime(settings or Settings(limit_per_chat=limit_per_chat), db=db)
    service = install(runtime, options)
    if before_start is not None:
        before_start(runtime)
    await runtime.start()
    progress = runtime.bus.subscribe(topics=("history.progress",), maxsize=1_000_000)
    handle = await runtime.add_session("default", engine, engine_name="simulator")
    try:
        if initial_sync:
            await runtime.sync_chats("default")
        yield Harness(runtime, service, handle, progress)
    finally:
        await runtime.stop()


def assert_mirror_covers(
    db: Database, session_id: int, net: Network, wanted: list[Message]
) -> None:
    """Every wanted message is stored; whatever else is stored is the network's too.

    History pages may reach a little below what was asked (a page that crosses the
    watermark holds older messages too); those are real messages, kept.
    """
    got = stored_messages(db, session_id)
    want = {(m.key.chat_jid, m.key.sender_jid, m.key.message_id) for m in wanted}
    missing = want - set(got)
    assert not missing, f"{len(missing)} messages missing, e.g. {sorted(missing)[:3]}"
    for key, stored in got.items():
        truth = net.find_message(key[0], key[2])
        assert truth is not None, f"stored message {key} is not on the network"
        truth = comparable(truth)
        assert stored.key == truth.key, key
        assert (stored.timestamp, stored.kind, stored.from_me, stored.media, stored.quoted_id) == (
            truth.timestamp,
            truth.kind,
            truth.from_me,
            truth.media,
            truth.quoted_id,
        ), key
