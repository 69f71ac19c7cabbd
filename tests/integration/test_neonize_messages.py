"""Real neonize MessageEv protobufs, through the real dispatch path, into the mirror.

Each test builds the events whatsmeow would send, hands them to
`client.event.execute` from a thread (as the Go side does), lets the engine's
`events()` feed a BatchWriter, and checks the committed rows against the protobufs.
Runs on SQLite and PostgreSQL (the `db` fixture).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.integration.neonize_protos import (
    OWN_JID,
    OWN_LID,
    E,
    Mirror,
    device_ev,
    group,
    jid,
    key,
    lid,
    message_ev,
    new_engine,
)
from wasync.store.db import Database
from wasync.store.schema import chats, contacts, messages, reactions

ALICE = "5511911110001"
ALICE_LID = "11110000000001"
BOB = "5511922220002"
BOB_LID = "22220000000002"
GROUP = "120363000000000001"
T0 = 1_700_000_000  # seconds


def rows(db: Database, table: Any, *where: Any) -> list[dict[str, Any]]:
    with db.read() as conn:
        stmt = select(table)
        for w in where:
            stmt = stmt.where(w)
        return [dict(r._mapping) for r in conn.execute(stmt)]


def message_row(db: Database, msg_id: str) -> dict[str, Any]:
    [row] = rows(db, messages, messages.c.message_id == msg_id)
    return row


async def test_direct_text_with_push_name(db: Database, tmp_path: Path) -> None:
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(
            message_ev(
                chat=jid(ALICE),
                sender=jid(ALICE),
                msg_id="M1",
                ts_ms=T0 * 1000 + 789,
                body=E.Message(conversation="hello"),
                push_name="Alice",
            )
        )
    row = message_row(db, "M1")
    assert row["chat_jid"] == row["sender_jid"] == f"{ALICE}@s.whatsapp.net"
    assert row["timestamp"] == T0  # milliseconds became seconds
    assert (row["kind"], row["text"], row["from_me"]) == ("text", "hello", False)
    assert row["push_name"] == "Alice"
    [chat] = rows(db, chats)
    assert (chat["jid"], chat["kind"], chat["last_message_at"]) == (
        row["chat_jid"],
        "individual",
        T0,
    )
    [contact] = rows(db, contacts)
    assert (contact["jid"], contact["push_name"]) == (row["sender_jid"], "Alice")


async def test_group_message_from_lid_sender_is_keyed_by_lid_with_both_forms(
    db: Database, tmp_path: Path
) -> None:
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(
            message_ev(
                chat=group(GROUP),
                sender=lid(ALICE_LID, device=3),
                sender_alt=jid(ALICE),
                is_group=True,
                msg_id="G1",
                ts_ms=T0 * 1000,
                body=E.Message(conversation="from a lid"),
                push_name="Alice",
            ),
            # Later messages with the LID alone land on the same person.
            message_ev(
                chat=group(GROUP),
                sender=lid(ALICE_LID),
                is_group=True,
                msg_id="G2",
                ts_ms=(T0 + 5) * 1000,
                body=E.Message(conversation="lid only"),
            ),
            # A LID nobody has mapped stays a LID.
            message_ev(
                chat=group(GROUP),
                sender=lid(BOB_LID),
                is_group=True,
                msg_id="G3",
                ts_ms=(T0 + 9) * 1000,
                body=E.Message(conversation="unknown lid"),
            ),
        )
    alice = f"{ALICE_LID}@lid"  # LID-first (domain/identity.py)
    assert message_row(db, "G1")["sender_jid"] == alice
    assert message_row(db, "G2")["sender_jid"] == alice
    assert message_row(db, "G3")["sender_jid"] == f"{BOB_LID}@lid"
    assert {r["chat_jid"] for r in rows(db, messages)} == {f"{GROUP}@g.us"}
    people = {r["jid"]: r for r in rows(db, contacts)}
    assert people[alice]["lid"] == f"{ALICE_LID}@lid"
    assert people[alice]["phone"] == ALICE
    assert people[alice]["push_name"] == "Alice"
    assert f"{BOB_LID}@lid" in people
    [chat] = rows(db, chats)
    assert (chat["kind"], chat["last_message_at"]) == ("group", T0 + 9)


async def test_own_messages_use_own_phone_jid(db: Database, tmp_path: Path) -> None:
    engine = new_engine(tmp_path / "t.db", own_jid=None)
    async with Mirror(engine, db) as mirror:
        # whatsmeow reports the own device first (code 0): that is how we learn "me".
        await mirror.feed(device_ev())
        await mirror.feed(
            message_ev(
                chat=group(GROUP),
                sender=lid(OWN_LID, device=2),
                from_me=True,
                is_group=True,
                msg_id="ME1",
                ts_ms=T0 * 1000,
                body=E.Message(extendedTextMessage=E.ExtendedTextMessage(text="mine")),
            )
        )
    row = message_row(db, "ME1")
    assert (row["sender_jid"], row["from_me"], row["text"]) == (OWN_JID, True, "mine")
    assert row["push_name"] is None


async def test_media_with_caption_reply_and_document(db: Database, tmp_path: Path) -> None:
    image = E.ImageMessage(
        URL="https://mmg.whatsapp.net/o1/abc",
        mimetype="image/jpeg",
        caption="look at this",
        fileSHA256=bytes(range(32)),
        fileEncSHA256=bytes(range(1, 33)),
        fileLength=123_456,
        mediaKey=b"k" * 32,
        directPath="/o1/abc?x=1",
        width=800,
        height=600,
        contextInfo=E.ContextInfo(stanzaID="QUOTED1", participant=f"{BOB}@s.whatsapp.net"),
    )
    document = E.DocumentMessage(
        mimetype="application/pdf",
        fileName="report.pdf",
        caption="the report",
        fileLength=2048,
        directPath="/o1/doc",
    )
    wrapped_doc = E.Message(
        documentWithCaptionMessage=E.FutureProofMessage(message=E.Message(documentMessage=document))
    )
    ephemeral = E.Message(
        ephemeralMessage=E.FutureProofMessage(
            message=E.Message(
                extendedTextMessage=E.ExtendedTextMessage(
                    text="a reply", contextInfo=E.ContextInfo(stanzaID="M0")
                )
            )
        )
    )
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(
            *(
                message_ev(chat=jid(BOB), sender=jid(BOB), msg_id=i, ts_ms=(T0 + n) * 1000, body=b)
                for n, (i, b) in enumerate(
                    [
                        ("IMG", E.Message(imageMessage=image)),
                        ("DOC", wrapped_doc),
                        ("EPH", ephemeral),
                    ]
                )
            )
        )
    img = message_row(db, "IMG")
    assert (img["kind"], img["text"], img["quoted_id"]) == ("image", "look at this", "QUOTED1")
    assert img["media_mimetype"] == "image/jpeg"
    assert img["media_size"] == 123_456
    assert img["media_sha256"] == bytes(range(32)).hex()
    assert img["media_enc_sha256"] == bytes(range(1, 33)).hex()
    assert img["media_key"] == base64.b64encode(b"k" * 32).decode()
    assert img["media_direct_path"] == "/o1/abc?x=1"
    assert img["media_url"] == "https://mmg.whatsapp.net/o1/abc"
    doc = message_row(db, "DOC")
    assert (doc["kind"], doc["text"], doc["media_filename"]) == (
        "document",
        "the report",
        "report.pdf",
    )
    assert (doc["media_mimetype"], doc["media_size"]) == ("application/pdf", 2048)
    eph = message_row(db, "EPH")
    assert (eph["kind"], eph["text"], eph["quoted_id"]) == ("text", "a reply", "M0")


def _edit(target: Any, text: str, at_ms: int) -> Any:
    protocol = E.ProtocolMessage(
        key=target, type=14, editedMessage=E.Message(conversation=text), timestampMS=at_ms
    )
    # whatsmeow unwraps the editedMessage wrapper and marks IsEdit.
    return E.Message(protocolMessage=protocol)


async def test_edit_revoke_and_reactions(db: Database, tmp_path: Path) -> None:
    alice, bob = f"{ALICE}@s.whatsapp.net", f"{BOB}@s.whatsapp.net"
    g = f"{GROUP}@g.us"
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(
            message_ev(
                chat=group(GROUP),
                sender=jid(ALICE),
                is_group=True,
                msg_id="A1",
                ts_ms=T0 * 1000,
                body=E.Message(conversation="typo"),
            ),
            message_ev(
                chat=group(GROUP),
                sender=jid(BOB),
                is_group=True,
                msg_id="B1",
                ts_ms=(T0 + 1) * 1000,
                body=E.Message(conversation="spam"),
            ),
            message_ev(
                chat=group(GROUP),
                sender=jid(BOB),
                is_group=True,
                msg_id="B2",
                ts_ms=(T0 + 2) * 1000,
                body=E.Message(conversation="hi"),
            ),
        )
        await mirror.feed(
            # Alice edits her own message (key.fromMe is from her point of view).
            message_ev(
                chat=group(GROUP),
                sender=jid(ALICE),
                is_group=True,
                msg_id="E1",
                ts_ms=(T0 + 60) * 1000,
                is_edit=True,
                body=_edit(key(g, "A1", from_me=True), "fixed", (T0 + 61) * 1000),
            ),
            # Alice, an admin, deletes Bob's message for everyone.
            message_ev(
                chat=group(GROUP),
                sender=jid(ALICE),
                is_group=True,
                msg_id="R1",
                ts_ms=(T0 + 70) * 1000,
                body=E.Message(
                    protocolMessage=E.ProtocolMessage(key=key(g, "B1", participant=bob), type=0)
                ),
            ),
            # Bob reacts to Alice's message, I react to Bob's, then Bob takes his back.
            message_ev(
                chat=group(GROUP),
                sender=jid(BOB),
                is_group=True,
                msg_id="X1",
                ts_ms=(T0 + 80) * 1000,
                body=E.Message(
                    reactionMessage=E.ReactionMessage(
                        key=key(g, "A1", participant=alice),
                        text="👍",
                        senderTimestampMS=(T0 + 80) * 1000,
                    )
                ),
            ),
            message_ev(
                chat=group(GROUP),
                sender=jid(BOB),
                is_group=True,
                msg_id="X2",
                ts_ms=(T0 + 81) * 1000,
                from_me=False,
                body=E.Message(
                    reactionMessage=E.ReactionMessage(
                        key=key(g, "B2", from_me=True),
                        text="😂",
                        senderTimestampMS=(T0 + 81) * 1000,
                    )
                ),
            ),
            message_ev(
                chat=group(GROUP),
                sender=jid(BOB),
                is_group=True,
                msg_id="X3",
                ts_ms=(T0 + 90) * 1000,
                body=E.Message(
                    reactionMessage=E.ReactionMessage(
                        key=key(g, "A1", participant=alice),
                        text="",
                        senderTimestampMS=(T0 + 90) * 1000,
                    )
                ),
            ),
        )
    edited = message_row(db, "A1")
    assert (edited["text"], edited["edited_at"], edited["sender_jid"]) == ("fixed", T0 + 61, alice)
    revoked = message_row(db, "B1")
    assert (revoked["revoked_at"], revoked["revoked_by"]) == (T0 + 70, alice)
    # Edits, revokes and reactions are not messages of their own.
    assert {r["message_id"] for r in rows(db, messages)} == {"A1", "B1", "B2"}
    found = {(r["target_message_id"], r["sender_jid"]): r for r in rows(db, reactions)}
    assert found[("A1", bob)]["emoji"] is None  # removed, the row stays
    assert found[("A1", bob)]["timestamp"] == T0 + 90
    assert found[("B2", bob)]["emoji"] == "😂"
    assert found[("B2", bob)]["target_sender_jid"] == bob


async def test_edit_before_its_message_and_direct_chat_revoke(db: Database, tmp_path: Path) -> None:
    alice = f"{ALICE}@s.whatsapp.net"
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        # At-most-once, interleaved delivery: the edit overtakes the message.
        await mirror.feed(
            message_ev(
                chat=jid(ALICE),
                sender=jid(ALICE),
                msg_id="E9",
                ts_ms=(T0 + 9) * 1000,
                body=_edit(key(OWN_JID, "D1", from_me=True), "v2", (T0 + 9) * 1000),
            ),
        )
        await mirror.feed(
            message_ev(
                chat=jid(ALICE),
                sender=jid(ALICE),
                msg_id="D1",
                ts_ms=T0 * 1000,
                body=E.Message(conversation="v1"),
            ),
            # I delete my own message from my phone.
            message_ev(
                chat=jid(ALICE),
                sender=jid(OWN_JID.split("@")[0]),
                from_me=True,
                msg_id="R9",
                ts_ms=(T0 + 20) * 1000,
                body=E.Message(
                    protocolMessage=E.ProtocolMessage(key=key(alice, "MINE", from_me=True), type=0)
                ),
            ),
        )
    d1 = message_row(db, "D1")
    assert (d1["kind"], d1["text"], d1["edited_at"]) == ("text", "v2", T0 + 9)
    mine = message_row(db, "MINE")
    assert (mine["sender_jid"], mine["revoked_at"], mine["kind"]) == (OWN_JID, T0 + 20, "unknown")


async def test_a_failing_handler_is_logged_and_the_stream_goes_on(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wasync.engines.neonize.engine as engine_module

    real = engine_module.live_events

    def explode(proto: Any, *args: Any) -> Any:
        if proto.Info.ID == "BAD":
            raise ValueError("boom")
        return real(proto, *args)

    monkeypatch.setattr(engine_module, "live_events", explode)
    engine = new_engine(tmp_path / "t.db")
    with caplog.at_level(logging.ERROR, logger="wasync.engines.neonize"):
        async with Mirror(engine, db) as mirror:
            await mirror.feed(
                message_ev(
                    chat=jid(ALICE),
                    sender=jid(ALICE),
                    msg_id="BAD",
                    ts_ms=T0 * 1000,
                    body=E.Message(conversation="x"),
                ),
                message_ev(
                    chat=jid(ALICE),
                    sender=jid(ALICE),
                    msg_id="OK",
                    ts_ms=T0 * 1000,
                    body=E.Message(conversation="y"),
                ),
            )
    assert engine.handler_errors == 1
    assert "the Message handler failed on: Message id=BAD" in caplog.text
    assert "boom" in caplog.text
    assert [r["message_id"] for r in rows(db, messages)] == ["OK"]
