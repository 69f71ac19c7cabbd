"""A running wasync with the avatar service on a simulated network, and ground truth checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from wasync.avatars import AvatarConfig, AvatarService, Pace, install
from wasync.avatars.enqueue import KIND
from wasync.avatars.storage import AvatarStorage
from wasync.avatars.worker import SessionAvatars
from wasync.config import Settings
from wasync.engines.simulator import Faults, MediaServer, Network, PictureState, SimulatorEngine
from wasync.jobs import queries as queue
from wasync.runtime import Runtime
from wasync.store.db import Database
from wasync.store.schema import chats, contacts

from ..waiting import eventually

SESSION = "default"


def fast_config(interval: float = 0.01, **changes: Any) -> AvatarConfig:
    """Small rates and timings so a test runs in well under a second of pacing."""
    base = AvatarConfig(
        pace=Pace.every(interval),
        refresh_every=3_600.0,  # tests call refresh_once() themselves
        poll_interval=0.02,
        lease_seconds=5.0,
        retry_delay=0.01,
        retry_max_delay=0.05,
        rate_limit_pause=0.05,
        rate_limit_pause_max=0.2,
        max_attempts=3,
    )
    return base.with_changes(**changes)


@dataclass
class Harness:
    db: Database
    runtime: Runtime
    engine: SimulatorEngine
    network: Network
    service: AvatarService
    data_dir: Path
    session_id: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def worker(self) -> SessionAvatars:
        return self.service.workers[SESSION]

    @property
    def storage(self) -> AvatarStorage:
        assert self.service.storage is not None
        return self.service.storage

    @property
    def server(self) -> MediaServer:
        return self.engine.media_server

    def rows(self) -> dict[str, tuple[str | None, str | None, int | None]]:
        """JID -> (profile_picture, profile_picture_id, timestamp), contacts and chats."""
        out: dict[str, tuple[str | None, str | None, int | None]] = {}
        with self.db.read() as conn:
            for table in (contacts, chats):
                t = table.c
                stmt = select(
                    t.jid, t.profile_picture, t.profile_picture_id, t.profile_picture_timestamp
                ).where(t.session_id == self.session_id)
                for r in conn.execute(stmt):
                    known = out.get(r.jid)
                    row = (r.profile_picture, r.profile_picture_id, r.profile_picture_timestamp)
                    assert known is None or known == row, f"contact and chat disagree: {r.jid}"
                    out[r.jid] = row
        return out

    def job_counts(self) -> dict[str, int]:
        with self.db.read() as conn:
            return queue.counts(conn, kind=KIND, session_id=self.session_id)[KIND]

    def pending(self) -> int:
        counts = self.job_counts()
        return counts["queued"] + counts["running"]

    async def ingested(self) -> None:
        """Wait until every event the engine pushed is committed (and its hooks ran)."""
        await self.engine.drained()
        await self.runtime.session(SESSION).sync.flush()

    async def settle(self, within: float = 20.0) -> None:
        """Wait until no avatar job of the session is queued or running."""
        await eventually(lambda: self.pending() == 0, within=within, step=0.02)

    def mirrored_jids(self) -> list[str]:
        return sorted({c.jid for c in self.network.contacts()} | set(self.network.chat_jids()))

    def assert_pictures_mirrored(self, jids: list[str] | None = None) -> None:
        """Each JID has the network's current picture stored, byte for byte, or 'none'."""
        rows = self.rows()
        for jid in jids if jids is not None else self.mirrored_jids():
            picture, picture_id, timestamp = rows[jid]
            stored = self.storage.read(SESSION, jid)
            assert timestamp is not None, f"{jid} was never checked"
            current = self.network.picture_id(jid)
            if self.network.picture_state(jid) is PictureState.SET:
                assert current is not None
                assert picture == f"/media/avatars/{SESSION}/{jid}.jpg", jid
                assert picture_id == current, jid
                assert stored == self.network.picture_bytes(jid, current), jid
            else:
                assert (picture, picture_id) == ("none", None), jid
                assert stored is None, jid


@asynccontextmanager
async def running(
    db: Database,
    data_dir: Path,
    *,
    config: AvatarConfig | None = None,
    faults: Faults | None = None,
    seed: int = 5,
    scale: str = "tiny",
    settings: Settings | None = None,
    sync: bool = True,
    before_start: Callable[[Runtime], object] | None = None,
) -> AsyncIterator[Harness]:
    """A runtime with avatars installed and one simulator session, synced unless told not."""
    network = Network.from_scale(scale, seed)
    engine = SimulatorEngine(network, faults or Faults())
    runtime = Runtime(settings or Settings(data_dir=data_dir), db=db)
    service = install(runtime, config or fast_config())
    if before_start is not None:
        before_start(runtime)
    await runtime.start()
    try:
        handle = await runtime.add_session(SESSION, engine, engine_name="simulator")
        harness = Harness(db, runtime, engine, network, service, data_dir, handle.session_id)
        if sync:
            await runtime.sync_chats(SESSION, 0)  # the directory only: no messages needed
        yield harness
    finally:
        await runtime.stop()
