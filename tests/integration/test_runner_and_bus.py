"""The generic job runner, the event bus and the runtime wiring."""

from __future__ import annotations

import asyncio
from math import inf
from pathlib import Path

from wasync.bus import BusEvent, EventBus
from wasync.config import Settings
from wasync.engines.simulator import Network, SimulatorEngine
from wasync.jobs import queries as queue
from wasync.jobs.kinds import JobKind
from wasync.jobs.outcome import Defer, Done, Retry
from wasync.jobs.outcome import JobOutcome as Outcome
from wasync.jobs.policy import RetryPolicy
from wasync.jobs.runner import JobRunner
from wasync.runtime import Runtime
from wasync.store.db import Database
from wasync.store.sessions import ensure_session

from ..waiting import eventually


async def test_runner_runs_retries_defers_and_gives_up(db: Database) -> None:
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
        for key in ("ok", "flaky", "later", "broken", "crash"):
            queue.enqueue(
                conn, "t", session_id=sid, unique_key=key, payload={"k": key}, max_attempts=3
            )
    tries: dict[str, int] = {}

    async def handler(job: queue.Job) -> Outcome:
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
    runner = JobRunner(db)
    runner.register(JobKind("t", handler, policy=policy, concurrency=2, per_session=False))
    await runner.start()

    def settled() -> bool:
        with db.read() as conn:
            c = queue.counts(conn, kind="t")["t"]
        return c["queued"] == c["running"] == 0

    await eventually(settled)
    await runner.stop()
    with db.read() as conn:
        c = queue.counts(conn, kind="t")["t"]
        errors = {e["unique_key"]: e["last_error"] for e in queue.recent_errors(conn, kind="t")}
    assert c == {"queued": 0, "running": 0, "done": 3, "failed": 2}
    assert tries == {"ok": 1, "flaky": 2, "later": 2, "broken": 1, "crash": 3}
    assert errors["broken"] == "no such thing"
    assert "RuntimeError: handler bug" in errors["crash"]


async def test_stopping_mid_job_gives_the_job_back(db: Database) -> None:
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
        queue.enqueue(conn, "slow", session_id=sid, unique_key="x")
    started = asyncio.Event()

    async def handler(job: queue.Job) -> Outcome:
        started.set()
        await asyncio.sleep(60)
        return Done()

    runner = JobRunner(db)
    runner.register(JobKind("slow", handler))
    await runner.start()
    await runner.add_session(sid)
    await asyncio.wait_for(started.wait(), 10)
    await runner.stop(grace=0.05)
    with db.read() as conn:
        (job,) = [queue.get_job(conn, 1)]
    assert job is not None and job.state == "queued" and job.attempts == 0


async def test_per_session_jobs_run_only_for_sessions_of_this_process(db: Database) -> None:
    with db.write() as conn:
        mine, theirs = ensure_session(conn, "a", "simulator"), ensure_session(conn, "b", "x")
        for sid in (mine, theirs):
            queue.enqueue(conn, "p", session_id=sid, unique_key="k")
    ran: list[int | None] = []

    async def handler(job: queue.Job) -> Outcome:
        ran.append(job.session_id)
        return Done()

    runner = JobRunner(db)
    runner.register(JobKind("p", handler))
    await runner.start()
    await runner.add_session(mine)
    await eventually(lambda: ran == [mine])
    await asyncio.sleep(0.1)
    assert ran == [mine]  # the other session's job waits for the process that runs it
    await runner.stop()


async def test_a_busy_session_does_not_starve_a_quiet_one(db: Database) -> None:
    """Each session has its own slot: 500 queued jobs of one session do not keep the
    other session's 3 waiting behind them."""
    with db.write() as conn:
        busy, quiet = ensure_session(conn, "busy", "simulator"), ensure_session(conn, "q", "x")
        for i in range(500):
            queue.enqueue(conn, "p", session_id=busy, unique_key=f"b{i}", now=1.0)
        for i in range(3):
            queue.enqueue(conn, "p", session_id=quiet, unique_key=f"q{i}", now=2.0)
    order: list[int | None] = []

    async def handler(job: queue.Job) -> Outcome:
        order.append(job.session_id)
        await asyncio.sleep(0.001)
        return Done()

    runner = JobRunner(db)
    runner.register(JobKind("p", handler))
    await runner.start()
    await runner.add_session(busy)
    await runner.add_session(quiet)
    await eventually(lambda: order.count(quiet) == 3, within=30)
    # The quiet session's jobs ran among the busy one's first few, not after all 500.
    assert len(order) < 20, order
    await runner.stop()


async def test_readiness_is_checked_before_claiming(db: Database) -> None:
    """A kind that is not ready for a session (a rate limit, say) leaves its jobs
    queued, not claimed and waiting in `running`."""
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
        for i in range(3):
            queue.enqueue(conn, "r", session_id=sid, unique_key=f"k{i}")
    gate = {"open": False}
    ran: list[str | None] = []

    async def handler(job: queue.Job) -> Outcome:
        ran.append(job.unique_key)
        return Done()

    runner = JobRunner(db)
    runner.register(JobKind("r", handler, ready=lambda _sid: 0.0 if gate["open"] else inf))
    await runner.start()
    await runner.add_session(sid)
    await asyncio.sleep(0.2)
    with db.read() as conn:
        assert queue.counts(conn, kind="r")["r"]["queued"] == 3
    assert ran == []
    gate["open"] = True
    runner.wake()
    await eventually(lambda: len(ran) == 3)
    await runner.stop()


