"""the keys of Baileys-engine sessions kept in the mirror's database

Revision ID: 0007
Revises: 0002
Create Date: 2026-12-20 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "baileys_auth",
        sa.Column("session_name", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("session_name", "category", "key_id", name=op.f("pk_baileys_auth")),
    )


def downgrade() -> None:
    op.drop_table("baileys_auth")
