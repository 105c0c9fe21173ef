"""token expiry, user removal, several teams per user, audit trail, GPU processes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clusterctl.store.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("expires_at", clusterctl.store.models.UTCDateTime(),
                                   nullable=True))
        batch.add_column(sa.Column("removed_at", clusterctl.store.models.UTCDateTime(),
                                   nullable=True))
        batch.add_column(sa.Column("other_teams", sa.JSON(), nullable=True))
    with op.batch_alter_table("gpu_device") as batch:
        batch.add_column(sa.Column("processes", sa.Integer(), nullable=True))
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", clusterctl.store.models.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_event_at", "audit_event", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_at", table_name="audit_event")
    op.drop_table("audit_event")
    with op.batch_alter_table("gpu_device") as batch:
        batch.drop_column("processes")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("other_teams")
        batch.drop_column("removed_at")
        batch.drop_column("expires_at")
