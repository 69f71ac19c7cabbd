"""Live `MessageEv` and history `WebMessageInfo` to domain events.

Both paths reduce to an `Origin` (who said what, where, when) plus the parsed content,
so the sender rules live in one place:

- our own messages are keyed by our own phone JID;
- in a direct chat the sender is the chat, in a group the participant;
- a LID is replaced by the phone JID when the event (or an earlier one) tells it.

Edits, revokes and reactions name their target by a `MessageKey` written from the
point of view of whoever edited, revoked or reacted: `fromMe` there means "sent by
the actor", not by us. `target_key` turns that into wasync's key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from wasync.domain import events as ev
from wasync.domain.jid import chat_kind_of
from wasync.domain.models import (
    ChatKind,
    Contact,
    Message,
    MessageEdit,
    MessageKey,
    MessageRevoke,
    Reaction,
)
from wasync.engines.neonize.content import Content, EditOf, Parsed, ReactionTo, RevokeOf, parse
from wasync.engines.neonize.jids import IdentityMap, canonical, jid_str, phone_of

log = logging.getLogger(__name__)

STUB_REVOKE = 1
# MessageEv timestamps are milliseconds (goneonize encodes UnixMilli); anything this
# small is already seconds, which keeps us right if a later neonize switches.
_MILLIS_THRESHOLD = 100_000_000_000


def seconds(value: int) -> int:
    return value // 1000 if value >= _MILLIS_THRESHOLD else value


@dataclass(frozen=True, slots=True)
class Origin:
    chat: str
    sender: str
    message_id: str
    from_me: bool
    timestamp: int  # seconds
    push_name: str | None
    own_jid: str | None

    @property
    def key(self) -> MessageKey:
        return MessageKey(self.chat, self.sender, self.message_id)


def target_key(origin: Origin, key: Any, ids: IdentityMap) -> MessageKey | None:
    """wasync's key of the message an edit/revoke/reaction in `origin` points at."""
    if not key.ID:
        return None
    if key.fromMe:
        sender: str | None = origin.sender
    elif key.participant:
        sender = ids.preferred(canonical(key.participant))
    elif origin.from_me:
        # We acted on the other person's message in a direct chat.
        sender = origin.chat
    else:
        # They acted on our message in a direct chat.
        sender = origin.own_jid
    if sender is None:
        return None
    return MessageKey(origin.chat, sender, key.ID)


def events_for(origin: Origin, parsed: Parsed | None, ids: IdentityMap) -> list[ev.Event]:
    match parsed:
        case Content():
            return [ev.MessageReceived(_message(origin, parsed))]
        case EditOf(target=target, text=text, at_ms=at_ms):
            key = target_key(origin, target, ids)
            edited_at = seconds(at_ms) if at_ms else origin.timestamp
            return [] if key is None else [ev.MessageEdited(MessageEdit(key, text, edited_at))]
        case RevokeOf(target=target):
            key = target_key(origin, target, ids)
            if key is None:
                return []
            return [ev.MessageRevoked(MessageRevoke(key, origin.timestamp, origin.sender))]
        case ReactionTo(target=target, emoji=emoji, at_ms=at_ms):
            key = target_key(origin, target, ids)
            at = seconds(at_ms) if at_ms else origin.timestamp
            if key is None:
                return []
            return [ev.ReactionReceived(Reaction(key, origin.sender, emoji, at))]
        case _:
            return []


def _message(origin: Origin, content: Content) -> Message:
    return Message(
        key=origin.key,
        timestamp=origin.timestamp,
        from_me=origin.from_me,
        kind=content.kind,
        text=content.text,
        media=content.media,
        quoted_id=content.quoted_id,
        push_name=None if origin.from_me else origin.push_name,
    )


def live_origin(
    event: Any, ids: IdentityMap, own_jid: str | None, learned: list[str] | None = None
) -> Origin | None:
    """The origin of a neonize `Message` event (MessageEv).

    Phone JIDs of newly learned LID pairs are appended to `learned`.
    """
    info = event.Info
    src = info.MessageSource
    chat = jid_str(src.Chat)
    sender = jid_str(src.Sender)
    pairs = [(sender, jid_str(src.SenderAlt))]
    if not src.IsGroup:
        pairs.append((chat, jid_str(src.RecipientAlt)))
    for a, b in pairs:
        pn = ids.learn(a, b)
        if pn is not None and learned is not None and pn != own_jid:
            learned.append(pn)
    chat = ids.preferred(chat)
    sender = own_jid if src.IsFromMe and own_jid else ids.preferred(sender)
    if chat is None or sender is None or not info.ID:
        log.debug("message %r has no usable chat or sender; skipped", info.ID)
        return None
    return Origin(
        chat=chat,
        sender=sender,
        message_id=info.ID,
        from_me=bool(src.IsFromMe),
        timestamp=seconds(info.Timestamp),
        push_name=info.Pushname or None,
        own_jid=own_jid,
    )


def live_events(event: Any, ids: IdentityMap, own_jid: str | None) -> list[ev.Event]:
    learned: list[str] = []
    origin = live_origin(event, ids, own_jid, learned)
    if origin is None:
        return []
    body = event.Message if event.HasField("Message") else None
    if body is None and event.HasField("Raw"):
        body = event.Raw
    out: list[ev.Event] = []
    if learned:
        # Keep both addresses of a person the first time a message reveals them.
        contacts = (Contact(pn, phone=phone_of(pn), lid=ids.lid_of(pn)) for pn in learned)
        out.append(ev.ContactsUpserted(tuple(contacts)))
    out.extend(events_for(origin, parse(body), ids))
    return out


def history_origin(chat: str, info: Any, ids: IdentityMap, own_jid: str | None) -> Origin | None:
    """The origin of a history `WebMessageInfo` in conversation `chat` (ENGINE.md rules)."""
    key = info.key
    from_me = bool(key.fromMe)
    if from_me:
        sender = own_jid
    elif chat_kind_of(chat) == ChatKind.INDIVIDUAL:
        sender = chat
    else:
        sender = ids.preferred(canonical(info.participant or key.participant))
    if sender is None or not key.ID:
        log.debug("history message %r in %s has no usable sender; skipped", key.ID, chat)
        return None
    return Origin(
        chat=chat,
        sender=sender,
        message_id=key.ID,
        from_me=from_me,
        timestamp=seconds(info.messageTimestamp),
        push_name=info.pushName or None,
        own_jid=own_jid,
    )


def history_events(chat: str, info: Any, ids: IdentityMap, own_jid: str | None) -> list[ev.Event]:
    origin = history_origin(chat, info, ids, own_jid)
    if origin is None:
        return []
    out: list[ev.Event]
    if info.HasField("message"):
        out = events_for(origin, parse(info.message), ids)
    elif info.messageStubType == STUB_REVOKE:
        out = [ev.MessageRevoked(MessageRevoke(origin.key, origin.timestamp))]
    else:
        # Other stubs (member added, subject changed, ...) are group plumbing.
        out = []
    for reaction in info.reactions:
        out.extend(_history_reaction(origin, reaction, ids))
    return out


def _history_reaction(origin: Origin, reaction: Any, ids: IdentityMap) -> list[ev.Event]:
    rkey = reaction.key
    if rkey.fromMe:
        reactor = origin.own_jid
    elif rkey.participant:
        reactor = ids.preferred(canonical(rkey.participant))
    else:
        reactor = origin.chat
    if reactor is None:
        return []
    at = seconds(reaction.senderTimestampMS) if reaction.senderTimestampMS else origin.timestamp
    return [ev.ReactionReceived(Reaction(origin.key, reactor, reaction.text or None, at))]
