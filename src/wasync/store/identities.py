"""The `lid_mappings` table: a person's LID and phone JID, and batches keyed by them.

`prepare()` runs first in every transaction that writes a batch (sync/commit.py,
sync/writer.py, sync/initial.py; `write_batches` calls it too, as a safety net): it
reads the pairs the batch needs in one statement, stores the pairs the batch states
for the first time, merges the rows kept under those numbers into their LIDs
(store/merge.py), and rewrites the batch to canonical keys (domain/identity.py). The
transaction hooks that follow (webhooks, avatar jobs) then see canonical keys only.

A batch is prepared once per transaction: one retried after a rollback learns and
merges again, because what the first attempt stored was rolled back with it.

PostgreSQL runs several writers of one session at once (the live writer, history
pages): one could learn a pair and merge a number's rows while another, which read the
table a moment before, writes new rows under that number, and the person would stay
split. An advisory lock per session closes that window: writers hold it shared from
before they read the table until they commit; a writer that learns a pair takes it
exclusively first. (SQLite runs one write transaction at a time.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from wasync.domain.batch import Batch
from wasync.domain.identity import Pair, is_lid, pair_of, pairs_in, people_in, rewrite
from wasync.store.merge import fill_forms, merge_person, present
from wasync.store.schema import contacts, group_participants, lid_mappings, sessions

CHUNK = 300  # keys per IN (...) list: far below every driver's parameter limit
# The advisory lock's first key: which lock of wasync this is (the second is the session).
_LOCK_CLASS = 0x1D


class Identities:
    """The pairs of one session known in this transaction (a slice of the table)."""

    def __init__(self, own_jid: str | None, pairs: dict[str, str]) -> None:
        self.own_jid = own_jid
        self.phone_of: dict[str, str] = dict(pairs)
        self.lid_of_phone: dict[str, str] = {pn: lid for lid, pn in pairs.items()}

    def canonical(self, jid: str) -> str:
        return self.lid_of_phone.get(jid, jid)

    def lid_of(self, jid: str) -> str | None:
        return jid if is_lid(jid) else self.lid_of_phone.get(jid)

    def is_new(self, pair: Pair) -> bool:
        """True when neither form is paired yet (the first pair of a number stays)."""
        lid, pn = pair
        return pn != self.own_jid and lid not in self.phone_of and pn not in self.lid_of_phone

    def add(self, pair: Pair) -> None:
        lid, pn = pair
        self.phone_of[lid] = pn
        self.lid_of_phone[pn] = lid


def prepare(conn: Connection, session_id: int, batch: Batch, now: int) -> None:
    """Learn the batch's pairs, merge the people they join, rewrite it to canonical keys."""
    transaction = conn.get_transaction()
    if transaction is not None and batch.prepared_in is transaction:
        return
    batch.merges = []
    stated = {p for p in pairs_in(batch)}
    phones = people_in(batch)
    if stated or phones or batch.restate:
        lock(conn, session_id, exclusive=batch.restate)
        restated = stored_pairs(conn, session_id) if batch.restate else set()
        stated |= restated
        ids = load(conn, session_id, phones | {pn for _, pn in stated}, {lid for lid, _ in stated})
        new = sorted(p for p in stated if ids.is_new(p))
        # Two pairs of one batch may contend for one number or one LID: the first wins.
        learned: list[Pair] = []
        for pair in new:
            if ids.is_new(pair):
                ids.add(pair)
                learned.append(pair)
        # Restated pairs the table held already: their numbers may still hold rows (a
        # mirror written before the pair was known to it).
        known = sorted(p for p in restated if p not in learned and ids.phone_of.get(p[0]) == p[1])
        if learned or known:
            lock(conn, session_id, exclusive=True)
            _insert(conn, session_id, learned, now)
            joined = learned + known
            # Most pairs are news about people with nothing stored under the number (a
            # contact list on first sync): two bulk checks spare them the merge.
            numbers = present(conn, session_id, [pn for _, pn in joined])
            lids = present(conn, session_id, [lid for lid, _ in joined])
            for lid, pn in joined:
                if pn in numbers:
                    merged = merge_person(conn, session_id, lid, pn, now, checked=True)
                    if merged is not None:
                        batch.merges.append(merged)
                elif lid in lids:
                    fill_forms(conn, session_id, lid, pn)
        # Keys move only when some number of the batch has a LID (most batches: none).
        moves = any(pn in ids.lid_of_phone for pn in phones) or bool(learned or known)
        rewrite(batch, ids.canonical, ids.lid_of, keys=moves)
        batch.phones = ids.phone_of
    batch.prepared_in = transaction


def load(
    conn: Connection, session_id: int, phones: Iterable[str], lids: Iterable[str]
) -> Identities:
    """The pairs of these phone JIDs and LIDs, and the session's own JID."""
    own = conn.execute(select(sessions.c.jid).where(sessions.c.id == session_id)).scalar()
    pairs: dict[str, str] = {}
    m = lid_mappings.c
    phone_list, lid_list = sorted(set(phones)), sorted(set(lids))
    for start in range(0, max(len(phone_list), len(lid_list)), CHUNK):
        ph, li = phone_list[start : start + CHUNK], lid_list[start : start + CHUNK]
        rows = conn.execute(
            select(m.lid, m.phone_jid).where(
                m.session_id == session_id, or_(m.phone_jid.in_(ph), m.lid.in_(li))
            )
        )
        pairs.update({lid: pn for lid, pn in rows})
    return Identities(own, pairs)


