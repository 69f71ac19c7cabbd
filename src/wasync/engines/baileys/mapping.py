"""The sidecar's events to domain events.

Messages and history arrive as WAProto bytes (Baileys' `proto`, base64) and are read
with whatsmeow's generated types from neonize, which are wire-compatible: the same
field numbers, so one parser (engines/neonize content, messages and history) serves
both engines. What Baileys keeps beside the protobuf (a key's `remoteJidAlt` and
`participantAlt`, the other address of the sender) comes as JSON next to it.

One difference: Baileys rewrites a received reaction's key to our point of view
(`fromMe` = "we sent the reacted message"), where whatsmeow keeps the reactor's.
"""

from __future__ import annotations

import base64
from typing import Any

from wasync.domain import events as ev
from wasync.domain.jid import chat_kind_of
from wasync.domain.models import Chat, Contact, Group, MessageKey, Participant, Reaction
from wasync.engines.neonize import loader
from wasync.engines.neonize.content import ReactionTo, parse
from wasync.engines.neonize.history import history_sync_events, muted_until, on_demand_page
from wasync.engines.neonize.jids import IdentityMap, canonical, phone_of
from wasync.engines.neonize.messages import Origin, history_events, history_origin, seconds

__all__ = ["on_demand_page"]


def decode(kind: str, data: str) -> Any:
    """A WAProto message of `kind` ("web" WebMessageInfo, "history" HistorySync)."""
    raw = base64.b64decode(data)
    if kind == "web":
        return loader.module("web").WebMessageInfo.FromString(raw)
    return loader.module("history").HistorySync.FromString(raw)


def message_events(
    items: list[dict[str, Any]], ids: IdentityMap, own_jid: str | None
) -> list[ev.Event]:
    """`messages.upsert`: new messages, and the edits, revokes and reactions among them."""
    out: list[ev.Event] = []
    learned: list[str] = []
    for item in items:
        web = decode("web", item["proto"])
        key = web.key
        for a, b in (
            (key.remoteJID, item.get("remoteJidAlt")),
            (key.participant or web.participant, item.get("participantAlt")),
        ):
            pn = ids.learn(canonical(a), canonical(b))
            if pn is not None and pn != own_jid:
                learned.append(pn)
        chat = ids.preferred(canonical(key.remoteJID))
        if chat is None:
            continue
        parsed = parse(web.message) if web.HasField("message") else None
        if isinstance(parsed, ReactionTo):
            origin = history_origin(chat, web, ids, own_jid)
            if origin is not None:
                out.extend(_reaction(origin, parsed, ids))
            continue
        out.extend(history_events(chat, web, ids, own_jid))
    if learned:
        contacts = tuple(Contact(pn, phone=phone_of(pn), lid=ids.lid_of(pn)) for pn in learned)
        out.insert(0, ev.ContactsUpserted(contacts))
    return out


def _reaction(origin: Origin, parsed: ReactionTo, ids: IdentityMap) -> list[ev.Event]:
    target = parsed.target
    if not target.ID:
        return []
    if target.fromMe:
        sender = origin.own_jid
    elif target.participant:
        sender = ids.preferred(canonical(target.participant))
    else:
        sender = origin.chat
    if sender is None:
        return []
    at = seconds(parsed.at_ms) if parsed.at_ms else origin.timestamp
    key = MessageKey(origin.chat, sender, target.ID)
    return [ev.ReactionReceived(Reaction(key, origin.sender, parsed.emoji, at))]


def history_set_events(data: Any, ids: IdentityMap, own_jid: str | None) -> list[ev.Event]:
    """A history set nobody waits for (initial history, a late on-demand answer)."""
    return history_sync_events(data, ids, own_jid)


def contacts_of(items: list[dict[str, Any]], ids: IdentityMap) -> list[ev.Event]:
    contacts: list[Contact] = []
    pictures: list[ev.Event] = []
    for item in items:
        raw = canonical(item.get("id"))
        for other in (item.get("lid"), item.get("phoneNumber")):
            ids.learn(raw, canonical(other))
        jid = ids.preferred(raw)
        if jid is None or chat_kind_of(jid).value != "individual":
            continue
        if item.get("imgUrl") in ("changed", "removed"):
            pictures.append(ev.PictureChanged(jid, item["imgUrl"] == "removed"))
        fields = ("name", "notify", "verifiedName")
        if not any(item.get(f) for f in fields) and ids.lid_of(jid) is None:
            continue
        contacts.append(
            Contact(
                jid=jid,
                name=item.get("name") or None,
                push_name=item.get("notify") or None,
                business_name=item.get("verifiedName") or None,
                phone=phone_of(jid),
                lid=ids.lid_of(jid),
            )
        )
    out: list[ev.Event] = [ev.ContactsUpserted(tuple(contacts))] if contacts else []
    return out + pictures


def group_of(item: dict[str, Any], ids: IdentityMap) -> Group | None:
    jid = canonical(item.get("id"))
    if jid is None:
        return None
    participants = []
    for p in item.get("participants") or []:
        raw = canonical(p.get("id"))
        pn = canonical(p.get("phoneNumber"))
        lid = canonical(p.get("lid"))
        ids.learn(raw, pn or lid)
        who = ids.preferred(raw) or pn or lid
        if who is None:
            continue
        admin = p.get("admin")
        participants.append(
            Participant(
                jid=who,
                is_admin=admin in ("admin", "superadmin"),
                is_super_admin=admin == "superadmin",
                phone=phone_of(who),
                lid=ids.lid_of(who),
            )
        )
    owner = canonical(item.get("ownerPn")) or ids.preferred(canonical(item.get("owner")))
    created = item.get("creation")
    return Group(
        jid=jid,
        name=item.get("subject") or None,
        topic=item.get("desc") or None,
        owner_jid=owner,
        created_at=int(created) if created else None,
        participants=tuple(participants),
    )


def chat_of(item: dict[str, Any], ids: IdentityMap) -> Chat | None:
    jid = ids.preferred(canonical(item.get("id")))
    if jid is None:
        return None
    stamp = item.get("conversationTimestamp")
    return Chat(
        jid=jid,
        kind=chat_kind_of(jid),
        name=item.get("name") or None,
        last_message_at=seconds(int(stamp)) if stamp else None,
        unread_count=int(item.get("unreadCount") or 0),
        archived=bool(item.get("archived")),
        pinned=bool(item.get("pinned")),
        muted_until=muted_until(int(item.get("muteEndTime") or 0)),
    )


def lid_pairs(pairs: list[dict[str, Any]], ids: IdentityMap) -> list[ev.Event]:
    learned = []
    for pair in pairs:
        pn = ids.learn(canonical(pair.get("pn")), canonical(pair.get("lid")))
        if pn is not None:
            learned.append(Contact(pn, phone=phone_of(pn), lid=ids.lid_of(pn)))
    return [ev.ContactsUpserted(tuple(learned))] if learned else []
