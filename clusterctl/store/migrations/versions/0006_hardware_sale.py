"""hardware sale

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clusterctl.store.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hardware") as batch:
        batch.add_column(sa.Column("sold_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("sold_for", clusterctl.store.models.DecimalText(),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hardware") as batch:
        batch.drop_column("sold_for")
        batch.drop_column("sold_on")
