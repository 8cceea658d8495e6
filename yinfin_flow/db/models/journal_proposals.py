"""Budget journals waiting for a second finance user (four eyes): adjustments (追加/调减),
transfers (调剂) and imports are proposed by one person and applied when another approves.

A proposal keeps what it will do (``payload``) and what the reviewer saw when deciding
(``base``: each existing line's budget then; for an import, the dry run's plan):
approval applies it only if that is still so, so nobody approves a change on top of
budgets they never saw.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime, utcnow
from .base import Base

KINDS = ("adjustment", "transfer", "import")
STATUSES = ("pending", "approved", "rejected", "withdrawn", "stale")


class JournalProposal(Base):
    """A proposed budget journal (预算调整/调剂/导入申请) and what became of it."""

    __tablename__ = "budget_journal_proposals"
    __table_args__ = (
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in KINDS)})", name="kind"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="status"),
        Index("ix_budget_journal_proposals_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # adjustment: {line_id, amount, kind}; transfer: {from_line_id, to_line_id, amount};
    # import: {source, rows: [[row number, {column: text}]]}
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    line_ids: Mapped[list[int]] = mapped_column(JSON)  # the existing lines it changes
    # what the reviewer sees and approval re-checks: {"budgets": {line id: budget}, "plan": …}
    base: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    comment: Mapped[str | None] = mapped_column(Text)
    movement_ids: Mapped[list[int] | None] = mapped_column(JSON)  # what approval booked
