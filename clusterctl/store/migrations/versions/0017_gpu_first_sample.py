"""when each GPU was first sampled (gpu_device.first_ms): the reports count a node's hours
before it as "not tracked", not idle; filled from the oldest sample or rollup kept

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gpu_device") as batch:
        batch.add_column(sa.Column("first_ms", sa.BigInteger(), nullable=True))
    c = op.get_bind()
    first: dict[tuple[str, int], int] = {}
    # Raw samples expire before hour rollups do: the oldest of either (a rollup's bucket starts
    # at most an hour before its first sample), else the latest read.
    for table, at in (("gpu_sample", "ts_ms"), ("gpu_rollup", "bucket_ms")):
        rows = c.execute(sa.text(
            f"SELECT node, gpu_index, MIN({at}) FROM {table} GROUP BY node, gpu_index"))
        for node, index, ms in rows:
            key = (node, int(index))
            first[key] = min(first.get(key, int(ms)), int(ms))
    for node, index, last in c.execute(sa.text(
            "SELECT node, gpu_index, last_ms FROM gpu_device")).all():
        c.execute(sa.text("UPDATE gpu_device SET first_ms = :ms "
                          "WHERE node = :node AND gpu_index = :index"),
                  {"ms": min(first.get((node, int(index)), int(last)), int(last)),
                   "node": node, "index": index})


def downgrade() -> None:
    with op.batch_alter_table("gpu_device") as batch:
        batch.drop_column("first_ms")
