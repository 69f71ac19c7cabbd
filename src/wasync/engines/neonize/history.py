"""`HistorySyncEv` (waHistorySync.HistorySync) to domain events.

One HistorySync becomes one `HistoryBatch` (chats, messages, contacts) followed by
the edits, revokes and reactions it carried. Phone <-> LID mappings are learned first,
so messages of LID senders are keyed like the live ones.
"""

from __future__ import annotations

from typing import Any

from wasync.domain import events as ev
from wasync.domain.events import HistorySyncType
from wasync.domain.identity import pair_of
from wasync.domain.jid import chat_kind_of
from wasync.domain.models import Chat, Contact, Message
from wasync.engines.base import HistoryPage
from wasync.engines.neonize.jids import IdentityMap, canonical, phone_of
from wasync.engines.neonize.messages import history_events, seconds

_SYNC_TYPES = {
    0: HistorySyncType.INITIAL_BOOTSTRAP,
    2: HistorySyncType.FULL,
    3: HistorySyncType.RECENT,
    4: HistorySyncType.PUSH_NAME,
    6: HistorySyncType.ON_DEMAND,
}
# Conversation.endOfHistoryTransferType: the phone holds nothing older for this chat.
_COMPLETE = 1
# A mute "forever" arrives as a huge (often all-ones) number; keep it comparable.
FOREVER = 253_402_300_799  # 9999-12-31T23:59:59Z


def history_sync_events(data: Any, ids: IdentityMap, own_jid: str | None) -> list[ev.Event]:
    """Domain events for one `waHistorySync.HistorySync`."""
    for mapping in data.phoneNumberToLidMappings:
        ids.learn(canonical(mapping.pnJID), canonical(mapping.lidJID))
    for conv in data.conversations:
        chat_id = canonical(conv.ID)
        for other in (conv.pnJID, conv.lidJID, conv.newJID):
            ids.learn(chat_id, canonical(other))

    chats: list[Chat] = []
    messages: list[Message] = []
    extra: list[ev.Event] = []
    complete: list[str] = []
    for conv in data.conversations:
        chat = _chat(conv, ids)
        if chat is None:
            continue
        chats.append(chat)
        if conv.endOfHistoryTransferType == _COMPLETE and conv.HasField("endOfHistoryTransferType"):
            complete.append(chat.jid)
        # Newest first, as the phone sends them; the store does not care about order.
        for item in conv.messages:
            if not item.HasField("message"):
                continue
            for event in history_events(chat.jid, item.message, ids, own_jid):
                if isinstance(event, ev.MessageReceived):
                    messages.append(event.message)
                else:
                    extra.append(event)

    batch = ev.HistoryBatch(
        sync_type=_SYNC_TYPES.get(data.syncType, HistorySyncType.OTHER),
        chats=tuple(chats),
        messages=tuple(messages),
        contacts=tuple(_contacts(data, ids)),
        progress=data.progress if data.HasField("progress") else None,
        complete_chats=tuple(complete),
        mappings=_mappings(data),
    )
    return [batch, *extra]


def _mappings(data: Any) -> tuple[tuple[str, str], ...]:
    """The (lid, phone JID) pairs the phone sent along, for the store (store/identities.py)."""
    out: list[tuple[str, str]] = []
    for mapping in data.phoneNumberToLidMappings:
        pair = pair_of(canonical(mapping.lidJID), canonical(mapping.pnJID))
        if pair is not None:
            out.append(pair)
    return tuple(out)


def _chat(conv: Any, ids: IdentityMap) -> Chat | None:
    jid = ids.preferred(canonical(conv.ID))
    if jid is None:
        return None
    last = conv.lastMsgTimestamp or conv.conversationTimestamp
    return Chat(
        jid=jid,
        kind=chat_kind_of(jid),
        name=conv.name or conv.displayName or None,
        last_message_at=seconds(last) if last else None,
        unread_count=conv.unreadCount,
        archived=conv.archived,
        # `pinned` is the time it was pinned, 0 when it is not.
        pinned=conv.pinned > 0,
        muted_until=muted_until(conv.muteEndTime),
    )


def muted_until(value: int) -> int | None:
    if not value:
        return None
    if value >= 2**62:
        return FOREVER
    return min(seconds(value), FOREVER)


def _contacts(data: Any, ids: IdentityMap) -> list[Contact]:
    found: dict[str, Contact] = {}
    for mapping in data.phoneNumberToLidMappings:
        pn = canonical(mapping.pnJID)
        if pn is not None:
            found[pn] = _contact(pn, ids)
    for entry in data.pushnames:
        jid = ids.preferred(canonical(entry.ID))
        if jid is None or not entry.pushname:
            continue
        found[jid] = _contact(jid, ids, push_name=entry.pushname)
    return list(found.values())


def _contact(jid: str, ids: IdentityMap, push_name: str | None = None) -> Contact:
    lid = ids.lid_of(jid)
    return Contact(jid=jid, push_name=push_name, phone=phone_of(jid), lid=lid)


def more_remains(data: Any, chat_jid: str, ids: IdentityMap) -> bool | None:
    """The phone's word on `chat_jid` in an answer: more older messages (True), none
    (False), or it did not say (None)."""
    for conv in data.conversations:
        if ids.preferred(canonical(conv.ID)) != chat_jid:
            continue
        if not conv.HasField("endOfHistoryTransferType"):
            return None
        return bool(conv.endOfHistoryTransferType != _COMPLETE)
    return None


def on_demand_page(
    data: Any, chat_jid: str, ids: IdentityMap, own_jid: str | None
) -> tuple[HistoryPage, ev.HistoryBatch]:
    """An on-demand answer as the page its request returns, plus what else it carried
    (chats, contacts) as a batch without messages for the live path."""
    events = history_sync_events(data, ids, own_jid)
    batch = events[0]
    assert isinstance(batch, ev.HistoryBatch)
    messages = sorted(batch.messages, key=lambda m: (m.timestamp, m.key.message_id), reverse=True)
    page = HistoryPage(messages, tuple(events[1:]), more=more_remains(data, chat_jid, ids))
    rest = ev.HistoryBatch(
        sync_type=batch.sync_type,
        chats=batch.chats,
        contacts=batch.contacts,
        progress=batch.progress,
        complete_chats=batch.complete_chats,
        mappings=batch.mappings,
    )
    return page, rest
