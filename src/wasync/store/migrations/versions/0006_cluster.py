"""the cluster: nodes, session leases with fencing epochs, shared media, job targets and
results, spilled live events, the simulator's connections

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("result", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_jobs_kind_session_id_state_run_at"),
            ["kind", "session_id", "state", "run_at"],
            unique=False,
        )
    # Pending deliveries name their endpoint in their key (`<endpoint id>:<event id>`):
    # it becomes their target, so per-endpoint limits apply to them too.
    if op.get_bind().dialect.name == "postgresql":
        endpoint = "split_part(unique_key, ':', 1)"
        has_colon = "strpos(unique_key, ':') > 0"
    else:
        endpoint = "substr(unique_key, 1, instr(unique_key, ':') - 1)"
        has_colon = "instr(unique_key, ':') > 0"
    op.execute(
        f"UPDATE jobs SET target = {endpoint} "
        f"WHERE kind IN ('webhook', 'discord') AND target IS NULL AND {has_colon}"
    )
    op.create_table(
        "cluster_nodes",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("incarnation", sa.String(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("host", sa.String(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
        sa.Column("stats", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cluster_nodes")),
    )
    op.create_table(
        "session_leases",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(), nullable=True),
        sa.Column("holder_detail", sa.Text(), nullable=True),
        sa.Column("epoch", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("acquired_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_leases_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_leases")),
    )
    with op.batch_alter_table("session_leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_leases_holder"), ["holder"], unique=False)
    op.create_table(
        "media_blobs",
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_media_blobs")),
    )
    op.create_table(
        "media_objects",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("content_type", sa.String(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_media_objects")),
    )
    with op.batch_alter_table("media_objects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_media_objects_sha256"), ["sha256"], unique=False)
    op.create_table(
        "bus_spill",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bus_spill")),
    )
    op.create_table(
        "simulator_connections",
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("connected_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_simulator_connections")),
    )


def downgrade() -> None:
    op.drop_table("simulator_connections")
    op.drop_table("bus_spill")
    with op.batch_alter_table("media_objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_objects_sha256"))
    op.drop_table("media_objects")
    op.drop_table("media_blobs")
    with op.batch_alter_table("session_leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_leases_holder"))
    op.drop_table("session_leases")
    op.drop_table("cluster_nodes")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_kind_session_id_state_run_at"))
        batch_op.drop_column("result")
        batch_op.drop_column("target")
