"""Several nodes on one PostgreSQL database, in one test process: fair shares, live
events across nodes, calls carried out by the node that runs the session.

(tests/cluster/ runs real `wasync serve` processes and kills them.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wasync.api.install import api_services
from wasync.api.session_control import SessionControl
from wasync.assemble import build_runtime
from wasync.bus import BusEvent
from wasync.cluster.events import MAX_PAYLOAD, pack
from wasync.cluster.notify import Notifier
from wasync.config import Settings
from wasync.engines.factory import EngineFactory, SimulatorOptions
from wasync.errors import Conflict
from wasync.runtime import Runtime
from wasync.store.db import Database
from wasync.store.sessions import ensure_session

from ..waiting import bounded, eventually

pytestmark = pytest.mark.postgres


@contextlib.asynccontextmanager
async def node(
    url: str, name: str, data_dir: Path
) -> AsyncIterator[tuple[Runtime, SessionControl]]:
    settings = Settings(
        data_dir=data_dir / name,
        database_url=url,
        node_name=name,
        lease_seconds=3,
        avatar_worker=False,
    )
    runtime = build_runtime(settings)
    control, _ = api_services(runtime)
    runtime.manager.engines = EngineFactory(settings, SimulatorOptions(seed=3))
    await bounded(runtime.start(), 60, f"starting node {name}")
    try:
        await bounded(runtime.manager.assign(), 60, f"node {name}'s first assignment")
        runtime.manager.run_in_background()
        yield runtime, control
    finally:
        await bounded(runtime.stop(), 60, f"stopping node {name}")


def _sessions(url: str, names: list[str]) -> None:
    db = Database(url)
    db.migrate()
    try:
        with db.write() as conn:
            for name in names:
                ensure_session(conn, name, "simulator")
    finally:
        db.close()


def test_events_are_packed_under_the_notify_limit() -> None:
    small = [BusEvent("s", "message", {"text": "x" * 100}) for _ in range(200)]
    big = BusEvent("s", "message", {"text": "y" * 20_000})
    payloads, spills = pack("node-a", [*small[:100], big, *small[100:]])
    assert all(len(p) < MAX_PAYLOAD for p in payloads)
    assert len(spills) == 1 and "" in payloads  # the big one goes by reference, in place
    assert payloads.index("") > 0 and payloads.index("") < len(payloads) - 1


async def test_two_nodes_share_the_sessions_and_hand_them_over(
    pg_schema_url: str, tmp_path: Path
) -> None:
    names = [f"s{i}" for i in range(6)]
    _sessions(pg_schema_url, names)
    async with node(pg_schema_url, "a", tmp_path) as (a, _):
        await eventually(lambda: len(a.sessions) == 6, within=30)
        async with node(pg_schema_url, "b", tmp_path) as (b, _):
            # b's arrival halves a's share: a gives 3 back, b takes them.
            await eventually(lambda: len(a.sessions) == 3 and len(b.sessions) == 3, within=30)
            assert not set(a.sessions) & set(b.sessions)
        # b stopped (a drain): a takes its sessions back at once, not after the lease.
        await eventually(lambda: len(a.sessions) == 6, within=10)


async def test_live_events_of_a_session_reach_a_client_of_another_node_in_order(
    pg_schema_url: str, tmp_path: Path
) -> None:
    _sessions(pg_schema_url, ["x"])
    async with (
        node(pg_schema_url, "a", tmp_path) as (a, _),
        node(pg_schema_url, "b", tmp_path) as (b, _),
    ):
        await eventually(lambda: "x" in a.sessions or "x" in b.sessions, within=30)
        owner, other = (a, b) if "x" in a.sessions else (b, a)
        watch = other.bus.subscribe(session="x", topics=["probe"], maxsize=10_000)
        for i in range(300):
            owner.bus.publish(BusEvent("x", "probe", {"i": i}))
        owner.bus.publish(BusEvent("x", "probe", {"i": 300, "pad": "z" * 12_000}))  # spilled
        got: list[int] = []
        while len(got) < 301:
            event = await asyncio.wait_for(watch.get(), 30)
            assert event is not None and event.origin == owner.holder
            got.append(int(event.data["i"]))
        assert got == list(range(301))
        watch.close()


async def test_calls_are_carried_out_where_the_session_runs(
    pg_schema_url: str, tmp_path: Path
) -> None:
    _sessions(pg_schema_url, ["x"])
    async with (
        node(pg_schema_url, "a", tmp_path) as (a, ca),
        node(pg_schema_url, "b", tmp_path) as (b, cb),
    ):
        await eventually(lambda: "x" in a.sessions or "x" in b.sessions, within=30)
        here = cb if "x" in a.sessions else ca  # the node that does not run it
        progress = here.runtime.bus.subscribe(session="x", topics=["sync.progress"])
        report = await here.call("x", "sync_chats", {"limitPerChat": 3}, key="sync", patience=60)
        assert report["chats"] > 0 and report["messages"] > 0 and report["failedChats"] == []
        # The progress of the sync that ran on the other node reached this one.
        seen = []
        while progress._queue.qsize():
            event = progress._queue.get_nowait()
            assert event is not None
            seen.append(event.data["currentChat"])
        assert seen[0] == 0 and seen[-1] == report["chats"]
        # Its errors come back as the same errors.
        with pytest.raises(Conflict, match="not pairing"):
            await here.call("x", "pair_phone", {"phone": "+5511999990000"})
        # A sync while one runs: one of them is refused, cluster-wide.
        first = asyncio.ensure_future(here.call("x", "sync_chats", {}, key="sync"))
        await asyncio.sleep(0.05)
        with pytest.raises(Conflict, match="already running"):
            await here.call("x", "sync_chats", {}, key="sync")
        await first
        # Deleting through this node stops it over there first.
        await here.delete("x")
        await eventually(lambda: "x" not in a.sessions and "x" not in b.sessions, within=10)
        assert await asyncio.to_thread(lambda: _count_sessions(pg_schema_url)) == 0


def _count_sessions(url: str) -> int:
    from sqlalchemy import func, select

    from wasync.store.schema import sessions

    db = Database(url)
    try:
        with db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(sessions)).scalar_one())
    finally:
        db.close()


async def test_a_stopped_notifier_opens_no_connection(pg_schema_url: str) -> None:
    """A send racing the stop (a relay still draining at shutdown) must not leave a
    connection that nobody closes."""
    notifier = Notifier(pg_schema_url)
    await notifier.start()
    await notifier.send("wasync_test", ["before"])
    assert notifier.sent == 1
    sending = asyncio.create_task(notifier.send("wasync_test", ["racing"]))
    await notifier.stop()
    await sending
    await notifier.send("wasync_test", ["after"])
    assert notifier._sender is None  # nothing left open
    assert notifier.sent <= 2  # "after" was not sent
