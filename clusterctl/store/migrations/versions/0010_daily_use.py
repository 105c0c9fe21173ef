"""webhook notifications (a job's, a user's and a team's URL, and how far the notifier read),
holds on pending jobs, team budgets and idle timeouts

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clusterctl.store.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("notify_url", sa.String(length=2048), nullable=True))
        batch.add_column(sa.Column("held_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("idle_timeout_s", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("idle_warned_at", clusterctl.store.models.UTCDateTime(),
                                   nullable=True))
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("notify_url", sa.String(length=2048), nullable=True))
    op.create_table(
        "team_notify",
        sa.Column("team", sa.String(length=64), primary_key=True),
        sa.Column("url", sa.String(length=2048), nullable=False),
    )
    op.create_table(
        "budget",
        sa.Column("team", sa.String(length=64), primary_key=True),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("per", sa.String(length=16), nullable=False),
        sa.Column("enforce", sa.Boolean(), nullable=False),
        sa.Column("loaded", sa.Boolean(), nullable=False),
        sa.Column("notified", sa.String(length=16), nullable=True),
        sa.Column("notified_period", sa.String(length=16), nullable=True),
    )
    op.create_table(
        "notify_cursor",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notify_cursor")
    op.drop_table("budget")
    op.drop_table("team_notify")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("notify_url")
    with op.batch_alter_table("job") as batch:
        batch.drop_column("idle_warned_at")
        batch.drop_column("idle_timeout_s")
        batch.drop_column("held_by")
        batch.drop_column("notify_url")
