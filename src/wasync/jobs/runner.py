"""One job runner per process: claims due jobs of every registered kind and runs them.

Work is organised in *lanes*: a kind (or a group of kinds sharing one budget) and a
session, or the kind alone for jobs that are not tied to a running session
(deliveries). Each lane has its own concurrency, so a session with 10,000 queued
pictures takes its one slot like a session with 10, and its own readiness (the
avatar pace), checked before claiming so that a claimed job never sits in `running`
through a wait.

The runner does nothing while nothing is due: it remembers when each lane's next job
is due and sleeps until then, or until it is woken (a job was enqueued in this
process, a notification arrived from another, a session connected). A slow poll
only covers what no notification announced (a crashed worker's expiring lease).

Handlers return an outcome (jobs/outcome.py); the runner records it with the kind's
retry policy, shielded from cancellation, so stopping never leaves a finished job
looking unfinished. A worker that dies outright leaves leases that expire, and
`release_dead_leases` takes over at once those of a dead process on this host.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from sqlalchemy import Connection

from wasync.jobs import queries as queue
from wasync.jobs import wakeups
from wasync.jobs.kinds import JobKind
from wasync.jobs.outcome import Defer, Done, JobOutcome, Retry
from wasync.store.db import Database

log = logging.getLogger(__name__)

Lane = tuple[str, int | None]  # (budget, session id or None)
WriteFn = Callable[[], AbstractContextManager[Connection]]

RECLAIM_DELAY = 1.0  # seconds before claiming again rows another claim held
DEFAULT_POLL = 10.0  # seconds between looks at the table when no wake-up came
HEARTBEAT_FRACTION = 3  # leases are renewed every lease / 3 seconds
WAKE_FILE_CHECK = 1.0  # seconds between looks at the SQLite wake file (jobs/wakeups.py)


@dataclass(slots=True)
class _Budget:
    name: str
    kinds: list[JobKind] = field(default_factory=list)

    @property
    def first(self) -> JobKind:
        return self.kinds[0]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.kinds)


@dataclass(frozen=True, slots=True)
class _Want:
    lane: Lane
    free: int
    targets: dict[str, int]  # slots in flight per target of the lane's budget


@dataclass(slots=True)
class _Claimed:
    lane: Lane
    jobs: list[list[queue.Job]]  # what each slot runs: one job, or a batch of one target
    failed: bool = False
    exhausted: bool = False  # fewer than asked: nothing more may be taken now
    next_due: float | None = None
    capped: bool = False


@dataclass(slots=True)
class _Running:
    """What one slot runs: a job, or a batch of jobs of one target (same kind)."""

    jobs: list[queue.Job]
    kind: JobKind
    lane: Lane
    task: asyncio.Task[None] | None = None

    @property
    def first(self) -> queue.Job:
        return self.jobs[0]


class JobRunner:
    def __init__(
        self,
        db: Database,
        *,
        owner: str | None = None,
        poll_interval: float = DEFAULT_POLL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.owner = owner or queue.process_owner("jobs")
        self.poll_interval = poll_interval
        self._clock = clock
        self.kinds: dict[str, JobKind] = {}
        self._budgets: dict[str, _Budget] = {}
        # Sessions this process runs, with the write transaction that proves it still
        # does (a fenced write, sessions/ownership.py).
        self._sessions: dict[int, WriteFn] = {}
        # When each lane's next job is due, and a heap of the same for the soonest one
        # (entries whose time no longer matches `_due` are stale and skipped).
        self._due: dict[Lane, float] = {}
        self._heap: list[tuple[float, int, Lane]] = []
        self._seq = itertools.count()
        self._idle: set[Lane] = set()  # due, but waiting to be ready (offline, paced)
        # Lanes where something happened (a job finished, one was enqueued) while a claim
        # for them was in flight: what that claim learnt may be out of date.
        self._touched: set[Lane] = set()
        self._in_flight: Counter[Lane] = Counter()
        self._targets: Counter[tuple[str, str]] = Counter()
        # Batches of one target run one after the other, in the order they were claimed
        # (a FIFO lock taken as their task starts): the next batch is claimed while the
        # one before is being sent, and still goes out after it.
        self._serial: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}
        self._running: dict[int, _Running] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._reseed = True
        self._wake_file = wakeups.WakeFile.of(db)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self.processed: Counter[str] = Counter()
        self.claims = 0  # claim transactions (tests and figures)

    # Registration.

    def register(self, kind: JobKind) -> None:
        if kind.name in self.kinds:
            raise ValueError(f"job kind {kind.name!r} is registered twice")
        budget = self._budgets.setdefault(kind.budget, _Budget(kind.budget))
        if budget.kinds and budget.first.per_session != kind.per_session:
            raise ValueError(f"job kinds of budget {kind.budget!r} must agree on per_session")
        self.kinds[kind.name] = kind
        budget.kinds.append(kind)
        self._reseed = True
        self.wake()

    async def add_session(self, session_id: int, write: WriteFn | None = None) -> None:
        """This process runs `session_id` now: claim its per-session jobs.

        Jobs of the session still leased by someone else are made claimable at once:
        whoever ran them (a process that died, or the node this session was taken
        from) can no longer record anything for it.
        """
        kinds = tuple(k.name for k in self.kinds.values() if k.per_session)
        fenced = write or self.db.write

        def release() -> int:
            with fenced() as conn:
                return queue.release_session_leases(conn, session_id, kinds, self.owner)

        if kinds:
            released = await asyncio.to_thread(release)
            if released:
                log.info("session %s: resuming %d job(s) of another worker", session_id, released)
        self._sessions[session_id] = fenced
        self._reseed = True
        self.wake()

    async def remove_session(self, session_id: int, grace: float = 5.0) -> None:
        """Stop claiming for a session; let its jobs in hand finish for up to `grace`
        seconds, then give the rest back (they are deferred at once, not failed)."""
        self._sessions.pop(session_id, None)
        for lane in [lane for lane in self._due if lane[1] == session_id]:
            self._due.pop(lane, None)
        me = asyncio.current_task()
        tasks = [
            r.task
            for r in self._running.values()
            if r.first.session_id == session_id
            and r.kind.per_session
            and r.task is not None
            and r.task is not me  # a job that stops its own session (a command) goes on
        ]
        await self._finish(tasks, grace)

    def session_ids(self) -> set[int]:
        return set(self._sessions)

    # Wake-ups.

    def wake(self) -> None:
        """Look again now (readiness may have changed: a session connected, say)."""
        now = self._clock()
        for lane in self._idle:
            if lane in self._due:
                self._set_due(lane, min(self._due[lane], now))
        self._idle.clear()
        self._wake.set()

    def notify(self, kind: str, session_id: int | None, run_at: float | None = None) -> None:
        """A job of `kind` was committed for `session_id`: due at `run_at` (now if None)."""
        found = self.kinds.get(kind)
        if found is None:
            return
        lane = self._lane_of(found, session_id)
        when = self._clock() if run_at is None else run_at
        self._touched.add(lane)
        if when < self._due.get(lane, math.inf):
            self._set_due(lane, when)
            self._wake.set()

    def _set_due(self, lane: Lane, when: float) -> None:
        self._due[lane] = when
        heapq.heappush(self._heap, (when, next(self._seq), lane))

    def poll_now(self) -> None:
        """Read the whole queue again (something may have been enqueued elsewhere)."""
        self._reseed = True
        self._wake.set()

    @staticmethod
    def _lane_of(kind: JobKind, session_id: int | None) -> Lane:
        return (kind.budget, session_id if kind.per_session else None)

    # Lifecycle.

    async def start(self) -> None:
        def release() -> int:
            with self.db.write() as conn:
                return queue.release_dead_leases(conn, tuple(self.kinds))

        if self.kinds:
            released = await asyncio.to_thread(release)
            if released:
                log.info("resuming %d job(s) of a stopped process", released)
        self._stop.clear()
        self._loop = asyncio.get_running_loop()
        self.db.on_commit(wakeups.TOPIC, self._committed)
        self._loop_task = asyncio.create_task(self._run_loop(), name="jobs-runner")
        self._loop_task.add_done_callback(_log_crash)
        self._beat_task = asyncio.create_task(self._heartbeats(), name="jobs-heartbeat")
        self._beat_task.add_done_callback(_log_crash)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; finish the jobs in hand (up to `grace` s), give back the rest."""
        self._stop.set()
        self._wake.set()
        self.db.remove_commit_listener(wakeups.TOPIC, self._committed)
        for task in (self._loop_task,):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._loop_task = None
        await self._finish([r.task for r in self._running.values() if r.task is not None], grace)
        if self._beat_task is not None:
            self._beat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat_task
            self._beat_task = None

    async def _finish(self, tasks: list[asyncio.Task[None]], grace: float) -> None:
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()  # _run gives an interrupted job back at once
        await asyncio.gather(*tasks, return_exceptions=True)

    def _committed(self, items: set[tuple[object, ...]]) -> None:
        # Called in the committing thread (store/db.py): hop onto the runner's loop.
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for kind, session_id in items:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self.notify, str(kind), session_id)  # type: ignore[arg-type]

    # The loop.

    async def _run_loop(self) -> None:
        next_poll = 0.0
        while not self._stop.is_set():
            # Cleared before looking: a wake-up that comes while we look is kept.
            self._wake.clear()
            now = self._clock()
            if self._reseed or now >= next_poll:
                self._reseed = False
                next_poll = now + self.poll_interval
                try:
                    found = await asyncio.to_thread(self._seed)
                except Exception:
                    log.exception("jobs: could not read the queue; trying again later")
                else:
                    self._learn(found)
            now = self._clock()
            wanted, wake_at = self._wanted(now)
            if wanted:
                # The thread only talks to the database; what it learnt is applied here,
                # on the loop, where every other change to the runner's state happens.
                try:
                    results = await asyncio.to_thread(self._claim, wanted, now)
                except Exception:
                    # The database is down or busy: claimed leases (if any) expire and
                    # the jobs come back; try again after a pause.
                    log.exception("jobs: claiming failed")
                    results = [_Claimed(item.lane, [], failed=True) for item in wanted]
                for result in results:
                    self._claimed(result, now)
                continue
            await self._sleep(min(wake_at, next_poll) - self._clock())

    async def _sleep(self, seconds: float) -> None:
        """Sleep until woken or `seconds` passed; with SQLite, also until another
        process touched the wake file (checked once a second: a stat, no query)."""
        while seconds > 0:
            step = seconds if self._wake_file is None else min(seconds, WAKE_FILE_CHECK)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), step)
                return
            seconds -= step
            if self._wake_file is not None and self._wake_file.changed():
                self._reseed = True
                return

    def _wanted(self, now: float) -> tuple[list[_Want], float]:
        """Lanes to claim for now (with their free slots), and when to look again.

        Only lanes that are due are looked at (a heap), so the cost of a look does not
        grow with the number of idle sessions.
        """
        wanted: list[_Want] = []
        later: list[tuple[Lane, float]] = []
        seen: set[Lane] = set()
        while self._heap and self._heap[0][0] <= now:
            due, _, lane = heapq.heappop(self._heap)
            if self._due.get(lane) != due or lane in seen:
                continue  # stale entry, or a second one for a lane looked at already
            seen.add(lane)
            budget = self._budgets.get(lane[0])
            session_id = lane[1]
            if budget is None or (budget.first.per_session and session_id not in self._sessions):
                self._due.pop(lane, None)  # not ours (any more): its owner runs it
                continue
            kind = budget.first
            free = kind.concurrency - self._in_flight[lane]
            if free <= 0:
                continue  # stays due; a finishing job puts it back on the heap
            if kind.ready is not None and session_id is not None:
                wait = kind.ready(session_id)
                if wait > 0:
                    # Not ready: look again when it should be, or when woken (a session
                    # connected, a pause ended early), whichever comes first.
                    self._idle.add(lane)
                    if math.isfinite(wait):
                        later.append((lane, now + wait))
                    continue
                self._idle.discard(lane)
            targets = {t: n for (b, t), n in self._targets.items() if b == budget.name}
            self._touched.discard(lane)
            wanted.append(_Want(lane, free, targets))
        for lane, when in later:
            self._set_due(lane, when)
        wake_at = self._heap[0][0] if self._heap else math.inf
        return wanted, wake_at

    def _seed(self) -> list[tuple[str, int | None, float]]:
        """Every (kind, session) with pending work, read from the table itself."""
        with self.db.read() as conn:
            return queue.pending_sessions(conn, tuple(self.kinds), self.owner)

    def _learn(self, found: list[tuple[str, int | None, float]]) -> None:
        for kind_name, session_id, when in found:
            kind = self.kinds.get(kind_name)
            if kind is None:
                continue
            lane = self._lane_of(kind, session_id)
            # Pushed even when the lane already has a due time: that time may have no
            # heap entry (a lane waiting for a finishing job), and the poll is the
            # fallback that must never be stuck behind such a wait.
            self._set_due(lane, min(when, self._due.get(lane, math.inf)))

    def _claimed(self, result: _Claimed, now: float) -> None:
        """Apply what a claim found (on the loop)."""
        lane = result.lane
        for slot in result.jobs:
            self._launch(slot)
        if result.failed:
            if lane in self._due:
                self._set_due(lane, now + 1.0)
            return
        if lane in self._touched:
            # Something changed while claiming: look again rather than trust the claim.
            self._touched.discard(lane)
            self._set_due(lane, min(self._due.get(lane, now), now))
            return
        if not result.exhausted:
            return  # all free slots taken: a finishing job puts the lane back
        if result.next_due is None:
            self._due.pop(lane, None)
        elif result.capped and result.next_due <= now and self._in_flight[lane] > 0:
            # Only targets at their cap have due work: a finishing job wakes the lane.
            self._due[lane] = result.next_due
        elif result.next_due <= now:
            # Due work that this claim could not take and no job of ours to wake the
            # lane when it ends: another node's claim holds those rows (SKIP LOCKED),
            # or they are at their cap there. Look again shortly.
            self._set_due(lane, now + RECLAIM_DELAY)
        else:
            self._set_due(lane, result.next_due)

    def _claim(self, wanted: list[_Want], now: float) -> list[_Claimed]:
        """Claim for each lane: one transaction per write context (fenced per session).

        Runs in a worker thread: it reads and writes the database only.
        """
        self.claims += 1
        results: list[_Claimed] = []
        by_writer: dict[int | None, list[_Want]] = {}
        for item in wanted:
            budget = self._budgets[item.lane[0]]
            key = item.lane[1] if budget.first.per_session else None
            by_writer.setdefault(key, []).append(item)
        for session_id, items in by_writer.items():
            write = self._sessions.get(session_id) if session_id is not None else self.db.write
            if write is None:
                results += [_Claimed(item.lane, [], failed=True) for item in items]
                continue
            try:
                with write() as conn:
                    found = [self._claim_lane(conn, item, now) for item in items]
            except Exception:
                if session_id is None:
                    raise
                # A fenced write refused (the session moved) or a session-level failure:
                # the other sessions go on; ownership notices and stops this one.
                log.warning("jobs: cannot claim for session %s", session_id, exc_info=True)
                found = [_Claimed(item.lane, [], failed=True) for item in items]
            results += found
        return results

    def _claim_lane(self, conn: Connection, want: _Want, now: float) -> _Claimed:
        lane, free = want.lane, want.free
        budget = self._budgets[lane[0]]
        kind = budget.first

        def take(limit: int, skip: tuple[str, ...]) -> list[queue.Job]:
            return queue.claim(
                conn,
                budget.names,
                self.owner,
                lease_seconds=max(k.lease_seconds for k in budget.kinds),
                limit=limit,
                session_id=lane[1],
                any_session=not kind.per_session,
                exclude_targets=skip,
                now=now,
            )

        cap = kind.target_concurrency
        batched = any(k.batch_handler is not None for k in budget.kinds)
        got: list[list[queue.Job]]
        if cap is None and not batched:
            got = [[job] for job in take(free, ())]
        else:
            # One slot at a time, so that no target passes its cap within this claim
            # either (a batched target without a cap: one batch).
            got = []
            counts = Counter(want.targets)
            most = cap or 1
            skip = {t for t, n in counts.items() if n >= most}
            while len(got) < free:
                one = take(1, tuple(sorted(skip)))
                if not one:
                    break
                got.append(one + self._fill_batch(conn, one[0], now))
                target = one[0].target
                if target is not None:
                    counts[target] += 1
                    if counts[target] >= most:
                        skip.add(target)
        if len(got) >= free:
            return _Claimed(lane, got)
        # Nothing more is due now (that we may take): when will something be?
        nxt = [
            queue.next_due(conn, name, lane[1], self.owner, any_session=not kind.per_session)
            for name in budget.names
        ]
        due = min((w for w in nxt if w is not None), default=None)
        return _Claimed(lane, got, exhausted=True, next_due=due, capped=cap is not None or batched)

    def _fill_batch(self, conn: Connection, first: queue.Job, now: float) -> list[queue.Job]:
        """More due jobs of `first`'s target, when its kind runs them in batches."""
        kind = self.kinds.get(first.kind)
        if kind is None or kind.batch_handler is None or kind.batch < 2 or first.target is None:
            return []
        return queue.claim(
            conn,
            (kind.name,),
            self.owner,
            lease_seconds=kind.lease_seconds,
            limit=kind.batch - 1,
            session_id=first.session_id if kind.per_session else None,
            any_session=not kind.per_session,
            target=first.target,
            now=now,
        )

    # Running one job.

    def _launch(self, slot: list[queue.Job]) -> None:
        job = slot[0]
        kind = self.kinds.get(job.kind)
        if kind is None:  # pragma: no cover - claim only asks for registered kinds
            return
        lane = self._lane_of(kind, job.session_id)
        running = _Running(slot, kind, lane)
        self._in_flight[lane] += 1
        if job.target is not None:
            self._targets[(kind.budget, job.target)] += 1
        self._running[job.id] = running
        running.task = asyncio.create_task(self._run(running), name=f"job-{job.kind}-{job.id}")

    async def _outcomes(self, running: _Running) -> list[JobOutcome]:
        kind, jobs = running.kind, running.jobs
        if kind.batch_handler is not None:
            target = jobs[0].target
            if target is None:
                outcomes = await kind.batch_handler(jobs)
            else:
                key = (kind.budget, target)
                lock, users = self._serial.setdefault(key, (asyncio.Lock(), [0]))
                users[0] += 1
                try:
                    async with lock:
                        outcomes = await kind.batch_handler(jobs)
                finally:
                    users[0] -= 1
                    if users[0] == 0:
                        del self._serial[key]
            if len(outcomes) != len(jobs):  # pragma: no cover - a handler's bug
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(jobs)} jobs")
            return outcomes
        return [await kind.handler(jobs[0])]

    async def _run(self, running: _Running) -> None:
        job = running.first
        try:
            try:
                outcomes = await self._outcomes(running)
            except asyncio.CancelledError:
                # Stopping mid-job: give the jobs back at once rather than wait for the lease.
                back: list[JobOutcome] = [Defer(time.time())] * len(running.jobs)
                await asyncio.shield(asyncio.to_thread(self._record, running, back))
                raise
            except Exception as exc:
                log.exception("job %s (%s) failed", job.id, job.kind)
                outcomes = [Retry(f"{type(exc).__name__}: {exc}")] * len(running.jobs)
            await asyncio.shield(asyncio.to_thread(self._record, running, outcomes))
            self.processed[job.kind] += len(running.jobs)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Recording failed (database down, fence refused): the leases expire and the
            # jobs come back to whoever owns them then.
            log.exception("job %s (%s): could not record its outcome", job.id, job.kind)
        finally:
            self._done(running)

    def _done(self, running: _Running) -> None:
        self._running.pop(running.first.id, None)
        lane = running.lane
        self._in_flight[lane] -= 1
        if self._in_flight[lane] <= 0:
            del self._in_flight[lane]
        if running.first.target is not None:
            key = (running.kind.budget, running.first.target)
            self._targets[key] -= 1
            if self._targets[key] <= 0:
                del self._targets[key]
        # Its lane may hold more due work: look now.
        self._touched.add(lane)
        self._set_due(lane, min(self._due.get(lane, math.inf), self._clock()))
        self._wake.set()

    def _writer_for(self, job: queue.Job, kind: JobKind) -> WriteFn:
        if kind.per_session and job.session_id is not None:
            write = self._sessions.get(job.session_id)
            if write is not None:
                return write
        return self.db.write

    def _record(self, running: _Running, outcomes: list[JobOutcome]) -> None:
        kind = running.kind
        now = time.time()
        with self._writer_for(running.first, kind)() as conn:
            record_many(conn, running.jobs, self.owner, outcomes, kind, now)

    # Leases of jobs in hand.

    async def _heartbeats(self) -> None:
        while True:
            leases = [r.kind.lease_seconds for r in self._running.values()]
            period = (min(leases) if leases else 30.0) / HEARTBEAT_FRACTION
            await asyncio.sleep(period)
            if not self._running:
                continue
            try:
                lost = await asyncio.to_thread(self._beat)
            except Exception:
                log.warning("jobs: could not renew leases", exc_info=True)
                continue
            for job_id in lost:
                log.warning("jobs: lost the lease of job %s", job_id)

    def _beat(self) -> set[int]:
        by_lease: dict[float, list[int]] = {}
        for r in list(self._running.values()):
            by_lease.setdefault(r.kind.lease_seconds, []).extend(j.id for j in r.jobs)
        lost: set[int] = set()
        with self.db.write() as conn:
            for lease, ids in by_lease.items():
                held = queue.heartbeat(conn, ids, self.owner, lease)
                lost |= set(ids) - held
        return lost

    # Figures.

    def in_flight(self) -> Iterator[queue.Job]:
        return (job for r in list(self._running.values()) for job in r.jobs)


