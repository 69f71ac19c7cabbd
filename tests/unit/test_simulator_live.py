"""Live traffic: generated events are applied to ground truth."""

from __future__ import annotations

import itertools

import pytest

from wasync.domain.events import (
    MessageEdited,
    MessageReceived,
    MessageRevoked,
    ReactionReceived,
)
from wasync.domain.models import ChatKind
from wasync.engines.simulator import Network


@pytest.fixture
def network() -> Network:
    return Network.from_scale("tiny", seed=21)


def test_live_messages_extend_their_chats(network: Network) -> None:
    before = {jid: network.message_count(jid) for jid in network.chat_jids()}
    history_end = max(c.last_message_at or 0 for c in network.chats())
    events = network.live_events(300)
    received = [e.message for e in events if isinstance(e, MessageReceived)]
    assert len(received) > 150
    assert network.total_messages() == 300 + len(received)
    for message in received:
        jid = message.key.chat_jid
        index = network.index_of(jid, message.key.message_id, message.timestamp)
        assert index is not None and index >= before.get(jid, 0)
        assert network.message(jid, index) == message
        assert network.find_message(jid, message.key.message_id) == message
        assert message.timestamp > history_end
    for jid in network.chat_jids():
        stamps = [m.timestamp for m in network.messages(jid)]
        assert all(a < b for a, b in itertools.pairwise(stamps))
        # The chat list shows the last activity: a message, or an edit, delete, reaction.
        changes = [e.edited_at for k, e in network.edits().items() if k.chat_jid == jid]
        changes += [r.revoked_at for k, r in network.revokes().items() if k.chat_jid == jid]
        changes += [r.timestamp for (k, _), r in network.reactions().items() if k.chat_jid == jid]
        last = max([*stamps[-1:], *changes], default=None)
        assert network.chat(jid).last_message_at == last


def test_live_events_are_deterministic() -> None:
    a, b = Network.from_scale("tiny", seed=4), Network.from_scale("tiny", seed=4)
    assert a.live_events(50) + a.live_events(50) == b.live_events(100)
    assert a.edits() == b.edits() and a.revokes() == b.revokes()
    assert a.reactions() == b.reactions()


def test_edits_revokes_and_reactions_are_ground_truth(network: Network) -> None:
    events = network.live_events(600)
    edits = [e.edit for e in events if isinstance(e, MessageEdited)]
    revokes = [e.revoke for e in events if isinstance(e, MessageRevoked)]
    reactions = [e.reaction for e in events if isinstance(e, ReactionReceived)]
    assert edits and revokes and reactions
    assert any(r.emoji is None for r in reactions), "some reactions are removed"

    assert network.edits() == {e.key: e for e in edits}  # the latest per key wins
    assert network.revokes() == {r.key: r for r in revokes}
    assert network.reactions() == {(r.target, r.sender_jid): r for r in reactions}
    for edit in edits:
        original = network.find_message(edit.key.chat_jid, edit.key.message_id)
        assert original is not None and original.key == edit.key
        assert edit.edited_at > original.timestamp
    for reaction in reactions:
        assert reaction.sender_jid in network.members(reaction.target.chat_jid)
        if reaction.emoji is None:
            earlier = [
                r
                for r in reactions
                if (r.target, r.sender_jid) == (reaction.target, reaction.sender_jid)
                and r.timestamp < reaction.timestamp
            ]
            assert earlier and earlier[-1].emoji is not None


def test_new_leads_appear_as_contacts_and_chats(network: Network) -> None:
    known = set(network.chat_jids())
    contacts = {c.jid for c in network.contacts()}
    events = network.live_events(400)
    new_chats = [jid for jid in network.chat_jids() if jid not in known]
    assert new_chats
    for jid in new_chats:
        first = network.message(jid, 0)
        assert not first.from_me and first.key.sender_jid == jid
        assert first.push_name is not None
        assert jid not in contacts
        contact = network.contact(jid)
        assert contact is not None and contact.name is None and contact.push_name
        assert network.chat(jid).kind is ChatKind.INDIVIDUAL
        announced = next(
            e for e in events if isinstance(e, MessageReceived) and e.message.key.chat_jid == jid
        )
        assert announced.message == first


def test_tests_can_add_messages(network: Network) -> None:
    jid = network.chat_jids()[0]
    count = network.message_count(jid)
    message = network.add_message(jid)
    assert network.message_count(jid) == count + 1
    assert network.newest(jid, 1) == [message]
    with pytest.raises(ValueError, match="not after"):
        network.add_message(jid, timestamp=message.timestamp)
    later = network.add_message(jid, timestamp=network.now + 100)
    assert network.now >= later.timestamp
    assert network.live_events(1)  # live traffic continues after the explicit time
