"""model services (service), their replicas being jobs (job.service_id), and what their
endpoints counted per minute (service_traffic), and the keys applications call them with
(service_key)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clusterctl.store.models

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("active_name", sa.String(length=40), nullable=True),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("replicas_min", sa.Integer(), nullable=False),
        sa.Column("replicas_max", sa.Integer(), nullable=False),
        sa.Column("desired", sa.Integer(), nullable=False),
        sa.Column("created_at", clusterctl.store.models.UTCDateTime(), nullable=False),
        sa.Column("stopped_at", clusterctl.store.models.UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_service_name", "service", ["name"])
    op.create_index("ix_service_team", "service", ["team"])
    op.create_index("ix_service_active_name", "service", ["active_name"], unique=True)
    op.create_table(
        "service_traffic",
        sa.Column("service_id", sa.Integer(), primary_key=True),
        sa.Column("minute_ms", sa.BigInteger(), primary_key=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("replica_s", sa.Float(), nullable=False),
        sa.Column("idle_replica_s", sa.Float(), nullable=False),
    )
    op.create_table(
        "service_key",
        sa.Column("key_hash", sa.String(length=64), primary_key=True),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", clusterctl.store.models.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_service_key_service_id", "service_key", ["service_id"])
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("service_id", sa.Integer(), nullable=True))
        batch.create_index("ix_job_service_id", ["service_id"])


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.drop_index("ix_job_service_id")
        batch.drop_column("service_id")
    op.drop_table("service_key")
    op.drop_table("service_traffic")
    op.drop_table("service")
