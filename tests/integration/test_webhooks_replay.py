"""Webhooks announce what changed in the mirror, once: replays, duplicates and re-syncs
send nothing again. Checked against the simulator's ground truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wasync.domain import events as ev
from wasync.engines.simulator import Faults, Network, SimulatorEngine
from wasync.store.db import Database

from ..waiting import eventually
from .delivery_servers import Script, WebhookReceiver, running
from .webhooks_harness import SECRET, Harness, started


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running(WebhookReceiver(SECRET)) as server:
        yield server


def envelopes(h: Harness) -> list[dict[str, Any]]:
    return [j.payload["envelope"] for j in h.deliveries()]


def topics(h: Harness) -> Counter[str]:
    return Counter(e["event"] for e in envelopes(h))


def message_keys(h: Harness, topic: str = "message") -> list[tuple[str, str, str]]:
    return [
        (e["data"]["chatJid"], e["data"]["senderJid"], e["data"]["messageId"])
        for e in envelopes(h)
        if e["event"] == topic
    ]


async def test_sync_twice_announces_the_directory_and_messages_once(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    net = Network.from_scale("tiny", 5)
    async with started(db, tmp_path) as h:
        await h.endpoint(receiver.script("/all", Script()), "*")
        await h.runtime.add_session("default", SimulatorEngine(net), engine_name="simulator")
        report = await h.runtime.sync_chats("default", 5)
        progress = 1 + 2 * report.chats  # per sync (DESIGN.md section 7)
        # Progress is enqueued as it is published on the bus, a moment later.
        await eventually(lambda: topics(h)["sync.progress"] == progress)
        first = topics(h)
        await h.runtime.sync_chats("default", 5)
        await eventually(lambda: topics(h)["sync.progress"] == 2 * progress)
        second = topics(h)
        await eventually(h.settled)
        delivered = len(receiver.on("/all"))
        done = len(h.deliveries("done"))

    assert first["message"] == report.messages > 0
    assert first["contact"] == len(net.contacts())
    assert first["chat"] == len(net.chat_jids())
    assert first["group"] == len(net.groups())
    assert first["session.status"] == 1  # connected
    # The second sync stored nothing new: only its progress was announced.
    assert second - first == Counter({"sync.progress": progress})
    assert len(set(message_keys(h))) == report.messages
    assert delivered == done == sum(second.values())
    assert all(r.signed for r in receiver.on("/all"))


async def test_live_duplicates_and_replays_announce_each_change_once(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    net = Network.from_scale("tiny", 6)
    engine = SimulatorEngine(net, Faults(duplicate_rate=0.5, reorder_window=4))
    async with started(db, tmp_path) as h:
        url = receiver.script("/live", Script())
        await h.endpoint(url, ["message", "message.edit", "message.delete", "reaction"])
        handle = await h.runtime.add_session("default", engine, engine_name="simulator")
        live = await engine.push_live(120)
        await engine.drained()
        await handle.sync.flush()
        await eventually(h.settled)  # delivered: a pending job can no longer absorb a copy
        after_live = len(h.deliveries())

        # The whole stream again (an offline queue replayed, a restart): nothing new.
        await engine.push(live)
        await engine.drained()
        await handle.sync.flush()
        assert len(h.deliveries()) == after_live
        await eventually(h.settled)

    sent = [m.message.key for m in live if isinstance(m, ev.MessageReceived)]
    got = message_keys(h)
    assert sorted(got) == sorted({(k.chat_jid, k.sender_jid, k.message_id) for k in sent})
    ids = [e["id"] for e in envelopes(h)]
    assert len(ids) == len(set(ids))
    # The newest edit of each message was announced; deletes once per message.
    announced = {
        (e["data"]["chatJid"], e["data"]["senderJid"], e["data"]["messageId"]): e["data"]
        for e in envelopes(h)
        if e["event"] == "message.edit"
    }
    for key, edit in net.edits().items():
        data = announced[(key.chat_jid, key.sender_jid, key.message_id)]
        assert (data["text"], data["editedAt"]) == (edit.text, edit.edited_at)
    deleted = message_keys(h, "message.delete")
    assert sorted(deleted) == sorted(
        (k.chat_jid, k.sender_jid, k.message_id) for k in net.revokes()
    )
    # Reactions: the last announced state of each (message, sender) is the truth.
    last: dict[tuple[str, str, str, str], Any] = {}
    for e in envelopes(h):
        if e["event"] == "reaction":
            d = e["data"]
            key = (d["chatJid"], d["targetSenderJid"], d["targetMessageId"], d["senderJid"])
            last[key] = (d["emoji"], d["timestamp"])
    truth = {
        (t.chat_jid, t.sender_jid, t.message_id, s): (r.emoji or None, r.timestamp)
        for (t, s), r in net.reactions().items()
    }
    assert last == truth
    assert len(receiver.on("/live")) == len(ids)


async def test_sessions_sharing_a_group_commit_announce_only_their_new_facts(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """The writer commits several sessions' batches in one transaction: each session's
    hook compares with what *its* rows were before, so a replay in one session and new
    messages in another are told apart (a message is announced once, never again)."""
    from wasync.delivery import admin
    from wasync.store.sessions import ensure_session
    from wasync.sync.writer import GroupWriter

    net = Network.from_scale("tiny", 8)
    live = [e for e in net.live_events(30) if isinstance(e, ev.MessageReceived)]
    async with started(db, tmp_path) as h:
        with db.write() as conn:
            other = ensure_session(conn, "other", "simulator")
        await h.endpoint(receiver.script("/all", Script()), ["message"])
        await admin.add_endpoint(
            db, h.delivery.guard, "other", receiver.script("/other", Script()), ["message"]
        )
        h.delivery.endpoints.invalidate()
        writer = GroupWriter(db, hooks=[h.delivery.recorder], max_delay=0.05)
        first, second = writer.attach(h.sid), writer.attach(other)
        for event in live[:10]:
            await first.put(event)
        await first.flush()
        # One group: a replay of the first ten for `default`, all of them new for `other`.
        for event in live:
            await first.put(event)
            await second.put(event)
        await first.flush()
        await second.flush()
        await writer.close()
        await eventually(h.settled)
    default_ids = [r.json()["data"]["messageId"] for r in receiver.on("/all")]
    other_ids = [r.json()["data"]["messageId"] for r in receiver.on("/other")]
    assert sorted(default_ids) == sorted(e.message.key.message_id for e in live)
    assert sorted(other_ids) == sorted(e.message.key.message_id for e in live)
