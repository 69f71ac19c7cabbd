"""sessions.avatar_paused_until on every database: 0002 gained it after it had landed

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:40:00

Migration 0002 was edited after it had landed (the avatar pause was added to it), so
a database that ran the first 0002 is at revision 0002 without the column, and
Alembic has nothing left to run there. This adds it wherever it is missing, and does
nothing where 0002 already added it (every database made since).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("sessions")}
    if "avatar_paused_until" not in columns:
        with op.batch_alter_table("sessions", schema=None) as batch_op:
            batch_op.add_column(sa.Column("avatar_paused_until", sa.Float(), nullable=True))


def downgrade() -> None:
    # The column belongs to 0002 (as it stands now): going back to 0002 keeps it.
    pass
