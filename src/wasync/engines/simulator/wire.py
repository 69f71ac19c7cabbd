"""How the simulated WhatsApp names people on the wire: by number or by LID.

The network's ground truth keeps each person under their number internally; what an
engine emits names them as WhatsApp does in 2025-26, for people who have a LID
(identities.py):

- contact list, chat list and a direct chat's history asked by number: by number;
- group rosters, group messages and live direct messages: by LID;
- a person who hides their number: by LID everywhere, and their pair is never told.

Pairs: without late mappings, the contact list and rosters carry both forms from the
start. With late mappings a pair is told only once the person was named in both
forms (a `LidMappingsLearned` after the events that named them), or at the latest at
the next connect (the phone's mapping table arrives late, not never); every pair told
is told again at each connect.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from wasync.domain.events import (
    Event,
    LidMappingsLearned,
    MessageEdited,
    MessageReceived,
    MessageRevoked,
    PictureChanged,
    ReactionReceived,
)
from wasync.domain.models import Chat, Contact, Group, Message, MessageKey
from wasync.engines.simulator.identities import hides_number

if TYPE_CHECKING:
    from wasync.engines.simulator.network import Network

_LID = "@lid"


class Wire:
    def __init__(self, network: Network) -> None:
        self.network = network
        self.late = network.config.late_mappings
        self.lid_of: dict[str, str] = {c.jid: c.lid for c in network.contacts() if c.lid}
        self.phone_of = {lid: pn for pn, lid in self.lid_of.items()}
        self.hidden = {
            pn for pn in self.lid_of if hides_number(network.config, pn.split("@", 1)[0])
        }
        self._seen: dict[str, set[bool]] = {}  # person -> forms named (True: by LID)
        self.told: set[str] = set()  # people whose pair was told
        self._connects = 0
        if not self.late:
            self.told = set(self.lid_of) - self.hidden

    @property
    def active(self) -> bool:
        return bool(self.lid_of)

    # Addresses.

    def internal(self, jid: str) -> str:
        """The network's own key of an address in either form."""
        return self.phone_of.get(jid, jid) if jid.endswith(_LID) else jid

    def name(self, jid: str | None, by_lid: bool) -> str | None:
        """`jid` (a network key) as the wire names it, noting the form."""
        if jid is None:
            return None
        lid = self.lid_of.get(jid)
        if lid is None:
            return jid
        lidform = by_lid or jid in self.hidden
        self._seen.setdefault(jid, set()).add(lidform)
        return lid if lidform else jid

    def _key(self, key: MessageKey, by_lid: bool) -> MessageKey:
        return MessageKey(
            self.name(key.chat_jid, by_lid) or key.chat_jid,
            self.name(key.sender_jid, by_lid) or key.sender_jid,
            key.message_id,
        )

    def internal_key(self, key: MessageKey) -> MessageKey:
        return MessageKey(
            self.internal(key.chat_jid), self.internal(key.sender_jid), key.message_id
        )

    # Records.

    def contact(self, c: Contact) -> Contact:
        lid = self.lid_of.get(c.jid)
        if lid is None:
            return c
        if c.jid in self.hidden:
            self.name(c.jid, True)
            return replace(c, jid=lid, phone=None, lid=lid)
        self.name(c.jid, False)
        return replace(c, lid=lid if c.jid in self.told else None)

    def chat(self, c: Chat) -> Chat:
        to = self.name(c.jid, False)
        return c if to is None or to == c.jid else replace(c, jid=to)

    def group(self, g: Group) -> Group:
        members = []
        for p in g.participants:
            lid = self.lid_of.get(p.jid)
            if lid is None:
                members.append(p)
                continue
            self.name(p.jid, True)
            told = p.jid in self.told
            members.append(replace(p, jid=lid, phone=p.phone if told else None, lid=lid))
        return replace(g, owner_jid=self.name(g.owner_jid, True), participants=tuple(members))

    def message(self, m: Message, by_lid: bool) -> Message:
        key = self._key(m.key, by_lid)
        return m if key == m.key else replace(m, key=key)

    def event(self, e: Event, by_lid: bool = True) -> Event:
        match e:
            case MessageReceived(message=m):
                return MessageReceived(self.message(m, by_lid))
            case MessageEdited(edit=x):
                return MessageEdited(replace(x, key=self._key(x.key, by_lid)))
            case MessageRevoked(revoke=r):
                return MessageRevoked(
                    replace(
                        r, key=self._key(r.key, by_lid), revoked_by=self.name(r.revoked_by, by_lid)
                    )
                )
            case ReactionReceived(reaction=r):
                return ReactionReceived(
                    replace(
                        r,
                        target=self._key(r.target, by_lid),
                        sender_jid=self.name(r.sender_jid, by_lid) or r.sender_jid,
                    )
                )
            case PictureChanged():
                return replace(e, jid=self.name(e.jid, True) or e.jid)
            case _:
                return e

    # Pairs.

    def newly_told(self) -> LidMappingsLearned | None:
        """Late mappings: the pairs of people now named in both forms, told once here."""
        if not self.late:
            return None
        fresh = sorted(
            pn
            for pn, forms in self._seen.items()
            if len(forms) == 2 and pn not in self.told and pn not in self.hidden
        )
        if not fresh:
            return None
        self.told.update(fresh)
        return LidMappingsLearned(tuple((self.lid_of[pn], pn) for pn in fresh))

    def all_told(self) -> LidMappingsLearned | None:
        """Every pair told so far (WhatsApp says them again at each connect); from the
        second connect on, late mappings have all arrived."""
        self._connects += 1
        if self.late and self._connects > 1:
            self.told = set(self.lid_of) - self.hidden
        if not self.told:
            return None
        return LidMappingsLearned(tuple(sorted((self.lid_of[pn], pn) for pn in self.told)))
