"""a person's two addresses (LID and phone JID), and deletions found by who made them

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-22 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lid_mappings",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("lid", sa.String(), nullable=False),
        sa.Column("phone_jid", sa.String(), nullable=False),
        sa.Column("learned_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_lid_mappings_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "lid", name=op.f("pk_lid_mappings")),
        sa.UniqueConstraint(
            "session_id", "phone_jid", name=op.f("uq_lid_mappings_session_id_phone_jid")
        ),
    )
    op.create_index(
        "ix_messages_revoked_by",
        "messages",
        ["session_id", "revoked_by"],
        sqlite_where=sa.text("revoked_by IS NOT NULL"),
        postgresql_where=sa.text("revoked_by IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_revoked_by", table_name="messages")
    op.drop_table("lid_mappings")
