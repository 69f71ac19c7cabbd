"""Turn a committed batch into bus events (JSON-ready dicts) for live consumers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wasync.bus import BusEvent
from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import Chat, ChatKind, Contact, Message, PersonMerged
from wasync.sync.commit import status_of

_NONE: Mapping[str, str] = {}  # no LID's phone known


def forms(jid: str, phones: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(phone digits, lid) of a person's key; `phones` maps LIDs to phone JIDs."""
    if jid.endswith("@lid"):
        pn = phones.get(jid)
        return (pn.split("@", 1)[0] if pn else None), jid
    if jid.endswith("@s.whatsapp.net"):
        return jid.split("@", 1)[0], None
    return None, None


def message_data(m: Message, phones: Mapping[str, str] = _NONE) -> dict[str, Any]:
    media = m.media
    phone, lid = forms(m.key.sender_jid, phones)
    return {
        "chatJid": m.key.chat_jid,
        "senderJid": m.key.sender_jid,
        "senderPhone": phone,
        "senderLid": lid,
        "messageId": m.key.message_id,
        "fromMe": m.from_me,
        "timestamp": m.timestamp,
        "kind": str(m.kind),
        "text": m.text,
        "quotedId": m.quoted_id,
        "pushName": m.push_name,
        "media": None
        if media is None
        else {"mimetype": media.mimetype, "size": media.size, "filename": media.filename},
    }


def chat_data(c: Chat, phones: Mapping[str, str] = _NONE) -> dict[str, Any]:
    phone, lid = forms(c.jid, phones) if c.kind == ChatKind.INDIVIDUAL else (None, None)
    return {
        "jid": c.jid,
        "phone": phone,
        "lid": lid,
        "kind": str(c.kind),
        "name": c.name,
        "lastMessageAt": c.last_message_at,
        "unreadCount": c.unread_count,
        "archived": c.archived,
        "pinned": c.pinned,
    }


def contact_data(c: Contact) -> dict[str, Any]:
    return {
        "jid": c.jid,
        "name": c.name,
        "pushName": c.push_name,
        "businessName": c.business_name,
        "phone": c.phone,
        "lid": c.lid,
    }


def merged_data(m: PersonMerged) -> dict[str, Any]:
    """A person's rows under a number moved to their LID: `mergedJid` is gone now."""
    return {
        "jid": m.lid,
        "lid": m.lid,
        "phone": m.phone_jid.split("@", 1)[0],
        "mergedJid": m.phone_jid,
        "messagesMoved": m.messages_moved,
    }


def merged_topics(m: PersonMerged) -> list[str]:
    """The events of one merge: the contact's, the direct chat's, or both."""
    return [t for t, moved in (("contact.merged", m.contact), ("chat.merged", m.chat)) if moved]


def bus_events(session: str, batch: Batch) -> list[BusEvent]:
    out: list[BusEvent] = []
    # First: a client moves what it shows under the number before new rows arrive.
    for merged in batch.merges:
        for topic in merged_topics(merged):
            out.append(BusEvent(session, topic, merged_data(merged)))
    for m in batch.messages.values():
        out.append(BusEvent(session, "message", message_data(m, batch.phones)))
    for e in batch.edits.values():
        out.append(
            BusEvent(
                session,
                "message.edit",
                {
                    "chatJid": e.key.chat_jid,
                    "senderJid": e.key.sender_jid,
                    "messageId": e.key.message_id,
                    "text": e.text,
                    "editedAt": e.edited_at,
                },
            )
        )
    for r in batch.revokes.values():
        out.append(
            BusEvent(
                session,
                "message.delete",
                {
                    "chatJid": r.key.chat_jid,
                    "senderJid": r.key.sender_jid,
                    "messageId": r.key.message_id,
                    "revokedAt": r.revoked_at,
                    "revokedBy": r.revoked_by,
                },
            )
        )
    for reaction in batch.reactions.values():
        out.append(
            BusEvent(
                session,
                "reaction",
                {
                    "chatJid": reaction.target.chat_jid,
                    "targetSenderJid": reaction.target.sender_jid,
                    "targetMessageId": reaction.target.message_id,
                    "senderJid": reaction.sender_jid,
                    "senderPhone": forms(reaction.sender_jid, batch.phones)[0],
                    "senderLid": forms(reaction.sender_jid, batch.phones)[1],
                    "emoji": reaction.emoji or None,
                    "timestamp": reaction.timestamp,
                },
            )
        )
    for c in batch.chats.values():
        out.append(BusEvent(session, "chat", chat_data(c, batch.phones)))
    for contact in batch.contacts.values():
        out.append(BusEvent(session, "contact", contact_data(contact)))
    for g in batch.groups.values():
        out.append(
            BusEvent(
                session,
                "group",
                {
                    "jid": g.jid,
                    "name": g.name,
                    "topic": g.topic,
                    "participants": [
                        {"jid": p.jid, "isAdmin": p.is_admin, "isSuperAdmin": p.is_super_admin}
                        for p in g.participants
                    ],
                },
            )
        )
    for event in batch.other:
        # A pairing code also has a status (pairing): test for it first, or the code is lost.
        if isinstance(event, ev.PairingCode):
            out.append(
                BusEvent(
                    session,
                    "session.status",
                    {"status": "pairing", "code": event.code, "codeKind": event.kind},
                )
            )
            continue
        status = status_of(event)
        if status is not None:
            out.append(
                BusEvent(session, "session.status", {"status": str(status[0]), "reason": status[1]})
            )
    return out
