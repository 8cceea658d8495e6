"""Integration tables: the transactional outbox, master-data watermarks, job leases.

Owned by the worker area (:mod:`yinfin_flow.worker`).

``outbox_messages`` is the source of truth for everything we owe an outside system:
a row is written in the same transaction as the change that causes it, and the
dispatcher (Celery or in-process) only ever moves it forward
(``pending`` → ``in_flight`` → ``delivered`` | back to ``pending`` | ``dead``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime, utcnow
from .base import Base
from .budget import BigId

OUTBOX_STATUSES = ("pending", "in_flight", "delivered", "dead")


class OutboxMessage(Base):
    """One message to one outside system.

    ``document_key`` is the ordering scope ("request:42", "voucher:17"): a row is not
    attempted while an earlier row (smaller ``id``) of the same target and document is
    not delivered. ``next_attempt_at`` is when a ``pending`` row may be tried, and for
    an ``in_flight`` row when its lease runs out (a worker that died mid-call leaves
    the row to be claimed again after that). ``idempotency_key`` is passed to the
    connector, so a second attempt never makes a second voucher or task.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("target", "idempotency_key"),
        CheckConstraint(
            "status IN ('pending', 'in_flight', 'delivered', 'dead')", name="status"
        ),
        # the claim query: eligible rows in id order
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        # the ordering check: earlier undelivered rows of the same target and document
        Index("ix_outbox_messages_scope", "target", "document_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    target: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    document_key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(128))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncWatermark(Base):
    """How far master-data sync has read ``kind`` from ``connector`` (opaque to us)."""

    __tablename__ = "sync_watermarks"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    watermark: Mapped[str | None] = mapped_column(String(200))
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    records: Mapped[int] = mapped_column(Integer, default=0)


class JobLease(Base):
    """A named lease for periodic jobs: whoever holds an unexpired lease runs the job,
    so two beats (or a beat and a manual run) never run it at once."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReconcileRun(Base):
    """The last reconciliation with each ERP: what ``outbox status`` and the health
    check show. ``findings`` counts the differences per problem (``missing``,
    ``duplicate``, ``erp_only`` …; empty when everything matched)."""

    __tablename__ = "reconcile_runs"

    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(16))
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checked: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    findings: Mapped[dict[str, Any]] = mapped_column(JSON)
