"""an index that covers the reports' energy sum over the hour rollups

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 19:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_gpu_rollup_energy", "gpu_rollup",
                    ["resolution_s", "bucket_ms", "node", "energy_mj"])


def downgrade() -> None:
    op.drop_index("ix_gpu_rollup_energy", table_name="gpu_rollup")
