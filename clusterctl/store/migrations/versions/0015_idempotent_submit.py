"""a submit's Idempotency-Key is kept with the job it made: a retried submit returns that job

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(), nullable=True))
    op.create_index("ux_job_user_idempotency_key", "job", ["user", "idempotency_key"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ux_job_user_idempotency_key", table_name="job")
    with op.batch_alter_table("job") as batch:
        batch.drop_column("idempotency_key")
