"""Rows and runtime state turned into the API's JSON shapes (schemas.py)."""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from wasync.api import schemas as S
from wasync.domain.models import SyncState
from wasync.runtime import SessionHandle
from wasync.store.sessions import SessionRow


def jid_user(jid: str) -> str:
    user = jid.split("@", 1)[0]
    return f"+{user}" if jid.endswith("@s.whatsapp.net") and user.isdigit() else user


def session_out(
    row: SessionRow,
    handle: SessionHandle | None,
    *,
    node: str | None = None,
    syncing: bool,
    pairing: S.PairingState | None,
    error: str | None,
) -> S.Session:
    caps = None
    status = row.status
    if handle is not None:
        status = str(handle.engine.status)
        c = handle.engine.capabilities
        caps = S.Capabilities.model_validate(asdict(c))
    return S.Session(
        name=row.name,
        engine=row.engine,
        status=status,
        status_reason=row.status_reason,
        jid=row.jid,
        running=handle is not None or node is not None,
        node=node,
        syncing=syncing,
        capabilities=caps,
        pairing=pairing if status == "pairing" else None,
        error=error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# Chats and messages are built as plain JSON-ready dicts (camelCase, the shapes of
# schemas.ChatItem, MessageOut, ...): they are the hottest routes, and validating our
# own rows again costs more than the query. tests/api check them against the models.


def preview_data(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    revoked = row["revoked_at"] is not None
    return {
        "messageId": row["message_id"],
        "senderJid": row["sender_jid"],
        "fromMe": bool(row["from_me"]),
        "timestamp": row["timestamp"],
        "kind": row["kind"],
        "text": None if revoked else row["text"] or row["media_filename"],
        "pushName": row["push_name"],
        "revoked": revoked,
    }


def chat_display_name(row: dict[str, Any], names: dict[str, str]) -> str:
    return str(row["name"] or names.get(row["jid"]) or jid_user(row["jid"]))


Forms = dict[str, tuple[str | None, str | None]]  # jid -> (phone digits, lid): both forms


def chat_data(
    row: dict[str, Any], names: dict[str, str], last: dict[str, Any] | None, forms: Forms
) -> dict[str, Any]:
    phone, lid = forms.get(row["jid"], (None, None))
    return {
        "jid": row["jid"],
        "phone": phone,
        "lid": lid,
        "kind": row["kind"],
        "name": row["name"],
        "displayName": chat_display_name(row, names),
        "lastMessageAt": row["last_message_at"],
        "unreadCount": row["unread_count"],
        "archived": bool(row["archived"]),
        "pinned": bool(row["pinned"]),
        "mutedUntil": row["muted_until"],
        "profilePicture": row["profile_picture"],
        "profilePictureTimestamp": row["profile_picture_timestamp"],
        "lastMessage": preview_data(last),
    }


def chat_detail(
    row: dict[str, Any],
    names: dict[str, str],
    last: dict[str, Any] | None,
    group: dict[str, Any] | None,
    members: int | None,
    state: SyncState | None,
    forms: Forms,
) -> S.ChatDetail:
    sync = None
    if state is not None:
        sync = S.SyncStateOut(
            newest_message_id=state.newest_message_id,
            newest_timestamp=state.newest_timestamp,
            oldest_message_id=state.oldest_message_id,
            oldest_timestamp=state.oldest_timestamp,
            fully_synced=state.fully_synced,
            last_synced_at=state.last_synced_at,
            last_error=state.last_error,
        )
    return S.ChatDetail.model_validate(
        {
            **chat_data(row, names, last, forms),
            "topic": group["topic"] if group else None,
            "ownerJid": group["owner_jid"] if group else None,
            "groupCreatedAt": group["created_at"] if group else None,
            "participantCount": members,
            "syncState": sync,
        }
    )


def media_url(session: str, row: dict[str, Any]) -> str:
    return (
        f"/api/sessions/{quote(session, safe='')}/chats/{quote(row['chat_jid'], safe='@')}"
        f"/messages/{quote(row['message_id'], safe='')}/media"
        f"?sender={quote(row['sender_jid'], safe='@')}"
    )


def message_cursor(timestamp: int, row_id: int) -> str:
    """What store.pagination.encode_cursor(timestamp, row_id) returns, without json.dumps."""
    raw = f"[{int(timestamp)},{int(row_id)}]".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def quoted_data(row: dict[str, Any] | None, names: dict[str, str]) -> dict[str, Any] | None:
    """What a reply shows of the message it quotes (when that one is stored)."""
    if row is None:
        return None
    revoked = row["revoked_at"] is not None
    return {
        "cursor": message_cursor(row["timestamp"], row["id"]),
        "messageId": row["message_id"],
        "senderJid": row["sender_jid"],
        "senderName": names.get(row["sender_jid"]) or row["push_name"],
        "fromMe": bool(row["from_me"]),
        "timestamp": row["timestamp"],
        "kind": row["kind"],
        "text": None if revoked else row["text"] or row["media_filename"],
        "revoked": revoked,
    }


def message_data(
    session: str,
    row: dict[str, Any],
    names: dict[str, str],
    reactions: dict[tuple[str, str], list[dict[str, Any]]],
    forms: Forms,
    quoted: dict[str, dict[str, Any]] | None = None,
    pictures: dict[str, tuple[str, int | None]] | None = None,
) -> dict[str, Any]:
    revoked = row["revoked_at"] is not None
    phone, lid = forms.get(row["sender_jid"], (None, None))
    media = None
    if not revoked and (row["media_mimetype"] or row["media_url"] or row["media_direct_path"]):
        media = {
            "mimetype": row["media_mimetype"],
            "size": row["media_size"],
            "filename": row["media_filename"],
            "url": media_url(session, row),
        }
    picture = (pictures or {}).get(row["sender_jid"]) if not row["from_me"] else None
    return {
        "cursor": message_cursor(row["timestamp"], row["id"]),
        "chatJid": row["chat_jid"],
        "senderJid": row["sender_jid"],
        "senderPhone": phone,
        "senderLid": lid,
        "senderName": names.get(row["sender_jid"]) or row["push_name"],
        "messageId": row["message_id"],
        "fromMe": bool(row["from_me"]),
        "timestamp": row["timestamp"],
        "kind": row["kind"],
        "text": None if revoked else row["text"],
        "quotedId": row["quoted_id"],
        "quoted": quoted_data((quoted or {}).get(row["quoted_id"] or ""), names),
        "senderPicture": picture[0] if picture else None,
        "senderPictureTimestamp": picture[1] if picture else None,
        "pushName": row["push_name"],
        "media": media,
        "editedAt": row["edited_at"],
        "revokedAt": row["revoked_at"],
        "revokedBy": row["revoked_by"],
        "reactions": [
            {**r, "senderPhone": p, "senderLid": x}
            for r in reactions.get((row["sender_jid"], row["message_id"]), [])
            for p, x in (forms.get(r["senderJid"], (None, None)),)
        ],
    }


def contact_out(row: dict[str, Any]) -> S.ContactOut:
    display = (
        row["name"]
        or row["business_name"]
        or row["push_name"]
        or (f"+{row['phone']}" if row["phone"] else None)
        or jid_user(row["jid"])
    )
    return S.ContactOut(
        jid=row["jid"],
        name=row["name"],
        push_name=row["push_name"],
        business_name=row["business_name"],
        phone=row["phone"],
        lid=row["lid"],
        display_name=display,
        profile_picture=row["profile_picture"],
        profile_picture_timestamp=row["profile_picture_timestamp"],
    )


def participant_out(row: dict[str, Any], names: dict[str, str]) -> S.Participant:
    return S.Participant(
        jid=row["participant_jid"],
        name=row["display_name"] or names.get(row["participant_jid"]),
        phone=row["phone"],
        lid=row["lid"],
        is_admin=bool(row["is_admin"]),
        is_super_admin=bool(row["is_super_admin"]),
    )
