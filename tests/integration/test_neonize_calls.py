"""The engine's calls into whatsmeow: gating, error mapping, capabilities.

whatsmeow's answers are stubbed on the real NewAClient (there is no network); the
connection state comes from real Connected/Disconnected events through dispatch.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.integration.neonize_protos import Mirror, N, dispatch, group, jid, lid, new_engine
from wasync.domain.models import Picture, PictureForbidden, PictureNotSet, PictureUnchanged
from wasync.engines.base import CapabilityMissing, MediaGone, NotConnected, RateLimited
from wasync.engines.base import Engine as EnginePort
from wasync.engines.neonize import loader
from wasync.store.db import Database
from wasync.store.schema import contacts, groups
from wasync.sync.initial import initial_sync

ALICE, BOB = "5511911110001", "5511922220002"
BOB_LID = "22220000000002"


def _contact_rows() -> list[Any]:
    contact = N.Contact(
        JID=jid(ALICE),
        Info=N.ContactInfo(
            Found=True,
            FirstName="Al",
            FullName="Alice Doe",
            PushName="Ali",
            BusinessName="",
            RedactedPhone="",
        ),
    )
    by_lid = N.Contact(
        JID=lid(BOB_LID),
        Info=N.ContactInfo(
            Found=True,
            FirstName="",
            FullName="",
            PushName="Bobby",
            BusinessName="Bob's Bikes",
            RedactedPhone="",
        ),
    )
    return [contact, by_lid]


def _joined() -> list[Any]:
    info = N.GroupInfo(JID=group("120363000000000077"), GroupName=N.GroupName(Name="Runners"))
    info.Participants.add(JID=jid(ALICE), PhoneNumber=jid(ALICE), IsAdmin=True)
    return [info]


async def test_engine_implements_the_port_honestly(tmp_path: Path) -> None:
    engine = new_engine(tmp_path / "t.db")
    assert isinstance(engine, EnginePort)
    caps = engine.capabilities
    assert (caps.on_demand_history, caps.pair_code, caps.list_chats) == (False, True, False)
    with pytest.raises(CapabilityMissing, match="older history is not available"):
        await engine.request_history(f"{ALICE}@s.whatsapp.net", None, 20)
    with pytest.raises(CapabilityMissing, match="cannot list chats"):
        await engine.list_chats()


async def test_disconnect_pauses_a_sync_and_reconnect_resumes_it(
    db: Database, tmp_path: Path
) -> None:
    engine = new_engine(tmp_path / "t.db")
    calls: list[str] = []

    async def get_all_contacts() -> list[Any]:
        calls.append("contacts")
        return _contact_rows()

    async def get_pn_from_lid(target: Any) -> Any:
        calls.append(f"pn-of-{target.User}")
        return jid(BOB)

    async def get_joined_groups() -> list[Any]:
        calls.append("groups")
        return _joined()

    engine.client.contact.get_all_contacts = get_all_contacts
    engine.client.get_pn_from_lid = get_pn_from_lid
    engine.client.get_joined_groups = get_joined_groups
    async with Mirror(engine, db) as mirror:
        await mirror.feed(N.Connected(status=True), N.Disconnected(status=True))
        sync = asyncio.create_task(initial_sync(engine, db, mirror.session_id, "t"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not sync.done() and calls == []  # paused at the gate, nothing sent
        await dispatch(engine, N.Connected(status=True))
        report = await sync
    assert calls == ["contacts", f"pn-of-{BOB_LID}", "groups"]
    assert (report.contacts, report.groups) == (2, 1)
    with db.read() as conn:
        people = {r.jid: r for r in conn.execute(select(contacts))}
        assert conn.execute(select(func.count()).select_from(groups)).scalar_one() == 1
    alice = people[f"{ALICE}@s.whatsapp.net"]
    assert (alice.name, alice.push_name) == ("Alice Doe", "Ali")
    bob = people[f"{BOB_LID}@lid"]  # both forms known: keyed by the LID (domain/identity.py)
    assert (bob.business_name, bob.lid, bob.phone) == ("Bob's Bikes", f"{BOB_LID}@lid", BOB)


async def test_calls_wait_only_so_long_while_offline(tmp_path: Path) -> None:
    from wasync.engines.neonize.options import NeonizeOptions

    engine = new_engine(tmp_path / "t.db", offline_wait=0.05)
    assert isinstance(engine.options, NeonizeOptions)
    with pytest.raises(NotConnected, match="not connected to WhatsApp"):
        await engine.list_groups()


def _picture_error(text: str) -> Exception:
    proto = loader.module("proto")
    exc = loader.module("exc")
    return exc.GetProfilePictureError(proto.GetProfilePictureReturnFunction(Error=text))


@pytest.mark.parametrize(
    ("answer", "existing", "expected"),
    [
        (
            {"ID": "123", "URL": "https://pps.whatsapp.net/p.jpg"},
            None,
            Picture("123", "https://pps.whatsapp.net/p.jpg"),
        ),
        ({"ID": ""}, "123", PictureUnchanged("123")),
        ({"ID": ""}, None, PictureNotSet()),
        (
            _picture_error("the user has hidden their profile picture from you"),
            None,
            PictureForbidden(),
        ),
        (_picture_error("that user does not have a profile picture"), "9", PictureNotSet()),
    ],
)
async def test_profile_picture_answers(
    tmp_path: Path, answer: Any, existing: str | None, expected: Any
) -> None:
    engine = new_engine(tmp_path / "t.db")
    seen: list[Any] = []

    async def get_profile_picture(target: Any, params: Any) -> Any:
        seen.append((target.User, params.ExistingID, params.Preview))
        if isinstance(answer, Exception):
            raise answer
        return loader.module("proto").ProfilePictureInfo(**answer)

    engine.client.get_profile_picture = get_profile_picture
    await dispatch(engine, N.Connected(status=True))
    assert await engine.profile_picture(f"{ALICE}@s.whatsapp.net", existing) == expected
    assert seen == [(ALICE, existing or "", False)]


async def test_rate_limit_and_gone_media(tmp_path: Path) -> None:
    from wasync.domain.models import MediaInfo

    engine = new_engine(tmp_path / "t.db")

    async def limited(target: Any, params: Any) -> Any:
        raise _picture_error("info query returned status 429: rate-overlimit")

    async def gone(message: Any) -> bytes:
        assert message.imageMessage.directPath == "/v/t62/x"
        assert message.imageMessage.mediaKey == b"\x01" * 32
        raise loader.module("exc").DownloadError("download failed with status code 410")

    engine.client.get_profile_picture = limited
    engine.client.download_any = gone
    await dispatch(engine, N.Connected(status=True))
    with pytest.raises(RateLimited) as info:
        await engine.profile_picture(f"{ALICE}@s.whatsapp.net", None)
    assert info.value.retry_after is not None
    key = base64.b64encode(b"\x01" * 32).decode()
    media = MediaInfo(mimetype="image/jpeg", direct_path="/v/t62/x", media_key=key)
    with pytest.raises(MediaGone):
        await engine.download(media)


async def test_user_info_is_asked_in_batches(tmp_path: Path) -> None:
    from wasync.engines.neonize.queries import USER_INFO_BATCH

    engine = new_engine(tmp_path / "t.db")
    batches: list[int] = []
    proto = loader.module("proto")

    async def get_user_info(*targets: Any) -> list[Any]:
        batches.append(len(targets))
        return [
            proto.GetUserInfoSingleReturnFunction(
                JID=t, UserInfo=proto.UserInfo(Status="hey", PictureID="p1")
            )
            for t in targets
        ]

    engine.client.get_user_info = get_user_info
    await dispatch(engine, N.Connected(status=True))
    people = [f"55119{n:08d}@s.whatsapp.net" for n in range(USER_INFO_BATCH + 3)]
    infos = await engine.user_info(people)
    assert batches == [USER_INFO_BATCH, 3]
    assert [i.jid for i in infos] == people
    assert (infos[0].status, infos[0].picture_id) == ("hey", "p1")


async def test_qr_codes_become_pairing_events_only_when_pairing(tmp_path: Path) -> None:
    from wasync.domain import events as ev

    pairing = new_engine(tmp_path / "a.db", allow_pairing=True)
    seen: list[ev.Event] = []
    pairing.add_listener(seen.append)
    await pairing.client.event._qr(pairing.client, b"2@abc,def")
    assert seen == [ev.PairingCode("2@abc,def", "qr")]
    assert pairing.status.value == "pairing"

    normal = new_engine(tmp_path / "b.db")
    quiet: list[ev.Event] = []
    normal.add_listener(quiet.append)
    await normal.client.event._qr(normal.client, b"2@abc,def")
    assert quiet == []  # a session that should be paired never shows codes
