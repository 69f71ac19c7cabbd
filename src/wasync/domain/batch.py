"""Accumulate engine events into one batch that is committed in one transaction.

Pure: no I/O. Within a batch, duplicates collapse (same message key once; the newest
edit, revoke and reaction win), so the store's cost is proportional to distinct facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasync.domain import events as ev
from wasync.domain.models import (
    Chat,
    Contact,
    Group,
    Message,
    MessageEdit,
    MessageKey,
    MessageRevoke,
    PersonMerged,
    Reaction,
)


@dataclass(slots=True)
class Batch:
    messages: dict[MessageKey, Message] = field(default_factory=dict)
    edits: dict[MessageKey, MessageEdit] = field(default_factory=dict)
    revokes: dict[MessageKey, MessageRevoke] = field(default_factory=dict)
    reactions: dict[tuple[MessageKey, str], Reaction] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    chats: dict[str, Chat] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    pictures_changed: dict[str, ev.PictureChanged] = field(default_factory=dict)
    # Chats whose history the phone says is complete (nothing older exists).
    complete_chats: set[str] = field(default_factory=set)
    # (lid -> phone JID) pairs stated outside contact and roster records.
    mappings: dict[str, str] = field(default_factory=dict)
    # Filled by the store when it writes the batch (store/identities.py): the people
    # whose rows under a number moved to their LID in the same transaction, and the
    # transaction that rewrote the batch (it is prepared once per transaction).
    merges: list[PersonMerged] = field(default_factory=list)
    restate: bool = False  # state every stored pair again (ev.IdentitiesRestated)
    # The phone JID of each LID the batch names, when known (for both forms in events).
    phones: dict[str, str] = field(default_factory=dict)
    prepared_in: object | None = None
    # Everything else (lifecycle, pairing) passes through to subscribers untouched.
    other: list[ev.Event] = field(default_factory=list)
    # The events as received, kept so a batch that cannot be committed as a whole
    # can be retried one event at a time (see sync/writer.py).
    events: list[ev.Event] = field(default_factory=list)
    size: int = 0

    def __len__(self) -> int:
        return self.size

    def add(self, event: ev.Event) -> None:
        self.size += 1
        self.events.append(event)
        match event:
            case ev.MessageReceived(message=m):
                self.messages.setdefault(m.key, m)
            case ev.HistoryBatch():
                for m in event.messages:
                    self.messages.setdefault(m.key, m)
                for c in event.chats:
                    self.chats[c.jid] = c
                for contact in event.contacts:
                    self.add_contact(contact)
                self.complete_chats.update(event.complete_chats)
                self.mappings.update(event.mappings)
            case ev.LidMappingsLearned(pairs=pairs):
                self.mappings.update(pairs)
            case ev.IdentitiesRestated():
                self.restate = True
            case ev.MessageEdited(edit=e):
                old = self.edits.get(e.key)
                if old is None or e.edited_at >= old.edited_at:
                    self.edits[e.key] = e
            case ev.MessageRevoked(revoke=r):
                self.revokes.setdefault(r.key, r)
            case ev.ReactionReceived(reaction=r):
                rkey = (r.target, r.sender_jid)
                old_r = self.reactions.get(rkey)
                if old_r is None or r.timestamp >= old_r.timestamp:
                    self.reactions[rkey] = r
            case ev.ChatUpserted(chat=c):
                self.chats[c.jid] = c
            case ev.ContactsUpserted(contacts=cs):
                for contact in cs:
                    self.add_contact(contact)
            case ev.GroupUpserted(group=g):
                self.groups[g.jid] = g
            case ev.PictureChanged():
                self.pictures_changed[event.jid] = event
            case _:
                self.other.append(event)

    def add_contact(self, contact: Contact) -> None:
        old = self.contacts.get(contact.jid)
        if old is None:
            self.contacts[contact.jid] = contact
            return
        # Merge: a later partial record (say, only a push name) must not erase fields.
        self.contacts[contact.jid] = Contact(
            jid=contact.jid,
            name=contact.name or old.name,
            push_name=contact.push_name or old.push_name,
            business_name=contact.business_name or old.business_name,
            phone=contact.phone or old.phone,
            lid=contact.lid or old.lid,
        )

    @property
    def has_rows(self) -> bool:
        return bool(
            self.messages
            or self.edits
            or self.revokes
            or self.reactions
            or self.contacts
            or self.chats
            or self.groups
            or self.mappings
            or self.restate
        )