async def test_one_target_holds_at_most_its_share_of_the_slots(db: Database) -> None:
    """A slow target (a webhook endpoint) takes at most `target_concurrency` slots: the
    other targets' jobs go on meanwhile."""
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
        for i in range(6):
            queue.enqueue(conn, "d", session_id=sid, unique_key=f"slow{i}", target="slow")
        for i in range(6):
            queue.enqueue(conn, "d", session_id=sid, unique_key=f"fast{i}", target="fast")
    release = asyncio.Event()
    in_flight: dict[str, int] = {"slow": 0, "fast": 0}
    peak = {"slow": 0}
    done: list[str] = []

    async def handler(job: queue.Job) -> Outcome:
        target = str(job.target)
        in_flight[target] += 1
        peak["slow"] = max(peak["slow"], in_flight["slow"])
        if target == "slow":
            await release.wait()
        in_flight[target] -= 1
        done.append(target)
        return Done()

    runner = JobRunner(db)
    runner.register(JobKind("d", handler, concurrency=4, per_session=False, target_concurrency=2))
    await runner.start()
    await eventually(lambda: done.count("fast") == 6)
    assert peak["slow"] == 2
    release.set()
    await eventually(lambda: done.count("slow") == 6)
    await runner.stop()


async def test_batches_take_one_target_in_order_one_batch_at_a_time(db: Database) -> None:
    """A batched kind (a broker endpoint) runs up to `batch` jobs of one target per call,
    in the order they were enqueued: a target's next batch is claimed while one runs
    (its cap), but handled only after it; a failed job of a batch is retried alone
    while the rest are done."""
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
        for i in range(23):
            for target in ("a", "b"):
                queue.enqueue(
                    conn, "pub", session_id=sid, unique_key=f"{target}{i}", target=target,
                    payload={"n": i}, max_attempts=3,
                )  # fmt: skip
    calls: list[tuple[str, list[int]]] = []
    in_flight: dict[str, int] = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}
    failed_once: set[int] = set()

    async def one(job: queue.Job) -> Outcome:  # pragma: no cover - batches only
        raise AssertionError("a batched kind runs its batch handler")

    async def batch(jobs: list[queue.Job]) -> list[Outcome]:
        (target,) = {str(j.target) for j in jobs}
        calls.append((target, [j.payload["n"] for j in jobs]))
        in_flight[target] += 1
        peak[target] = max(peak[target], in_flight[target])
        await asyncio.sleep(0.01)
        in_flight[target] -= 1
        out: list[Outcome] = []
        for j in jobs:
            if target == "a" and j.payload["n"] == 7 and j.id not in failed_once:
                failed_once.add(j.id)
                out.append(Retry("not acknowledged"))
            else:
                out.append(Done())
        return out

    policy = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0)
    runner = JobRunner(db)
    runner.register(
        JobKind(
            "pub", one, policy=policy, concurrency=4, per_session=False,
            target_concurrency=2, batch_handler=batch, batch=10,
        )
    )  # fmt: skip
    await runner.start()

    def settled() -> bool:
        with db.read() as conn:
            c = queue.counts(conn, kind="pub")["pub"]
        return c["done"] == 46

    await eventually(settled)
    await runner.stop()
    assert peak == {"a": 1, "b": 1}  # a target's batches are handled one after the other
    assert all(len(ns) <= 10 for _, ns in calls)
    for target in ("a", "b"):
        sent = [n for t, ns in calls if t == target for n in ns]
        assert sorted(sent) == sorted([*range(23), *([7] if target == "a" else [])])
        first_pass = [n for n in sent[:23] if n != 7 or target == "b"]
        assert first_pass == sorted(first_pass)  # in the order they were enqueued
    # Far fewer calls than jobs: batches really formed.
    assert len(calls) <= 10
    assert runner.processed["pub"] == 47


async def test_an_idle_runner_does_not_look_at_the_table(db: Database) -> None:
    """Nothing due, nothing enqueued: no claim at all (idle costs nothing); a commit
    that enqueues wakes it at once."""
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
    ran: list[str | None] = []

    async def handler(job: queue.Job) -> Outcome:
        ran.append(job.unique_key)
        return Done()

    runner = JobRunner(db, poll_interval=3600)
    runner.register(JobKind("i", handler))
    await runner.start()
    await runner.add_session(sid)
    await asyncio.sleep(0.05)
    claims = runner.claims
    await asyncio.sleep(0.5)
    assert runner.claims == claims
    with db.write() as conn:
        queue.enqueue(conn, "i", session_id=sid, unique_key="now")
    await eventually(lambda: ran == ["now"], within=5)
    await runner.stop()


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
