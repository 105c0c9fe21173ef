"""a cancel is kept with its time and reason until it takes effect; a queued job that carries
one (requeued by a controller before this revision) is cancelled now

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("cancel_asked_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("cancel_reason", sa.String(), nullable=True))
    now = ("timezone('UTC', now())" if op.get_bind().dialect.name == "postgresql"
           else "CURRENT_TIMESTAMP")  # naive UTC, as the store keeps its times
    # Before this revision a restart or a retry could put a cancelled job back in the queue
    # with its cancel still set: it is cancelled here, and the history says why.
    op.execute(
        "INSERT INTO jobevent (job_id, state, attempt, reason, at) "
        "SELECT id, 'CANCELLED', attempt, 'cancelled (a cancel asked before a requeue)', "
        f"{now} FROM job WHERE state = 'PENDING' AND cancel_requested")
    op.execute(f"UPDATE job SET state = 'CANCELLED', ended_at = {now}, "
               "reason = 'cancelled (a cancel asked before a requeue)', version = version + 1 "
               "WHERE state = 'PENDING' AND cancel_requested")


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.drop_column("cancel_reason")
        batch.drop_column("cancel_asked_at")
