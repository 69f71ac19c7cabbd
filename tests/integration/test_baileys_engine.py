"""The Baileys engine end to end, offline: real Baileys protobufs through the real
sidecar and stdio protocol into the store (baileys_harness.py says how)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.integration.baileys_harness import (
    ME,
    build,
    history,
    hook,
    message,
    open_socket,
    paired_engine,
    requires_sidecar,
    silent_ws,
    upsert,
)
from tests.integration.mirror import assert_no_duplicates
from tests.integration.standalone import Standalone
from tests.waiting import eventually
from wasync.domain.events import SessionStatus
from wasync.domain.models import MessageAnchor, MessageKey
from wasync.engines.base import HistoryPage, HistoryTimeout, reached_start
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.schema import contacts, messages, reactions

pytestmark = [requires_sidecar]
__all__ = ["silent_ws"]

ALICE = "5511911110001@s.whatsapp.net"
BOB_LID = "81111111111@lid"
ALICE_LID = "82222222222@lid"
BOB = "5511922220002@s.whatsapp.net"
GROUP = "120363000000000001@g.us"


@pytest.fixture
def database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'wasync.db'}")
    db.migrate()
    return db


async def running(db: Database, engine) -> Standalone:  # type: ignore[no-untyped-def]
    runner = Standalone(db, engine, "b", engine_name="baileys")
    start = asyncio.create_task(runner.start())
    await open_socket(engine)
    await asyncio.wait_for(start, 20)
    return runner


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Standalone]]:
    runners: list[Standalone] = []
    yield runners
    for runner in runners:
        await runner.stop()


def rows(db: Database, *columns):  # type: ignore[no-untyped-def]
    with db.read() as conn:
        return conn.execute(select(*columns)).all()


async def test_live_messages_and_initial_history_reach_the_store(
    tmp_path: Path, silent_ws: str, database: Database, cleanup: list[Standalone]
) -> None:
    engine = paired_engine(tmp_path, silent_ws)
    runner = await running(database, engine)
    cleanup.append(runner)
    assert engine.status is SessionStatus.CONNECTED and engine.own_jid == ME
    media = {
        "imageMessage": {
            "url": "https://mmg.whatsapp.net/x",
            "mimetype": "image/jpeg",
            "caption": "a photo",
            "fileLength": 1234,
            "mediaKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "directPath": "/v/t62/abc",
        }
    }
    items = build(
        message(ALICE, "M1", 1_700_000_100, {"conversation": "hello"}, push_name="Alice"),
        message(ALICE, "M2", 1_700_000_200, media),
        message(ALICE, "M3", 1_700_000_300, {"conversation": "typo"}, from_me=True),
        # Our edit of M3 (from another device), Alice's revoke of M1, Alice's reaction.
        message(
            ALICE,
            "E1",
            1_700_000_400,
            {
                "protocolMessage": {
                    "type": "MESSAGE_EDIT",
                    "key": {"remoteJid": ALICE, "fromMe": True, "id": "M3"},
                    "editedMessage": {"conversation": "fixed"},
                    "timestampMs": 1_700_000_400_000,
                }
            },
            from_me=True,
        ),
        message(
            ALICE,
            "R1",
            1_700_000_500,
            # Alice's own message, from her side: fromMe.
            {
                "protocolMessage": {
                    "type": "REVOKE",
                    "key": {"remoteJid": ALICE, "fromMe": True, "id": "M1"},
                }
            },
        ),
        message(
            ALICE,
            "X1",
            1_700_000_600,
            {
                "reactionMessage": {
                    "key": {"remoteJid": ALICE, "fromMe": True, "id": "M3"},
                    "text": "👍",
                }
            },
        ),
        # A group message from a LID sender whose phone number the envelope carries.
        message(GROUP, "G1", 1_700_000_700, {"conversation": "hi all"}, participant=BOB_LID),
        history(
            "H1",
            {
                "syncType": "INITIAL_BOOTSTRAP",
                "progress": 100,
                "conversations": [
                    {
                        "id": ALICE,
                        "name": "Alice",
                        "endOfHistoryTransferType": 0,
                        "messages": [
                            {
                                "message": {
                                    "key": {"remoteJid": ALICE, "fromMe": False, "id": "OLD1"},
                                    "messageTimestamp": 1_600_000_000,
                                    "message": {"conversation": "an old one"},
                                }
                            }
                        ],
                    }
                ],
                "pushnames": [{"id": ALICE, "pushname": "Alice P"}],
                "phoneNumberToLidMappings": [{"pnJid": ALICE, "lidJid": ALICE_LID}],
            },
        ),
    )
    for proto_b64 in items[:6]:
        await upsert(engine, proto_b64)
    await upsert(engine, items[6], participantAlt=BOB)
    await upsert(engine, items[7])

    def stored() -> dict[str, tuple]:  # type: ignore[type-arg]
        return {r.message_id: r for r in rows(database, *messages.c)}

    await eventually(lambda: {"M1", "M2", "M3", "G1", "OLD1"} <= stored().keys(), within=15)
    await runner.flush()
    await eventually(lambda: stored()["M3"].text == "fixed" and stored()["M1"].revoked_at)
    got = stored()
    assert got["M1"].text == "hello" and got["M1"].push_name == "Alice"
    assert got["M2"].kind == "image" and got["M2"].text == "a photo"
    assert got["M2"].media_direct_path == "/v/t62/abc" and got["M2"].media_size == 1234
    assert got["M3"].from_me and got["M3"].sender_jid == ME
    # A person is keyed by their LID once both forms are known (domain/identity.py).
    assert got["G1"].chat_jid == GROUP and got["G1"].sender_jid == BOB_LID
    assert got["OLD1"].timestamp == 1_600_000_000
    await eventually(lambda: len(rows(database, reactions.c.emoji)) == 1)
    reaction = rows(database, *reactions.c)[0]
    assert (reaction.target_message_id, reaction.target_sender_jid) == ("M3", ME)
    assert reaction.sender_jid == ALICE_LID and reaction.emoji == "👍"
    people = {r.jid: r for r in rows(database, *contacts.c)}
    assert people[BOB_LID].lid == BOB_LID and people[BOB_LID].phone == BOB.split("@")[0]
    # Baileys keeps push names of PUSH_NAME history sets only; Alice's came live.
    assert people[ALICE_LID].lid == ALICE_LID and people[ALICE_LID].push_name == "Alice"
    assert_no_duplicates(database)


async def test_history_on_demand_is_matched_times_out_and_a_late_answer_is_stored(
    tmp_path: Path, silent_ws: str, database: Database, cleanup: list[Standalone]
) -> None:
    engine = paired_engine(tmp_path, silent_ws, history_timeout=15.0)
    runner = await running(database, engine)
    cleanup.append(runner)
    anchor = MessageAnchor(MessageKey(ALICE, ALICE, "OLDEST"), 1_650_000_000, from_me=False)

    def answer(request_id: str | None, ids: list[str], end: int, note: str) -> str:
        conv = {
            "id": ALICE,
            "endOfHistoryTransferType": end,
            "messages": [
                {
                    "message": {
                        "key": {"remoteJid": ALICE, "fromMe": False, "id": i},
                        "messageTimestamp": 1_640_000_000 - n,
                        "message": {"conversation": f"older {i}"},
                    }
                }
                for n, i in enumerate(ids)
            ],
        }
        sync = {"syncType": "ON_DEMAND", "conversations": [conv]}
        return build(history(note, sync, request_id))[0]

    # 1. Answered: matched by its request id; the phone says more remain.
    asked = asyncio.create_task(engine.request_history(ALICE, anchor, 50))
    requests: list = []  # type: ignore[type-arg]

    async def wait_requests(n: int) -> None:
        for _ in range(200):
            requests[:] = (await hook(engine, "test.requests"))["requests"]
            if len(requests) >= n:
                return
            await asyncio.sleep(0.025)
        raise AssertionError("no history request reached the sidecar")

    await wait_requests(1)
    sent = requests[0]
    assert sent["count"] == 50 and sent["timestamp"] == 1_650_000_000  # seconds
    assert sent["key"] == {"remoteJid": ALICE, "id": "OLDEST", "fromMe": False}
    # Another request's answer (an unknown id) is not taken for ours.
    await upsert(engine, answer("SOMEONE-ELSE", ["X"], 0, "N0"))
    await upsert(engine, answer(sent["requestId"], ["P1", "P2"], 0, "N1"))
    page = await asyncio.wait_for(asked, 10)
    assert isinstance(page, HistoryPage)
    assert [m.key.message_id for m in page] == ["P1", "P2"]
    assert page.more is True and not reached_start(page, 50)  # fewer than asked, yet more

    # 2. The phone says the chat's start was reached.
    asked = asyncio.create_task(engine.request_history(ALICE, anchor, 50))
    await wait_requests(2)
    await upsert(engine, answer(requests[1]["requestId"], ["P3"], 1, "N2"))
    page = await asyncio.wait_for(asked, 10)
    assert page.more is False and reached_start(page, 50)  # type: ignore[attr-defined]

    # 3. No answer in time: HistoryTimeout; the answer that comes late is stored.
    engine.options = dataclasses.replace(engine.options, history_timeout=1.0)
    with pytest.raises(HistoryTimeout, match="did not answer"):
        await engine.request_history(ALICE, anchor, 50)
    await wait_requests(3)
    await upsert(engine, answer(requests[2]["requestId"], ["LATE1"], 0, "N3"))
    await eventually(
        lambda: any(r.message_id == "LATE1" for r in rows(database, messages.c.message_id)),
        within=10,
    )
    stored = {r.message_id for r in rows(database, messages.c.message_id)}
    # The unmatched answer is ordinary history too; the matched pages went to their caller.
    assert "X" in stored and "P1" not in stored


async def test_a_sidecar_crash_mid_stream_restarts_it_and_commits_nothing_twice(
    tmp_path: Path, silent_ws: str, database: Database, cleanup: list[Standalone]
) -> None:
    engine = paired_engine(tmp_path, silent_ws)
    runner = await running(database, engine)
    cleanup.append(runner)
    items = build(
        *(message(ALICE, f"C{i}", 1_700_001_000 + i, {"conversation": f"n{i}"}) for i in range(40))
    )
    for proto_b64 in items[:20]:
        await upsert(engine, proto_b64)
    first_pid = engine.sidecar_pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)  # mid-stream: what it sent so far stays sent
    await eventually(
        lambda: engine.restarts == 1 and engine.sidecar_pid not in (None, first_pid), within=15
    )
    assert engine.status is not SessionStatus.CONNECTED
    await open_socket(engine)
    await eventually(lambda: engine.status is SessionStatus.CONNECTED, within=10)
    # WhatsApp delivers again what was not acked, and the rest.
    for proto_b64 in items[10:]:
        await upsert(engine, proto_b64)
    await eventually(lambda: len(rows(database, messages.c.id)) == 40, within=15)
    await runner.flush()
    assert_no_duplicates(database)
    with database.read() as conn:
        assert runner.session_id is not None
        state = queries.get_sync_state(conn, runner.session_id, ALICE)
    assert state is not None and state.newest_message_id == "C39"
