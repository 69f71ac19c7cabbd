"""What the one-shot picture job last posted, per session, destination and number."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

from sqlalchemy import Connection, select

from wasync.store.schema import picture_posts
from wasync.store.upsert import upsert

_WEBHOOK_ID = re.compile(r"/api(?:/v\d+)?/webhooks/(\d+)/")


@dataclass(frozen=True, slots=True)
class Posted:
    state: str  # picture | none | hidden
    picture_id: str | None
    sha256: str | None


def target_key(url: str) -> str:
    """One destination, named without its token (a rotated token is the same channel)."""
    found = _WEBHOOK_ID.search(url)
    if found:
        return f"discord:{found.group(1)}"
    return "url:" + hashlib.sha256(url.encode()).hexdigest()[:24]


def last_posted(conn: Connection, session: str, target: str, jid: str) -> Posted | None:
    p = picture_posts.c
    row = conn.execute(
        select(p.state, p.picture_id, p.sha256).where(
            p.session_name == session, p.target == target, p.jid == jid
        )
    ).one_or_none()
    return Posted(row.state, row.picture_id, row.sha256) if row is not None else None


def record(conn: Connection, session: str, target: str, jid: str, posted: Posted) -> None:
    upsert(
        conn,
        picture_posts,
        [
            {
                "session_name": session,
                "target": target,
                "jid": jid,
                "state": posted.state,
                "picture_id": posted.picture_id,
                "sha256": posted.sha256,
                "updated_at": int(time.time()),
            }
        ],
        keys=("session_name", "target", "jid"),
        update=("state", "picture_id", "sha256", "updated_at"),
    )
