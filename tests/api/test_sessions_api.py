"""Sessions over HTTP: list, get, pair (QR and phone code), sync-chats, log out, delete."""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy import func, select

from wasync.avatars.storage import AvatarStorage
from wasync.media.layout import message_media_key
from wasync.store.schema import chats, messages, sessions

from ..waiting import eventually
from .conftest import LIMIT, SESSION, Api


async def test_list_and_get_sessions(api: Api) -> None:
    listed = (await api.client.get("/api/sessions")).json()["items"]
    assert [s["name"] for s in listed] == [SESSION]
    one = (await api.client.get(f"/api/sessions/{SESSION}")).json()
    assert one == listed[0]
    assert one["status"] == "connected" and one["running"] is True and one["engine"] == "simulator"
    assert one["capabilities"]["onDemandHistory"] is True
    assert one["pairing"] is None and one["syncing"] is False


async def test_sync_chats_answers_the_contract_and_mirrors_the_network(api: Api) -> None:
    r = await api.client.post(f"/api/sessions/{SESSION}/sync-chats?limitPerChat=5")
    assert r.status_code == 200, r.text
    body = r.json()
    net = api.network
    assert body["success"] is True
    assert body["chatsProcessed"] == net.chat_count()
    assert body["message"] == "Synchronization completed successfully"
    assert body["messagesSynced"] == sum(min(5, net.message_count(j)) for j in net.chat_jids())
    assert body["failedChats"] == []
    with api.runtime.db.read() as conn:
        stored = conn.execute(
            select(func.count()).select_from(chats).where(chats.c.session_id == api.session_id)
        ).scalar_one()
    assert stored == net.chat_count()


async def test_sync_chats_validates_its_input(api: Api) -> None:
    for bad in ("-1", "abc", "100000"):
        r = await api.client.post(f"/api/sessions/{SESSION}/sync-chats?limitPerChat={bad}")
        assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    r = await api.client.post("/api/sessions/ghost/sync-chats")
    assert r.status_code == 404 and r.json() == {
        "error": "not_found",
        "detail": "no session named 'ghost'",
    }


async def test_bad_session_names_are_400_and_unknown_ones_404(api: Api) -> None:
    for path in ("/api/sessions/..%2Fetc", "/api/sessions/a%20b/chats", "/api/sessions/-x"):
        r = await api.client.get(path)
        assert r.status_code in (400, 404), (path, r.text)
        assert set(r.json()) == {"error", "detail"}
    assert (await api.client.get("/api/sessions/a%20b")).status_code == 400
    assert (await api.client.get("/api/sessions/nobody")).status_code == 404
    r = await api.client.post("/api/sessions", json={"name": "bad name!"})
    assert r.status_code == 400 and "invalid session name" in r.json()["detail"]
    r = await api.client.post("/api/sessions", json={"name": SESSION})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = await api.client.post("/api/sessions", json={"name": "x", "engine": "nope"})
    assert r.status_code == 400 and "unknown engine" in r.json()["detail"]
    r = await api.client.post("/api/sessions", content=b"{not json")
    assert r.status_code == 422


async def test_pairing_with_qr_and_phone_code_then_first_sync(api: Api) -> None:
    r = await api.client.post("/api/sessions", json={"name": "phone2", "engine": "simulator"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pairing"
    engine = api.runtime.session("phone2").engine

    async def pairing() -> dict[str, object]:
        return dict((await api.client.get("/api/sessions/phone2/pairing")).json())

    await eventually(lambda: "phone2" in api.control.pairings)
    await eventually(lambda: bool(api.control.pairings["phone2"].qr))
    state = await pairing()
    assert isinstance(state["qr"], str) and state["qr"].startswith("2@")
    png = await api.client.get("/api/sessions/phone2/pairing/qr.png?scale=4")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.format == "PNG" and image.width == image.height >= 100

    r = await api.client.post("/api/sessions/phone2/pairing/phone", json={"phone": "not a phone"})
    assert r.status_code == 400
    r = await api.client.post(
        "/api/sessions/phone2/pairing/phone", json={"phone": "+1 555 010 0002"}
    )
    assert r.status_code == 200
    code = r.json()["code"]
    assert len(code) == 8 and code == await engine.pair_phone("15550100002")

    # The person types the code on the phone: paired, connected, and synced unasked.
    await engine.confirm_pairing()  # type: ignore[attr-defined]
    await eventually(lambda: api.runtime.session("phone2").engine.status == "connected")

    def chats_of_phone2() -> int:
        sid = api.runtime.session("phone2").session_id
        with api.runtime.db.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(chats).where(chats.c.session_id == sid)
                ).scalar_one()
            )

    await eventually(lambda: chats_of_phone2() == api.network.chat_count())
    await eventually(lambda: not api.control.is_syncing("phone2"))
    r = await api.client.get("/api/sessions/phone2/pairing")
    assert r.status_code == 409 and "not pairing" in r.json()["detail"]


async def test_logout_then_pair_again_then_delete(api: Api) -> None:
    r = await api.client.post(f"/api/sessions/{SESSION}/logout")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "logged_out" and r.json()["running"] is False
    r = await api.client.post(f"/api/sessions/{SESSION}/sync-chats")
    assert r.status_code == 409 and "not running" in r.json()["detail"]
    # The mirror is kept after a logout.
    with api.runtime.db.read() as conn:
        kept = conn.execute(
            select(func.count())
            .select_from(messages)
            .where(messages.c.session_id == api.session_id)
        ).scalar_one()
    assert kept > 0
    assert (await api.client.get(f"/api/sessions/{SESSION}/chats")).status_code == 200

    r = await api.client.post("/api/sessions", json={"name": SESSION, "engine": "simulator"})
    assert r.status_code == 201 and r.json()["status"] == "pairing"

    # What the session stored: a picture and a cached media file.
    store = api.runtime.media
    jid = api.network.chat_jids()[0]
    storage = AvatarStorage(store)
    storage.write(SESSION, jid, b"\xff\xd8 a picture")
    cached = message_media_key(api.session_id, jid, jid, "M1")
    store.put(cached, b"media")

    r = await api.client.delete(f"/api/sessions/{SESSION}")
    assert r.status_code == 204
    assert not storage.exists(SESSION, jid) and not store.exists(cached)
    assert store.keys("avatars/") == [] and store.keys("messages/") == []
    media = api.runtime.settings.data_dir / "media"
    assert not (media / "avatars" / SESSION).exists()
    assert not (media / "messages" / str(api.session_id)).exists()
    assert (await api.client.get(f"/media/avatars/{SESSION}/{jid}.jpg")).status_code == 404
    assert (await api.client.get(f"/api/sessions/{SESSION}")).status_code == 404
    assert (await api.client.get(f"/api/sessions/{SESSION}/chats")).status_code == 404
    assert (await api.client.delete(f"/api/sessions/{SESSION}")).status_code == 404
    with api.runtime.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(sessions)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 0


async def test_sync_limit_defaults_to_the_contract_value(api: Api) -> None:
    r = await api.client.post(f"/api/sessions/{SESSION}/sync-chats")
    assert r.status_code == 200
    net = api.network
    assert r.json()["messagesSynced"] == sum(
        min(100, net.message_count(j)) for j in net.chat_jids()
    )
    assert LIMIT < 100