def record_many(
    conn: Connection,
    jobs: list[queue.Job],
    owner: str,
    outcomes: list[JobOutcome],
    kind: JobKind,
    now: float,
) -> None:
    """Record a slot's outcomes: the plain successes of a batch in one statement."""
    if len(jobs) == 1:
        record(conn, jobs[0], owner, outcomes[0], kind, now)
        return
    done = [job.id for job, o in zip(jobs, outcomes, strict=True) if o == Done()]
    queue.complete_many(conn, done, owner, now=now)
    for job, outcome in zip(jobs, outcomes, strict=True):
        if outcome != Done():
            record(conn, job, owner, outcome, kind, now)


def record(
    conn: Connection, job: queue.Job, owner: str, outcome: JobOutcome, kind: JobKind, now: float
) -> bool:
    """Record a handler's outcome; False when the lease was lost meanwhile."""
    match outcome:
        case Done(result=result):
            return queue.complete(conn, job.id, owner, result=result, now=now)
        case Defer(run_at=run_at, reason=reason):
            return queue.defer(conn, job.id, owner, run_at, reason=reason, now=now)
        case Retry(error=error, retry_after=retry_after, permanent=permanent):
            decision = kind.policy.decide(
                job.attempts,
                now,
                retry_after=retry_after,
                permanent=permanent or job.attempts >= job.max_attempts,
            )
            return queue.fail(conn, job.id, owner, error, decision, now=now)
    return False  # pragma: no cover


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped on an error", task.get_name(), exc_info=task.exception())
