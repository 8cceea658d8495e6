"""security: API tokens, hash-chained audit log, idempotency keys, seen OA events

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import yinfin_flow.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The append-only triggers are the same as 0001's for budget_entries (copied: a
# migration must not change when another one is edited).
UTC = yinfin_flow.db.types.UTCDateTime(timezone=True)
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS = "0" * 64


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION yinfin_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION yinfin_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def _drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=True),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_index(op.f("ix_api_tokens_prefix"), "api_tokens", ["prefix"])

    op.create_table(
        "audit_log",
        sa.Column("id", BIG, nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("idempotency_key", sa.String(length=160), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "at"])
    _append_only("audit_log")

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", BIG, nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.execute(f"INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '{GENESIS}')")

    op.create_table(
        "idempotency_keys",
        sa.Column("id", BIG, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("method_path", sa.String(length=520), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("completed_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("user_id", "key", name=op.f("uq_idempotency_keys_user_id_key")),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at"])

    op.create_table(
        "inbound_seen",
        sa.Column("id", sa.String(length=240), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_seen")),
    )
    op.create_index(op.f("ix_inbound_seen_created_at"), "inbound_seen", ["created_at"])

    op.create_table(
        "oa_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("request_id", BIG, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["approval_requests.id"],
                                name=op.f("fk_oa_instances_request_id_approval_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oa_instances")),
        sa.UniqueConstraint("connector", "external_id", name=op.f("uq_oa_instances_connector_external_id")),
    )
    op.create_index(op.f("ix_oa_instances_request_id"), "oa_instances", ["request_id"])


def downgrade() -> None:
    op.drop_table("oa_instances")
    op.drop_table("inbound_seen")
    op.drop_table("idempotency_keys")
    op.drop_table("audit_head")
    _drop_append_only("audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
