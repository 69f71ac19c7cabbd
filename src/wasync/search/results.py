"""A page of search hits as the API and `wasync search --json` show it: each hit is a
message (the shape of a chat's message list) with the chat it is in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from wasync.api import reads
from wasync.api.shapes import chat_display_name, message_data
from wasync.store import search
from wasync.store.identities import forms_of


def search_page(
    conn: Connection,
    session: str,
    session_id: int,
    query: str,
    *,
    chat_jid: str | None = None,
    before: str | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """`{items: [message + chat], nextCursor}`, newest first."""
    hits = search.search_messages(
        conn, session_id, query, chat_jid=chat_jid, before=before, limit=limit
    )
    chat_jids = sorted({r["chat_jid"] for r in hits.rows})
    chat_rows = reads.chat_rows(conn, session_id, chat_jids)
    senders = {r["sender_jid"] for r in hits.rows if not r["from_me"]}
    names = reads.contact_names(conn, session_id, senders | set(chat_jids))
    reactions = {
        jid: reads.reactions_of(
            conn, session_id, jid, [r["message_id"] for r in hits.rows if r["chat_jid"] == jid]
        )
        for jid in chat_jids
    }
    people = {r["sender_jid"] for r in hits.rows}
    people.update(
        x["senderJid"] for found in reactions.values() for xs in found.values() for x in xs
    )
    forms = forms_of(conn, session_id, people)
    items = []
    for row in hits.rows:
        chat = chat_rows.get(row["chat_jid"]) or {
            "jid": row["chat_jid"],
            "name": None,
            "kind": "individual",
        }
        items.append(
            {
                **message_data(session, row, names, reactions[row["chat_jid"]], forms),
                "chat": {
                    "jid": chat["jid"],
                    "kind": chat["kind"],
                    "name": chat["name"],
                    "displayName": chat_display_name(chat, names),
                },
            }
        )
    return {"items": items, "nextCursor": hits.next_cursor}
