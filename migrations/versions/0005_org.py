"""organisation directory: users, roles, delegations

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import yinfin_flow.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("cost_centre_id", sa.Integer(), nullable=True),
        sa.Column("manager_id", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("dingtalk_userid", sa.String(length=64), nullable=True),
        sa.Column("feishu_open_id", sa.String(length=64), nullable=True),
        sa.Column("wecom_userid", sa.String(length=64), nullable=True),
        sa.Column("created_at", yinfin_flow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", yinfin_flow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], name=op.f("fk_users_company_id_companies")),
        sa.ForeignKeyConstraint(["cost_centre_id"], ["cost_centres.id"], name=op.f("fk_users_cost_centre_id_cost_centres")),
        sa.ForeignKeyConstraint(["manager_id"], ["users.id"], name=op.f("fk_users_manager_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("dingtalk_userid", name=op.f("uq_users_dingtalk_userid")),
        sa.UniqueConstraint("feishu_open_id", name=op.f("uq_users_feishu_open_id")),
        sa.UniqueConstraint("wecom_userid", name=op.f("uq_users_wecom_userid")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_company_id"), ["company_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_users_cost_centre_id"), ["cost_centre_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_users_manager_id"), ["manager_id"], unique=False)

    op.create_table(
        "user_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("cost_centre_id", sa.Integer(), nullable=True),
        sa.Column("scope_key", sa.String(length=40), nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", yinfin_flow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], name=op.f("fk_user_roles_company_id_companies")),
        sa.ForeignKeyConstraint(["cost_centre_id"], ["cost_centres.id"], name=op.f("fk_user_roles_cost_centre_id_cost_centres")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_roles_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_roles")),
        sa.UniqueConstraint("user_id", "role", "scope_key", name=op.f("uq_user_roles_user_id_role_scope_key")),
    )
    with op.batch_alter_table("user_roles", schema=None) as batch_op:
        batch_op.create_index("ix_user_roles_role_company", ["role", "company_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_user_roles_user_id"), ["user_id"], unique=False)

    op.create_table(
        "delegations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("deputy_id", sa.String(length=64), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("workflow", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", yinfin_flow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", yinfin_flow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("start_date <= end_date", name=op.f("ck_delegations_dates")),
        sa.CheckConstraint("user_id <> deputy_id", name=op.f("ck_delegations_not_self")),
        sa.ForeignKeyConstraint(["deputy_id"], ["users.id"], name=op.f("fk_delegations_deputy_id_users")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_delegations_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegations")),
    )
    with op.batch_alter_table("delegations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delegations_deputy_id"), ["deputy_id"], unique=False)
        batch_op.create_index("ix_delegations_user_dates", ["user_id", "start_date", "end_date"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delegations", schema=None) as batch_op:
        batch_op.drop_index("ix_delegations_user_dates")
        batch_op.drop_index(batch_op.f("ix_delegations_deputy_id"))
    op.drop_table("delegations")
    with op.batch_alter_table("user_roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_roles_user_id"))
        batch_op.drop_index("ix_user_roles_role_company")
    op.drop_table("user_roles")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_manager_id"))
        batch_op.drop_index(batch_op.f("ix_users_cost_centre_id"))
        batch_op.drop_index(batch_op.f("ix_users_company_id"))
    op.drop_table("users")
