"""A worker that dies mid-job: the lease expires, another worker finishes, nothing twice."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from wasync.avatars import AvatarConfig, Pace, install
from wasync.avatars.enqueue import KIND, Reason, enqueue_avatars
from wasync.avatars.records import save_avatar
from wasync.avatars.storage import AvatarStorage
from wasync.config import Settings
from wasync.engines.simulator import Faults, MediaServer, Network, PictureState, SimulatorEngine
from wasync.jobs import queries as queue
from wasync.media.store import media_store_for
from wasync.runtime import Runtime
from wasync.store.db import Database
from wasync.store.sessions import ensure_session

from ..waiting import eventually

SEED = 21
SESSION = "default"
LEASE = 1.0

# The worker process: a wasync runtime with the avatar service, fetching pictures from
# the parent's media server, so the parent sees its downloads even after killing it.
CHILD = """
import asyncio, sys
from wasync.avatars import AvatarConfig, Pace, avatar_service, install
from wasync.config import Settings
from wasync.engines.simulator import Network, RemoteMediaServer, SimulatorEngine
from wasync.runtime import Runtime
from wasync.store.db import Database

async def main() -> None:
    db_url, data_dir, seed, base_url, lease = sys.argv[1:6]
    network = Network.from_scale("tiny", int(seed))
    engine = SimulatorEngine(network, media_server=RemoteMediaServer(network, base_url))
    runtime = Runtime(Settings(data_dir=data_dir), db=Database(db_url))
    install(runtime, AvatarConfig(
        pace=Pace.every(0.01), lease_seconds=float(lease), poll_interval=0.02,
        refresh_every=3600,
    ))
    await runtime.start()
    await runtime.add_session("default", engine, engine_name="simulator")
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def config() -> AvatarConfig:
    return AvatarConfig(
        pace=Pace.every(0.01), lease_seconds=LEASE, poll_interval=0.02, refresh_every=3_600
    )


def a_shown_contact(network: Network) -> str:
    return next(
        c.jid for c in network.contacts() if network.picture_state(c.jid) is PictureState.SET
    )


@asynccontextmanager
async def second_worker(
    db: Database, data_dir: Path, network: Network, server: MediaServer
) -> AsyncIterator[Runtime]:
    runtime = Runtime(Settings(data_dir=data_dir), db=db)
    install(runtime, config())
    await runtime.start()
    engine = SimulatorEngine(network, media_server=server)
    await runtime.add_session(SESSION, engine, engine_name="simulator")
    try:
        yield runtime
    finally:
        await runtime.stop()


def the_job(db: Database) -> queue.Job:
    with db.read() as conn:
        job = queue.get_job(conn, 1)
    assert job is not None and job.kind == KIND
    return job


@pytest.mark.slow
async def test_a_killed_worker_is_taken_over_without_a_second_download(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    network = Network.from_scale("tiny", SEED)
    jid = a_shown_contact(network)
    picture = (jid, network.picture_id(jid) or "")
    with db.write() as conn:
        sid = ensure_session(conn, SESSION, "simulator")
        enqueue_avatars(conn, sid, [jid], Reason.MANUAL, max_attempts=3)
    faults = Faults(download_delay=60.0)  # the first download hangs until the kill
    with MediaServer(network, faults=faults) as server:
        args = [db_url, str(tmp_path), str(SEED), server.base_url, str(LEASE)]
        with (tmp_path / "child.log").open("wb") as log:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CHILD, *args, stdout=log, stderr=log
            )
            try:
                await eventually(lambda: server.downloads.started[picture] == 1, within=30)
                job = the_job(db)
                assert job.state == "running" and f":{child.pid}:" in (job.lease_owner or "")
            finally:
                child.send_signal(signal.SIGKILL)
                await child.wait()
        # The server notices the dead client: that download never completed.
        await eventually(lambda: server.downloads.abandoned[picture] == 1)
        faults.download_delay = 0.0

        async with second_worker(db, tmp_path, network, server):
            await eventually(lambda: the_job(db).state == "done", within=20)
        job = the_job(db)
        assert job.attempts == 2  # the killed try and the one that finished
        assert server.downloads.started[picture] == 2
        assert server.downloads.completed[picture] == 1  # one whole download, not two
        storage = AvatarStorage(media_store_for("auto", tmp_path, db))
        assert storage.read(SESSION, jid) == network.picture_bytes(*picture)
        assert storage.store.keys(storage.session_prefix(SESSION)) == [
            storage.key_for(SESSION, jid)
        ]
        folder = tmp_path / "media" / "avatars" / SESSION
        if not db.is_sqlite:
            assert not folder.exists()  # PostgreSQL: in the database every node reads
        else:  # the local store: no temporary file left behind either
            assert sorted(p.name for p in folder.iterdir()) == [f"{jid}.jpg"]


async def test_a_worker_dying_after_storing_costs_no_download(db: Database, tmp_path: Path) -> None:
    """Died after committing the picture, before marking the job done: the next worker
    sends the stored picture id, hears "unchanged", and downloads nothing."""
    network = Network.from_scale("tiny", SEED)
    jid = a_shown_contact(network)
    picture_id = network.picture_id(jid)
    assert picture_id is not None
    storage = AvatarStorage(media_store_for("auto", tmp_path, db))
    with db.write() as conn:
        sid = ensure_session(conn, SESSION, "simulator")
        enqueue_avatars(conn, sid, [jid], Reason.MANUAL, max_attempts=3)
        (claimed,) = queue.claim(conn, (KIND,), "dead-worker", lease_seconds=LEASE)
        storage.write(SESSION, jid, network.picture_bytes(jid, picture_id), conn=conn)
        path = storage.url_for(SESSION, jid)
        save_avatar(conn, sid, jid, picture=path, picture_id=picture_id, now=int(time.time()))
    with MediaServer(network) as server:
        async with second_worker(db, tmp_path, network, server) as runtime:
            await eventually(lambda: the_job(db).state == "done", within=20)
            service = runtime.services[-1]
            assert service.workers[SESSION].fetcher.outcomes["unchanged"] == 1
        assert sum(server.downloads.started.values()) == 0
    assert the_job(db).attempts == 2 and claimed.id == 1
