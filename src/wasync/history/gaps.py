"""Gap state in `sync_state`: where the mirror may miss messages after downtime.

On every connect, before the offline replay is written, each chat with messages gets
a watermark (`gap_since_*` = its newest stored message) unless a gap is already open,
in which case the older watermark is kept: two outages in a row make one larger hole,
never a forgotten one. Filling pages back from the newest message and records how
far it got (`gap_until_*`) with each page; a new connect resets that point, because
a second outage may have opened a hole above it; the reset bumps the gap's epoch,
and a fill records its progress only if the epoch is still the one it started
from, so a reset that races a page is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from wasync.domain.models import Message, MessageKey
from wasync.store.schema import sync_state
from wasync.store.upsert import upsert

PENDING, FILLING, FAILED = "pending", "filling", "failed"

_s = sync_state.c
_CLEARED: dict[str, Any] = {
    "gap_status": None,
    "gap_since_message_id": None,
    "gap_since_sender_jid": None,
    "gap_since_timestamp": None,
    "gap_until_message_id": None,
    "gap_until_sender_jid": None,
    "gap_until_timestamp": None,
    "gap_detected_at": None,
}
_UNTIL_RESET = {
    "gap_until_message_id": None,
    "gap_until_sender_jid": None,
    "gap_until_timestamp": None,
}


@dataclass(frozen=True, slots=True)
class Gap:
    chat_jid: str
    status: str
    since_key: MessageKey | None  # None when the watermark is only a time (a new chat)
    since_timestamp: int | None
    until_key: MessageKey | None  # None: filling starts (again) from the newest message
    until_timestamp: int | None
    newest_timestamp: int | None  # the chat's newest stored message now
    epoch: int = 0

    def met_by(self, page: list[Message]) -> bool:
        """Whether a page reaches back to the watermark (or past it)."""
        since = self.since_timestamp
        if since is None:
            return False
        return any(m.timestamp < since or m.key == self.since_key for m in page)


def _gap(row: Any) -> Gap:
    chat = row.chat_jid
    since = (
        MessageKey(chat, row.gap_since_sender_jid, row.gap_since_message_id)
        if row.gap_since_message_id is not None
        else None
    )
    until = (
        MessageKey(chat, row.gap_until_sender_jid, row.gap_until_message_id)
        if row.gap_until_message_id is not None
        else None
    )
    return Gap(
        chat,
        row.gap_status,
        since,
        row.gap_since_timestamp,
        until,
        row.gap_until_timestamp,
        row.newest_timestamp,
        row.gap_epoch,
    )


def open_gaps(conn: Connection, session_id: int, now: int) -> int | None:
    """Take watermarks at connect time; returns the session's newest stored time (or None).

    That newest time is the watermark of chats with no stored message: anything of
    theirs newer than it arrived while we were away.
    """
    floor = conn.execute(
        select(func.max(_s.newest_timestamp)).where(_s.session_id == session_id)
    ).scalar_one_or_none()
    if floor is None:
        return None  # nothing mirrored yet: the initial sync's job, not gap fill's
    mine = _s.session_id == session_id
    conn.execute(
        update(sync_state)
        .where(mine, _s.gap_status.is_not(None))
        .values({**_UNTIL_RESET, "gap_epoch": _s.gap_epoch + 1})
    )
    conn.execute(
        update(sync_state)
        .where(mine, _s.gap_status.is_(None), _s.newest_timestamp.is_not(None))
        .values(
            gap_status=PENDING,
            gap_since_message_id=_s.newest_message_id,
            gap_since_sender_jid=_s.newest_sender_jid,
            gap_since_timestamp=_s.newest_timestamp,
            gap_detected_at=now,
            gap_epoch=_s.gap_epoch + 1,
        )
    )
    return int(floor)


def lock_rows(conn: Connection, session_id: int) -> None:
    """Lock the session's sync state rows in key order, the order every batch uses
    (store/writes.py): a transaction that changes many of them cannot deadlock one."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(_s.chat_jid)
            .where(_s.session_id == session_id)
            .order_by(_s.chat_jid)
            .with_for_update()
        )


