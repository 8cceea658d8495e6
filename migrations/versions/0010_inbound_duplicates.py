"""inbound duplicates: a re-delivered OA event is answered as the vendor expects and counted

Revision ID: 0010
Revises: 0009
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import yinfin_flow.db.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = yinfin_flow.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    # ADD COLUMN with a constant default works on SQLite without rebuilding the table.
    op.add_column("inbound_seen", sa.Column("duplicates", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("inbound_seen", sa.Column("last_duplicate_at", UTC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_seen") as batch:
        batch.drop_column("last_duplicate_at")
        batch.drop_column("duplicates")
