"""Media on demand (cached, 410 when expired) and contacts with their avatar fields."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import update

from wasync.domain.models import Message, MessageKind
from wasync.store.schema import contacts

from .conftest import LIMIT, Api


def _stored_media(api: Api, kind: MessageKind) -> list[Message]:
    net = api.network
    return [
        m
        for jid in net.chat_jids()
        for m in net.newest(jid, LIMIT)
        if m.kind is kind and m.media is not None
    ]


def _media_path(api: Api, m: Message) -> str:
    key = m.key
    return api.url(
        f"/chats/{key.chat_jid}/messages/{key.message_id}/media?sender={quote(key.sender_jid)}"
    )


async def test_media_is_downloaded_once_then_served_from_the_cache(api: Api) -> None:
    image = _stored_media(api, MessageKind.IMAGE)[0]
    before = api.engine.stats.downloads
    r = await api.client.get(_media_path(api, image))
    assert r.status_code == 200, r.text
    assert r.content == api.network.media_bytes(image.key.chat_jid, image.key.message_id)
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"].startswith("inline")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    assert api.engine.stats.downloads == before + 1
    again = await api.client.get(_media_path(api, image))
    assert again.content == r.content and api.engine.stats.downloads == before + 1
    # The listing links to the same place.
    page = (await api.client.get(api.url(f"/chats/{image.key.chat_jid}/messages?limit=500"))).json()
    listed = next(m for m in page["items"] if m["messageId"] == image.key.message_id)
    assert listed["media"]["url"] == _media_path(api, image).replace("%40", "@")
    # Cached media stays readable when the session stops; new downloads need it running.
    await api.runtime.remove_session("default")
    assert (await api.client.get(_media_path(api, image))).status_code == 200
    other = _stored_media(api, MessageKind.IMAGE)[1]
    r = await api.client.get(_media_path(api, other))
    assert r.status_code == 409 and "not running" in r.json()["detail"]


async def test_media_answer_byte_ranges(api: Api) -> None:
    """Players seek with Range requests, from files and from the database store alike
    (PostgreSQL here keeps media in the database)."""
    video = (_stored_media(api, MessageKind.VIDEO) or _stored_media(api, MessageKind.IMAGE))[0]
    whole = api.network.media_bytes(video.key.chat_jid, video.key.message_id)
    assert len(whole) > 20
    path = _media_path(api, video)
    first = await api.client.get(path)  # downloaded and stored
    assert first.status_code == 200 and first.content == whole
    postgres = api.runtime.db.engine.dialect.name == "postgresql"
    assert api.runtime.media.kind == ("database" if postgres else "local")
    assert first.headers["accept-ranges"] == "bytes"
    size = len(whole)
    for header, (start, end) in {
        "bytes=3-10": (3, 11),
        f"bytes={size - 4}-": (size - 4, size),
        "bytes=-7": (size - 7, size),
        f"bytes=5-{size + 100}": (5, size),
    }.items():
        r = await api.client.get(path, headers={"Range": header})
        assert r.status_code == 206, (header, r.status_code)
        assert r.content == whole[start:end]
        assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
        assert r.headers["content-length"] == str(end - start)
    r = await api.client.get(path, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    # Invalid: ignored from the database (the whole), refused from files (Starlette).
    r = await api.client.get(path, headers={"Range": "bytes=9-3"})
    assert (r.status_code, r.content) == (200, whole) or r.status_code == 400


async def test_every_media_kind_keeps_its_mimetype(api: Api) -> None:
    for kind in (MessageKind.AUDIO, MessageKind.DOCUMENT, MessageKind.VIDEO):
        found = _stored_media(api, kind)
        if not found:
            continue
        m = found[0]
        assert m.media is not None
        r = await api.client.get(_media_path(api, m))
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == (m.media.mimetype or "").split(";")[0]
        assert r.content == api.network.media_bytes(m.key.chat_jid, m.key.message_id)


async def test_expired_media_is_410_and_text_has_none(api: Api) -> None:
    image = _stored_media(api, MessageKind.IMAGE)[0]
    api.engine.faults.expired_media = frozenset({image.key.message_id})
    r = await api.client.get(_media_path(api, image))
    assert r.status_code == 410
    assert r.json()["error"] == "gone" and "gone" in r.json()["detail"]
    text = next(
        m
        for jid in api.network.chat_jids()
        for m in api.network.newest(jid, LIMIT)
        if m.text and m.media is None
    )
    r = await api.client.get(_media_path(api, text))
    assert r.status_code == 404 and "has no media" in r.json()["detail"]
    r = await api.client.get(api.url(f"/chats/{text.key.chat_jid}/messages/NOPE/media"))
    assert r.status_code == 404


async def test_contacts_list_search_get_and_avatar_fields(api: Api) -> None:
    net = api.network
    items, cursor = [], None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        page = (await api.client.get(api.url(f"/contacts?limit=4{suffix}"))).json()
        items.extend(page["items"])
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert [c["jid"] for c in items] == sorted(c.jid for c in net.contacts())
    contact = net.contacts()[0]
    with api.runtime.db.write() as conn:
        conn.execute(
            update(contacts)
            .where(contacts.c.jid == contact.jid)
            .values(profile_picture="none", profile_picture_timestamp=1_800_000_000)
        )
    one = (await api.client.get(api.url(f"/contacts/{contact.jid}"))).json()
    assert one["profilePicture"] == "none" and one["profilePictureTimestamp"] == 1_800_000_000
    assert one["phone"] == contact.phone and one["displayName"]
    name = contact.name or contact.push_name
    assert name
    found = (await api.client.get(api.url(f"/contacts?search={quote(name[:3])}"))).json()
    assert contact.jid in {c["jid"] for c in found["items"]}
    r = await api.client.get(api.url("/contacts/15559999999@s.whatsapp.net"))
    assert r.status_code == 404
