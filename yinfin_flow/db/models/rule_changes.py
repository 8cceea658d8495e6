"""Proposed changes of a line's control rule, waiting for a second finance user (four eyes).

A change records the full proposed rule, the rule it replaces (``previous``, for the
reviewer to compare) and the replaced rule's ``version``: approval applies it only if
the line's rule is still that version, so nobody approves a change on top of a rule
they never saw. At most one change per line is pending (a partial unique index).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..types import Amount, UTCDateTime, utcnow
from .base import Base

STATUSES = ("pending", "approved", "rejected", "withdrawn", "stale")
_PENDING = text("status = 'pending'")


class RuleChange(Base):
    """A control rule change (控制规则变更): proposed by one finance user, decided by another."""

    __tablename__ = "rule_changes"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="status"),
        CheckConstraint("mode IN ('hard', 'soft', 'track', 'none')", name="mode"),
        CheckConstraint("basis IN ('period', 'cumulative', 'annual', 'overall')", name="basis"),
        Index("ix_rule_changes_status_line", "status", "line_id"),
        Index("uq_rule_changes_one_pending", "line_id", unique=True,
              postgresql_where=_PENDING, sqlite_where=_PENDING),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("budget_lines.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # the proposed rule, normalised as it will be stored
    mode: Mapped[str] = mapped_column(String(8))
    basis: Mapped[str] = mapped_column(String(16))
    subtree: Mapped[bool] = mapped_column(Boolean)
    tolerance_percent: Mapped[Decimal | None] = mapped_column(Numeric(7, 4, asdecimal=True))
    tolerance_amount: Mapped[Decimal | None] = mapped_column(Amount)
    thresholds: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # what it replaces: the line's own rule then (None: the line had none) and its version
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    base_version: Mapped[int | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    comment: Mapped[str | None] = mapped_column(Text)
