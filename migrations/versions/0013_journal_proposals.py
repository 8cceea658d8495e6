"""budget journal proposals: adjustments, transfers and imports wait for a second finance user

Revision ID: 0013
Revises: 0012
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import yinfin_flow.db.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = yinfin_flow.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "budget_journal_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("line_ids", sa.JSON(), nullable=False),
        sa.Column("base", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("proposed_at", UTC, nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", UTC, nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("movement_ids", sa.JSON(), nullable=True),
        sa.CheckConstraint("kind IN ('adjustment', 'transfer', 'import')",
                           name=op.f("ck_budget_journal_proposals_kind")),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'withdrawn', 'stale')",
                           name=op.f("ck_budget_journal_proposals_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_journal_proposals")),
    )
    op.create_index("ix_budget_journal_proposals_status", "budget_journal_proposals", ["status", "id"])


def downgrade() -> None:
    op.drop_table("budget_journal_proposals")
