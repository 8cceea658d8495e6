"""attachments: receipts and invoices on requests; one claim per invoice

Revision ID: 0011
Revises: 0010
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import yinfin_flow.db.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = yinfin_flow.db.types.UTCDateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CLAIMED = sa.text("invoice_key IS NOT NULL AND invoice_released_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("request_id", BIG_ID, nullable=False),
        sa.Column("line_ref", sa.String(length=64), nullable=True),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("invoice_code", sa.String(length=12), nullable=True),
        sa.Column("invoice_number", sa.String(length=20), nullable=True),
        sa.Column("invoice_key", sa.String(length=40), nullable=True),
        sa.Column("invoice_released_at", UTC, nullable=True),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.CheckConstraint("(invoice_number IS NULL) = (invoice_key IS NULL)",
                           name=op.f("ck_attachments_invoice_key")),
        sa.ForeignKeyConstraint(["request_id"], ["approval_requests.id"],
                                name=op.f("fk_attachments_request_id_approval_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index("ix_attachments_request", "attachments", ["request_id", "id"])
    op.create_index("uq_attachments_invoice_claimed", "attachments", ["invoice_key"], unique=True,
                    postgresql_where=CLAIMED, sqlite_where=CLAIMED)


def downgrade() -> None:
    op.drop_table("attachments")
