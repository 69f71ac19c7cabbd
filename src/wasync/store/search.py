"""Full-text search over the mirror's messages: the one module with the search SQL.

SQLite: a contentless FTS5 table, `messages_search` (migration 0009). Its rowid is
`(timestamp << 31) | id`, so the index itself returns hits newest first and pages
by keyset without sorting; its `scope` column holds a session token and a chat token,
so narrowing to a session or a chat happens inside the index too. New messages are
indexed by id above a high-water mark (`index_pending`), not by an insert trigger:
measured with bench/ingest.py's writer on 200k messages (3.07 s without a trigger),
a trigger writing into FTS5 made ingestion 2.5x slower (7.54 s), and one only queuing
ids 1.24x (3.82 s). Changes to messages already indexed (an
edit, a revoke, a placeholder replaced, a delete) are queued by two triggers and
applied by the same call; until then a queued message is left out of every result,
so a revoked or edited message is never a wrong hit. The `search` service in
`wasync serve` calls it about once a second; commands that write call it before they
end; deleting a session calls it in the deleting transaction.

PostgreSQL: a GIN index on `to_tsvector('simple', text)`, always in step (it is an
index). Its pending list is capped at 256 kB: the 4 MB default was scanned by every
search (~60 ms at 1M messages). A common word is cheapest found by walking the
newest messages (the (session, timestamp, id) index) and testing each; a rare one by
the GIN index. `search_messages` tries the newest 500 first and chooses from what it
found there.

Words are runs of letters and digits, case-insensitive; every word must occur (AND);
no stemming on either engine, so both answer alike.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from wasync.domain.models import MessageKind
from wasync.errors import DomainError
from wasync.store.pagination import decode_cursor, encode_cursor

# Named objects that migration 0009 makes outside schema.py's metadata (per dialect);
# the schema comparison skips exactly these.
SEARCH_OBJECTS = frozenset(
    {
        "messages_search",
        "messages_search_data",
        "messages_search_idx",
        "messages_search_config",
        "search_state",
        "search_queue",
        "ix_messages_search_text",
        "ix_messages_session_timestamp_id",
    }
)

MAX_WORDS = 8
MAX_WORD_LENGTH = 64
MAX_LIMIT = 100
_WORD = re.compile(r"[^\W_]+")
_ID_BITS = 31  # rowid = timestamp << 31 | id; ids and timestamps past these are skipped
_ID_MASK = (1 << _ID_BITS) - 1
INDEX_BATCH = 5000  # messages indexed per transaction (keeps the write lock short)

# Messages the PostgreSQL search tests one by one, newest first, before choosing.
FIRST_WINDOW = 500
# The longest walk for a word that looked common in the first window: past it, the GIN
# index is cheaper (bench/search.py: a walk tests a row in about 4 µs).
MAX_WALK = 8 * FIRST_WINDOW


class InvalidSearch(DomainError):
    pass


def query_words(query: str) -> list[str]:
    """The words a query searches for (lower case, deduplicated, in order)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    if not words:
        raise InvalidSearch("the search has no words: give letters or digits to look for")
    if len(words) > MAX_WORDS:
        raise InvalidSearch(f"the search has {len(words)} words: give at most {MAX_WORDS}")
    if any(len(w) > MAX_WORD_LENGTH for w in words):
        raise InvalidSearch(f"a search word is longer than {MAX_WORD_LENGTH} characters")
    return words


def message_words(body: str | None) -> set[str]:
    """The words of a text as search sees them (for tests and tools)."""
    return {w.lower() for w in _WORD.findall(body or "")}


@dataclass(frozen=True, slots=True)
class Hits:
    rows: list[dict[str, Any]]  # message rows, newest first
    next_cursor: str | None


def search_messages(
    conn: Connection,
    session_id: int,
    query: str,
    *,
    chat_jid: str | None = None,
    before: str | None = None,
    limit: int = 20,
) -> Hits:
    """Messages of a session (or one chat) holding every word, newest first."""
    words = query_words(query)
    limit = max(1, min(limit, MAX_LIMIT))
    start = decode_cursor(before, (int, int)) if before else None
    if conn.dialect.name == "postgresql":
        rows = _postgres(conn, session_id, words, chat_jid, start, limit + 1)
    else:
        rows = _sqlite(conn, session_id, words, chat_jid, start, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1]["timestamp"], rows[-1]["id"]) if more else None
    return Hits(rows, cursor)


# SQLite.


