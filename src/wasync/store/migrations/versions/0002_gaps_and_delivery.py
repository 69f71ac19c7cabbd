"""gap fill state per chat; webhook endpoints; the picture job's record of posts;
the avatar pause of a session

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_GAP_COLUMNS = (
    ("gap_status", sa.String()),
    ("gap_since_message_id", sa.String()),
    ("gap_since_sender_jid", sa.String()),
    ("gap_since_timestamp", sa.BigInteger()),
    ("gap_until_message_id", sa.String()),
    ("gap_until_sender_jid", sa.String()),
    ("gap_until_timestamp", sa.BigInteger()),
    ("gap_detected_at", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("avatar_paused_until", sa.Float(), nullable=True))
    with op.batch_alter_table("sync_state", schema=None) as batch_op:
        for name, type_ in _GAP_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.add_column(
            sa.Column("gap_epoch", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_name", sa.String(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(), server_default="webhook", nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("source", sa.String(), server_default="api", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
        sa.UniqueConstraint(
            "session_name", "url", name=op.f("uq_webhook_endpoints_session_name_url")
        ),
    )
    op.create_table(
        "picture_posts",
        sa.Column("session_name", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("jid", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("picture_id", sa.String(), nullable=True),
        sa.Column("sha256", sa.String(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_name", "target", "jid", name=op.f("pk_picture_posts")),
    )


def downgrade() -> None:
    op.drop_table("picture_posts")
    op.drop_table("webhook_endpoints")
    with op.batch_alter_table("sync_state", schema=None) as batch_op:
        batch_op.drop_column("gap_epoch")
        for name, _ in reversed(_GAP_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("avatar_paused_until")
