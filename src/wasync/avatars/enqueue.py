"""Putting avatar jobs in the durable queue: from committed batches, in bulk, by hand.

One job per (session, JID) at most is pending: `jobs.enqueue_many` deduplicates on
the unique key, so enqueueing again while one waits is harmless. The transaction
hook runs inside the batch's own transaction, so a contact and its avatar job are
committed together or not at all.

What the hook enqueues:
- contacts, chats (individual and group) and groups of the batch, and the senders of
  its messages (a first message from a stranger is a new lead), when their picture
  was never checked; already-checked ones are the refresh scheduler's business, so
  a reconnect that re-lists every contact costs no requests;
- every JID of a picture-changed event, checked or not, ahead of other work.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable

from sqlalchemy import Connection

from wasync.avatars import records
from wasync.domain.batch import Batch
from wasync.domain.jid import parse_jid
from wasync.errors import InvalidJID
from wasync.jobs import queries as queue
from wasync.store.writes import WriteResult
from wasync.sync.hooks import TransactionHook

KIND = "avatar"


class Reason(enum.StrEnum):
    NEW = "new"  # a contact, chat, group or sender never checked
    CHANGED = "changed"  # WhatsApp said the picture changed
    REFRESH = "refresh"  # the last check is older than its TTL
    SYNC = "sync"  # bulk enqueue of a whole session
    MANUAL = "manual"  # one JID asked for by hand


# Higher runs first (jobs.claim orders by priority, then due time).
PRIORITY = {
    Reason.MANUAL: 20,
    Reason.CHANGED: 10,
    Reason.NEW: 0,
    Reason.SYNC: 0,
    Reason.REFRESH: -10,
}


def has_avatar(jid: str) -> bool:
    """People and groups have pictures; broadcast lists, status and channels do not here."""
    try:
        parsed = parse_jid(jid)
    except InvalidJID:
        return False
    return parsed.is_user or parsed.is_lid or parsed.is_group


def enqueue_avatars(
    conn: Connection,
    session_id: int,
    jids: Iterable[str],
    reason: Reason,
    *,
    max_attempts: int,
    now: float | None = None,
) -> int:
    """Queue a check of each JID (deduplicated); returns how many jobs are new.

    Urgent reasons also hurry a job of the same JID that is already waiting: a
    picture change should not sit behind a low-priority refresh or a back-off.
    """
    now = time.time() if now is None else now
    keys = sorted({str(parse_jid(j)) for j in jids if has_avatar(j)})
    if not keys:
        return 0
    priority = PRIORITY[reason]
    added = queue.enqueue_many(
        conn,
        KIND,
        session_id=session_id,
        keys_and_payloads=[(jid, {"jid": jid, "reason": reason.value}) for jid in keys],
        priority=priority,
        max_attempts=max_attempts,
        now=now,
    )
    if priority > PRIORITY[Reason.NEW]:
        queue.hurry(conn, KIND, session_id, keys, priority, now=now)
    return added


def batch_hook(max_attempts: int) -> TransactionHook:
    """The transaction hook that queues avatar checks for what a batch brought."""

    def hook(conn: Connection, session_id: int, batch: Batch, result: WriteResult) -> None:
        seen = [*batch.contacts, *batch.chats, *batch.groups, *result.senders]
        candidates = [jid for jid in seen if has_avatar(jid)]
        if candidates:
            fresh = records.unchecked_among(conn, session_id, candidates)
            enqueue_avatars(conn, session_id, fresh, Reason.NEW, max_attempts=max_attempts)
        if batch.pictures_changed:
            enqueue_avatars(
                conn, session_id, batch.pictures_changed, Reason.CHANGED, max_attempts=max_attempts
            )

    return hook


def enqueue_session(conn: Connection, session_id: int, *, max_attempts: int) -> tuple[int, int]:
    """Queue every contact and chat of a session; returns (new jobs, JIDs considered)."""
    jids = [jid for jid in records.all_jids(conn, session_id) if has_avatar(jid)]
    added = enqueue_avatars(conn, session_id, jids, Reason.SYNC, max_attempts=max_attempts)
    return added, len(jids)


# Finished checks are kept this long (the status shows them), then deleted: the
# queue is not an archive, and the rows themselves say when each JID was checked.
DONE_RETENTION = 7 * 86_400.0


def prune_done(conn: Connection, session_id: int, now: float) -> int:
    """Delete this session's avatar jobs that finished well before `now`."""
    return queue.prune_done(conn, now - DONE_RETENTION, kind=KIND, session_id=session_id)
