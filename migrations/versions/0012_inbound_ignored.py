"""inbound_ignored: OA event types a connector answered but does not read, counted

Revision ID: 0012
Revises: 0011
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import yinfin_flow.db.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = yinfin_flow.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbound_ignored",
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=120), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", UTC, nullable=False),
        sa.Column("last_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("connector", "event_type", name=op.f("pk_inbound_ignored")),
    )


def downgrade() -> None:
    op.drop_table("inbound_ignored")
