"""A real HistorySync protobuf with several conversations, through dispatch, into rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.integration.neonize_protos import (
    OWN_JID,
    C,
    E,
    Mirror,
    W,
    history,
    new_engine,
    web_message,
)
from wasync.domain import events as ev
from wasync.domain.events import HistorySyncType
from wasync.engines.neonize.history import FOREVER
from wasync.store.db import Database
from wasync.store.schema import chats, contacts, messages, reactions

ALICE = "5511911110001@s.whatsapp.net"
ALICE_LID = "11110000000001@lid"
CAROL = "5511933330003@s.whatsapp.net"
CAROL_LID = "33330000000003@lid"
DAN_LID = "44440000000004@lid"
GROUP = "120363000000000009@g.us"
T0 = 1_700_000_000
INITIAL_BOOTSTRAP, RECENT = 0, 3


def _table(db: Database, table: Any) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def _history() -> Any:
    alice_chat = E.Message(conversation="hi from alice")
    conversations = [
        # A direct chat with a phone JID, archived and pinned; newest message first.
        _conv(
            ALICE,
            name="",
            unread=2,
            archived=True,
            pinned=T0,
            messages=[
                web_message(ALICE, "A3", T0 + 30, E.Message(conversation="newest"), from_me=True),
                web_message(
                    ALICE,
                    "A2",
                    T0 + 20,
                    E.Message(
                        imageMessage=E.ImageMessage(
                            mimetype="image/png", caption="pic", fileLength=10, directPath="/p"
                        )
                    ),
                    push_name="Alice",
                    reactions=(
                        W.Reaction(
                            key=C.MessageKey(remoteJID=ALICE, fromMe=True, ID="R-1"),
                            text="❤️",
                            senderTimestampMS=(T0 + 25) * 1000,
                        ),
                    ),
                ),
                web_message(ALICE, "A1", T0 + 10, alice_chat, push_name="Alice"),
            ],
        ),
        # A direct chat addressed by LID; the mapping below makes it Carol's phone chat.
        _conv(
            CAROL_LID,
            name="",
            mute=2**64 - 1,
            messages=[
                web_message(CAROL_LID, "C2", T0 + 50, stub=1),  # deleted for everyone
                web_message(CAROL_LID, "C1", T0 + 40, E.Message(conversation="carol here")),
            ],
            complete=True,
        ),
        # A group whose members speak as LIDs: one mapped (Carol), one not (Dan).
        _conv(
            GROUP,
            name="Family",
            mute=T0 + 3600,
            messages=[
                web_message(
                    GROUP,
                    "G2",
                    T0 + 70,
                    E.Message(
                        extendedTextMessage=E.ExtendedTextMessage(
                            text="reply", contextInfo=E.ContextInfo(stanzaID="G1")
                        )
                    ),
                    participant=DAN_LID,
                ),
                web_message(
                    GROUP,
                    "G1",
                    T0 + 60,
                    E.Message(conversation="hello family"),
                    participant=CAROL_LID,
                    push_name="Carol",
                ),
                # Key-exchange only: nothing to keep.
                web_message(
                    GROUP,
                    "G0",
                    T0 + 59,
                    E.Message(senderKeyDistributionMessage=E.SenderKeyDistributionMessage()),
                    participant=CAROL_LID,
                ),
            ],
        ),
    ]
    return history(
        INITIAL_BOOTSTRAP,
        conversations,
        pushnames=((ALICE, "Alice A."), (CAROL_LID, "Carol C."), (DAN_LID, "Dan")),
        mappings=((CAROL, CAROL_LID), (ALICE, ALICE_LID)),
        progress=40,
    )


def _conv(
    jid: str,
    *,
    messages: list[Any],
    name: str = "",
    unread: int = 0,
    archived: bool = False,
    pinned: int = 0,
    mute: int = 0,
    complete: bool = False,
) -> Any:
    from tests.integration.neonize_protos import H

    conv = H.Conversation(
        ID=jid,
        name=name,
        unreadCount=unread,
        archived=archived,
        pinned=pinned,
        muteEndTime=mute,
        conversationTimestamp=T0 + 100,
    )
    conv.messages.extend(messages)
    if complete:
        conv.endOfHistoryTransferType = 1
    return conv


async def test_history_sync_with_several_conversations(db: Database, tmp_path: Path) -> None:
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(_history())
        batches = [e for e in mirror.emitted if isinstance(e, ev.HistoryBatch)]

    [batch] = batches
    assert batch.sync_type == HistorySyncType.INITIAL_BOOTSTRAP
    assert batch.progress == 40
    assert batch.complete_chats == (CAROL,)
    # Stored LID-first (domain/identity.py): the history says both forms of Alice and Carol.

    found = {r["jid"]: r for r in _table(db, chats)}
    assert set(found) == {ALICE_LID, CAROL_LID, GROUP}
    alice = found[ALICE_LID]
    assert (alice["kind"], alice["unread_count"], alice["archived"], alice["pinned"]) == (
        "individual",
        2,
        True,
        True,
    )
    assert alice["last_message_at"] == T0 + 100
    assert found[CAROL_LID]["muted_until"] == FOREVER
    family = found[GROUP]
    assert (family["kind"], family["name"], family["muted_until"]) == ("group", "Family", T0 + 3600)
    assert (family["archived"], family["pinned"]) == (False, False)

    by_id = {r["message_id"]: r for r in _table(db, messages)}
    assert set(by_id) == {"A1", "A2", "A3", "C1", "C2", "G1", "G2"}
    assert (by_id["A3"]["sender_jid"], by_id["A3"]["from_me"]) == (OWN_JID, True)
    assert (by_id["A1"]["sender_jid"], by_id["A1"]["timestamp"]) == (ALICE_LID, T0 + 10)
    assert (by_id["A2"]["kind"], by_id["A2"]["text"]) == ("image", "pic")
    assert by_id["A2"]["media_direct_path"] == "/p"
    assert by_id["C1"]["chat_jid"] == by_id["C1"]["sender_jid"] == CAROL_LID
    assert (by_id["C2"]["revoked_at"], by_id["C2"]["kind"]) == (T0 + 50, "unknown")
    assert (by_id["G1"]["sender_jid"], by_id["G1"]["push_name"]) == (CAROL_LID, "Carol")
    assert (by_id["G2"]["sender_jid"], by_id["G2"]["quoted_id"]) == (DAN_LID, "G1")

    [reaction] = _table(db, reactions)
    assert (reaction["target_message_id"], reaction["sender_jid"], reaction["emoji"]) == (
        "A2",
        OWN_JID,
        "❤️",
    )
    assert reaction["timestamp"] == T0 + 25

    people = {r["jid"]: r for r in _table(db, contacts)}
    assert people[ALICE_LID]["push_name"] == "Alice A."
    assert (people[ALICE_LID]["lid"], people[ALICE_LID]["phone"]) == (ALICE_LID, "5511911110001")
    assert (people[CAROL_LID]["push_name"], people[CAROL_LID]["lid"]) == ("Carol C.", CAROL_LID)
    assert people[DAN_LID]["push_name"] == "Dan"
    assert OWN_JID not in people

    # The same history again (a replay) changes nothing.
    engine2 = new_engine(tmp_path / "t2.db")
    before = (_table(db, messages), _table(db, reactions))
    async with Mirror(engine2, db) as mirror:
        await mirror.feed(_history())
    assert (_table(db, messages), _table(db, reactions)) == before


async def test_every_sync_type_maps(db: Database, tmp_path: Path) -> None:
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(*(history(t, []) for t in range(7)))
        types = [e.sync_type for e in mirror.emitted if isinstance(e, ev.HistoryBatch)]
    assert types == [
        HistorySyncType.INITIAL_BOOTSTRAP,
        HistorySyncType.OTHER,  # INITIAL_STATUS_V3
        HistorySyncType.FULL,
        HistorySyncType.RECENT,
        HistorySyncType.PUSH_NAME,
        HistorySyncType.OTHER,  # NON_BLOCKING_DATA
        HistorySyncType.ON_DEMAND,
    ]
    assert RECENT == 3
