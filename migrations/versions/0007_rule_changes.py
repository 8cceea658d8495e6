"""rule changes: control rule changes wait for a second finance user (four eyes)

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import yinfin_flow.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = yinfin_flow.db.types.UTCDateTime(timezone=True)
PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    # ADD COLUMN without a foreign key works on SQLite without rebuilding the table.
    op.add_column("control_rules", sa.Column("approved_by", sa.String(length=64), nullable=True))
    op.add_column("control_rules", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))

    op.create_table(
        "rule_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("subtree", sa.Boolean(), nullable=False),
        sa.Column("tolerance_percent", sa.Numeric(precision=7, scale=4), nullable=True),
        sa.Column("tolerance_amount", yinfin_flow.db.types.Amount(precision=20, scale=4), nullable=True),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=True),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("proposed_at", UTC, nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", UTC, nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'withdrawn', 'stale')",
                           name=op.f("ck_rule_changes_status")),
        sa.CheckConstraint("mode IN ('hard', 'soft', 'track', 'none')", name=op.f("ck_rule_changes_mode")),
        sa.CheckConstraint("basis IN ('period', 'cumulative', 'annual', 'overall')",
                           name=op.f("ck_rule_changes_basis")),
        sa.ForeignKeyConstraint(["line_id"], ["budget_lines.id"], name=op.f("fk_rule_changes_line_id_budget_lines")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_changes")),
    )
    op.create_index("ix_rule_changes_status_line", "rule_changes", ["status", "line_id"])
    op.create_index("uq_rule_changes_one_pending", "rule_changes", ["line_id"], unique=True,
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_table("rule_changes")
    with op.batch_alter_table("control_rules") as batch:
        batch.drop_column("version")
        batch.drop_column("approved_by")
