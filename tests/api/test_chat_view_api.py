"""What the chat view reads: quoted replies, pages around a message, the UI's addresses,
and live simulator messages on the real clock."""

from __future__ import annotations

from wasync.domain.events import MessageReceived
from wasync.engines.simulator import Network

from .conftest import LIMIT, Api


async def _stored(api: Api, jid: str) -> list[dict]:
    r = await api.client.get(api.url(f"/chats/{jid}/messages?limit={LIMIT}"))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_replies_carry_the_quoted_message_when_stored(api: Api) -> None:
    net = api.network
    checked = 0
    for jid in net.chat_jids():
        items = await _stored(api, jid)
        by_id = {m["messageId"]: m for m in items}
        for m in items:
            if not m["quotedId"]:
                assert m["quoted"] is None
                continue
            quoted = by_id.get(m["quotedId"])
            if quoted is None:  # older than the synced page: not stored, so not shown
                assert m["quoted"] is None
                continue
            got = m["quoted"]
            assert got["messageId"] == quoted["messageId"]
            assert got["senderJid"] == quoted["senderJid"]
            assert got["text"] == (quoted["text"] or (quoted["media"] or {}).get("filename"))
            assert got["cursor"] == quoted["cursor"] and got["timestamp"] == quoted["timestamp"]
            checked += 1
        for m in items:
            assert "senderPicture" in m and (m["senderPicture"] is None or not m["fromMe"])
    assert checked >= 3


async def test_a_page_around_a_message_holds_it_with_newer_and_older(api: Api) -> None:
    net = api.network
    jid = max(net.chat_jids(), key=net.message_count)
    newest_first = await _stored(api, jid)
    target = newest_first[len(newest_first) // 2]
    r = await api.client.get(api.url(f"/chats/{jid}/messages?limit=9&around={target['messageId']}"))
    assert r.status_code == 200, r.text
    page = r.json()
    ids = [m["messageId"] for m in page["items"]]
    at = [m["messageId"] for m in newest_first].index(target["messageId"])
    assert ids == [m["messageId"] for m in newest_first[at - 4 : at + 5]]
    # Its cursors page on both ways, as `before` and `after` do.
    older = (
        await api.client.get(api.url(f"/chats/{jid}/messages?limit=2&before={page['nextCursor']}"))
    ).json()
    assert [m["messageId"] for m in older["items"]] == [
        m["messageId"] for m in newest_first[at + 5 : at + 7]
    ]
    newer = (
        await api.client.get(api.url(f"/chats/{jid}/messages?limit=2&after={page['newerCursor']}"))
    ).json()
    assert [m["messageId"] for m in newer["items"]] == [
        m["messageId"] for m in reversed(newest_first[at - 6 : at - 4])
    ]
    # Around the newest message: nothing newer.
    r = await api.client.get(
        api.url(f"/chats/{jid}/messages?limit=9&around={newest_first[0]['messageId']}")
    )
    assert r.json()["newerCursor"] is None and r.json()["items"][0] == newest_first[0]


async def test_around_an_unknown_message_or_with_before_is_refused(api: Api) -> None:
    jid = api.network.chat_jids()[0]
    r = await api.client.get(api.url(f"/chats/{jid}/messages?around=NOPE"))
    assert r.status_code == 404 and "NOPE" in r.json()["detail"]
    r = await api.client.get(api.url(f"/chats/{jid}/messages?around=x&before=y"))
    assert r.status_code == 400


async def test_ui_addresses_and_not_found_pages(api: Api) -> None:
    jid = api.network.chat_jids()[0]
    for path in (
        "/ui/sessions/default",
        f"/ui/sessions/default/chats/{jid}",
        "/ui/sessions/default/sync",
    ):
        r = await api.client.get(path, headers={"X-Api-Key": ""})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
    page = (await api.client.get(f"/ui/sessions/default/chats/{jid}")).text
    assert f'data-jid="{jid}"' in page
    for path in ("/ui/nowhere", "/ui/sessions/default/nothing/here", "/ui/sessions/..bad"):
        r = await api.client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "Not found" in r.text
    # The API's own unknown paths keep answering JSON.
    r = await api.client.get("/api/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_live_messages_on_the_wall_clock_history_on_its_own() -> None:
    virtual = Network.from_scale("tiny", 1)
    real = Network.from_scale("tiny", 1, wall_clock=lambda: 2_000_000_000.0)
    # History is the same either way; live events carry the wall clock's time.
    jid = virtual.chat_jids()[0]
    assert [m.timestamp for m in virtual.newest(jid, 5)] == [
        m.timestamp for m in real.newest(jid, 5)
    ]
    stamps = [e.message.timestamp for e in real.live_events(20) if isinstance(e, MessageReceived)]
    assert stamps and virtual.now < 2_000_000_000 <= real.now
    assert all(t >= 2_000_000_000 for t in stamps) and stamps == sorted(stamps)
