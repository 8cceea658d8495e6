"""What every engine action shares: the request lock, idempotency keys, history, events.

Lock order (every action, every backend): the request row first (``SELECT … FOR
UPDATE``), then its tasks and timers, then budget rows, which the budget service locks
in line-id order. Two actions on one request therefore queue on the request row and
never deadlock on budget lines. SQLite takes its database lock at ``BEGIN IMMEDIATE``.

Events published (in the action's transaction, through :mod:`yinfin_flow.events`):

``request.status_changed``
    ``request_id, workflow, version, event, old_state, new_state, actor, requester``
``task.created``
    ``task_id, request_id, workflow, step, assignee, on_behalf_of, kind, due_at``
``task.completed``
    ``task_id, request_id, step, assignee, outcome, actor`` (outcome: approved, rejected,
    sent_back, transferred, cancelled, auto_approved)
``task.urged``
    ``task_id, request_id, assignee, by`` (by is ``system`` for timer reminders)
``request.cc``
    ``request_id, workflow, users, at`` (at: start, finish, manual)
``posting.requested``
    the ledger's contract (see :mod:`yinfin_flow.engine.postings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow import events
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestHistory
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.domain.workflow import Definition

from .errors import StaleRequest


@dataclass
class ActionContext:
    """Everything one action needs, passed to the machine's callbacks as ``ctx``."""

    session: Session
    definition: Definition
    actor: str
    now: datetime = field(default_factory=utcnow)
    comment: str | None = None
    task: ApprovalTask | None = None
    on_behalf_of: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)  # what the action did to budget
    # Reads reused within this one action (the request row is locked throughout):
    # the round's tasks, the held reservations and their latest re-check.
    cache: dict[str, Any] = field(default_factory=dict)

    def budget_changed(self) -> None:
        """Forget cached reservations and checks (call on every budget write)."""
        self.cache.pop("held", None)
        self.cache.pop("checks", None)


def lock_request(session: Session, request_id: int, expected_version: int | None = None) -> ApprovalRequest:
    """Load the request under its row lock (the first lock every action takes)."""
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        raise ValidationError("request_id", "must be an integer")
    req = session.scalar(
        select(ApprovalRequest).where(ApprovalRequest.id == request_id)
        .with_for_update().execution_options(populate_existing=True)
    )
    if req is None:
        raise NotFound(f"no request {request_id}", field="request_id")
    if expected_version is not None and req.version != expected_version:
        raise StaleRequest(
            f"request {request_id} changed (version {req.version}, you saw {expected_version}); "
            "reload it and try again", field="version", version=req.version,
        )
    return req


def next_key(req: ApprovalRequest, action: str) -> str:
    """A budget idempotency key: request, per-request action number, action.

    The number advances once per committed action, so a retried transaction (same
    number, rolled back) reuses its key, and a later action never collides.
    """
    req.action_seq = (req.action_seq or 0) + 1
    return f"wf:{req.id}:{req.action_seq}:{action}"


def history(ctx: ActionContext, req: ApprovalRequest, action: str, *,
            from_state: str | None = None, to_state: str | None = None,
            step_id: str | None = None, task: ApprovalTask | None = None,
            actor: str | None = None, data: dict[str, Any] | None = None,
            budget: dict[str, Any] | None = None) -> RequestHistory:
    # The request row is locked, so the last seq read once stays the last; count on.
    seqs = ctx.cache.setdefault("history_seq", {})
    if req.id not in seqs:
        seqs[req.id] = ctx.session.scalar(
            select(RequestHistory.seq).where(RequestHistory.request_id == req.id)
            .order_by(RequestHistory.seq.desc()).limit(1)
        ) or 0
    seqs[req.id] += 1
    seq = seqs[req.id]
    row = RequestHistory(
        request_id=req.id, seq=seq, action=action, actor=actor or ctx.actor,
        on_behalf_of=ctx.on_behalf_of if actor is None else None,
        step_id=step_id or (task.step_id if task else None), task_id=task.id if task else None,
        from_state=from_state, to_state=to_state, comment=ctx.comment if actor is None else None,
        budget=budget, data=data, created_at=ctx.now,
    )
    ctx.session.add(row)  # written at the next flush, batched with the others
    return row


def publish(ctx: ActionContext, name: str, **payload: Any) -> None:
    events.publish(ctx.session, name, **payload)


def task_event(ctx: ActionContext, req: ApprovalRequest, task: ApprovalTask, outcome: str) -> None:
    publish(ctx, "task.completed", task_id=task.id, request_id=req.id, step=task.step_id,
            assignee=task.assignee, outcome=outcome, actor=ctx.actor)
