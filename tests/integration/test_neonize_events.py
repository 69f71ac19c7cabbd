"""Groups, pictures and the connection lifecycle, through the real dispatch path.

Lifecycle events are checked where they land: the session row (status and reason),
the engine's status, and the domain events handed to the sync layer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.integration.neonize_protos import Mirror, N, group, jid, lid, new_engine
from wasync.domain import events as ev
from wasync.domain.events import SessionStatus
from wasync.engines.base import LoggedOutError
from wasync.store.db import Database
from wasync.store.schema import chats, group_participants, groups, sessions

GROUP = "120363000000000042"
ALICE, BOB, CAROL = "5511911110001", "5511922220002", "5511933330003"
BOB_LID = "22220000000002"
T0 = 1_700_000_000


def _rows(db: Database, table: Any) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def _group_info(name: str = "Book club") -> Any:
    info = N.GroupInfo(
        JID=group(GROUP),
        OwnerJID=jid(ALICE),
        OwnerPN=jid(ALICE),
        GroupName=N.GroupName(Name=name, NameSetAt=T0),
        GroupTopic=N.GroupTopic(Topic="books", TopicDeleted=False),
        GroupCreated=float(T0),
    )
    info.Participants.add(
        JID=jid(ALICE),
        LID=lid("11110000000001"),
        PhoneNumber=jid(ALICE),
        IsAdmin=True,
        IsSuperAdmin=True,
        DisplayName="Alice",
    )
    info.Participants.add(
        JID=lid(BOB_LID),
        LID=lid(BOB_LID),
        PhoneNumber=jid(BOB),
        IsAdmin=False,
        IsSuperAdmin=False,
        DisplayName="",
    )
    return info


def _members(db: Database) -> dict[str, dict[str, Any]]:
    return {r["participant_jid"]: r for r in _rows(db, group_participants)}


async def test_joined_group_then_changes(db: Database, tmp_path: Path) -> None:
    g = f"{GROUP}@g.us"
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(N.JoinedGroup(Reason="invite", Type="", GroupInfo=_group_info()))
        [row] = _rows(db, groups)
        assert (row["jid"], row["name"], row["topic"], row["owner_jid"]) == (
            g,
            "Book club",
            "books",
            "11110000000001@lid",  # both of Alice's forms are known: her LID is her key
        )
        assert row["created_at"] == T0
        members = _members(db)
        alice, bob = "11110000000001@lid", f"{BOB_LID}@lid"
        assert set(members) == {alice, bob}  # the member with a LID is keyed by it
        assert (members[alice]["is_admin"], members[alice]["is_super_admin"]) == (True, True)
        assert (members[bob]["lid"], members[bob]["phone"]) == (f"{BOB_LID}@lid", BOB)
        assert members[alice]["display_name"] == "Alice"

        change = N.GroupInfoEvent(
            JID=group(GROUP),
            Timestamp=T0 + 10,
            Name=N.GroupName(Name="Book club 2"),
            Topic=N.GroupTopic(Topic="", TopicDeleted=True),
        )
        change.Join.append(jid(CAROL))
        change.Leave.append(lid(BOB_LID))  # Bob leaves, named by his LID
        change.Promote.append(jid(CAROL))
        await mirror.feed(change)
    [row] = _rows(db, groups)
    assert (row["name"], row["topic"]) == ("Book club 2", None)
    members = _members(db)
    carol = f"{CAROL}@s.whatsapp.net"
    assert set(members) == {"11110000000001@lid", carol}
    assert (members[carol]["is_admin"], members[carol]["phone"]) == (True, CAROL)
    [chat] = _rows(db, chats)
    assert (chat["jid"], chat["kind"], chat["name"]) == (g, "group", "Book club 2")


async def test_change_to_unknown_group_fetches_it(db: Database, tmp_path: Path) -> None:
    engine = new_engine(tmp_path / "t.db")
    asked: list[str] = []

    async def get_group_info(target: Any) -> Any:
        asked.append(target.User)
        return _group_info("Fetched")

    engine.client.get_group_info = get_group_info
    async with Mirror(engine, db) as mirror:
        await mirror.feed(N.Connected(status=True))
        await mirror.feed(N.GroupInfoEvent(JID=group(GROUP), Name=N.GroupName(Name="x")))
        await asyncio.gather(*engine._tasks)  # the refresh runs in the background
        await mirror.settle()
    assert asked == [GROUP]
    [row] = _rows(db, groups)
    assert row["name"] == "Fetched"


async def test_picture_change_is_reported(db: Database, tmp_path: Path) -> None:
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(
            N.Picture(JID=lid(BOB_LID), Author=jid(BOB), Timestamp=T0, Remove=False),
            N.Picture(JID=jid(ALICE), Author=jid(ALICE), Timestamp=T0 + 1, Remove=True),
        )
        pictures = [e for e in mirror.emitted if isinstance(e, ev.PictureChanged)]
    assert pictures == [
        ev.PictureChanged(f"{BOB_LID}@lid", False, T0),
        ev.PictureChanged(f"{ALICE}@s.whatsapp.net", True, T0 + 1),
    ]


def _session(db: Database) -> tuple[str, str | None]:
    [row] = _rows(db, sessions)
    return row["status"], row["status_reason"]


async def test_connection_lifecycle_reaches_the_session_row(db: Database, tmp_path: Path) -> None:
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(N.Connected(status=True))
        assert engine.status == SessionStatus.CONNECTED
        assert _session(db) == ("connected", None)

        await mirror.feed(N.KeepAliveTimeout(ErrorCount=2, LastSuccess=T0))
        await mirror.feed(N.KeepAliveRestored())
        await mirror.feed(
            N.OfflineSyncPreview(Total=7, AppDataChanges=0, Message=5, Notifications=1, Receipts=1)
        )
        await mirror.feed(N.OfflineSyncCompleted(Count=7))
        await mirror.feed(N.Disconnected(status=True))
        assert engine.status == SessionStatus.DISCONNECTED
        assert _session(db)[0] == "disconnected"
        await mirror.feed(N.ConnectFailure(Reason=10, Message="busy"))
        await mirror.feed(N.Connected(status=True))
        await mirror.feed(
            N.PairStatus(ID=jid(ALICE), BusinessName="", Platform="android", Status=2)
        )
        await mirror.feed(
            N.PairStatus(
                ID=jid(ALICE), BusinessName="", Platform="", Status=1, Error="phone said no"
            )
        )
        kinds = [type(e).__name__ for e in mirror.emitted]
    assert kinds == [
        "Connected",
        "KeepAliveLost",
        "KeepAliveRestored",
        "OfflineSyncStarted",
        "OfflineSyncCompleted",
        "Disconnected",
        "Disconnected",
        "Connected",
        "Paired",
        "PairingFailed",
    ]
    lost = mirror.emitted[1]
    assert lost == ev.KeepAliveLost(2, T0)
    assert mirror.emitted[3] == ev.OfflineSyncStarted(7)
    assert "service unavailable: busy" in str(mirror.emitted[6])
    assert mirror.emitted[8] == ev.Paired(f"{ALICE}@s.whatsapp.net")
    assert "phone said no" in str(mirror.emitted[9])


@pytest.mark.parametrize(
    ("proto", "status", "words"),
    [
        (N.LoggedOut(OnConnect=False, Reason=2), "logged_out", "logged this device out"),
        (N.StreamReplaced(), "replaced", "stream replaced"),
        (N.TemporaryBan(Code=4, Expire=3600), "banned", "sent too many identical messages"),
        (N.ConnectFailure(Reason=4, Message=""), "logged_out", "main device gone"),
    ],
)
async def test_logout_ban_and_replacement_are_terminal(
    db: Database, tmp_path: Path, proto: Any, status: str, words: str
) -> None:
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(N.Connected(status=True))
        await mirror.feed(proto)
        # A later Disconnected must not overwrite the verdict.
        await mirror.feed(N.Disconnected(status=True))
        gone = [e for e in mirror.emitted if isinstance(e, ev.LoggedOut)]
    assert len(gone) == 1 and words in gone[0].reason
    assert engine.status.value == status
    row_status, reason = _session(db)
    assert row_status == status and reason is not None and words in reason
    # Not retried: connecting again refuses at once, saying why.
    with pytest.raises(LoggedOutError, match=words):
        await engine.connect()
    assert engine._reconnecting is None


async def test_outdated_client_stops_without_retrying(db: Database, tmp_path: Path) -> None:
    engine = new_engine(tmp_path / "t.db")
    async with Mirror(engine, db) as mirror:
        await mirror.feed(N.Connected(status=True), N.ClientOutdated())
    status, reason = _session(db)
    assert status == "disconnected" and reason is not None and "outdated" in reason
    with pytest.raises(LoggedOutError, match="upgrade neonize"):
        await engine.connect()


async def test_a_refused_connection_is_retried_with_backoff(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasync.sessions.supervision import Backoff

    engine = new_engine(tmp_path / "t.db", backoff=Backoff(initial=0.001, maximum=0.002))
    attempts: list[str] = []
    reconnected = asyncio.Event()

    async def fake_connect() -> None:
        attempts.append(engine.status.value)
        if len(attempts) == 1:
            from wasync.engines.base import TransientEngineError

            raise TransientEngineError("still refused")
        reconnected.set()

    monkeypatch.setattr(engine, "connect", fake_connect)
    async with Mirror(engine, db) as mirror:
        await mirror.feed(N.Connected(status=True))
        # 503: whatsmeow retries by itself, so wasync must not start a second loop.
        await mirror.feed(N.ConnectFailure(Reason=10, Message=""))
        assert engine._reconnecting is None and attempts == []
        # A generic refusal: whatsmeow gives up, wasync reconnects with back-off.
        await mirror.feed(N.ConnectFailure(Reason=1, Message="odd"))
        await asyncio.wait_for(reconnected.wait(), 10)
    assert attempts == ["disconnected", "disconnected"]
    assert engine.options.backoff.attempts == 2
