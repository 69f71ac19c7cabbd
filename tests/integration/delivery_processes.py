"""Delivery work for tests with real processes: a queue of avatar events recorded for
one endpoint, and `wasync webhooks deliver` processes that work it off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from wasync.config import Settings
from wasync.delivery import admin
from wasync.delivery.worker import Delivery
from wasync.outbox import Outbox
from wasync.store.db import Database
from wasync.store.sessions import ensure_session

from .webhooks_harness import FAST, avatar_data

WASYNC = str(Path(sys.executable).parent / "wasync")


def jid(i: int) -> str:
    """The number of the i-th picture `enqueue_avatars` records."""
    return f"55119999{i:05d}@s.whatsapp.net"


async def enqueue_avatars(
    db: Database, tmp_path: Path, url: str, events: int, secret: str | None
) -> None:
    """What the avatar worker does, `events` times: rows and outbox in one transaction
    each, for one endpoint at `url`."""
    delivery = Delivery(Settings(data_dir=tmp_path, **FAST), db)
    outbox = Outbox()
    outbox.listen(delivery.recorder.on_outbox)
    with db.write() as conn:
        sid = ensure_session(conn, "default", "simulator")
    await admin.add_endpoint(db, delivery.guard, "default", url, ["avatar"], secret=secret)
    delivery.endpoints.invalidate()
    for i in range(events):
        with db.write() as conn:
            outbox.record(conn, sid, "avatar", avatar_data(jid(i), str(i)))


def deliver(
    db: Database, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """A `wasync webhooks deliver` process on `db`, with short leases and retries."""
    return subprocess.Popen(
        [WASYNC, "webhooks", "deliver", *args],
        env={
            **os.environ,
            "WASYNC_DATA_DIR": str(tmp_path),
            "WASYNC_DATABASE_URL": db.url,
            "WASYNC_WEBHOOK_LEASE_SECONDS": "1.5",
            "WASYNC_WEBHOOK_POLL_INTERVAL": "0.1",
            "WASYNC_WEBHOOK_RETRY_BASE": "0.1",
            **(env or {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
