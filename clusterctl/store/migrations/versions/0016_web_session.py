"""the dashboard's sign-ins (web_session): a hash of each session's cookie, its user, its
anti-forgery value and when it expires

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clusterctl.store.models

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("id_hash", sa.String(length=64), primary_key=True),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", clusterctl.store.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", clusterctl.store.models.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_web_session_user", "web_session", ["user"])


def downgrade() -> None:
    op.drop_index("ix_web_session_user", table_name="web_session")
    op.drop_table("web_session")
