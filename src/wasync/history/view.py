"""A chat's sync state as the API and CLI show it (JSON-ready, camelCase)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from wasync.domain.models import SyncState
from wasync.history.kinds import BACKFILL, GAP_FILL
from wasync.jobs import queries as queue
from wasync.jobs.queries import Job
from wasync.store import queries
from wasync.store.schema import chats, sync_state


def _key(message_id: str | None, sender: str | None, timestamp: int | None) -> Any:
    if message_id is None and timestamp is None:
        return None
    return {"messageId": message_id, "senderJid": sender, "timestamp": timestamp}


def _job(job: Job | None) -> dict[str, Any] | None:
    if job is None:
        return None
    p = job.payload
    return {
        "jobId": job.id,
        "state": job.state,
        "mode": p.get("mode", "gap"),
        "pages": p.get("pages"),
        "pagesDone": int(p.get("done", 0)),
        "messagesSynced": int(p.get("messages", 0)),
        "attempts": job.attempts,
        "maxAttempts": job.max_attempts,
        "lastError": job.last_error,
        "runAt": job.run_at,
    }


def chat_known(conn: Connection, session_id: int, chat_jid: str) -> bool:
    """Whether the mirror knows the chat (a chats row, or any sync state)."""
    c, s = chats.c, sync_state.c
    if conn.execute(select(c.jid).where(c.session_id == session_id, c.jid == chat_jid)).first():
        return True
    found = conn.execute(
        select(s.chat_jid).where(s.session_id == session_id, s.chat_jid == chat_jid)
    ).first()
    return found is not None


def sync_state_view(
    conn: Connection, session_id: int, chat_jid: str, *, on_demand_history: bool | None
) -> dict[str, Any]:
    state = queries.get_sync_state(conn, session_id, chat_jid) or SyncState(chat_jid)
    last_error_at = conn.execute(
        select(sync_state.c.last_error_at).where(
            sync_state.c.session_id == session_id, sync_state.c.chat_jid == chat_jid
        )
    ).scalar_one_or_none()
    gap = None
    if state.gap_status is not None:
        gap = {
            "status": state.gap_status,
            "since": _key(
                state.gap_since_message_id, state.gap_since_sender_jid, state.gap_since_timestamp
            ),
            "until": _key(
                state.gap_until_message_id, state.gap_until_sender_jid, state.gap_until_timestamp
            ),
            "detectedAt": state.gap_detected_at,
            "job": _job(queue.latest_job(conn, GAP_FILL, session_id, chat_jid, prefix=True)),
        }
    return {
        "chatJid": chat_jid,
        "newest": _key(state.newest_message_id, state.newest_sender_jid, state.newest_timestamp),
        "oldest": _key(state.oldest_message_id, state.oldest_sender_jid, state.oldest_timestamp),
        "fullySynced": state.fully_synced,
        "lastSyncedAt": state.last_synced_at,
        "lastError": state.last_error,
        "lastErrorAt": last_error_at,
        "gap": gap,
        "backfill": _job(queue.latest_job(conn, BACKFILL, session_id, chat_jid)),
        # Whether "load older" can work at all (None: the session is not running).
        "onDemandHistory": on_demand_history,
    }
