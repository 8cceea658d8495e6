"""Approval engine tables: definitions, requests, tasks, history, CC and timers.

Owned by the engine area (:mod:`yinfin_flow.engine`). A request row is the model the
workflow's state machine runs on: its ``state`` column is the machine's
``model_attribute``; ``version`` is a SQLAlchemy version counter, so an update from a
stale copy fails instead of overwriting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime, utcnow
from .base import Base

BigId = BigInteger().with_variant(Integer(), "sqlite")


class WorkflowDefinition(Base):
    """The text of each definition version ever used (requests stay on their version)."""

    __tablename__ = "workflow_definitions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApprovalRequest(Base):
    """A procurement, expense, project or transfer request moving through its workflow."""

    __tablename__ = "approval_requests"
    __table_args__ = (Index("ix_approval_requests_requester", "requester", "state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    workflow: Mapped[str] = mapped_column(String(64))
    workflow_version: Mapped[int] = mapped_column(Integer)
    workflow_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the definition text
    document_type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    requester: Mapped[str] = mapped_column(String(64))
    company: Mapped[str] = mapped_column(String(32))
    department: Mapped[str | None] = mapped_column(String(64))
    form: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(64), index=True)
    # Inside an approval state: the planned route (step ids) and where we are on it.
    route: Mapped[list[str]] = mapped_column(JSON, default=list)
    step_index: Mapped[int | None] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer, default=0)  # +1 at each (re)submit
    action_seq: Mapped[int] = mapped_column(Integer, default=0)  # per-request idempotency counter
    override: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sent_back_by: Mapped[str | None] = mapped_column(String(64))  # step id, for to_sender
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __mapper_args__ = {"version_id_col": version}


class ApprovalTask(Base):
    """One person's part in one step (待办). ``waiting`` tasks are later in a sequence."""

    __tablename__ = "approval_tasks"
    __table_args__ = (
        Index("ix_approval_tasks_inbox", "assignee", "status"),
        Index("ix_approval_tasks_request", "request_id", "round", "step_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"))
    state_name: Mapped[str] = mapped_column(String(64))
    step_id: Mapped[str] = mapped_column(String(64))
    round: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)  # order in a sequence
    assignee: Mapped[str] = mapped_column(String(64))
    on_behalf_of: Mapped[str | None] = mapped_column(String(64))  # delegation / transfer
    status: Mapped[str] = mapped_column(String(16))  # pending waiting approved rejected …
    # approve: from the step's rule · before/after/parallel: added (加签) by ``added_by``
    kind: Mapped[str] = mapped_column(String(16), default="approve")
    added_by: Mapped[str | None] = mapped_column(String(64))  # 加签
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    comment: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    urged: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RequestHistory(Base):
    """Every action on a request: who, when, comment, state change, budget effect."""

    __tablename__ = "request_history"
    __table_args__ = (UniqueConstraint("request_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"))
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    on_behalf_of: Mapped[str | None] = mapped_column(String(64))
    step_id: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    from_state: Mapped[str | None] = mapped_column(String(64))
    to_state: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    budget: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RequestCc(Base):
    """Who was copied (抄送) on a request, at start or finish."""

    __tablename__ = "request_cc"
    __table_args__ = (UniqueConstraint("request_id", "user", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"))
    user: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[str] = mapped_column(String(16))  # start | finish | manual
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EngineTimer(Base):
    """A step timeout as a row: the scheduler fires due rows exactly once."""

    __tablename__ = "engine_timers"
    __table_args__ = (Index("ix_engine_timers_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("approval_tasks.id"))
    kind: Mapped[str] = mapped_column(String(16))  # remind escalate approve reject
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending fired cancelled
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
