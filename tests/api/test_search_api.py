"""`GET /api/sessions/{s}/search`: hits with their chat, keyset pages, clear errors."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select

from tests.api.conftest import Api
from wasync.search import catch_up
from wasync.store import search
from wasync.store.schema import messages


def _common_word(api: Api) -> tuple[str, set[int]]:
    """The word in most of the mirror's messages, and the ids of those messages."""
    m = messages.c
    with api.runtime.db.read() as conn:
        rows = conn.execute(
            select(m.id, m.text).where(m.revoked_at.is_(None), m.kind != "unknown")
        ).all()
    counts = Counter(w for r in rows for w in search.message_words(r.text))
    word = max((w for w in counts if len(w) > 3), key=lambda w: counts[w])
    return word, {r.id for r in rows if word in search.message_words(r.text)}


async def test_search_pages_through_every_hit_with_its_chat(api: Api) -> None:
    await asyncio.to_thread(catch_up, api.runtime.db)
    word, expected = _common_word(api)
    assert len(expected) > 5
    seen: list[dict[str, object]] = []
    cursor = None
    for _ in range(100):
        params = {"q": word.upper(), "limit": 5, **({"before": cursor} if cursor else {})}
        got = await api.client.get(api.url("/search"), params=params)
        assert got.status_code == 200, got.text
        page = got.json()
        seen += page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(expected)
    order = [(h["timestamp"], h["cursor"]) for h in seen]
    assert [h["timestamp"] for h in seen] == sorted((t for t, _ in order), reverse=True)
    for hit in seen:
        assert word in search.message_words(hit["text"])  # type: ignore[arg-type]
        chat = hit["chat"]
        assert chat["jid"] == hit["chatJid"] and chat["displayName"]  # type: ignore[index]

    one_chat = seen[0]["chatJid"]
    narrowed = await api.client.get(
        api.url("/search"), params={"q": word, "chat": one_chat, "limit": 100}
    )
    items = narrowed.json()["items"]
    assert items and {h["chatJid"] for h in items} == {one_chat}
    assert len(items) == sum(1 for h in seen if h["chatJid"] == one_chat)


async def test_search_errors_are_sentences(api: Api) -> None:
    for params, status, words in (
        ({"q": "?!"}, 400, "has no words"),
        ({"q": "hello", "limit": 0}, 422, "query parameter 'limit'"),
        ({"q": "hello", "before": "nonsense"}, 400, "invalid cursor"),
        ({"q": "hello", "chat": "not a jid"}, 400, "phone number"),
    ):
        got = await api.client.get(api.url("/search"), params=params)
        assert got.status_code == status, got.text
        assert words in got.json()["detail"]
    ghost = await api.client.get("/api/sessions/ghost/search", params={"q": "x"})
    assert ghost.status_code == 404 and "no session named 'ghost'" in ghost.json()["detail"]


async def test_deleting_a_session_takes_its_messages_out_of_the_index(api: Api) -> None:
    await asyncio.to_thread(catch_up, api.runtime.db)
    word, _ = _common_word(api)
    assert (await api.client.get(api.url("/search"), params={"q": word})).json()["items"]
    # Indexed, then the session goes: its entries leave the index with its rows.
    deleted = await api.client.delete("/api/sessions/default")
    assert deleted.status_code in (200, 204), deleted.text
    with api.runtime.db.read() as conn:
        assert search.pending(conn) == 0  # applied in the deleting transaction
        if api.runtime.db.is_sqlite:
            left = conn.exec_driver_sql(
                "SELECT count(*) FROM messages_search WHERE messages_search MATCH ?",
                (f'body:"{word}"',),
            ).scalar_one()
            assert left == 0
