"""Attachments: receipts and invoices on a request or one of its lines.

The bytes live in the attachment storage (:mod:`yinfin_flow.attachments.storage`),
content-addressed by ``sha256``; a row is what was attached where, by whom.

An invoice attachment carries its 发票代码 / 发票号码 and their ``invoice_key``. The
same invoice may be *claimed* by one request at a time: a partial unique index over
``invoice_key`` where ``invoice_released_at`` is null, so two requests racing with one
invoice get exactly one success from the database itself. A request that ends
rejected, withdrawn or cancelled releases its claims (``invoice_released_at`` set), and
the invoice may then be reimbursed on another request.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime, utcnow
from .base import Base

BigId = BigInteger().with_variant(Integer(), "sqlite")
CLAIMED = text("invoice_key IS NOT NULL AND invoice_released_at IS NULL")


class Attachment(Base):
    """One file attached to a request (``line_ref``: to one of its lines)."""

    __tablename__ = "attachments"
    __table_args__ = (
        CheckConstraint("(invoice_number IS NULL) = (invoice_key IS NULL)", name="invoice_key"),
        Index("ix_attachments_request", "request_id", "id"),
        Index("uq_attachments_invoice_claimed", "invoice_key", unique=True,
              postgresql_where=CLAIMED, sqlite_where=CLAIMED),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"))
    line_ref: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    invoice_code: Mapped[str | None] = mapped_column(String(12))
    invoice_number: Mapped[str | None] = mapped_column(String(20))
    invoice_key: Mapped[str | None] = mapped_column(String(40))
    invoice_released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
