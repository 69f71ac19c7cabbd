"""One person, one conversation over HTTP: the same chat by LID, by phone JID and by
+phone answers the same rows, and every record carries both forms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest

from wasync.engines.simulator import Network

from .conftest import SEED, Api, api_on


@pytest.fixture
async def lid_api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    """A synced simulator session where everyone has a LID (a few hide their number)."""
    network = Network.from_scale("tiny", SEED, lid_fraction=1.0)
    async with api_on(db_url, tmp_path, network) as found:
        yield found


async def _get(api: Api, path: str) -> dict:  # type: ignore[type-arg]
    r = await api.client.get(api.url(path))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_chat_by_lid_phone_jid_or_number_is_the_same_chat(lid_api: Api) -> None:
    api = lid_api
    net = api.network
    # A direct chat with messages whose person has both forms known.
    pn = next(
        j
        for j in net.chat_jids()
        if j.endswith("@s.whatsapp.net")
        and (p := net.person(j)) is not None
        and p.phone
        and net.message_count(j)
    )
    person = net.person(pn)
    assert person is not None and person.lid is not None
    lid, digits = person.lid, person.phone
    # The number with its '+' kept and percent-encoded, and the LID and phone JID.
    forms = [lid, pn, f"+{digits}", f"%2B{digits}"]

    details = [await _get(api, f"/chats/{quote(f, safe='@+%')}") for f in forms]
    assert all(d == details[0] for d in details)
    assert (details[0]["jid"], details[0]["phone"], details[0]["lid"]) == (lid, digits, lid)

    pages = [await _get(api, f"/chats/{quote(f, safe='@+%')}/messages?limit=100") for f in forms]
    assert all(p == pages[0] for p in pages)
    items = pages[0]["items"]
    assert items and {m["chatJid"] for m in items} == {lid}
    theirs = [m for m in items if not m["fromMe"]]
    assert theirs and all(
        (m["senderJid"], m["senderPhone"], m["senderLid"]) == (lid, digits, lid) for m in theirs
    )
    mine = [m for m in items if m["fromMe"]]
    assert all(m["senderPhone"] == net.config.own_phone for m in mine)

    contacts = [await _get(api, f"/contacts/{quote(f, safe='@+%')}") for f in forms]
    assert all(c == contacts[0] for c in contacts)
    assert (contacts[0]["jid"], contacts[0]["phone"], contacts[0]["lid"]) == (lid, digits, lid)

    listed = await _get(api, "/chats?kind=individual&limit=200")
    keys = [c["jid"] for c in listed["items"]]
    assert len(keys) == len(set(keys)) == len([j for j in net.chat_jids() if "@g.us" not in j])
    mine_listed = next(c for c in listed["items"] if c["jid"] == lid)
    assert (mine_listed["phone"], mine_listed["lid"]) == (digits, lid)


async def test_participants_carry_both_forms_and_hidden_numbers_stay_hidden(
    lid_api: Api,
) -> None:
    api = lid_api
    net = api.network
    group = net.groups()[0]
    found = await _get(api, f"/chats/{quote(group.jid, safe='@')}/participants")
    by_jid = {p["jid"]: p for p in found["items"]}
    for member in group.participants:
        person = net.person(member.jid)
        if person is None:  # ourselves
            assert by_jid[member.jid]["phone"] == net.config.own_phone
            continue
        got = by_jid[person.jid]
        assert (got["phone"], got["lid"]) == (person.phone, person.lid)
