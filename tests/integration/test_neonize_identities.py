"""Real neonize protobufs: a person met by LID, then by number, becomes one chat once a
history sync carries their `phoneNumberToLidMappings`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.integration.neonize_protos import (
    E,
    H,
    Mirror,
    history,
    jid,
    lid,
    message_ev,
    new_engine,
    web_message,
)
from wasync.store.db import Database
from wasync.store.schema import chats, contacts, lid_mappings, messages

BOB = "5511922220002"
BOB_JID = f"{BOB}@s.whatsapp.net"
BOB_LID = "22220000000002"
BOB_LID_JID = f"{BOB_LID}@lid"
T0 = 1_700_000_000
RECENT = 3


def _rows(db: Database, table: Any) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def _conversation(jid_text: str, *msgs: Any) -> Any:
    conv = H.Conversation(ID=jid_text, conversationTimestamp=T0 + 100)
    conv.messages.extend(msgs)
    return conv


async def test_a_lid_sender_then_history_with_its_mapping_leaves_one_chat(
    db: Database, tmp_path: Path
) -> None:
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        # Bob writes by number first (no LID known), then by LID alone: two addresses.
        await mirror.feed(
            message_ev(
                chat=jid(BOB),
                sender=jid(BOB),
                msg_id="N1",
                ts_ms=(T0 + 10) * 1000,
                body=E.Message(conversation="by number"),
                push_name="Bob",
            ),
            message_ev(
                chat=lid(BOB_LID),
                sender=lid(BOB_LID),
                msg_id="L1",
                ts_ms=(T0 + 20) * 1000,
                body=E.Message(conversation="by lid"),
            ),
        )
        assert sorted(r["jid"] for r in _rows(db, chats)) == [BOB_LID_JID, BOB_JID]

        # A history sync by number carries the mapping: the person becomes one.
        await mirror.feed(
            history(
                RECENT,
                [
                    _conversation(
                        BOB_JID,
                        web_message(BOB_JID, "H1", T0 + 5, E.Message(conversation="older")),
                    )
                ],
                mappings=((BOB_JID, BOB_LID_JID),),
            )
        )
        merged = [e for e in mirror.emitted if type(e).__name__ == "HistoryBatch"]
        assert merged and merged[0].mappings == ((BOB_LID_JID, BOB_JID),)

    [chat] = _rows(db, chats)
    assert (chat["jid"], chat["kind"], chat["last_message_at"]) == (
        BOB_LID_JID,
        "individual",
        T0 + 100,  # the conversation's time, as the history sync says it
    )
    stored = sorted((r["message_id"], r["chat_jid"], r["sender_jid"]) for r in _rows(db, messages))
    assert stored == [
        ("H1", BOB_LID_JID, BOB_LID_JID),
        ("L1", BOB_LID_JID, BOB_LID_JID),
        ("N1", BOB_LID_JID, BOB_LID_JID),
    ]
    [person] = _rows(db, contacts)
    assert (person["jid"], person["phone"], person["lid"], person["push_name"]) == (
        BOB_LID_JID,
        BOB,
        BOB_LID_JID,
        "Bob",
    )
    assert [(r["lid"], r["phone_jid"]) for r in _rows(db, lid_mappings)] == [(BOB_LID_JID, BOB_JID)]
