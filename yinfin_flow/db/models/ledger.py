"""Accounting tables: chart of accounts, partners, periods, vouchers (凭证). Owned by the ledger area.

Journal entries and their lines are append-only in the database (triggers in
migration 0003): a posted voucher is never changed, only reversed by another one.
What does change about a voucher (its ERP sync state) lives in ``journal_syncs``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..types import Amount, UTCDateTime, utcnow
from .base import Base
from .budget import BigId

ACCOUNT_TYPES = ("asset", "liability", "equity", "income", "expense")
PARTNER_KINDS = ("employee", "vendor", "customer", "other")


class Account(Base):
    """A ledger account (会计科目). ``currency`` NULL means any currency (multi)."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("company_id", "code"),
        CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'income', 'expense')", name="type"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str | None] = mapped_column(String(3))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    external_code: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Partner(Base):
    """Someone the company owes or is owed by (往来单位/职员): employee, vendor, customer."""

    __tablename__ = "partners"
    __table_args__ = (
        UniqueConstraint("company_id", "code"),
        CheckConstraint("kind IN ('employee', 'vendor', 'customer', 'other')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    external_code: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class LedgerSettings(Base):
    """Per-company accounting choices: rounding account, what a closed period means."""

    __tablename__ = "ledger_settings"
    __table_args__ = (
        CheckConstraint("closed_period_policy IN ('refuse', 'next_open')", name="policy"),
    )

    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    rounding_account: Mapped[str | None] = mapped_column(String(64))
    closed_period_policy: Mapped[str] = mapped_column(String(16), default="refuse")
    voucher_word: Mapped[str] = mapped_column(String(8), default="记")


class AccountingPeriod(Base):
    """A month of one company's books. ``last_voucher_number`` is the gap-free counter.

    Posting locks this row (``FOR UPDATE``) to take the next voucher number, and
    closing locks it too, so a post and a close of the same period never interleave.
    """

    __tablename__ = "accounting_periods"
    __table_args__ = (
        UniqueConstraint("company_id", "code"),
        CheckConstraint("status IN ('open', 'closed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    code: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    fiscal_year: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8), default="open")
    last_voucher_number: Mapped[int] = mapped_column(Integer, default=0)
    closed_by: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JournalEntry(Base):
    """A posted voucher (凭证): immutable; ``reverses_id`` links a reversal to its original."""

    __tablename__ = "journal_entries"
    __table_args__ = (
        UniqueConstraint("company_id", "period_id", "voucher_number"),
        Index("ix_journal_entries_document", "document_type", "document_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    period_id: Mapped[int] = mapped_column(ForeignKey("accounting_periods.id"))
    voucher_word: Mapped[str] = mapped_column(String(8))
    voucher_number: Mapped[int] = mapped_column(Integer)
    posting_date: Mapped[date] = mapped_column(Date)
    document_date: Mapped[date] = mapped_column(Date)
    template: Mapped[str | None] = mapped_column(String(64))
    document_type: Mapped[str | None] = mapped_column(String(32))
    document_id: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(String(400))
    currency: Mapped[str] = mapped_column(String(3))  # the company's base currency
    reverses_id: Mapped[int | None] = mapped_column(
        ForeignKey("journal_entries.id"), unique=True
    )
    content_hash: Mapped[str] = mapped_column(String(64))
    posted_by: Mapped[str] = mapped_column(String(64))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JournalLine(Base):
    """One line (分录) of a voucher.

    ``debit``/``credit`` are in the company's base currency; ``amount`` is the
    signed original-currency amount (debit positive) at ``rate``. A reversal is
    red-ink (红字): the same side with negative amounts. ``kind`` is ``rounding``
    for the explicit base-currency rounding difference line.
    ``budget_amount`` is what this line moved into its reservation's ``actual``
    bucket, in the budget line's currency.
    """

    __tablename__ = "journal_lines"
    __table_args__ = (
        UniqueConstraint("entry_id", "line_no"),
        CheckConstraint("kind IN ('normal', 'rounding')", name="kind"),
        Index("ix_journal_lines_account", "account_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8), default="normal")
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    debit: Mapped[Decimal] = mapped_column(Amount)
    credit: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Amount)
    rate: Mapped[Decimal] = mapped_column(Numeric(20, 10, asdecimal=True))
    cost_centre_id: Mapped[int | None] = mapped_column(ForeignKey("cost_centres.id"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    memo: Mapped[str | None] = mapped_column(String(400))
    source_ref: Mapped[str | None] = mapped_column(String(64))
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("reservations.id"), index=True)
    budget_amount: Mapped[Decimal | None] = mapped_column(Amount)


class JournalSync(Base):
    """Where a voucher stands with the ERP (the only mutable thing about a voucher)."""

    __tablename__ = "journal_syncs"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'synced', 'failed')", name="status"),
    )

    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), primary_key=True)
    target: Mapped[str] = mapped_column(String(32), default="erp")
    status: Mapped[str] = mapped_column(String(8), default="pending")
    erp_voucher_id: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