def scope_tokens(session_id: int, chat_jid: str) -> tuple[str, str]:
    """The index's tokens for a session and for one of its chats (letters and digits
    only, so the tokenizer keeps each whole)."""
    digest = hashlib.sha256(f"{session_id}\x00{chat_jid}".encode()).hexdigest()[:20]
    return f"s{session_id}", f"c{digest}"


def _scope(session_id: int, chat_jid: str) -> str:
    return " ".join(scope_tokens(session_id, chat_jid))


def _rowid(timestamp: int, message_id: int) -> int:
    return (timestamp << _ID_BITS) | message_id


def _below(start: tuple[int, int] | None) -> int:
    """The rowid bound of "older than (timestamp, id)", for any cursor values (a cursor
    is the client's: its numbers may lie outside what the index holds)."""
    if start is None or start[0] >= 1 << 32:
        return (1 << 63) - 1
    timestamp, message_id = start
    if timestamp < 0:
        return 0
    return (timestamp << _ID_BITS) + min(max(message_id, 0), _ID_MASK + 1)


_ROW = "SELECT id, session_id, chat_jid, timestamp, text, kind, revoked_at FROM messages"
_ADD = "INSERT INTO messages_search (rowid, body, scope) VALUES (?, ?, ?)"
_REMOVE = (
    "INSERT INTO messages_search (messages_search, rowid, body, scope) VALUES ('delete', ?, ?, ?)"
)


def _indexable(row: Any) -> bool:
    """What the index holds a row for: the same rule as migration 0009's triggers
    (which record what a changed row's index entry was)."""
    return (
        row.kind != MessageKind.UNKNOWN.value
        and row.revoked_at is None
        and bool(row.text)
        and row.id <= _ID_MASK
        and 0 <= row.timestamp < (1 << 32)
    )


def _add(conn: Connection, rows: Sequence[Any]) -> None:
    entries = [
        (_rowid(r.timestamp, r.id), r.text, _scope(r.session_id, r.chat_jid))
        for r in rows
        if _indexable(r)
    ]
    if entries:
        conn.exec_driver_sql(_ADD, entries)


def _indexed_upto(conn: Connection) -> int:
    found = conn.exec_driver_sql("SELECT indexed_upto FROM search_state WHERE id = 1").scalar_one()
    return int(found)


def index_pending(conn: Connection, batch: int = INDEX_BATCH) -> int:
    """Bring the SQLite index up to date a step: every queued change, then up to
    `batch` new messages. Returns how many it handled (0: in step). PostgreSQL's
    index is always in step: 0."""
    if conn.dialect.name != "sqlite":
        return 0
    done = _apply_queue(conn)
    fresh = conn.exec_driver_sql(
        f"{_ROW} WHERE id > ? ORDER BY id LIMIT ?", (_indexed_upto(conn), batch)
    ).all()
    if fresh:
        _add(conn, fresh)
        conn.exec_driver_sql(
            "UPDATE search_state SET indexed_upto = ? WHERE id = 1", (fresh[-1].id,)
        )
    return done + len(fresh)


def catch_up(conn: Connection) -> int:
    """Index everything pending (in this transaction); how many messages that was."""
    total = 0
    while step := index_pending(conn):
        total += step
    return total


def _apply_queue(conn: Connection) -> int:
    """Take every queued change out of the index and put the row's present state in."""
    queued = conn.exec_driver_sql(
        "SELECT message_id, session_id, chat_jid, timestamp, text FROM search_queue"
    ).all()
    if not queued:
        return 0
    removed = [
        (_rowid(q.timestamp, q.message_id), q.text, _scope(q.session_id, q.chat_jid))
        for q in queued
        if q.text is not None
    ]
    if removed:
        conn.exec_driver_sql(_REMOVE, removed)
    upto = _indexed_upto(conn)
    ids = [q.message_id for q in queued if q.message_id <= upto]
    for chunk in range(0, len(ids), 500):
        part = ids[chunk : chunk + 500]
        marks = ",".join("?" * len(part))
        _add(conn, conn.exec_driver_sql(f"{_ROW} WHERE id IN ({marks})", tuple(part)).all())
    conn.exec_driver_sql("DELETE FROM search_queue")
    # Deleted rows at the top of the table free their ids for reuse (SQLite gives a new
    # row max(id) + 1): new messages must land above the mark to be indexed.
    conn.exec_driver_sql(
        "UPDATE search_state SET indexed_upto = "
        "min(indexed_upto, coalesce((SELECT max(id) FROM messages), 0)) WHERE id = 1"
    )
    return len(queued)


