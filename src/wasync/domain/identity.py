"""One person, one key: which of a person's two addresses the mirror stores them under.

WhatsApp names a person by phone number (`…@s.whatsapp.net`) or by an opaque LID
(`…@lid`), and the same person reaches us in both forms: live direct messages, group
messages and rosters by LID, contact lists and older history by number, and the pair
that links them may arrive long after rows were written under either.

The canonical key is the **LID when it is known, else the phone JID**:

- LIDs are where WhatsApp is going (direct chats moved to them during 2025-26), so
  ever more events arrive in that form and need no rewriting;
- a person who hides their number has only a LID, and the mirror must still key them;
- a LID stays with its person, so a row keyed by a LID never moves again; a row keyed
  by a number moves once, when that number's LID is learned (store/merge.py).

Our own account keeps its phone JID: it is the session's identity (`sessions.jid`),
and our own messages are stored under it. Its pair is never stored.

Pure: the store reads and writes the pairs (store/identities.py); this module only
finds the pairs a batch carries and rewrites a batch through a lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TypeVar

from wasync.domain.batch import Batch
from wasync.domain.jid import SERVER_LID, SERVER_USER
from wasync.domain.models import (
    Chat,
    Contact,
    Group,
    MessageEdit,
    MessageKey,
    Participant,
    Reaction,
)

V = TypeVar("V")

# A pair: (lid JID, phone JID) of one person.
Pair = tuple[str, str]
Canonical = Callable[[str], str]

_LID = "@" + SERVER_LID
_USER = "@" + SERVER_USER


def is_lid(jid: str | None) -> bool:
    return jid is not None and jid.endswith(_LID)


def is_phone_jid(jid: str | None) -> bool:
    return jid is not None and jid.endswith(_USER)


def phone_jid(digits: str) -> str:
    return digits + _USER


def digits_of(jid: str) -> str:
    return jid.split("@", 1)[0]


def pair_of(a: str | None, b: str | None) -> Pair | None:
    """(lid, phone JID) when `a` and `b` are the two forms of one person, in any order."""
    if is_lid(a) and is_phone_jid(b):
        return a, b  # type: ignore[return-value]
    if is_lid(b) and is_phone_jid(a):
        return b, a  # type: ignore[return-value]
    return None


def _record_pair(jid: str, phone: str | None, lid: str | None) -> Pair | None:
    if is_lid(jid):
        return pair_of(jid, phone_jid(phone)) if phone else None
    if is_phone_jid(jid) and lid:
        return pair_of(lid, jid)
    return None


def pairs_in(batch: Batch) -> Iterator[Pair]:
    """Every (lid, phone) pair the batch states: mappings, contacts and rosters."""
    for lid, pn in batch.mappings.items():
        pair = pair_of(lid, pn)
        if pair is not None:
            yield pair
    for c in batch.contacts.values():
        pair = _record_pair(c.jid, c.phone, c.lid)
        if pair is not None:
            yield pair
    for g in batch.groups.values():
        for p in g.participants:
            pair = _record_pair(p.jid, p.phone, p.lid)
            if pair is not None:
                yield pair


def people_in(batch: Batch) -> set[str]:
    """The phone JIDs the batch names (the ones that may have a LID to rewrite to)."""
    # Messages are most of a batch: a chat's or sender's JID is seen once per message,
    # and a set comprehension is several times quicker than a call per address.
    user = _USER
    out = {k.chat_jid for k in batch.messages if k.chat_jid.endswith(user)}
    out.update(k.sender_jid for k in batch.messages if k.sender_jid.endswith(user))

    def add(jid: str | None) -> None:
        if is_phone_jid(jid):
            out.add(jid)  # type: ignore[arg-type]

    for key in (*batch.edits, *batch.revokes):
        add(key.chat_jid)
        add(key.sender_jid)
    for r in batch.revokes.values():
        add(r.revoked_by)
    for target, sender in batch.reactions:
        add(target.chat_jid)
        add(target.sender_jid)
        add(sender)
    for jid in (*batch.contacts, *batch.chats, *batch.pictures_changed, *batch.complete_chats):
        add(jid)
    for g in batch.groups.values():
        add(g.owner_jid)
        for p in g.participants:
            add(p.jid)
    return out


def rewrite(
    batch: Batch, canonical: Canonical, lid_of: Callable[[str], str | None], *, keys: bool = True
) -> None:
    """Rewrite every address of `batch` to its canonical key, in place.

    `canonical` maps a phone JID to its LID when known (anything else to itself);
    `lid_of` gives the LID of a phone JID or None. Records that meet under one key
    (a contact sent in both forms) are combined as `Batch.add` would. `keys=False`:
    no address of the batch has a LID to move to, so messages, edits, deletes and
    reactions stay as they are (the common case, at no cost); records still get
    both forms filled in.
    """
    if keys:
        _rewrite_keys(batch, canonical)
    contacts = dict(batch.contacts)
    batch.contacts = {}
    for c in contacts.values():
        batch.add_contact(_person(c, canonical, lid_of))
    chats: dict[str, Chat] = {}
    for jid, chat in batch.chats.items():
        to = canonical(jid)
        if to != jid:
            chat = replace(chat, jid=to)
        if to not in chats or to == jid:
            chats[to] = chat
    batch.chats = chats
    batch.groups = {jid: _group(g, canonical, lid_of) for jid, g in batch.groups.items()}
    batch.pictures_changed = {
        canonical(jid): replace(p, jid=canonical(jid)) if canonical(jid) != jid else p
        for jid, p in batch.pictures_changed.items()
    }
    batch.complete_chats = {canonical(jid) for jid in batch.complete_chats}


def _rewrite_keys(batch: Batch, canonical: Canonical) -> None:

    def key(k: MessageKey) -> MessageKey:
        chat, sender = canonical(k.chat_jid), canonical(k.sender_jid)
        if chat == k.chat_jid and sender == k.sender_jid:
            return k
        return MessageKey(chat, sender, k.message_id)

    def moved(items: Iterable[tuple[MessageKey, V]]) -> Iterator[tuple[MessageKey, V]]:
        for k, item in items:
            to = key(k)
            yield to, (item if to is k else replace(item, key=to))  # type: ignore[type-var]

    batch.messages = _rekeyed(moved(batch.messages.items()))
    batch.edits = _newest(moved(batch.edits.items()))
    batch.revokes = _rekeyed(
        (
            key(k),
            replace(
                r,
                key=key(k),
                revoked_by=canonical(r.revoked_by) if r.revoked_by else r.revoked_by,
            ),
        )
        for k, r in batch.revokes.items()
    )
    reactions: dict[tuple[MessageKey, str], Reaction] = {}
    for (target, sender), r in batch.reactions.items():
        t, s = key(target), canonical(sender)
        new = r if (t, s) == (target, sender) else replace(r, target=t, sender_jid=s)
        old = reactions.get((t, s))
        if old is None or new.timestamp >= old.timestamp:
            reactions[(t, s)] = new
    batch.reactions = reactions


def _rekeyed(items: Iterable[tuple[MessageKey, V]]) -> dict[MessageKey, V]:
    out: dict[MessageKey, V] = {}
    for k, v in items:
        out.setdefault(k, v)
    return out


def _newest(items: Iterable[tuple[MessageKey, MessageEdit]]) -> dict[MessageKey, MessageEdit]:
    out: dict[MessageKey, MessageEdit] = {}
    for k, e in items:
        old = out.get(k)
        if old is None or e.edited_at >= old.edited_at:
            out[k] = e
    return out


def _person(c: Contact, canonical: Canonical, lid_of: Callable[[str], str | None]) -> Contact:
    jid = canonical(c.jid)
    phone = c.phone
    if phone is None and is_phone_jid(c.jid):
        phone = digits_of(c.jid)
    lid = c.lid or (jid if is_lid(jid) else lid_of(c.jid))
    if (jid, phone, lid) == (c.jid, c.phone, c.lid):
        return c
    return replace(c, jid=jid, phone=phone, lid=lid)


def _member(
    p: Participant, canonical: Canonical, lid_of: Callable[[str], str | None]
) -> Participant:
    jid = canonical(p.jid)
    phone = p.phone
    if phone is None and is_phone_jid(p.jid):
        phone = digits_of(p.jid)
    lid = p.lid or (jid if is_lid(jid) else lid_of(p.jid))
    if (jid, phone, lid) == (p.jid, p.phone, p.lid):
        return p
    return replace(p, jid=jid, phone=phone, lid=lid)


def _group(g: Group, canonical: Canonical, lid_of: Callable[[str], str | None]) -> Group:
    members: dict[str, Participant] = {}
    for p in g.participants:
        m = _member(p, canonical, lid_of)
        old = members.get(m.jid)
        if old is not None:  # the same person listed in both forms
            m = replace(
                m,
                is_admin=m.is_admin or old.is_admin,
                is_super_admin=m.is_super_admin or old.is_super_admin,
                phone=m.phone or old.phone,
                lid=m.lid or old.lid,
                display_name=m.display_name or old.display_name,
            )
        members[m.jid] = m
    owner = canonical(g.owner_jid) if g.owner_jid else g.owner_jid
    return replace(g, owner_jid=owner, participants=tuple(members.values()))
