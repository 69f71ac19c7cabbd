"""A runtime with delivery installed, on the test database, for webhook and Discord tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from wasync.config import Settings
from wasync.delivery import Delivery, DeliveryService, admin, delivery_of, install
from wasync.delivery.endpoints import DELIVERY_KINDS, Endpoint
from wasync.delivery.streams import log as stream_log
from wasync.jobs import queries as queue
from wasync.runtime import Runtime
from wasync.store.db import Database
from wasync.store.schema import jobs, stream_cursors
from wasync.store.sessions import ensure_session

SECRET = "whsec_receiver-secret-0123456789"
FAST = {
    "webhook_allowed_networks": "127.0.0.0/8",
    "webhook_retry_base": 0.05,
    "webhook_retry_max": 0.2,
    "webhook_poll_interval": 0.05,
    "webhook_timeout": 5.0,
    "webhook_circuit_seconds": 0.2,
}


@dataclass
class Harness:
    runtime: Runtime
    delivery: Delivery
    service: DeliveryService
    db: Database
    sid: int

    async def endpoint(self, url: str, events: str | list[str] = "*", **kwargs: Any) -> Endpoint:
        kwargs.setdefault("secret", None if kwargs.get("kind") == "discord" else SECRET)
        found = await admin.add_endpoint(
            self.db, self.delivery.guard, "default", url, events, **kwargs
        )
        self.delivery.endpoints.invalidate()
        return found

    def record(self, topic: str, data: dict[str, Any]) -> None:
        """What the avatar worker does: an outbox record in its own write transaction."""
        with self.db.write() as conn:
            self.runtime.outbox.record(conn, self.sid, topic, data)

    def deliveries(self, state: str | None = None) -> list[queue.Job]:
        with self.db.read() as conn:
            stmt = select(jobs).where(jobs.c.kind.in_(DELIVERY_KINDS))
            if state is not None:
                stmt = stmt.where(jobs.c.state == state)
            return [queue.Job.from_row(r) for r in conn.execute(stmt.order_by(jobs.c.id))]

    def pumps(self, state: str | None = None) -> list[queue.Job]:
        """The broker endpoints' pump jobs."""
        with self.db.read() as conn:
            stmt = select(jobs).where(jobs.c.kind == stream_log.PUMP)
            if state is not None:
                stmt = stmt.where(jobs.c.state == state)
            return [queue.Job.from_row(r) for r in conn.execute(stmt.order_by(jobs.c.id))]

    def backlog(self) -> int:
        """Events waiting in broker endpoints' logs."""
        with self.db.read() as conn:
            return stream_log.waiting(conn)

    def positions(self) -> dict[int, tuple[int, int]]:
        """(head, sent) of each broker endpoint's log."""
        with self.db.read() as conn:
            rows = conn.execute(select(stream_cursors)).all()
        return {r.endpoint_id: (r.head, r.sent) for r in rows}

    def settled(self) -> bool:
        pending = [j for j in (*self.deliveries(), *self.pumps()) if j.state in queue.PENDING]
        return not pending and self.backlog() == 0


def avatar_data(jid: str, picture_id: str, sha256: str = "0" * 64) -> dict[str, Any]:
    return {
        "session": "default",
        "jid": jid,
        "phone": jid.split("@")[0],
        "pictureUrl": f"/media/avatars/default/{jid}.jpg",
        "pictureId": picture_id,
        "sha256": sha256,
    }


@asynccontextmanager
async def started(db: Database, data_dir: Path, **settings: Any) -> AsyncIterator[Harness]:
    runtime = Runtime(Settings(data_dir=data_dir, **{**FAST, **settings}), db=db)
    install(runtime)
    await runtime.start()
    with db.write() as conn:
        sid = ensure_session(conn, "default", "simulator")
    found = delivery_of(runtime)
    assert found is not None
    try:
        yield Harness(runtime, found[0], found[1], db, sid)
    finally:
        await runtime.stop()
