"""an index of queued jobs in claim order (kind, priority first, then due time)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_claim_order",
        "jobs",
        ["state", "kind", sa.text("priority DESC"), "run_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_claim_order", table_name="jobs")
