"""SQLAlchemy Core tables: the single description of the mirror's schema.

Identity is WhatsApp's: a contact or chat by (session, jid), a message by
(session, chat, sender, message id). Times are whole epoch seconds (BigInteger) so
that both SQLite and PostgreSQL store and compare them exactly and cheaply; the jobs
queue uses float seconds because its leases and back-offs need sub-second steps.

Migrations (store/migrations) must produce exactly this; a test compares them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# Autoincrementing 64-bit keys; on SQLite an INTEGER PRIMARY KEY is the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _session_fk() -> Column[int]:
    return Column(
        "session_id",
        Integer,
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
        nullable=False,
    )


def _avatar_columns() -> list[Column[Any]]:
    # Filled by the avatar worker: a path served under /media/avatars/..., or the
    # literal 'none' when WhatsApp has no picture or refuses to show it.
    return [
        Column("profile_picture", Text),
        Column("profile_picture_id", String),
        Column("profile_picture_timestamp", BigInteger),
    ]


sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String, nullable=False, unique=True),
    Column("engine", String, nullable=False),
    Column("status", String, nullable=False, server_default="disconnected"),
    Column("status_reason", Text),
    Column("jid", String),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # Until when WhatsApp's last 429 pauses this session's picture requests (Unix
    # time): kept here so that a restart does not ask again before it is over.
    Column("avatar_paused_until", Float),
    # What the engine was built with (JSON; a simulator's seed and scale), so that every
    # later command and a restarted server rebuild the same engine. NULL: defaults.
    Column("engine_options", Text),
)

contacts = Table(
    "contacts",
    metadata,
    _session_fk(),
    Column("jid", String, primary_key=True),
    Column("name", Text),
    Column("push_name", Text),
    Column("business_name", Text),
    Column("phone", String),
    Column("lid", String),
    *_avatar_columns(),
    Column("updated_at", BigInteger, nullable=False),
)

chats = Table(
    "chats",
    metadata,
    _session_fk(),
    Column("jid", String, primary_key=True),
    Column("kind", String, nullable=False),
    Column("name", Text),
    Column("last_message_at", BigInteger),
    Column("unread_count", Integer, nullable=False, server_default="0"),
    Column("archived", Boolean, nullable=False, server_default=text("false")),
    Column("pinned", Boolean, nullable=False, server_default=text("false")),
    Column("muted_until", BigInteger),
    *_avatar_columns(),
    Column("updated_at", BigInteger, nullable=False),
    # The chat list pages by last activity (keyset on last_message_at, jid).
    Index(None, "session_id", "last_message_at", "jid"),
)

groups = Table(
    "groups",
    metadata,
    _session_fk(),
    Column("jid", String, primary_key=True),
    Column("name", Text),
    Column("topic", Text),
    Column("owner_jid", String),
    Column("created_at", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
)

group_participants = Table(
    "group_participants",
    metadata,
    _session_fk(),
    Column("group_jid", String, primary_key=True),
    Column("participant_jid", String, primary_key=True),
    Column("is_admin", Boolean, nullable=False, server_default=text("false")),
    Column("is_super_admin", Boolean, nullable=False, server_default=text("false")),
    Column("phone", String),
    Column("lid", String),
    Column("display_name", Text),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("chat_jid", String, nullable=False),
    Column("sender_jid", String, nullable=False),
    Column("message_id", String, nullable=False),
    Column("from_me", Boolean, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("kind", String, nullable=False),
    Column("text", Text),
    Column("quoted_id", String),
    Column("push_name", Text),
    Column("media_mimetype", String),
    Column("media_size", BigInteger),
    Column("media_sha256", String),
    Column("media_enc_sha256", String),
    Column("media_key", String),
    Column("media_direct_path", Text),
    Column("media_url", Text),
    Column("media_filename", Text),
    Column("edited_at", BigInteger),
    Column("revoked_at", BigInteger),
    Column("revoked_by", String),
    UniqueConstraint("session_id", "chat_jid", "sender_jid", "message_id"),
    # Message pages are keyset on (timestamp, id) within a chat.
    Index(None, "session_id", "chat_jid", "timestamp", "id"),
    # A person's merge (store/merge.py) finds the deletions they made by a seek. Partial:
    # few messages are deleted, and ordinary inserts do not pay for the index.
    Index(
        "ix_messages_revoked_by",
        "session_id",
        "revoked_by",
        sqlite_where=text("revoked_by IS NOT NULL"),
        postgresql_where=text("revoked_by IS NOT NULL"),
    ),
)

reactions = Table(
    "reactions",
    metadata,
    _session_fk(),
    Column("chat_jid", String, primary_key=True),
    Column("target_sender_jid", String, primary_key=True),
    Column("target_message_id", String, primary_key=True),
    Column("sender_jid", String, primary_key=True),
    # NULL once the sender removed the reaction: the row stays so that an older,
    # late-arriving reaction cannot resurrect it.
    Column("emoji", String),
    Column("timestamp", BigInteger, nullable=False),
)

sync_state = Table(
    "sync_state",
    metadata,
    _session_fk(),
    Column("chat_jid", String, primary_key=True),
    Column("newest_message_id", String),
    Column("newest_sender_jid", String),
    Column("newest_timestamp", BigInteger),
    Column("oldest_message_id", String),
    Column("oldest_sender_jid", String),
    Column("oldest_timestamp", BigInteger),
    Column("fully_synced", Boolean, nullable=False, server_default=text("false")),
    Column("last_synced_at", BigInteger),
    Column("last_error", Text),
    Column("last_error_at", BigInteger),
    # A possible hole after downtime (history/gaps.py): NULL when none is known, else
    # 'pending' (reconnected, not checked yet), 'filling' or 'failed' (see last_error).
    # Messages after `gap_since_*` (the newest stored before the downtime) may be
    # missing down from `gap_until_*` (where filling has reached; NULL: the newest).
    Column("gap_status", String),
    Column("gap_since_message_id", String),
    Column("gap_since_sender_jid", String),
    Column("gap_since_timestamp", BigInteger),
    Column("gap_until_message_id", String),
    Column("gap_until_sender_jid", String),
    Column("gap_until_timestamp", BigInteger),
    Column("gap_detected_at", BigInteger),
    # Bumped by every connect while a gap is open: a fill that started before then
    # must start again from the newest message (a second outage may sit above it).
    Column("gap_epoch", Integer, nullable=False, server_default="0"),
)

# A person's two addresses (domain/identity.py): rows are keyed by the LID once it is
# known, and this says which phone JID it stands for. One LID per number: the first
# pair learned for a number stays.
lid_mappings = Table(
    "lid_mappings",
    metadata,
    _session_fk(),
    Column("lid", String, primary_key=True),
    Column("phone_jid", String, nullable=False),
    Column("learned_at", BigInteger, nullable=False),
    UniqueConstraint("session_id", "phone_jid"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String, nullable=False),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE")),
    # Dedup key: at most one queued-or-running job per (kind, session, unique_key).
    Column("unique_key", String),
    # What the job acts on (a delivery's endpoint id): the runner caps how many jobs of
    # one target run at once.
    Column("target", String),
    Column("payload", Text, nullable=False, server_default="{}"),
    Column("state", String, nullable=False, server_default="queued"),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("run_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="10"),
    Column("lease_owner", String),
    Column("lease_expires_at", Float),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float),
    # What a finished job answered (JSON): a command's reply to the node that asked.
    Column("result", Text),
    Index(
        "uq_jobs_pending_key",
        "kind",
        "session_id",
        "unique_key",
        unique=True,
        sqlite_where=text("state IN ('queued', 'running')"),
        postgresql_where=text("state IN ('queued', 'running')"),
    ),
    Index(None, "state", "kind", "run_at"),
    # The runner claims per (kind, session) and asks when each one's next job is due.
    Index(None, "kind", "session_id", "state", "run_at"),
    # A kind's queued jobs in claim order: a claim reads its first rows off this index
    # instead of sorting every due row (measured: 57 ms per claim with 40,000 queued).
    Index("ix_jobs_claim_order", "state", "kind", Column("priority").desc(), "run_at"),
)

# Delivery (webhooks, Discord): endpoints per session, by session name so that a
# config file may name a session before it is first paired.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_name", String, nullable=False),
    Column("url", Text, nullable=False),
    Column("kind", String, nullable=False, server_default="webhook"),  # webhook | discord
    Column("events", Text, nullable=False),  # the event filter, comma-separated
    Column("secret", Text),  # HMAC key of signed webhooks (Discord needs none)
    Column("description", Text),
    Column("source", String, nullable=False, server_default="api"),  # api | file
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("session_name", "url"),
)

# Broker endpoints (NATS, RabbitMQ, Redis) read their events as a log instead of one
# job per event: each endpoint's events are numbered 1, 2, 3... in commit order
# (`head` is bumped under the cursor row's lock in the transaction that records
# them), and the endpoint's pump publishes them in order from `sent`, then deletes
# what was acknowledged. Reading a log position costs a range read, not two row
# updates through the jobs table's indexes (delivery/streams/log.py).


def _endpoint_fk() -> Column[int]:
    return Column(
        "endpoint_id",
        Integer,
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        primary_key=True,
    )


stream_cursors = Table(
    "stream_cursors",
    metadata,
    _endpoint_fk(),
    Column("head", BigInteger, nullable=False, server_default="0"),  # last number given
    Column("sent", BigInteger, nullable=False, server_default="0"),  # all up to it are out
    Column("updated_at", Float, nullable=False),
)

stream_events = Table(
    "stream_events",
    metadata,
    _endpoint_fk(),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE")),
    Column("event_id", String, nullable=False),
    Column("topic", String, nullable=False),
    Column("body", Text, nullable=False),  # the envelope as sent (JSON)
    Column("timestamp", Float, nullable=False),  # the envelope's
    sqlite_with_rowid=False,  # rows live in the (endpoint, seq) order they are read in
)

# What the one-shot picture job last posted per destination and number, so that an
# unchanged picture is not posted again.
picture_posts = Table(
    "picture_posts",
    metadata,
    Column("session_name", String, primary_key=True),
    Column("target", String, primary_key=True),
    Column("jid", String, primary_key=True),
    Column("state", String, nullable=False),  # picture | none | hidden
    Column("picture_id", String),
    Column("sha256", String),
    Column("updated_at", BigInteger, nullable=False),
)


# The cluster (several `wasync serve` on one PostgreSQL; on SQLite, the processes of one
# machine): the nodes alive, and which one runs each session.
cluster_nodes = Table(
    "cluster_nodes",
    metadata,
    Column("name", String, primary_key=True),
    # A new process under the same name is a new incarnation: a node that restarts must
    # not mistake its predecessor for itself.
    Column("incarnation", String, nullable=False),
    Column("address", Text),
    Column("host", String),
    Column("pid", Integer),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    # The node's own figures (JSON) for the cluster view and the dashboard.
    Column("stats", Text),
)

# One row per session once some process ran it. `holder` runs it now (NULL: nobody);
# `epoch` grows at every change of hands and fences every write the session makes: a
# write carrying an older epoch is refused (sessions/ownership.py).
session_leases = Table(
    "session_leases",
    metadata,
    Column(
        "session_id",
        Integer,
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
        nullable=False,
    ),
    Column("holder", String),
    Column("holder_detail", Text),  # what the holder is, for people: "wasync sync, pid 4242"
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    # NULL while an operating-system file lock holds the session (SQLite, one machine).
    Column("expires_at", Float),
    Column("acquired_at", Float),
    Index(None, "holder"),
)

# Media every node can serve: content-addressed blobs, and the names they are served at.
media_blobs = Table(
    "media_blobs",
    metadata,
    Column("sha256", String, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

media_objects = Table(
    "media_objects",
    metadata,
    Column("key", String, primary_key=True),  # e.g. avatars/<session>/<jid>.jpg
    Column("sha256", String, nullable=False),
    Column("content_type", String),
    Column("size", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index(None, "sha256"),
)

# Live events too large for one NOTIFY (8,000 bytes): the notification names the row.
bus_spill = Table(
    "bus_spill",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# The simulated WhatsApp's view of who is connected to each simulated account, shared
# by every process on the database: like WhatsApp, it drops the older of two
# connections of one account ("replaced"). Only simulator sessions use it.
simulator_connections = Table(
    "simulator_connections",
    metadata,
    Column("account", String, primary_key=True),
    Column("connection", String, nullable=False),
    Column("connected_at", Float, nullable=False),
)

# The keys of Baileys-engine sessions kept in the mirror's database (PostgreSQL
# deployments; see wasync.engines.baileys.auth), so any node can take a session over.
# Values are the sidecar's own JSON, opaque here. A file session holds the same table
# in its own SQLite file under <data-dir>/sessions/.
baileys_auth = Table(
    "baileys_auth",
    metadata,
    Column("session_name", String, primary_key=True),
    Column("category", String, primary_key=True),
    Column("key_id", String, primary_key=True),
    Column("value", Text, nullable=False),
)
