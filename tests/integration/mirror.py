"""Compare the mirror with the simulator's ground truth (shared by sync tests)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from wasync.domain.models import Message, MessageKey
from wasync.engines.simulator import Network
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.schema import (
    chats,
    contacts,
    group_participants,
    groups,
    messages,
    reactions,
    sync_state,
)


def comparable(m: Message) -> Message:
    """What the store keeps of a message (media dimensions are not stored)."""
    if m.media is not None:
        m = replace(m, media=replace(m.media, width=None, height=None, seconds=None))
    return m


def stored_messages(db: Database, session_id: int) -> dict[tuple[str, str, str], Message]:
    with db.read() as conn:
        return {
            (m.key.chat_jid, m.key.sender_jid, m.key.message_id): m
            for m in queries.all_messages(conn, session_id)
        }


def assert_directory_mirrored(db: Database, session_id: int, net: Network) -> None:
    """Contacts, groups with members, and every chat (individual and group) are stored."""
    with db.read() as conn:
        crow = {
            r.jid: r
            for r in conn.execute(select(contacts).where(contacts.c.session_id == session_id))
        }
        grow = {
            r.jid: r for r in conn.execute(select(groups).where(groups.c.session_id == session_id))
        }
        chrow = {
            r.jid: r for r in conn.execute(select(chats).where(chats.c.session_id == session_id))
        }
        members: dict[str, set[tuple[str, bool, bool]]] = {}
        for r in conn.execute(
            select(group_participants).where(group_participants.c.session_id == session_id)
        ):
            members.setdefault(r.group_jid, set()).add(
                (r.participant_jid, bool(r.is_admin), bool(r.is_super_admin))
            )
    for c in net.contacts():
        row = crow[c.jid]
        assert (row.name, row.phone, row.business_name) == (c.name, c.phone, c.business_name), c.jid
        if c.push_name:
            assert row.push_name == c.push_name
    for g in net.groups():
        assert grow[g.jid].name == g.name
        assert members[g.jid] == {(p.jid, p.is_admin, p.is_super_admin) for p in g.participants}
    assert set(grow) == {g.jid for g in net.groups()}
    assert set(chrow) == set(net.chat_jids())
    for chat in net.chats():
        assert chrow[chat.jid].kind == chat.kind.value
        assert chrow[chat.jid].name == chat.name


def assert_messages_equal(db: Database, session_id: int, expected: list[Message]) -> None:
    got = stored_messages(db, session_id)
    want = {(m.key.chat_jid, m.key.sender_jid, m.key.message_id): comparable(m) for m in expected}
    missing = set(want) - set(got)
    extra = set(got) - set(want)
    assert not missing, f"{len(missing)} messages missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} unexpected messages, e.g. {sorted(extra)[:3]}"
    for key, m in want.items():
        stored = got[key]
        assert stored.timestamp == m.timestamp and stored.kind == m.kind, key
        assert stored.from_me == m.from_me and stored.media == m.media, key
        assert stored.quoted_id == m.quoted_id, key


def assert_no_duplicates(db: Database) -> None:
    with db.read() as conn:
        total = conn.execute(select(messages.c.id)).all()
        keys = conn.execute(
            select(
                messages.c.session_id,
                messages.c.chat_jid,
                messages.c.sender_jid,
                messages.c.message_id,
            ).distinct()
        ).all()
        assert len(total) == len(keys)
        rtotal = conn.execute(select(reactions.c.sender_jid)).all()
        assert len(rtotal) == len(set(conn.execute(select(reactions)).all()))


def assert_changes_mirrored(db: Database, session_id: int, net: Network) -> None:
    """Edits, revokes and reactions stand in the mirror as they stand on the network."""
    with db.read() as conn:
        rows = {
            (r.chat_jid, r.sender_jid, r.message_id): r
            for r in conn.execute(select(messages).where(messages.c.session_id == session_id))
        }
        stored_reactions = {
            (r.chat_jid, r.target_sender_jid, r.target_message_id, r.sender_jid): (
                r.emoji or None,
                r.timestamp,
            )
            for r in conn.execute(select(reactions).where(reactions.c.session_id == session_id))
        }
    for key, edit in net.edits().items():
        row = rows[(key.chat_jid, key.sender_jid, key.message_id)]
        assert (row.text, row.edited_at) == (edit.text, edit.edited_at), key
    for key, revoke in net.revokes().items():
        row = rows[(key.chat_jid, key.sender_jid, key.message_id)]
        assert row.revoked_at == revoke.revoked_at, key
    truth = {
        (t.chat_jid, t.sender_jid, t.message_id, s): (r.emoji or None, r.timestamp)
        for (t, s), r in net.reactions().items()
    }
    assert stored_reactions == truth


def assert_people_mirrored(db: Database, session_id: int, net: Network) -> None:
    """The mirror equals the network person by person: one contact and one direct chat
    per person (keyed by their LID when they have one), every message once under its
    canonical key, edits, deletes and reactions, rosters and sync state."""
    people = {p.jid: p for p in net.people()}
    with db.read() as conn:
        crow = {
            r.jid: r
            for r in conn.execute(select(contacts).where(contacts.c.session_id == session_id))
        }
        chat_keys = set(
            conn.execute(select(chats.c.jid).where(chats.c.session_id == session_id)).scalars()
        )
        members: dict[str, set[str]] = {}
        for r in conn.execute(
            select(group_participants).where(group_participants.c.session_id == session_id)
        ):
            members.setdefault(r.group_jid, set()).add(r.participant_jid)
        states = {s: queries.get_sync_state(conn, session_id, s) for s in chat_keys}
        state_keys = set(
            conn.execute(
                select(sync_state.c.chat_jid).where(sync_state.c.session_id == session_id)
            ).scalars()
        )
    assert set(crow) == set(people), (
        f"contacts not person by person: extra {sorted(set(crow) - set(people))[:3]}, "
        f"missing {sorted(set(people) - set(crow))[:3]}"
    )
    for jid, p in people.items():
        row = crow[jid]
        assert (row.name, row.phone, row.lid, row.business_name) == (
            p.name, p.phone, p.lid, p.business_name
        ), (jid, tuple(row), p)  # fmt: skip
    assert chat_keys == {net.canonical(j) for j in net.chat_jids()}
    assert state_keys <= chat_keys, f"sync state of no chat: {sorted(state_keys - chat_keys)[:3]}"
    for g in net.groups():
        assert members[g.jid] == {net.canonical(p.jid) for p in g.participants}, g.jid
    want = {net.canonical_key(m.key): comparable(m) for m in net.iter_all_messages()}
    got = stored_messages(db, session_id)
    got_keys = {MessageKey(*k) for k in got}
    missing, extra = set(want) - got_keys, got_keys - set(want)
    assert not missing, f"{len(missing)} messages missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} unexpected messages, e.g. {sorted(extra)[:3]}"
    assert_no_duplicates(db)
    for key, m in want.items():
        stored = got[(key.chat_jid, key.sender_jid, key.message_id)]
        assert (stored.timestamp, stored.kind, stored.from_me) == (m.timestamp, m.kind, m.from_me)
    with db.read() as conn:
        rows = {
            (r.chat_jid, r.sender_jid, r.message_id): r
            for r in conn.execute(select(messages).where(messages.c.session_id == session_id))
        }
        stored_reactions = {
            (r.chat_jid, r.target_sender_jid, r.target_message_id, r.sender_jid): r.emoji or None
            for r in conn.execute(select(reactions).where(reactions.c.session_id == session_id))
        }
    for key, edit in net.edits().items():
        c = net.canonical_key(key)
        assert rows[(c.chat_jid, c.sender_jid, c.message_id)].text == edit.text, key
    for key, revoke in net.revokes().items():
        c = net.canonical_key(key)
        row = rows[(c.chat_jid, c.sender_jid, c.message_id)]
        assert (row.revoked_at, row.revoked_by) == (
            revoke.revoked_at,
            net.canonical(revoke.revoked_by) if revoke.revoked_by else None,
        ), key
    truth = {}
    for (t, s), r in net.reactions().items():
        c = net.canonical_key(t)
        truth[(c.chat_jid, c.sender_jid, c.message_id, net.canonical(s))] = r.emoji or None
    assert stored_reactions == truth
    for jid in net.chat_jids():
        state = states[net.canonical(jid)]
        newest = net.message(jid, net.message_count(jid) - 1)
        assert state is not None and state.newest_message_id == newest.key.message_id, jid
        assert state.newest_sender_jid == net.canonical(newest.key.sender_jid), jid
