"""sessions remember their engine options; full-text search over messages

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 04:00:00

Search objects differ by dialect and are not in schema.py's metadata (the schema
comparison skips exactly these names, listed in wasync.store.search.SEARCH_OBJECTS):

- SQLite: `messages_search`, a contentless FTS5 table whose rowid is
  `(timestamp << 31) | id` (hits come newest first), with `scope` holding a session
  token and a chat token; `search_state`, the id up to which messages are indexed;
  `search_queue`, indexed messages changed or deleted since (two triggers fill it).
  New messages have no trigger: the indexer takes them by id above the mark.
- PostgreSQL: a GIN index on the text's tsvector (pending list capped at 256 kB)
  and a (session, timestamp, id) index for the newest-first walk.

The trigger conditions must say exactly what the indexer in store/search.py indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# What the SQLite index holds for a message row `r` (NULL: nothing).
_INDEXED_TEXT = (
    "CASE WHEN {r}.kind <> 'unknown' AND {r}.revoked_at IS NULL AND {r}.text <> '' "
    "AND {r}.id < 2147483648 AND {r}.timestamp >= 0 AND {r}.timestamp < 4294967296 "
    "THEN {r}.text END"
)
# Only the first change since the index last took the row is queued: that one holds
# what the index has. (Not INSERT OR IGNORE: the conflict clause of the statement that
# fired a trigger overrides the trigger's own, and an upsert's is ABORT.)
_QUEUE_OLD = (
    "INSERT INTO search_queue (message_id, session_id, chat_jid, timestamp, text) "
    "SELECT old.id, old.session_id, old.chat_jid, old.timestamp, "
    + _INDEXED_TEXT.format(r="old")
    + " WHERE NOT EXISTS (SELECT 1 FROM search_queue WHERE message_id = old.id);"
)
_INDEXED = "old.id <= (SELECT indexed_upto FROM search_state WHERE id = 1)"


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("engine_options", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_messages_search_text ON messages "
            "USING gin (to_tsvector('simple'::regconfig, coalesce(text, ''))) "
            "WITH (gin_pending_list_limit = 256)"
        )
        op.execute(
            "CREATE INDEX ix_messages_session_timestamp_id ON messages (session_id, timestamp, id)"
        )
        return
    op.execute(
        "CREATE VIRTUAL TABLE messages_search USING fts5("
        # Diacritics kept, as PostgreSQL's 'simple' configuration keeps them: both
        # engines answer a search alike.
        "body, scope, content='', columnsize=0, detail=column, "
        "tokenize='unicode61 remove_diacritics 0')"
    )
    op.execute(
        "CREATE TABLE search_state ("
        "id INTEGER PRIMARY KEY CHECK (id = 1), indexed_upto INTEGER NOT NULL)"
    )
    op.execute("INSERT INTO search_state (id, indexed_upto) VALUES (1, 0)")
    op.execute(
        "CREATE TABLE search_queue ("
        "message_id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL, "
        "chat_jid TEXT NOT NULL, timestamp INTEGER NOT NULL, text TEXT)"
    )
    op.execute(
        "CREATE TRIGGER messages_search_update AFTER UPDATE OF "
        "text, revoked_at, kind, timestamp, session_id, chat_jid ON messages "
        f"WHEN {_INDEXED} BEGIN {_QUEUE_OLD} END"
    )
    op.execute(
        f"CREATE TRIGGER messages_search_delete AFTER DELETE ON messages "
        f"WHEN {_INDEXED} BEGIN {_QUEUE_OLD} END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_messages_session_timestamp_id")
        op.execute("DROP INDEX ix_messages_search_text")
    else:
        op.execute("DROP TRIGGER messages_search_delete")
        op.execute("DROP TRIGGER messages_search_update")
        op.execute("DROP TABLE search_queue")
        op.execute("DROP TABLE search_state")
        op.execute("DROP TABLE messages_search")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("engine_options")