def pending(conn: Connection) -> int:
    """Messages not yet in step with the index: new ones and queued changes."""
    if conn.dialect.name != "sqlite":
        return 0
    upto = int(
        conn.execute(text("SELECT indexed_upto FROM search_state WHERE id = 1")).scalar_one()
    )
    new = conn.execute(
        text("SELECT count(*) FROM messages WHERE id > :u"), {"u": upto}
    ).scalar_one()
    queued = conn.execute(text("SELECT count(*) FROM search_queue")).scalar_one()
    return int(new) + int(queued)


def _sqlite(
    conn: Connection,
    session_id: int,
    words: list[str],
    chat_jid: str | None,
    start: tuple[int, int] | None,
    n: int,
) -> list[dict[str, Any]]:
    session_token, chat_token = scope_tokens(session_id, chat_jid or "")
    terms = [f'body:"{w}"' for w in words]
    if chat_jid is not None:
        terms.append(f'scope:"{chat_token}"')
    elif conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar_one() > 1:
        # The session token is in every message of the session: skipping through it cost
        # a rare word 15x (0.76 ms against 0.05 at 300k messages). With one session
        # (the usual mirror) every hit is the session's anyway (rows are checked below).
        terms.append(f'scope:"{session_token}"')
    match = " AND ".join(terms)
    below = _below(start)
    hits = conn.exec_driver_sql(
        "SELECT rowid FROM messages_search WHERE messages_search MATCH ? AND rowid < ? "
        f"AND (rowid & {_ID_MASK}) NOT IN (SELECT message_id FROM search_queue) "
        "ORDER BY rowid DESC LIMIT ?",
        (match, below, n),
    ).all()
    ids = [h.rowid & _ID_MASK for h in hits]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    # By primary key alone: with `session_id = ?` in the WHERE clause SQLite chose the
    # session's index and scanned it (10 ms for 21 rows at 50k messages).
    found = {
        r["id"]: dict(r)
        for r in conn.exec_driver_sql(
            f"SELECT * FROM messages WHERE id IN ({marks})", tuple(ids)
        ).mappings()
    }
    return [found[i] for i in ids if i in found and found[i]["session_id"] == session_id]


# PostgreSQL.

_TSV = "to_tsvector('simple'::regconfig, coalesce(m.text, ''))"
_PG_MATCHES = (
    f"{_TSV} @@ to_tsquery('simple'::regconfig, :q) "
    f"AND m.kind <> '{MessageKind.UNKNOWN.value}' AND m.revoked_at IS NULL"
)


def _postgres(
    conn: Connection,
    session_id: int,
    words: list[str],
    chat_jid: str | None,
    start: tuple[int, int] | None,
    n: int,
) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"sid": session_id, "q": " & ".join(words), "n": n}
    where = "m.session_id = :sid"
    if chat_jid is not None:
        where += " AND m.chat_jid = :chat"
        params["chat"] = chat_jid
    if start is not None:
        where += " AND (m.timestamp, m.id) < (:ts, :id)"
        params["ts"], params["id"] = start
    order = "ORDER BY m.timestamp DESC, m.id DESC"

    def walk(window: int) -> list[dict[str, Any]]:
        # The newest `window` messages by the (session[, chat], timestamp, id) index,
        # each tested: no GIN lookup, no sort of every hit of a common word.
        stmt = text(
            f"SELECT * FROM (SELECT * FROM messages m WHERE {where} {order} LIMIT :window) m "
            f"WHERE {_PG_MATCHES} {order} LIMIT :n"
        )
        return [dict(r) for r in conn.execute(stmt, {**params, "window": window}).mappings()]

    found = walk(FIRST_WINDOW)
    if len(found) >= n:
        return found
    if found:
        # A common word: the walk that would find n at this rate (and half again), if
        # not too long.
        needed = FIRST_WINDOW * n * 3 // (2 * len(found))
        if needed <= MAX_WALK:
            longer = walk(needed)
            if len(longer) >= n:
                return longer
    # A rare word (or a short mirror): the GIN index finds every hit, then they sort.
    # Materialized, so the planner cannot choose the ordered walk with a filter instead:
    # its guess for a word it has no statistics for (0.5% of rows) made it walk all of
    # a million messages for an absent word (4 s; bench/search.py).
    stmt = text(
        f"WITH hits AS MATERIALIZED (SELECT * FROM messages m WHERE {where} AND {_PG_MATCHES}) "
        f"SELECT * FROM hits m {order} LIMIT :n"
    )
    return [dict(r) for r in conn.execute(stmt, params).mappings()]
