"""Webhooks of one person: a merge is delivered as contact.merged and chat.merged with both
forms, and messages carry senderPhone and senderLid (a real receiver on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import Contact, Message, MessageKey
from wasync.store.db import Database
from wasync.sync.commit import commit_batch

from ..waiting import eventually
from .delivery_servers import Script, WebhookReceiver, running
from .webhooks_harness import SECRET, started

PN = "5511999990001@s.whatsapp.net"
LID = "123456789012345@lid"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running(WebhookReceiver(SECRET)) as server:
        yield server


async def test_a_merge_and_later_messages_reach_webhooks_with_both_forms(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    url = receiver.script("/hook", Script(statuses=[], then=200))
    async with started(db, tmp_path) as h:
        await h.endpoint(url, ["contact.merged", "chat.merged", "message"])

        def commit(*events: ev.Event) -> None:
            batch = Batch()
            for e in events:
                batch.add(e)
            commit_batch(db, h.sid, batch, h.runtime.hooks)

        commit(ev.MessageReceived(Message(MessageKey(PN, PN, "M1"), 1_700_000_000, text="hi")))
        commit(ev.ContactsUpserted((Contact(PN, lid=LID),)))
        commit(ev.MessageReceived(Message(MessageKey(PN, PN, "M2"), 1_700_000_001, text="again")))
        await eventually(lambda: len(receiver.on("/hook")) == 4)
        await eventually(h.settled)

    by_event: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for r in receiver.on("/hook"):
        envelope = r.json()
        by_event.setdefault(envelope["event"], []).append(envelope["data"])
    merged = {"jid": LID, "lid": LID, "phone": "5511999990001", "mergedJid": PN, "messagesMoved": 1}
    assert [{k: d[k] for k in merged} for d in by_event["contact.merged"]] == [merged]
    assert [{k: d[k] for k in merged} for d in by_event["chat.merged"]] == [merged]
    first, second = sorted(by_event["message"], key=lambda d: d["messageId"])
    assert (first["senderJid"], first["senderPhone"], first["senderLid"]) == (
        PN, "5511999990001", None
    )  # fmt: skip
    assert (second["chatJid"], second["senderJid"], second["senderPhone"], second["senderLid"]) == (
        LID, LID, "5511999990001", LID
    )  # fmt: skip
