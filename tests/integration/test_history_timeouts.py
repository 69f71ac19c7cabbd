"""History requests that keep timing out: a visible error, retries with back-off, and
the other chats unaffected (backfill and gap fill alike)."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from wasync.domain.models import Message, MessageAnchor
from wasync.engines.simulator import Faults, Network, SimulatorEngine
from wasync.history import HistoryOptions
from wasync.jobs.policy import RetryDecision, RetryPolicy
from wasync.store import queries
from wasync.store.db import Database

from .test_history_support import FAST, assert_mirror_covers, running


@dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """The runner's policy, noting each decision (attempts, now, decision)."""

    decisions: list[tuple[int, float, RetryDecision]] = field(default_factory=list)

    def decide(
        self,
        attempts: int,
        now: float,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        rng: random.Random | None = None,
    ) -> RetryDecision:
        decision = super().decide(
            attempts, now, retry_after=retry_after, permanent=permanent, rng=rng
        )
        self.decisions.append((attempts, now, decision))
        return decision


def recording() -> tuple[RecordingPolicy, HistoryOptions]:
    """A policy that notes its decisions, and history options that retry by it."""
    policy = RecordingPolicy(
        max_attempts=FAST.max_attempts, base_delay=FAST.retry_delay, max_delay=FAST.retry_max_delay
    )
    return policy, dataclasses.replace(FAST, retry_policy=policy)


async def test_a_chat_whose_history_times_out_fails_visibly_and_alone(db: Database) -> None:
    net = Network.from_scale("tiny", 21)
    chats = sorted(net.chat_jids(), key=net.message_count, reverse=True)
    bad, good = chats[0], chats[1:4]
    engine = SimulatorEngine(net, Faults(history_timeout=0.01))
    policy, options = recording()
    async with running(db, engine, limit_per_chat=5, options=options) as h:
        engine.faults.timeout_chats = frozenset({bad})
        requests = [await h.service.request("default", jid, full=True) for jid in (bad, *good)]
        jobs = [await h.finished(r.job_id or 0) for r in requests]

        failed, *done = jobs
        assert [j.state for j in done] == ["done"] * len(good)
        assert failed.state == "failed" and failed.attempts == FAST.max_attempts
        assert failed.last_error is not None and "did not answer" in failed.last_error
        with db.read() as conn:
            state = queries.get_sync_state(conn, h.session_id, bad)
            assert state is not None and not state.fully_synced
            assert state.last_error is not None
            assert state.last_error.startswith(f"loading the full history gave up after {4} tries")
            for jid in good:
                ok = queries.get_sync_state(conn, h.session_id, jid)
                assert ok is not None and ok.fully_synced and ok.last_error is None
        assert engine.stats.history_timeouts == FAST.max_attempts
        # Retried with exponential back-off (jittered, capped), then given up.
        delays = [d.retry_at - now for _, now, d in policy.decisions if d.retry_at is not None]
        assert [a for a, _, _ in policy.decisions] == [1, 2, 3, 4]
        assert policy.decisions[-1][2].give_up
        for attempt, delay in enumerate(delays, start=1):
            raw = min(FAST.retry_max_delay, FAST.retry_delay * 2 ** (attempt - 1))
            assert raw * 0.5 <= delay <= raw
        # Each failed try was reported; the last says no retry follows.
        errors = [e for e in h.drain_progress() if e["chatJid"] == bad and "error" in e]
        assert [e["willRetry"] for e in errors] == [True, True, True, False]
        assert all("did not answer" in e["error"] for e in errors)
        assert_mirror_covers(db, h.session_id, net, [m for jid in good for m in net.messages(jid)])

        # Once the phone answers again, asking again completes the chat.
        engine.faults.timeout_chats = frozenset()
        again = await h.service.request("default", bad, full=True)
        assert again.status == "queued" and again.job_id != failed.id
        assert (await h.finished(again.job_id or 0)).state == "done"
        with db.read() as conn:
            state = queries.get_sync_state(conn, h.session_id, bad)
        assert state is not None and state.fully_synced and state.last_error is None


async def test_a_gap_that_cannot_be_filled_is_marked_failed_until_a_reconnect(
    db: Database,
) -> None:
    net = Network.from_scale("tiny", 22)
    engine = SimulatorEngine(net, Faults(offline_retention=5, history_timeout=0.01))
    async with running(db, engine, limit_per_chat=5) as h:
        history = {jid: net.message_count(jid) for jid in net.chat_jids()}
        await engine.drop_connection()
        await engine.push_live(200)
        busiest = max(net.chat_jids(), key=lambda j: net.message_count(j) - history.get(j, 0))
        engine.faults.timeout_chats = frozenset({busiest})
        await h.reconnect(engine)
        await h.settle(engine)

        with db.read() as conn:
            bad = queries.get_sync_state(conn, h.session_id, busiest)
            others = [queries.get_sync_state(conn, h.session_id, j) for j in net.chat_jids()]
        assert bad is not None and bad.gap_status == "failed"
        assert bad.last_error is not None and bad.last_error.startswith("gap fill gave up")
        assert bad.gap_since_timestamp is not None  # where the hole starts stays visible
        assert [s.chat_jid for s in others if s is not None and s.gap_status] == [busiest]
        errors = [e for e in h.drain_progress() if e["chatJid"] == busiest and "error" in e]
        assert errors and errors[-1]["kind"] == "gap" and errors[-1]["willRetry"] is False
        view = await h.service.sync_state("default", busiest)
        assert view["gap"]["status"] == "failed" and view["gap"]["job"]["state"] == "failed"

        # The next reconnect looks at the failed gap again, and closes it this time.
        engine.faults.timeout_chats = frozenset()
        await engine.drop_connection()
        await h.reconnect(engine)
        await h.settle(engine)
        expected = [
            net.message(jid, i)
            for jid in net.chat_jids()
            for i in range(max(0, history.get(jid, 0) - 5), net.message_count(jid))
        ]
        assert_mirror_covers(db, h.session_id, net, expected)
        with db.read() as conn:
            fixed = queries.get_sync_state(conn, h.session_id, busiest)
        assert fixed is not None and fixed.gap_status is None and fixed.last_error is None


class _Broken(SimulatorEngine):
    """An engine whose history request for one chat fails with what is no EngineError."""

    broken: str | None = None

    async def request_history(
        self, chat: str, before: MessageAnchor | None, count: int
    ) -> list[Message]:
        if chat == self.broken:
            raise OSError("socket closed by peer")
        return await super().request_history(chat, before, count)


async def test_an_unexpected_error_fails_a_gap_visibly_too(db: Database) -> None:
    net = Network.from_scale("tiny", 22)
    engine = _Broken(net, Faults(offline_retention=5))
    async with running(db, engine, limit_per_chat=5) as h:
        history = {jid: net.message_count(jid) for jid in net.chat_jids()}
        await engine.drop_connection()
        await engine.push_live(200)
        busiest = max(net.chat_jids(), key=lambda j: net.message_count(j) - history.get(j, 0))
        engine.broken = busiest
        await h.reconnect(engine)
        await h.settle(engine)
        with db.read() as conn:
            bad = queries.get_sync_state(conn, h.session_id, busiest)
        assert bad is not None and bad.gap_status == "failed"
        assert bad.last_error is not None and "OSError: socket closed by peer" in bad.last_error
        errors = [e for e in h.drain_progress() if e["chatJid"] == busiest and "error" in e]
        assert errors and errors[-1]["willRetry"] is False
