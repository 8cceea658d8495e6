"""Budget lines, their maintained balances, control rules, and the append-only entries."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..types import Amount, UTCDateTime, utcnow
from .base import Base

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class BudgetLine(Base):
    """An amount for one combination of dimensions (预算). Lines form a tree.

    ``path`` lists the ids from the root down to this line ("1/5/9"), so the
    controlling ancestors are known without walking the tree.
    """

    __tablename__ = "budget_lines"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'hold', 'closed')", name="status"),
        Index("ix_budget_lines_series", "series_key", "period_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    period_id: Mapped[int] = mapped_column(ForeignKey("budget_periods.id"))
    cost_centre_id: Mapped[int] = mapped_column(ForeignKey("cost_centres.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("budget_items.id"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    # company|cost centre|item|project: the same key across periods (for cumulative basis).
    series_key: Mapped[str] = mapped_column(String(200))
    # series_key + period: unique, NULL-safe on every backend.
    dims_key: Mapped[str] = mapped_column(String(220), unique=True)
    fiscal_year: Mapped[int] = mapped_column(Integer)
    granularity: Mapped[str] = mapped_column(String(8))  # year | half | quarter | month
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("budget_lines.id"))
    path: Mapped[str] = mapped_column(String(400), default="")
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(8), default="open")
    owner: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BudgetBalance(Base):
    """The maintained aggregate of a line's entries; the row that is locked.

    ``budget`` is the line's own budget; the consuming buckets roll up the line
    and every line below it, so a parent's ``available`` is its own budget minus
    everything its subtree consumes.
    """

    __tablename__ = "budget_balances"

    line_id: Mapped[int] = mapped_column(ForeignKey("budget_lines.id"), primary_key=True)
    budget: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    pre_encumbered: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    encumbered: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    actual: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ControlRuleRow(Base):
    """A control rule (控制规则) finance set on a line; ``subtree`` passes it down."""

    __tablename__ = "control_rules"
    __table_args__ = (
        CheckConstraint("mode IN ('hard', 'soft', 'track', 'none')", name="mode"),
        CheckConstraint(
            "basis IN ('period', 'cumulative', 'annual', 'overall')", name="basis"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("budget_lines.id"), unique=True)
    mode: Mapped[str] = mapped_column(String(8))
    tolerance_percent: Mapped[Decimal | None] = mapped_column(Numeric(7, 4, asdecimal=True))
    tolerance_amount: Mapped[Decimal | None] = mapped_column(Amount)
    thresholds: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    basis: Mapped[str] = mapped_column(String(16), default="period")
    subtree: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # who approved the change that set it (four eyes; None: applied without approval)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    # raised by every change: a proposal made against one version applies to that one only
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class BudgetMovement(Base):
    """One business movement of budget (a reservation, a transfer…): a header for entries."""

    __tablename__ = "budget_movements"
    __table_args__ = (Index("ix_budget_movements_document", "document_type", "document_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    document_type: Mapped[str | None] = mapped_column(String(32))
    document_id: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BudgetEntry(Base):
    """An append-only record of one bucket change on one line (never updated, never deleted)."""

    __tablename__ = "budget_entries"
    __table_args__ = (
        CheckConstraint(
            "bucket IN ('budget', 'pre_encumbered', 'encumbered', 'actual')", name="bucket"
        ),
        Index("ix_budget_entries_line_bucket", "line_id", "bucket"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    movement_id: Mapped[int] = mapped_column(ForeignKey("budget_movements.id"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("budget_lines.id"))
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("reservations.id"), index=True)
    bucket: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reservation(Base):
    """What one request line holds on one budget line (预算占用), per stage."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        Index("ix_reservations_document", "document_type", "document_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(220), unique=True)
    document_type: Mapped[str] = mapped_column(String(32))
    document_id: Mapped[str] = mapped_column(String(64))
    document_line: Mapped[str] = mapped_column(String(64))
    line_id: Mapped[int] = mapped_column(ForeignKey("budget_lines.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    source_amount: Mapped[Decimal] = mapped_column(Amount)
    source_currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[Decimal] = mapped_column(Numeric(20, 10, asdecimal=True))
    budget_date: Mapped[date] = mapped_column(Date)
    pre_encumbered: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    encumbered: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    actual: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    status: Mapped[str] = mapped_column(String(8), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BudgetAlert(Base):
    """A warning or record control produced (soft over budget, threshold reached, track)."""

    __tablename__ = "budget_alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    movement_id: Mapped[int] = mapped_column(ForeignKey("budget_movements.id"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("budget_lines.id"), index=True)
    mode: Mapped[str] = mapped_column(String(8))
    level: Mapped[str] = mapped_column(String(8))
    usage_percent: Mapped[Decimal | None] = mapped_column(Numeric(12, 2, asdecimal=True))
    asked: Mapped[Decimal] = mapped_column(Amount)
    available_after: Mapped[Decimal] = mapped_column(Amount)
    notify: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
