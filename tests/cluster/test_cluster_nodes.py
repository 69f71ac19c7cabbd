"""Three real `wasync serve` nodes on one PostgreSQL database, killed and stopped as an
operator (or a crash) would: every session runs on exactly one node, sessions move,
nothing is lost or duplicated, calls work through any node."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import socketio
from sqlalchemy import func, select

from tests.integration.delivery_servers import WebhookReceiver, running
from tests.integration.mirror import (
    assert_changes_mirrored,
    assert_messages_equal,
    assert_no_duplicates,
)
from wasync.delivery import endpoints as E
from wasync.domain.events import MessageReceived
from wasync.engines.simulator import Network
from wasync.jobs import queries as queue
from wasync.store.db import Database
from wasync.store.schema import messages, sessions
from wasync.store.sessions import ensure_session

from .harness import KEY, Cluster, cluster, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SEED = 5
LIVE_LIMIT = 24
LEASE = 4.0


def _prepare(url: str, names: list[str], receiver: WebhookReceiver | None = None) -> None:
    db = Database(url)
    db.migrate()
    try:
        with db.write() as conn:
            for name in names:
                ensure_session(conn, name, "simulator")
                if receiver is not None:
                    spec = E.check_shape(name, f"{receiver.base_url}/{name}", ["message"])
                    E.add(conn, spec)
    finally:
        db.close()


def _balanced(c: Cluster, names: list[str], nodes: list[str], least: int) -> bool:
    views = [c.view(via) for via in c.live()]
    if any(v != views[0] for v in views):
        return False  # every node tells the same story
    view = views[0]
    owned = [s for n in nodes for s in view.get(n, [])]
    return (
        sorted(owned) == sorted(names)  # each exactly once
        and set(view) == set(nodes)
        and all(len(view[n]) >= least for n in nodes)
    )


def _live_messages(net: Network) -> list[Any]:
    return [e.message for e in net.live_events(LIVE_LIMIT) if isinstance(e, MessageReceived)]


def _stored(db: Database) -> dict[str, int]:
    with db.read() as conn:
        rows = conn.execute(
            select(sessions.c.name, func.count(messages.c.id))
            .join(messages, messages.c.session_id == sessions.c.id)
            .where(messages.c.kind != "unknown")
            .group_by(sessions.c.name)
        ).all()
    return {name: int(n) for name, n in rows}


# Its bounded waits add up to about 300 s (the default limit of 120 s was shorter than
# its wait for the mirror alone, so a stall showed as a bare timeout); it takes ~40 s.
@pytest.mark.timeout(360)
def test_sessions_spread_survive_a_killed_node_and_move_on_sigterm(
    pg_schema_url: str, tmp_path: Path
) -> None:
    names = [f"s{i:02d}" for i in range(12)]
    net = Network.from_scale("tiny", SEED)
    expected = _live_messages(net)
    with running(WebhookReceiver()) as receiver:
        _prepare(pg_schema_url, names, receiver)
        with cluster(
            pg_schema_url,
            tmp_path,
            WASYNC_LEASE_SECONDS=str(LEASE),
            WASYNC_SIMULATOR_SEED=str(SEED),
            WASYNC_SIMULATOR_LIVE_RATE="1",
            WASYNC_SIMULATOR_LIVE_LIMIT=str(LIVE_LIMIT),
        ) as c:
            c.start_all(["a", "b", "c"])
            wait_for(
                lambda: _balanced(c, names, ["a", "b", "c"], 2),
                within=60,
                what="12 sessions spread over 3 nodes, each on exactly one",
            )
            time.sleep(3)  # live traffic flows
            c.kill("c")  # no goodbye
            wait_for(
                lambda: _balanced(c, names, ["a", "b"], 2),
                within=LEASE + 15,
                what="the killed node's sessions taken over within the lease time + 15 s",
            )
            db = c.database()
            try:
                try:
                    wait_for(
                        lambda: _stored(db) == dict.fromkeys(names, len(expected)),
                        within=120,
                        what="every session's live traffic mirrored",
                    )
                except AssertionError as exc:
                    with db.read() as conn:
                        status = dict(conn.execute(select(sessions.c.name, sessions.c.status)))
                    raise AssertionError(
                        f"{exc}: {len(expected)} each wanted, stored {_stored(db)}, "
                        f"statuses {status}, owners {c.owners()}"
                    ) from None
                for name in names:
                    with db.read() as conn:
                        sid = conn.execute(
                            select(sessions.c.id).where(sessions.c.name == name)
                        ).scalar_one()
                    assert_messages_equal(db, sid, expected)
                    assert_changes_mirrored(db, sid, net)
                assert_no_duplicates(db)

                def delivered() -> bool:
                    with db.read() as conn:
                        counts = queue.counts(conn, kind="webhook")["webhook"]
                    return counts["queued"] + counts["running"] == 0

                try:
                    wait_for(delivered, within=60, what="every webhook delivered")
                except AssertionError:
                    with db.read() as conn:
                        left = [
                            (j.id, j.state, j.lease_owner, j.lease_expires_at, j.last_error)
                            for j in queue.list_jobs(conn, ["webhook"], 1, limit=500)
                            if j.state in queue.PENDING
                        ]
                    raise AssertionError(f"{time.time()}: left {left[:10]}") from None
                with db.read() as conn:
                    statuses = set(conn.execute(select(sessions.c.status)).scalars())
                assert "replaced" not in statuses  # never two connections of one account
            finally:
                db.close()
            # Every message announced, to its own session's receiver; a repeat only with
            # the same event id (a delivery in flight when its node died).
            by_id: dict[str, bytes] = {}
            ids: dict[str, set[str]] = defaultdict(set)
            for name in names:
                for got in receiver.on(f"/{name}"):
                    envelope = got.json()
                    assert envelope["session"] == name and envelope["event"] == "message"
                    if envelope["id"] in by_id:
                        assert json.loads(by_id[envelope["id"]]) == envelope
                    by_id[envelope["id"]] = got.body
                    ids[name].add(envelope["data"]["messageId"])
            want = {m.key.message_id for m in expected}
            assert all(ids[name] == want for name in names)

            # SIGTERM: b drains, a takes everything at once (not after the lease).
            c.kill("b", signal.SIGTERM)
            moved = wait_for(
                lambda: _balanced(c, names, ["a"], 12),
                within=10,
                what="a drained node's sessions moved",
            )
            assert moved < 10


async def _sync_progress_through_another_node(c: Cluster, session: str) -> None:
    owners = c.owners()
    owner = owners[session]
    caller, listener = (c.nodes[n] for n in sorted(c.nodes) if n != owner)
    events: list[dict[str, Any]] = []
    client = socketio.AsyncClient()
    client.on("sync_chats", events.append)
    await client.connect(listener.url, auth={"apiKey": KEY}, transports=["websocket"])
    try:
        ack = await client.call("join-session", {"sessionId": session}, timeout=10)
        assert ack["ok"]
        answer = await asyncio.to_thread(
            caller.post, f"/api/sessions/{session}/sync-chats", params={"limitPerChat": 3}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        n = body["chatsProcessed"]
        deadline = time.monotonic() + 20
        while len(events) < 1 + 2 * n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await client.disconnect()
    assert body["success"] and n > 0
    # The whole sync_chats sequence, in order, as on the owner: first currentChat 0, then
    # per chat one when it is saved and one when its messages are.
    assert [e["currentChat"] for e in events] == [0, *[i for i in range(1, n + 1) for _ in (1, 2)]]
    assert all(e["sessionId"] == session and e["nChats"] == n for e in events)
    assert all(0 <= e["messagesSynced"] <= 3 for e in events)


def test_calls_through_any_node_and_delete_everywhere(pg_schema_url: str, tmp_path: Path) -> None:
    names = ["x", "y", "z"]
    _prepare(pg_schema_url, names)
    with cluster(pg_schema_url, tmp_path, WASYNC_SIMULATOR_SEED=str(SEED)) as c:
        c.start_all(["a", "b", "c"])
        wait_for(
            lambda: _balanced(c, names, ["a", "b", "c"], 1),
            within=60,
            what="one session per node",
        )
        asyncio.run(_sync_progress_through_another_node(c, "x"))

        # Two syncs of one session through two nodes: one is refused, cluster-wide.
        owner = c.owners()["y"]
        one, two = (c.nodes[n] for n in sorted(c.nodes) if n != owner)

        async def both() -> list[int]:
            answers = await asyncio.gather(
                asyncio.to_thread(one.post, "/api/sessions/y/sync-chats"),
                asyncio.to_thread(two.post, "/api/sessions/y/sync-chats"),
            )
            return sorted(a.status_code for a in answers)

        assert asyncio.run(both()) == [200, 409]

        # Delete through a node that does not run it: the owner stops it first.
        owner = c.owners()["z"]
        via = next(n for n in c.nodes.values() if n.name != owner)
        marks = {n.name: len(n.log()) for n in c.nodes.values()}
        assert via.delete("/api/sessions/z").status_code == 204
        for node in c.nodes.values():
            assert node.get("/api/sessions/z").status_code == 404
        time.sleep(LEASE)  # long enough for a confused node to complain
        for node in c.nodes.values():
            after = node.log()[marks[node.name] :]
            assert "ERROR" not in after and "Traceback" not in after, after


def test_two_nodes_ask_for_pictures_no_faster_than_the_rate(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """The pace of a session's picture requests holds cluster-wide: every check, asked
    through either node, goes through the limiter of the node that runs the session."""
    interval = 0.25  # R = 4 requests per second, min gap 2/3, max gap 5/3 of it
    _prepare(pg_schema_url, ["p"])
    with cluster(
        pg_schema_url,
        tmp_path,
        WASYNC_SIMULATOR_SEED=str(SEED),
        WASYNC_AVATAR_INTERVAL=str(interval),
        WASYNC_AVATAR_REFRESH_TTL="0.5",  # plenty of work for the queue
    ) as c:
        a, b = c.start("a"), c.start("b")
        wait_for(lambda: len(c.owners()) == 1, within=60, what="the session running")
        nodes = {"a": a, "b": b}
        owner = nodes[c.owners()["p"]]

        def requests(node: Any) -> int:
            stats = next(
                q for q in node.get("/api/queues").json()["queues"] if q["kind"] == "avatar"
            )["stats"]
            found = stats.get("sessions", {}).get("p")
            return int(found["requests"]) if found else 0

        # The directory: contacts and chats, each queued for a picture check.
        synced = owner.post("/api/sessions/p/sync-chats", params={"limitPerChat": 0})
        assert synced.status_code == 200, synced.text
        chats = owner.get("/api/sessions/p/chats", params={"limit": 20}).json()["items"]
        assert len(chats) >= 4
        jids = [c_["jid"] for c_ in chats]

        async def hammer(seconds: float) -> None:
            stop = time.monotonic() + seconds

            async def one(node: Any, jid: str) -> None:
                while time.monotonic() < stop:
                    await asyncio.to_thread(node.post, f"/api/sessions/p/avatars/{jid}")

            await asyncio.gather(*(one(n, j) for n in (a, b) for j in jids[:4]))

        started = time.monotonic()
        before = requests(owner)
        asyncio.run(hammer(6.0))
        made = requests(owner) - before
        window = time.monotonic() - started
        other = nodes["b" if owner is a else "a"]
        assert requests(other) == 0  # the other node asked WhatsApp nothing itself
        bound = window / interval + 1 + (5 / 3 - 2 / 3)
        assert 0 < made <= bound, (made, bound)


def test_a_paused_owner_writes_nothing_after_it_was_taken_over(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """SIGSTOP the node that runs a session past its lease; another takes it over; SIGCONT:
    what the paused node had in hand (and its engine produced meanwhile) is refused."""
    _prepare(pg_schema_url, ["x"])
    with cluster(
        pg_schema_url, tmp_path, WASYNC_LEASE_SECONDS=str(LEASE), WASYNC_SIMULATOR_LIVE_RATE="4"
    ) as c:
        # Two networks, so each message says which node's engine produced it.
        a = c.start("a", WASYNC_SIMULATOR_SEED="7")
        wait_for(lambda: c.owners().get("x") == "a", within=60, what="x running on a")
        db = c.database()
        try:
            wait_for(lambda: _stored(db).get("x", 0) > 5, within=30, what="a's traffic stored")
            c.kill("a", signal.SIGSTOP)
            b = c.start("b", WASYNC_SIMULATOR_SEED="8")
            wait_for(lambda: c.owners(b).get("x") == "b", within=LEASE + 20, what="b took x")
            a_ids = {
                m.key.message_id for m in _live_messages_n(Network.from_scale("tiny", 7), 2_000)
            }

            def from_a() -> set[str]:
                with db.read() as conn:
                    found = conn.execute(select(messages.c.message_id)).scalars()
                return {i for i in found if i in a_ids}

            at_takeover = from_a()
            os.kill(a.pid, signal.SIGCONT)
            time.sleep(LEASE)  # a wakes up with a batch in hand and an engine that talks
            wait_for(
                lambda: "taken over" in a.log() or not a.alive(),
                within=20,
                what="a noticing that it lost the session",
            )
            time.sleep(1)
            assert from_a() == at_takeover  # nothing a had after the takeover was written
            with db.read() as conn:
                assert conn.execute(select(sessions.c.status)).scalar_one() == "connected"
            assert c.owners(b).get("x") == "b"
        finally:
            db.close()


def _live_messages_n(net: Network, n: int) -> list[Any]:
    return [e.message for e in net.live_events(n) if isinstance(e, MessageReceived)]
