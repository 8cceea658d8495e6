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

from sqlalchemy import bindparam, event, func, insert, select
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

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
    req = session.scalar(_LOCK, {"request_id": request_id})
    if req is None:
        raise NotFound(f"no request {request_id}", field="request_id")
    _check_version(req, expected_version)
    return req


def _check_version(req: ApprovalRequest, expected_version: int | None) -> None:
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


def lock_request_of_task(session: Session, task_id: int,
                         expected_version: int | None = None) -> ApprovalRequest:
    """Load the request a task belongs to, under the request's row lock, in one statement.

    The same lock :func:`lock_request` takes (the request row first), found through the
    task's ``request_id`` in a subquery instead of a separate read of the task. Raises
    :class:`NotFound` (field ``task_id``) when there is no such task.
    """
    req = session.scalar(_LOCK_BY_TASK, {"task_id": task_id})
    if req is None:
        raise NotFound(f"no task {task_id}", field="task_id")
    _check_version(req, expected_version)
    return req


#: The request's last history seq, as a column to add to a statement about the request.
#: Never put it in the locking statement itself: on PostgreSQL a statement that waited
#: for the row lock still reads other tables as they were when it started, so rows
#: written by the transaction it waited for would be missed. Read it after the lock.
LAST_SEQ = (select(func.max(RequestHistory.seq)).where(RequestHistory.request_id == bindparam("request_id"))
            .scalar_subquery())


def start_history(ctx: ActionContext, req: ApprovalRequest, last_seq: int | None) -> None:
    """Tell :func:`history` the request's last seq (None: no row yet), read by this action
    after taking the request's lock, before recording any history row itself."""
    ctx.cache.setdefault("history_seq", {})[req.id] = last_seq or 0


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
            budget: dict[str, Any] | None = None) -> None:
    """Record one history row (written with the action's other rows; see below)."""
    # The request row is locked, so the last seq read once stays the last; count on.
    seqs = ctx.cache.setdefault("history_seq", {})
    if req.id not in seqs:
        # Only history rows matter to this read, and pending ones are written first
        # (the hook below), so the action's other changes need not be flushed for it.
        with ctx.session.no_autoflush:
            seqs[req.id] = ctx.session.scalar(_READ_LAST_SEQ, {"request_id": req.id}) or 0
    seqs[req.id] += 1
    ctx.session.info.setdefault(_PENDING, []).append({
        "request_id": req.id, "seq": seqs[req.id], "action": action, "actor": actor or ctx.actor,
        "on_behalf_of": ctx.on_behalf_of if actor is None else None,
        "step_id": step_id or (task.step_id if task else None), "task_id": task.id if task else None,
        "from_state": from_state, "to_state": to_state, "comment": ctx.comment if actor is None else None,
        "budget": budget, "data": data, "created_at": ctx.now,
    })


# History rows are plain Core inserts, not ORM objects: the ORM sends one INSERT …
# RETURNING per object, while a list of rows goes as one statement. Pending rows are
# written at the moments the ORM would have flushed them (before any statement the
# session runs, before a flush, before commit), so every read, in the action or after
# it in the same transaction, sees them. A transaction that ends without committing
# forgets them.
# Inside a savepoint they wait (a savepoint rolled back must not take rows recorded
# before it along): the engine records no history inside a savepoint.
_PENDING = "yinfin_engine_history"
_INSERT_HISTORY = insert(RequestHistory.__table__)
_READ_LAST_SEQ = (select(RequestHistory.seq).where(RequestHistory.request_id == bindparam("request_id"))
                  .order_by(RequestHistory.seq.desc()).limit(1))


def write_history(session: Session) -> None:
    """Write the history rows recorded in ``session`` and not written yet."""
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.connection().execute(_INSERT_HISTORY, rows)


def _due(session: Session) -> bool:
    return _PENDING in session.info and not session.in_nested_transaction()


@event.listens_for(Session, "do_orm_execute")
def _before_execute(state: ORMExecuteState) -> None:
    if _due(state.session):
        write_history(state.session)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, *_: Any) -> None:
    if _due(session):
        write_history(session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if _due(session):
        write_history(session)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction(session: Session, transaction: SessionTransaction) -> None:
    # The whole transaction ended (committed: nothing is left; rolled back or closed:
    # its rows must not reach the session's next transaction). Not a savepoint.
    if not transaction.nested and transaction.parent is None:
        session.info.pop(_PENDING, None)


def publish(ctx: ActionContext, name: str, **payload: Any) -> None:
    events.publish(ctx.session, name, **payload)


def task_event(ctx: ActionContext, req: ApprovalRequest, task: ApprovalTask, outcome: str) -> None:
    publish(ctx, "task.completed", task_id=task.id, request_id=req.id, step=task.step_id,
            assignee=task.assignee, outcome=outcome, actor=ctx.actor)
