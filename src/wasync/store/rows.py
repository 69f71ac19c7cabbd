"""Domain records to row dicts (and back). Pure functions, no I/O."""

from __future__ import annotations

from typing import Any

from wasync.domain.models import (
    Chat,
    ChatKind,
    Contact,
    Group,
    MediaInfo,
    Message,
    MessageKey,
    MessageKind,
)

_NO_MEDIA = MediaInfo()


# Column order of `message_values` (the hot path builds tuples, not dicts).
MESSAGE_COLUMNS = (
    "session_id", "chat_jid", "sender_jid", "message_id", "from_me", "timestamp", "kind",
    "text", "quoted_id", "push_name", "media_mimetype", "media_size", "media_sha256",
    "media_enc_sha256", "media_key", "media_direct_path", "media_url", "media_filename",
    "edited_at", "revoked_at", "revoked_by",
)  # fmt: skip


def message_values(session_id: int, m: Message) -> tuple[Any, ...]:
    """One message as a tuple in MESSAGE_COLUMNS order."""
    key = m.key
    media = m.media
    if media is None:
        return (
            session_id, key.chat_jid, key.sender_jid, key.message_id, m.from_me, m.timestamp,
            str(m.kind), m.text, m.quoted_id, m.push_name,
            None, None, None, None, None, None, None, None, None, None, None,
        )  # fmt: skip
    return (
        session_id, key.chat_jid, key.sender_jid, key.message_id, m.from_me, m.timestamp,
        str(m.kind), m.text, m.quoted_id, m.push_name, media.mimetype, media.size,
        media.sha256, media.enc_sha256, media.media_key, media.direct_path, media.url,
        media.filename, None, None, None,
    )  # fmt: skip


def message_row(session_id: int, m: Message) -> dict[str, Any]:
    media = m.media or _NO_MEDIA
    key = m.key
    return {
        "session_id": session_id,
        "chat_jid": key.chat_jid,
        "sender_jid": key.sender_jid,
        "message_id": key.message_id,
        "from_me": m.from_me,
        "timestamp": m.timestamp,
        "kind": m.kind.value,
        "text": m.text,
        "quoted_id": m.quoted_id,
        "push_name": m.push_name,
        "media_mimetype": media.mimetype,
        "media_size": media.size,
        "media_sha256": media.sha256,
        "media_enc_sha256": media.enc_sha256,
        "media_key": media.media_key,
        "media_direct_path": media.direct_path,
        "media_url": media.url,
        "media_filename": media.filename,
        "edited_at": None,
        "revoked_at": None,
        "revoked_by": None,
    }


def placeholder_row(session_id: int, key: MessageKey, timestamp: int) -> dict[str, Any]:
    """A row for an edit/revoke whose message has not arrived yet (see MessageKind.UNKNOWN)."""
    return {
        "session_id": session_id,
        "chat_jid": key.chat_jid,
        "sender_jid": key.sender_jid,
        "message_id": key.message_id,
        "from_me": False,
        "timestamp": timestamp,
        "kind": MessageKind.UNKNOWN.value,
        "text": None,
        "edited_at": None,
        "revoked_at": None,
        "revoked_by": None,
    }


def message_from_row(row: Any) -> Message:
    media = None
    if row.media_mimetype or row.media_direct_path or row.media_url:
        media = MediaInfo(
            mimetype=row.media_mimetype,
            size=row.media_size,
            sha256=row.media_sha256,
            enc_sha256=row.media_enc_sha256,
            media_key=row.media_key,
            direct_path=row.media_direct_path,
            url=row.media_url,
            filename=row.media_filename,
        )
    return Message(
        key=MessageKey(row.chat_jid, row.sender_jid, row.message_id),
        timestamp=row.timestamp,
        from_me=bool(row.from_me),
        kind=MessageKind(row.kind),
        text=row.text,
        media=media,
        quoted_id=row.quoted_id,
        push_name=row.push_name,
    )


def contact_row(session_id: int, c: Contact, now: int) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "jid": c.jid,
        "name": c.name,
        "push_name": c.push_name,
        "business_name": c.business_name,
        "phone": c.phone,
        "lid": c.lid,
        "updated_at": now,
    }


def chat_row(session_id: int, c: Chat, now: int) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "jid": c.jid,
        "kind": c.kind.value,
        "name": c.name,
        "last_message_at": c.last_message_at,
        "unread_count": c.unread_count,
        "archived": c.archived,
        "pinned": c.pinned,
        "muted_until": c.muted_until,
        "updated_at": now,
    }


def group_chat(g: Group) -> Chat:
    return Chat(jid=g.jid, kind=ChatKind.GROUP, name=g.name)


def group_row(session_id: int, g: Group, now: int) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "jid": g.jid,
        "name": g.name,
        "topic": g.topic,
        "owner_jid": g.owner_jid,
        "created_at": g.created_at,
        "updated_at": now,
    }


def participant_rows(session_id: int, g: Group) -> list[dict[str, Any]]:
    return [
        {
            "session_id": session_id,
            "group_jid": g.jid,
            "participant_jid": p.jid,
            "is_admin": p.is_admin,
            "is_super_admin": p.is_super_admin,
            "phone": p.phone,
            "lid": p.lid,
            "display_name": p.display_name,
        }
        for p in g.participants
    ]
