"""The generic job runner, the event bus and the runtime wiring."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wasync.bus import BusEvent, EventBus
from wasync.config import Settings
from wasync.engines.simulator import Network, SimulatorEngine
from wasync.runtime import Runtime
from wasync.store import jobs as J
from wasync.store.db import Database
from wasync.store.retry import RetryPolicy
from wasync.store.sessions import ensure_session
from wasync.workers.runner import Defer, Done, JobRunner, Outcome, Retry

from ..waiting import eventually


async def test_runner_runs_retries_defers_and_gives_up(db: Database) -> None:
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
        for key in ("ok", "flaky", "later", "broken", "crash"):
            J.enqueue(conn, "t", session_id=sid, unique_key=key, payload={"k": key}, max_attempts=3)
    tries: dict[str, int] = {}

    async def handler(job: J.Job) -> Outcome:
        key = job.payload["k"]
        tries[key] = tries.get(key, 0) + 1
        if key == "flaky" and tries[key] < 2:
            return Retry("try again")
        if key == "later" and tries[key] < 2:
            return Defer(0.0, "paused")
        if key == "broken":
            return Retry("no such thing", permanent=True)
        if key == "crash":
            raise RuntimeError("handler bug")
        return Done()

    policy = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0)
    runner = JobRunner(db, ("t",), handler, poll_interval=0.01, policy=policy, concurrency=2)
    runner.start()

    def settled() -> bool:
        with db.read() as conn:
            c = J.counts(conn, kind="t")["t"]
        return c["queued"] == c["running"] == 0

    await eventually(settled)
    await runner.stop()
    with db.read() as conn:
        c = J.counts(conn, kind="t")["t"]
        errors = {e["unique_key"]: e["last_error"] for e in J.recent_errors(conn, kind="t")}
    assert c == {"queued": 0, "running": 0, "done": 3, "failed": 2}
    assert tries == {"ok": 1, "flaky": 2, "later": 2, "broken": 1, "crash": 3}
    assert errors["broken"] == "no such thing"
    assert "RuntimeError: handler bug" in errors["crash"]


async def test_stopping_mid_job_gives_the_job_back(db: Database) -> None:
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
        J.enqueue(conn, "slow", session_id=sid, unique_key="x")
    started = asyncio.Event()

    async def handler(job: J.Job) -> Outcome:
        started.set()
        await asyncio.sleep(60)
        return Done()

    runner = JobRunner(db, ("slow",), handler, poll_interval=0.01)
    runner.start()
    await asyncio.wait_for(started.wait(), 10)
    await runner.stop(grace=0.05)
    with db.read() as conn:
        (job,) = [J.get_job(conn, 1)]
    assert job is not None and job.state == "queued" and job.attempts == 0


async def test_bus_never_blocks_and_drops_oldest_for_slow_subscribers() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=3, session="a")
    other = bus.subscribe(topics=["chat"])
    for i in range(10):
        bus.publish(BusEvent("a", "message", {"i": i}))
    bus.publish(BusEvent("b", "chat", {"jid": "x"}))
    assert slow.dropped == 7
    got = [(await slow.get()) for _ in range(3)]
    assert [e.data["i"] for e in got if e is not None] == [7, 8, 9]
    event = await other.get()
    assert event is not None and event.session == "b"
    bus.close()
    assert await slow.get() is None


async def test_runtime_publishes_committed_events_and_progress(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path))
    await runtime.start()
    sub = runtime.bus.subscribe(session="default")
    net = Network.from_scale("tiny", 2)
    engine = SimulatorEngine(net)
    await runtime.add_session("default", engine, engine_name="simulator")
    report = await runtime.sync_chats("default", 3)
    await engine.push_live(5)
    await engine.drained()
    await runtime.stop()
    topics: list[str] = []
    progress = []
    while (e := await sub.get()) is not None:
        topics.append(e.topic)
        if e.topic == "sync.progress":
            progress.append(e.data)
    assert report.chats == len(net.chat_jids())
    assert progress[0]["currentChat"] == 0 and len(progress) == 1 + 2 * report.chats
    assert "message" in topics and "session.status" in topics
