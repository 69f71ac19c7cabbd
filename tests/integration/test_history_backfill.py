"""Load older and load full history on the simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys

import pytest

from wasync.engines.base import Capabilities, CapabilityMissing
from wasync.engines.simulator import SimulatorEngine
from wasync.history import HistoryWorker, request_backfill
from wasync.history.kinds import BACKFILL
from wasync.store import jobs as J
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.sessions import ensure_session
from wasync.workers.runner import PROCESS_TOKEN

from ..waiting import eventually
from .mirror import assert_no_duplicates, comparable
from .test_history_support import FAST, one_chat_network, running


async def test_full_history_of_a_10000_message_chat(db: Database) -> None:
    net = one_chat_network(10_000)
    chat = net.chat_jids()[0]
    async with running(db, SimulatorEngine(net)) as h:
        request = await h.service.request("default", chat, full=True)
        assert request.status == "queued" and request.job_id is not None
        job = await h.finished(request.job_id)
        assert job.state == "done", job.last_error
        with db.read() as conn:
            stored = queries.all_messages(conn, h.session_id, chat)
            state = queries.get_sync_state(conn, h.session_id, chat)
        # Every message, in the network's order, exactly once.
        assert [m.key for m in stored] == [m.key for m in net.messages(chat)]
        assert stored == [comparable(m) for m in net.messages(chat)]
        assert_no_duplicates(db)
        assert state is not None and state.fully_synced and state.last_error is None
        assert state.oldest_message_id == net.message(chat, 0).key.message_id
        assert state.newest_message_id == net.message(chat, 9_999).key.message_id
        # One progress event per page; the last says the chat is complete.
        events = [e for e in h.drain_progress() if e["jobId"] == request.job_id]
        pages = -(-(10_000 - 20) // 50)
        assert [e["page"] for e in events] == list(range(1, pages + 1))
        assert events[-1]["fullySynced"] and events[-1]["done"]
        assert events[-1]["messagesSynced"] == 10_000 - 20
        # Asking again changes nothing.
        again = await h.service.request("default", chat, full=True)
        assert (again.job_id, again.status) == (None, "fully_synced")


async def test_load_older_pages_back_from_the_oldest_stored_message(db: Database) -> None:
    net = one_chat_network(1_000)
    chat = net.chat_jids()[0]
    async with running(db, SimulatorEngine(net), limit_per_chat=10) as h:
        first = await h.service.request("default", chat, full=False, pages=3)
        assert (await h.finished(first.job_id or 0)).state == "done"
        with db.read() as conn:
            stored = queries.all_messages(conn, h.session_id, chat)
            state = queries.get_sync_state(conn, h.session_id, chat)
        assert [m.key for m in stored] == [m.key for m in net.messages(chat, 1_000 - 160)]
        assert state is not None and not state.fully_synced
        events = [e for e in h.drain_progress() if e["jobId"] == first.job_id]
        assert [(e["page"], e["messagesSynced"], e["done"]) for e in events] == [
            (1, 50, False),
            (2, 100, False),
            (3, 150, True),
        ]


async def test_a_chat_with_nothing_stored_starts_from_its_newest_message(db: Database) -> None:
    net = one_chat_network(120)
    chat = net.chat_jids()[0]
    async with running(db, SimulatorEngine(net), initial_sync=False) as h:
        await h.runtime.sync_chats("default", 0)  # contacts, groups and chats only
        request = await h.service.request("default", chat, full=True)
        assert (await h.finished(request.job_id or 0)).state == "done"
        with db.read() as conn:
            stored = queries.all_messages(conn, h.session_id, chat)
            state = queries.get_sync_state(conn, h.session_id, chat)
        assert [m.key for m in stored] == [m.key for m in net.messages(chat)]
        assert state is not None and state.fully_synced


async def test_an_engine_without_history_requests_is_refused(db: Database) -> None:
    net = one_chat_network(50)

    class NoHistory(SimulatorEngine):
        @property
        def capabilities(self) -> Capabilities:
            return dataclasses.replace(super().capabilities, on_demand_history=False)

    async with running(db, NoHistory(net), initial_sync=False) as h:
        with pytest.raises(CapabilityMissing, match="not available from this engine"):
            await h.service.request("default", net.chat_jids()[0], full=True)


REUSED_TOKEN = "0ldp1d00"


def lease_owner(db: Database, job_id: int) -> str | None:
    with db.read() as conn:
        job = J.get_job(conn, job_id)
    return job.lease_owner if job is not None else None


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


async def test_a_job_of_a_dead_process_is_taken_over_at_once(db: Database, dead_pid: int) -> None:
    net = one_chat_network(600)
    chat = net.chat_jids()[0]
    host = socket.gethostname()
    # Our pid, but an earlier process's (a restarted container's pid 1, say).
    reused = f"history-default:{host}:{os.getpid()}:{REUSED_TOKEN}-gone01"
    engine = SimulatorEngine(net)
    await engine.connect()
    with db.write() as conn:
        sid = ensure_session(conn, "default", "simulator")
        owned = {}
        for owner, key in [
            (f"history-default:{host}:{dead_pid}:dead01", chat),
            (
                f"history-default:{host}:{os.getpid()}:{PROCESS_TOKEN}-alive1",
                "alive@s.whatsapp.net",
            ),
            (reused, "reused@s.whatsapp.net"),
            (f"history-default:elsewhere:{dead_pid}:other1", "other@s.whatsapp.net"),
        ]:
            job_id = request_backfill(conn, sid, key, full=True).job_id
            assert job_id is not None
            claimed = J.claim(conn, [BACKFILL], owner, lease_seconds=3_600, session_id=sid)
            owned[key] = claimed[0].id
    worker = HistoryWorker(db, sid, "default", engine, options=FAST, kinds=(BACKFILL,))
    await worker.start()
    try:
        await eventually(lambda: job_state(db, owned[chat]) == "done")
        await eventually(lambda: lease_owner(db, owned["reused@s.whatsapp.net"]) != reused)
        # Leases of live workers, or of workers on other hosts, are left to expire.
        assert job_state(db, owned["alive@s.whatsapp.net"]) == "running"
        assert job_state(db, owned["other@s.whatsapp.net"]) == "running"
    finally:
        await worker.stop()
        await engine.close()
    with db.read() as conn:
        assert [m.key for m in queries.all_messages(conn, sid, chat)] == [
            m.key for m in net.messages(chat)
        ]


def job_state(db: Database, job_id: int) -> str:
    with db.read() as conn:
        job = J.get_job(conn, job_id)
    assert job is not None
    return job.state


async def test_full_history_asked_as_the_last_page_lands_is_not_dropped(db: Database) -> None:
    """ "Load full history" clicked while a "load older" job commits its last page."""
    net = one_chat_network(1_000)
    chat = net.chat_jids()[0]
    engine = SimulatorEngine(net)
    await engine.connect()
    with db.write() as conn:
        sid = ensure_session(conn, "default", "simulator")
        first = request_backfill(conn, sid, chat, full=False, pages=1)
    answers = []

    def on_progress(progress: object) -> None:
        if getattr(progress, "done", False) and not answers:
            with db.write() as conn:  # between the page's commit and the job's end
                answers.append(request_backfill(conn, sid, chat, full=True))

    worker = HistoryWorker(
        db, sid, "default", engine, options=FAST, kinds=(BACKFILL,), on_progress=on_progress
    )
    await worker.start()
    try:

        def all_done() -> bool:
            with db.read() as conn:
                counts = J.counts(conn, kind=BACKFILL, session_id=sid)[BACKFILL]
            return bool(answers) and counts["queued"] + counts["running"] == 0

        await eventually(all_done, within=30)
    finally:
        await worker.stop()
        await engine.close()
    assert answers[0].status in ("already_queued", "queued") and answers[0].job_id
    with db.read() as conn:
        state = queries.get_sync_state(conn, sid, chat)
        stored = queries.all_messages(conn, sid, chat)
        job = J.get_job(conn, first.job_id)
    assert job is not None and job.state == "done"
    assert state is not None and state.fully_synced
    assert len(stored) == net.message_count(chat)
