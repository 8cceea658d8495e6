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

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from yinfin_flow import events
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.db.objects import Reader
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.domain.workflow import Definition

from .errors import StaleRequest
from .history import LAST_SEQ, history, start_history
from .pending import READS_HISTORY, before_read, deferred, write_history

__all__ = ["DOCUMENT_READ", "LAST_SEQ", "READS_HISTORY", "ActionContext", "check_version", "deferred", "history", "lock_request",
           "lock_request_of_task", "next_key", "publish", "start_history", "task_event", "write_history"]


#: ``session.info`` key of what an action read of its request's budget document
#: (:func:`yinfin_flow.engine.budgeting.keep_read`).
DOCUMENT_READ = "yinfin.engine.document_read"


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
        self.cache.pop("document", None)
        self.session.info.pop(DOCUMENT_READ, None)


def lock_request(session: Session, request_id: int, expected_version: int | None = None) -> ApprovalRequest:
    """Load the request under its row lock (the first lock every action takes)."""
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        raise ValidationError("request_id", "must be an integer")
    req = _one(session, _READ_LOCK, {"request_id": request_id})
    if req is None:
        raise NotFound(f"no request {request_id}", field="request_id")
    check_version(req, expected_version)
    return req


def check_version(req: ApprovalRequest, expected_version: int | None) -> None:
    if expected_version is not None and req.version != expected_version:
        raise StaleRequest(
            f"request {req.id} changed (version {req.version}, you saw {expected_version}); "
            "reload it and try again", field="version", version=req.version,
        )


# Built once (statement construction is a measurable part of an action's CPU).
# populate_existing: what we waited for must overwrite a copy the session already had.
_LOCK = (select(ApprovalRequest).where(ApprovalRequest.id == bindparam("request_id"))
         .with_for_update().execution_options(populate_existing=True))

# Built once: the request row under its lock, found through one of its tasks.
# populate_existing: what we waited for must overwrite a copy the session already had.
_LOCK_BY_TASK = (
    select(ApprovalRequest)
    .where(ApprovalRequest.id == select(ApprovalTask.request_id)
           .where(ApprovalTask.id == bindparam("task_id")).scalar_subquery())
    .with_for_update().execution_options(populate_existing=True)
)


# Read on PostgreSQL without the ORM's per-statement cost (db/objects).
_READ_LOCK = Reader(_LOCK)
_READ_LOCK_BY_TASK = Reader(_LOCK_BY_TASK)


def _one(session: Session, reader: Reader, params: dict[str, Any]) -> ApprovalRequest | None:
    rows = reader(session, params, before=before_read)
    return rows[0][0] if rows else None


def lock_request_of_task(session: Session, task_id: int,
                         expected_version: int | None = None) -> ApprovalRequest:
    """Load the request a task belongs to, under the request's row lock, in one statement.

    The same lock :func:`lock_request` takes (the request row first), found through the
    task's ``request_id`` in a subquery instead of a separate read of the task. Raises
    :class:`NotFound` (field ``task_id``) when there is no such task.
    """
    req = _one(session, _READ_LOCK_BY_TASK, {"task_id": task_id})
    if req is None:
        raise NotFound(f"no task {task_id}", field="task_id")
    check_version(req, expected_version)
    return req


def next_key(req: ApprovalRequest, action: str) -> str:
    """A budget idempotency key: request, per-request action number, action.

    The number advances once per committed action, so a retried transaction (same
    number, rolled back) reuses its key, and a later action never collides.
    """
    req.action_seq = (req.action_seq or 0) + 1
    return f"wf:{req.id}:{req.action_seq}:{action}"


def publish(ctx: ActionContext, name: str, **payload: Any) -> None:
    events.publish(ctx.session, name, **payload)


def task_event(ctx: ActionContext, req: ApprovalRequest, task: ApprovalTask, outcome: str) -> None:
    publish(ctx, "task.completed", task_id=task.id, request_id=req.id, step=task.step_id,
            assignee=task.assignee, outcome=outcome, actor=ctx.actor)