def stored_pairs(conn: Connection, session_id: int) -> set[Pair]:
    """Every pair the mirror holds: the table, and contact and roster rows that carry
    both forms (a mirror written before the table existed)."""
    pairs = {(lid, pn) for lid, pn in all_pairs(conn, session_id).items()}
    c, p = contacts.c, group_participants.c
    for table, key, phone, lid in (
        (contacts, c.jid, c.phone, c.lid),
        (group_participants, p.participant_jid, p.phone, p.lid),
    ):
        rows = conn.execute(
            select(key, phone, lid)
            .where(table.c.session_id == session_id, phone.is_not(None), lid.is_not(None))
            .distinct()
        )
        for jid, digits, lid_jid in rows:
            pair = pair_of(lid_jid, f"{digits}@s.whatsapp.net")
            if pair is not None and (jid in pair):
                pairs.add(pair)
    return pairs


def all_pairs(conn: Connection, session_id: int) -> dict[str, str]:
    """Every stored pair of a session: {lid: phone JID}."""
    m = lid_mappings.c
    rows = conn.execute(select(m.lid, m.phone_jid).where(m.session_id == session_id))
    return {lid: pn for lid, pn in rows}


def resolve(conn: Connection, session_id: int, jid: str) -> tuple[str, str | None, str | None]:
    """(canonical key, phone JID, lid) of any address of a person; others unchanged."""
    m = lid_mappings.c
    if is_lid(jid):
        pn = conn.execute(
            select(m.phone_jid).where(m.session_id == session_id, m.lid == jid)
        ).scalar()
        return jid, pn, jid
    lid = conn.execute(select(m.lid).where(m.session_id == session_id, m.phone_jid == jid)).scalar()
    if lid is not None:
        return lid, jid, lid
    return jid, (jid if jid.endswith("@s.whatsapp.net") else None), None


def canonical_keys(conn: Connection, session_id: int, jids: Iterable[str]) -> dict[str, str]:
    """The key each address is kept under, in one statement (a chat list's JIDs)."""
    wanted = set(jids)
    ids = load(conn, session_id, [j for j in wanted if j.endswith("@s.whatsapp.net")], [])
    return {j: ids.canonical(j) for j in wanted}


def canonical_to_write(conn: Connection, session_id: int, jid: str) -> str:
    """`canonical()` for a transaction about to write under the key: it holds the
    identity lock shared from here, so no merge of that person can slip in between
    (PostgreSQL; an update that found the number's row merged away inserted it again)."""
    lock(conn, session_id, exclusive=False)
    return canonical(conn, session_id, jid)


def canonical(conn: Connection, session_id: int, jid: str) -> str:
    """The key the mirror keeps any address of a person under (others: unchanged)."""
    return resolve(conn, session_id, jid)[0]


def forms_of(
    conn: Connection, session_id: int, jids: Iterable[str]
) -> dict[str, tuple[str | None, str | None]]:
    """(phone digits, lid) of each person among `jids`, for the API's both forms."""
    wanted = sorted(set(jids))
    lids = [j for j in wanted if is_lid(j)]
    phones = [j for j in wanted if j.endswith("@s.whatsapp.net")]
    pairs = load(conn, session_id, phones, lids) if lids or phones else Identities(None, {})
    out: dict[str, tuple[str | None, str | None]] = {}
    for jid in lids:
        pn = pairs.phone_of.get(jid)
        out[jid] = (pn.split("@", 1)[0] if pn else None, jid)
    for jid in phones:
        out[jid] = (jid.split("@", 1)[0], pairs.lid_of_phone.get(jid))
    return out


def learn(conn: Connection, session_id: int, pairs: Sequence[tuple[str, str]], now: int) -> Batch:
    """Store these pairs and merge the people they join (start-up restatement, tests)."""
    batch = Batch()
    for a, b in pairs:
        pair = pair_of(a, b)
        if pair is not None:
            batch.mappings[pair[0]] = pair[1]
    prepare(conn, session_id, batch, now)
    return batch


def _insert(conn: Connection, session_id: int, pairs: list[Pair], now: int) -> None:
    rows = [
        {"session_id": session_id, "lid": lid, "phone_jid": pn, "learned_at": now}
        for lid, pn in pairs
    ]
    if not rows:  # only pairs the table holds were restated: an empty executemany is
        return  # a bare INSERT, which SQLite refuses ("near ON") and the writer retries
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(lid_mappings).on_conflict_do_nothing(), rows)


def lock(conn: Connection, session_id: int, *, exclusive: bool) -> None:
    """The session's identity lock (PostgreSQL): shared to write rows keyed by people,
    exclusive to learn a pair and merge. Held until the transaction ends."""
    if conn.dialect.name != "postgresql":
        return
    fn = func.pg_advisory_xact_lock if exclusive else func.pg_advisory_xact_lock_shared
    conn.execute(select(fn(_LOCK_CLASS, session_id)))