def open_gap_list(conn: Connection, session_id: int) -> list[Gap]:
    rows = conn.execute(
        select(sync_state).where(_s.session_id == session_id, _s.gap_status.is_not(None))
    )
    return [_gap(r) for r in rows]


def chats_with_messages(conn: Connection, session_id: int) -> set[str]:
    rows = conn.execute(
        select(_s.chat_jid).where(_s.session_id == session_id, _s.newest_timestamp.is_not(None))
    )
    return {r.chat_jid for r in rows}


def arrived_after(conn: Connection, session_id: int, floor: int) -> list[str]:
    """Chats without a gap whose every stored message is newer than `floor`.

    They appeared while we were away (a new contact wrote, say) and the offline replay
    brought only their newest messages, if any: older ones may be missing too.
    """
    rows = conn.execute(
        select(_s.chat_jid).where(
            _s.session_id == session_id,
            _s.gap_status.is_(None),
            _s.oldest_timestamp > floor,
        )
    )
    return [r.chat_jid for r in rows]


def read_gap(conn: Connection, session_id: int, chat_jid: str) -> Gap | None:
    row = conn.execute(
        select(sync_state).where(
            _s.session_id == session_id, _s.chat_jid == chat_jid, _s.gap_status.is_not(None)
        )
    ).one_or_none()
    return _gap(row) if row is not None else None


def start_gap(conn: Connection, session_id: int, chat_jid: str, since: int, now: int) -> None:
    """A chat with nothing stored that moved while we were away: fill back to `since`."""
    upsert(
        conn,
        sync_state,
        [
            {
                "session_id": session_id,
                "chat_jid": chat_jid,
                **_CLEARED,
                "gap_status": FILLING,
                "gap_since_timestamp": since,
                "gap_detected_at": now,
            }
        ],
        keys=("session_id", "chat_jid"),
        update=tuple(_CLEARED),
        where=lambda x: _s.gap_status.is_(None),
    )


def set_status(conn: Connection, session_id: int, chats: list[str], status: str) -> None:
    if chats:
        conn.execute(
            update(sync_state)
            .where(
                _s.session_id == session_id,
                _s.chat_jid.in_(chats),
                _s.gap_status.is_not(None),
            )
            .values(gap_status=status)
        )


def close(conn: Connection, session_id: int, chats: list[str]) -> None:
    if chats:
        conn.execute(
            update(sync_state)
            .where(_s.session_id == session_id, _s.chat_jid.in_(chats))
            .values(_CLEARED)
        )


def advance(
    conn: Connection,
    session_id: int,
    gap: Gap,
    oldest: Message | None,
    *,
    closed: bool,
) -> bool:
    """Record a committed page: move the fill point to `oldest`, or close the gap.

    False when the gap changed meanwhile (a reconnect bumped its epoch, or it was
    closed): the pages still count as written, and filling carries on from what the
    row says now.
    """
    where = and_(
        _s.session_id == session_id,
        _s.chat_jid == gap.chat_jid,
        _s.gap_status.is_not(None),
        _s.gap_epoch == gap.epoch,
    )
    if closed:
        values: dict[str, Any] = _CLEARED
    elif oldest is not None:
        values = {
            "gap_status": FILLING,
            "gap_until_message_id": oldest.key.message_id,
            "gap_until_sender_jid": oldest.key.sender_jid,
            "gap_until_timestamp": oldest.timestamp,
        }
    else:
        return True
    return conn.execute(update(sync_state).where(where).values(values)).rowcount == 1


def gap_counts(conn: Connection, session_id: int) -> dict[str, int]:
    rows = conn.execute(
        select(_s.gap_status, func.count())
        .where(_s.session_id == session_id, _s.gap_status.is_not(None))
        .group_by(_s.gap_status)
    )
    return {status: int(n) for status, n in rows}
