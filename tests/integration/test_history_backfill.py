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
from wasync.history import request_backfill
from wasync.history.kinds import BACKFILL
from wasync.jobs import queries as queue
from wasync.jobs.queries import PROCESS_TOKEN
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.sessions import ensure_session

from ..waiting import eventually
from .mirror import assert_no_duplicates, comparable
from .test_history_support import one_chat_network, running


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
        job = queue.get_job(conn, job_id)
    return job.lease_owner if job is not None else None


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


async def test_jobs_of_whoever_ran_the_session_before_are_taken_over_at_once(
    db: Database, dead_pid: int
) -> None:
    """A process that takes a session over resumes its running history jobs at once,
    whoever leased them (a process that died, one with our pid before a restart, a node
    that lost the session): none of them can record anything for it any more."""
    net = one_chat_network(600)
    chat = net.chat_jids()[0]
    host = socket.gethostname()
    # Our pid, but an earlier process's (a restarted container's pid 1, say).
    reused = f"history-default:{host}:{os.getpid()}:{REUSED_TOKEN}"
    keys = [chat, "reused@s.whatsapp.net", "other@s.whatsapp.net"]
    with db.write() as conn:
        sid = ensure_session(conn, "default", "simulator")
        owned = {}
        for owner, key in [
            (f"history-default:{host}:{dead_pid}:dead01", chat),
            (reused, keys[1]),
            (f"history-default:elsewhere:{dead_pid}:other1", keys[2]),
        ]:
            job_id = request_backfill(conn, sid, key, full=True).job_id
            assert job_id is not None
            claimed = queue.claim(conn, [BACKFILL], owner, lease_seconds=3_600, session_id=sid)
            owned[key] = claimed[0].id
    async with running(db, SimulatorEngine(net), initial_sync=False) as h:
        await eventually(lambda: job_state(db, owned[chat]) == "done")
        for key in keys[1:]:  # no such chat: they run, and fail, instead of waiting
            await eventually(lambda key=key: lease_owner(db, owned[key]) != reused)
        with db.read() as conn:
            assert [m.key for m in queries.all_messages(conn, h.session_id, chat)] == [
                m.key for m in net.messages(chat)
            ]


def test_a_dead_process_leases_are_released_and_live_ones_kept(db: Database, dead_pid: int) -> None:
    """At start the runner frees jobs (of every kind) leased by a dead process of this
    host, at once; a live process's leases and other hosts' expire on their own."""
    host = socket.gethostname()
    with db.write() as conn:
        sid = ensure_session(conn, "default", "simulator")
        owners = {
            "dead": f"jobs:{host}:{dead_pid}:dead01",
            "reused": f"jobs:{host}:{os.getpid()}:{REUSED_TOKEN}",
            "alive": f"jobs:{host}:{os.getpid()}:{PROCESS_TOKEN}",
            "elsewhere": f"jobs:elsewhere:{dead_pid}:other1",
        }
        ids = {}
        for name, owner in owners.items():
            queue.enqueue(conn, "webhook", session_id=sid, unique_key=name)
            ids[name] = queue.claim(conn, ["webhook"], owner, lease_seconds=3_600)[0].id
        released = queue.release_dead_leases(conn, ["webhook"])
    assert released == 2
    with db.write() as conn:
        again = {job.id for job in queue.claim(conn, ["webhook"], "me", limit=10)}
    assert again == {ids["dead"], ids["reused"]}


def job_state(db: Database, job_id: int) -> str:
    with db.read() as conn:
        job = queue.get_job(conn, job_id)
    assert job is not None
    return job.state


async def test_full_history_asked_as_the_last_page_lands_is_not_dropped(db: Database) -> None:
    """ "Load full history" clicked while a "load older" job commits its last page."""
    net = one_chat_network(1_000)
    chat = net.chat_jids()[0]
    answers = []
    async with running(db, SimulatorEngine(net), initial_sync=False) as h:
        sid = h.session_id

        def on_progress(progress: object) -> None:
            if getattr(progress, "done", False) and not answers:
                with db.write() as conn:  # between the page's commit and the job's end
                    answers.append(request_backfill(conn, sid, chat, full=True))

        h.service.listen("default", on_progress)
        with db.write() as conn:
            first = request_backfill(conn, sid, chat, full=False, pages=1)

        def all_done() -> bool:
            with db.read() as conn:
                counts = queue.counts(conn, kind=BACKFILL, session_id=sid)[BACKFILL]
            return bool(answers) and counts["queued"] + counts["running"] == 0

        await eventually(all_done, within=30)
        assert answers[0].status in ("already_queued", "queued") and answers[0].job_id
        with db.read() as conn:
            state = queries.get_sync_state(conn, sid, chat)
            stored = queries.all_messages(conn, sid, chat)
            job = queue.get_job(conn, first.job_id)
        assert job is not None and job.state == "done"
        assert state is not None and state.fully_synced
        assert len(stored) == net.message_count(chat)
