"""accounting: chart of accounts, partners, periods, vouchers

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import yinfin_flow.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def append_only(table: str) -> None:
    """Refuse UPDATE and DELETE on ``table`` (same mechanism as budget_entries in 0001)."""
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


def drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")


def upgrade() -> None:
    op.create_table('accounting_periods',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=7), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('last_voucher_number', sa.Integer(), nullable=False),
    sa.Column('closed_by', sa.String(length=64), nullable=True),
    sa.Column('closed_at', yinfin_flow.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_accounting_periods_status')),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_accounting_periods_company_id_companies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounting_periods')),
    sa.UniqueConstraint('company_id', 'code', name=op.f('uq_accounting_periods_company_id_code'))
    )
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('external_code', sa.String(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint("type IN ('asset', 'liability', 'equity', 'income', 'expense')", name=op.f('ck_accounts_type')),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_accounts_company_id_companies')),
    sa.ForeignKeyConstraint(['parent_id'], ['accounts.id'], name=op.f('fk_accounts_parent_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('company_id', 'code', name=op.f('uq_accounts_company_id_code'))
    )
    op.create_table('ledger_settings',
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('rounding_account', sa.String(length=64), nullable=True),
    sa.Column('closed_period_policy', sa.String(length=16), nullable=False),
    sa.Column('voucher_word', sa.String(length=8), nullable=False),
    sa.CheckConstraint("closed_period_policy IN ('refuse', 'next_open')", name=op.f('ck_ledger_settings_policy')),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_ledger_settings_company_id_companies')),
    sa.PrimaryKeyConstraint('company_id', name=op.f('pk_ledger_settings'))
    )
    op.create_table('partners',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('external_code', sa.String(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint("kind IN ('employee', 'vendor', 'customer', 'other')", name=op.f('ck_partners_kind')),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_partners_company_id_companies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partners')),
    sa.UniqueConstraint('company_id', 'code', name=op.f('uq_partners_company_id_code'))
    )
    op.create_table('journal_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('period_id', sa.Integer(), nullable=False),
    sa.Column('voucher_word', sa.String(length=8), nullable=False),
    sa.Column('voucher_number', sa.Integer(), nullable=False),
    sa.Column('posting_date', sa.Date(), nullable=False),
    sa.Column('document_date', sa.Date(), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=True),
    sa.Column('document_type', sa.String(length=32), nullable=True),
    sa.Column('document_id', sa.String(length=64), nullable=True),
    sa.Column('summary', sa.String(length=400), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reverses_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('posted_by', sa.String(length=64), nullable=False),
    sa.Column('posted_at', yinfin_flow.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_journal_entries_company_id_companies')),
    sa.ForeignKeyConstraint(['period_id'], ['accounting_periods.id'], name=op.f('fk_journal_entries_period_id_accounting_periods')),
    sa.ForeignKeyConstraint(['reverses_id'], ['journal_entries.id'], name=op.f('fk_journal_entries_reverses_id_journal_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_entries')),
    sa.UniqueConstraint('company_id', 'period_id', 'voucher_number', name=op.f('uq_journal_entries_company_id_period_id_voucher_number')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_journal_entries_idempotency_key')),
    sa.UniqueConstraint('reverses_id', name=op.f('uq_journal_entries_reverses_id'))
    )
    with op.batch_alter_table('journal_entries', schema=None) as batch_op:
        batch_op.create_index('ix_journal_entries_document', ['document_type', 'document_id'], unique=False)

    op.create_table('journal_syncs',
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('target', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('erp_voucher_id', sa.String(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('updated_at', yinfin_flow.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'synced', 'failed')", name=op.f('ck_journal_syncs_status')),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entries.id'], name=op.f('fk_journal_syncs_entry_id_journal_entries')),
    sa.PrimaryKeyConstraint('entry_id', name=op.f('pk_journal_syncs'))
    )
    op.create_table('journal_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('debit', yinfin_flow.db.types.Amount(precision=20, scale=4), nullable=False),
    sa.Column('credit', yinfin_flow.db.types.Amount(precision=20, scale=4), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', yinfin_flow.db.types.Amount(precision=20, scale=4), nullable=False),
    sa.Column('rate', sa.Numeric(precision=20, scale=10), nullable=False),
    sa.Column('cost_centre_id', sa.Integer(), nullable=True),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('memo', sa.String(length=400), nullable=True),
    sa.Column('source_ref', sa.String(length=64), nullable=True),
    sa.Column('reservation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('budget_amount', yinfin_flow.db.types.Amount(precision=20, scale=4), nullable=True),
    sa.CheckConstraint("kind IN ('normal', 'rounding')", name=op.f('ck_journal_lines_kind')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_journal_lines_account_id_accounts')),
    sa.ForeignKeyConstraint(['cost_centre_id'], ['cost_centres.id'], name=op.f('fk_journal_lines_cost_centre_id_cost_centres')),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entries.id'], name=op.f('fk_journal_lines_entry_id_journal_entries')),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_journal_lines_partner_id_partners')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_journal_lines_project_id_projects')),
    sa.ForeignKeyConstraint(['reservation_id'], ['reservations.id'], name=op.f('fk_journal_lines_reservation_id_reservations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_lines')),
    sa.UniqueConstraint('entry_id', 'line_no', name=op.f('uq_journal_lines_entry_id_line_no'))
    )
    with op.batch_alter_table('journal_lines', schema=None) as batch_op:
        batch_op.create_index('ix_journal_lines_account', ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_lines_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_lines_reservation_id'), ['reservation_id'], unique=False)

    # Posted vouchers are never changed, only reversed: refuse UPDATE/DELETE in the database.
    append_only("journal_entries")
    append_only("journal_lines")


def downgrade() -> None:
    drop_append_only("journal_lines")
    drop_append_only("journal_entries")
    with op.batch_alter_table('journal_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_lines_reservation_id'))
        batch_op.drop_index(batch_op.f('ix_journal_lines_entry_id'))
        batch_op.drop_index('ix_journal_lines_account')

    op.drop_table('journal_lines')
    op.drop_table('journal_syncs')
    with op.batch_alter_table('journal_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_journal_entries_document')

    op.drop_table('journal_entries')
    op.drop_table('partners')
    op.drop_table('ledger_settings')
    op.drop_table('accounts')
    op.drop_table('accounting_periods')
