"""Chats, messages and participants over HTTP, against the simulator's ground truth."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from wasync.domain.events import MessageReceived
from wasync.domain.models import ChatKind
from wasync.store.pagination import encode_cursor

from .conftest import LIMIT, Api


async def _all_pages(api: Api, path: str, cursor_param: str = "cursor") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        sep = "&" if "?" in path else "?"
        url = path + (f"{sep}{cursor_param}={cursor}" if cursor else "")
        r = await api.client.get(url)
        assert r.status_code == 200, r.text
        page = r.json()
        items.extend(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination never ended")


async def test_chat_list_pages_cover_every_chat_by_activity(api: Api) -> None:
    items = await _all_pages(api, api.url("/chats?limit=3"))
    net = api.network
    assert [c["jid"] for c in items] == sorted(
        net.chat_jids(), key=lambda j: (net.chat(j).last_message_at or -1, j), reverse=True
    )
    by_jid = {c["jid"]: c for c in items}
    for chat in net.chats():
        got = by_jid[chat.jid]
        assert got["kind"] == chat.kind.value and got["name"] == chat.name
        assert got["displayName"]
        assert got["profilePicture"] is None and got["profilePictureTimestamp"] is None
        newest = net.newest(chat.jid, 1)
        if newest:
            assert got["lastMessage"]["messageId"] == newest[0].key.message_id
            assert got["lastMessage"]["timestamp"] == newest[0].timestamp


async def test_chat_search_and_kind_filter(api: Api) -> None:
    net = api.network
    groups = await _all_pages(api, api.url("/chats?kind=group&limit=2"))
    assert {c["jid"] for c in groups} == {c.jid for c in net.chats() if c.kind is ChatKind.GROUP}
    people = await _all_pages(api, api.url("/chats?kind=individual"))
    assert {c["jid"] for c in people} == {
        c.jid for c in net.chats() if c.kind is ChatKind.INDIVIDUAL
    }
    named = next(c for c in net.chats() if c.name)
    assert named.name is not None
    needle = named.name[1:4].upper()
    found = await _all_pages(api, api.url(f"/chats?search={quote(needle)}"))
    assert named.jid in {c["jid"] for c in found}
    assert all(needle.lower() in (c["name"] or "").lower() for c in found)
    r = await api.client.get(api.url("/chats?kind=robots"))
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"


async def test_message_pages_match_the_newest_messages(api: Api) -> None:
    net = api.network
    jid = max(net.chat_jids(), key=net.message_count)
    items = await _all_pages(api, api.url(f"/chats/{jid}/messages?limit=7"), "before")
    expected = list(reversed(net.newest(jid, LIMIT)))
    assert [m["messageId"] for m in items] == [m.key.message_id for m in expected]
    for got, want in zip(items, expected, strict=True):
        assert got["timestamp"] == want.timestamp and got["senderJid"] == want.key.sender_jid
        assert got["fromMe"] == want.from_me and got["kind"] == want.kind.value
        assert got["text"] == want.text
        assert (got["media"] is None) == (want.media is None)
    # Forwards from the oldest: the same messages, oldest first.
    forward: list[str] = []
    cursor = items[-1]["cursor"]
    while cursor:
        page = (
            await api.client.get(api.url(f"/chats/{jid}/messages?limit=5&after={cursor}"))
        ).json()
        forward.extend(m["messageId"] for m in page["items"])
        cursor = page["nextCursor"]
    assert forward == [m.key.message_id for m in reversed(expected[:-1])]


async def test_chat_detail_and_participants(api: Api) -> None:
    net = api.network
    group = net.groups()[0]
    r = await api.client.get(api.url(f"/chats/{group.jid}"))
    assert r.status_code == 200
    detail = r.json()
    assert detail["participantCount"] == len(group.participants)
    assert detail["syncState"]["fullySynced"] == (net.message_count(group.jid) < LIMIT)
    r = await api.client.get(api.url(f"/chats/{group.jid}/participants"))
    assert {(p["jid"], p["isAdmin"], p["isSuperAdmin"]) for p in r.json()["items"]} == {
        (p.jid, p.is_admin, p.is_super_admin) for p in group.participants
    }
    person = next(c for c in net.chats() if c.kind is ChatKind.INDIVIDUAL)
    r = await api.client.get(api.url(f"/chats/{person.jid}/participants"))
    assert r.status_code == 404 and "not a group" in r.json()["detail"]
    # A phone number finds the same chat as its JID.
    phone = person.jid.split("@")[0]
    assert (await api.client.get(api.url(f"/chats/%2B{phone}"))).json()["jid"] == person.jid


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/chats/not-a-jid", 400),
        ("/chats/123@nowhere.example", 400),
        ("/chats/1203630000000000@g.us", 404),
        ("/chats/1203630000000000@g.us/messages", 404),
        ("/chats?cursor=%%%", 400),
        ("/chats?cursor=WzEsMiwzXQ", 400),
        ("/chats?limit=0", 422),
        ("/chats?limit=100000", 422),
        ("/contacts?cursor=bm9wZQ", 400),
        # Well-formed cursors holding what no column can: past 64 bits, a NUL.
        (f"/chats?cursor={encode_cursor(2**70, 'x')}", 400),
        (f"/chats?cursor={encode_cursor(2**63, 'x')}", 400),
        (f"/chats?cursor={encode_cursor(1, 'a' + chr(0))}", 400),
        (f"/contacts?cursor={encode_cursor('a' + chr(0), 'b')}", 400),
        ("/chats?search=%00", 400),
        ("/contacts?search=%00", 400),
    ],
)
async def test_bad_ids_and_cursors_are_clear_4xx(api: Api, path: str, status: int) -> None:
    r = await api.client.get(api.url(path))
    assert r.status_code == status, r.text
    expected = {"error", "detail", "errors"} if status == 422 else {"error", "detail"}
    assert set(r.json()) == expected and isinstance(r.json()["detail"], str)


async def test_message_cursor_errors(api: Api) -> None:
    jid = api.network.chat_jids()[0]
    r = await api.client.get(api.url(f"/chats/{jid}/messages?before=garbage"))
    assert r.status_code == 400 and "invalid cursor" in r.json()["detail"]
    page = (await api.client.get(api.url(f"/chats/{jid}/messages?limit=1"))).json()
    cursor = page["items"][0]["cursor"]
    r = await api.client.get(api.url(f"/chats/{jid}/messages?before={cursor}&after={cursor}"))
    assert r.status_code == 400 and "either" in r.json()["detail"]


async def _insert_live(api: Api, jid: str) -> None:
    """Commit new messages now: three in `jid` (newer than all) and some elsewhere."""
    fresh = [MessageReceived(api.network.add_message(jid)) for _ in range(3)]
    await api.engine.push(fresh)
    await api.engine.push_live(5)
    await api.engine.drained()
    await api.runtime.session("default").sync.flush()


async def test_message_pages_are_stable_under_concurrent_inserts(api: Api) -> None:
    net = api.network
    jid = max(net.chat_jids(), key=net.message_count)
    snapshot = [m.key.message_id for m in reversed(net.newest(jid, LIMIT))]
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        path = api.url(f"/chats/{jid}/messages?limit=4") + (f"&before={cursor}" if cursor else "")
        page = (await api.client.get(path)).json()
        seen.extend(m["messageId"] for m in page["items"])
        await _insert_live(api, jid)
        cursor = page["nextCursor"]
        if cursor is None:
            break
    # Exactly the messages stored when paging began, newest first, none twice.
    assert seen == snapshot
    assert net.message_count(jid) > LIMIT


async def test_chat_pages_are_stable_under_concurrent_inserts(api: Api) -> None:
    before = {c["jid"]: c["lastMessageAt"] for c in await _all_pages(api, api.url("/chats"))}
    busy = max(api.network.chat_jids(), key=api.network.message_count)
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        path = api.url("/chats?limit=2") + (f"&cursor={cursor}" if cursor else "")
        page = (await api.client.get(path)).json()
        seen.extend(c["jid"] for c in page["items"])
        await _insert_live(api, busy)
        cursor = page["nextCursor"]
        if cursor is None:
            break
    # A chat that moved up during paging may be missed (it moved above the cursor),
    # but no chat appears twice and every chat whose activity stood still is seen.
    assert len(seen) == len(set(seen))
    after = {c["jid"]: c["lastMessageAt"] for c in await _all_pages(api, api.url("/chats"))}
    untouched = {j for j, ts in before.items() if after[j] == ts}
    assert untouched and untouched <= set(seen)
    assert len(after) >= len(before)
