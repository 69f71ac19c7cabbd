"""domain/identity.py: the pairs a batch states, and a batch rewritten to people's keys."""

from __future__ import annotations

from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.identity import pair_of, pairs_in, people_in, rewrite
from wasync.domain.models import (
    Contact,
    Group,
    Message,
    MessageEdit,
    MessageKey,
    MessageRevoke,
    Participant,
    Reaction,
)

PN = "5511999990001@s.whatsapp.net"
LID = "123456789012345@lid"
ME = "5511999990000@s.whatsapp.net"
GROUP = "120363041234567890@g.us"


def _canonical(jid: str) -> str:
    return LID if jid == PN else jid


def _lid_of(jid: str) -> str | None:
    return LID if jid in (PN, LID) else None


def test_a_pair_is_one_lid_and_one_phone_jid_in_either_order() -> None:
    assert pair_of(PN, LID) == pair_of(LID, PN) == (LID, PN)
    assert pair_of(PN, ME) is None and pair_of(LID, GROUP) is None and pair_of(None, LID) is None


def test_pairs_come_from_mappings_contacts_and_rosters() -> None:
    batch = Batch()
    batch.add(ev.LidMappingsLearned(((LID, PN),)))
    batch.add(ev.ContactsUpserted((Contact("777@lid", phone="5511999990007"),)))
    batch.add(
        ev.GroupUpserted(
            Group(GROUP, participants=(Participant("888@s.whatsapp.net", lid="888888@lid"),))
        )
    )
    assert sorted(pairs_in(batch)) == [
        (LID, PN),
        ("777@lid", "5511999990007@s.whatsapp.net"),
        ("888888@lid", "888@s.whatsapp.net"),
    ]


def test_a_batch_is_rewritten_to_one_key_per_person() -> None:
    batch = Batch()
    m1 = Message(MessageKey(PN, PN, "A"), 10, text="by number")
    m2 = Message(MessageKey(LID, LID, "A"), 10, text="by lid")  # the same message twice
    m3 = Message(MessageKey(GROUP, PN, "G"), 11)
    for e in (
        ev.MessageReceived(m1),
        ev.MessageReceived(m2),
        ev.MessageReceived(m3),
        ev.MessageEdited(MessageEdit(MessageKey(PN, PN, "A"), "old", 12)),
        ev.MessageEdited(MessageEdit(MessageKey(LID, LID, "A"), "new", 13)),
        ev.MessageRevoked(MessageRevoke(MessageKey(GROUP, PN, "G"), 14, PN)),
        ev.ReactionReceived(Reaction(MessageKey(GROUP, PN, "G"), PN, "👍", 15)),
        ev.ContactsUpserted((Contact(PN, name="Alice"), Contact(LID, push_name="Ali"))),
        ev.GroupUpserted(
            Group(
                GROUP, owner_jid=PN, participants=(Participant(PN, is_admin=True), Participant(LID))
            )
        ),
    ):
        batch.add(e)
    assert people_in(batch) == {PN}
    rewrite(batch, _canonical, _lid_of)
    assert sorted(batch.messages) == [MessageKey(GROUP, LID, "G"), MessageKey(LID, LID, "A")]
    assert batch.edits[MessageKey(LID, LID, "A")].text == "new"
    assert batch.revokes[MessageKey(GROUP, LID, "G")].revoked_by == LID
    assert list(batch.reactions) == [(MessageKey(GROUP, LID, "G"), LID)]
    assert list(batch.contacts.values()) == [
        Contact(LID, name="Alice", push_name="Ali", phone="5511999990001", lid=LID)
    ]
    group = batch.groups[GROUP]
    assert group.owner_jid == LID
    assert [(p.jid, p.is_admin, p.phone, p.lid) for p in group.participants] == [
        (LID, True, "5511999990001", LID)
    ]


def test_nothing_moves_without_a_pair_but_records_say_their_number() -> None:
    batch = Batch()
    batch.add(ev.MessageReceived(Message(MessageKey(ME, ME, "X"), 1, from_me=True)))
    batch.add(ev.ContactsUpserted((Contact(ME),)))
    messages = dict(batch.messages)
    rewrite(batch, lambda j: j, lambda j: None, keys=False)
    assert batch.messages == messages
    assert batch.contacts[ME].phone == "5511999990000"
