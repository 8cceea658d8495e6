"""A request's history rows: numbered per request, written with the action's other rows.

:func:`history` records a row; it is written later, with the action's other writes
(:mod:`yinfin_flow.engine.pending` says when), and every read of ``request_history``
in the same transaction sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestHistory

from .pending import READS_HISTORY, record

if TYPE_CHECKING:
    from .runtime import ActionContext

_READ_LAST_SEQ = (select(RequestHistory.seq).where(RequestHistory.request_id == bindparam("request_id"))
                  .order_by(RequestHistory.seq.desc()).limit(1)
                  .execution_options(**{READS_HISTORY: True}))

#: The request's last history seq, as a column to add to a statement about the request
#: (mark the statement with :data:`READS_HISTORY`).
#: Never put it in the locking statement itself: on PostgreSQL a statement that waited
#: for the row lock still reads other tables as they were when it started, so rows
#: written by the transaction it waited for would be missed. Read it after the lock.
LAST_SEQ = (select(func.max(RequestHistory.seq)).where(RequestHistory.request_id == bindparam("request_id"))
            .scalar_subquery())


def start_history(ctx: ActionContext, req: ApprovalRequest, last_seq: int | None) -> None:
    """Tell :func:`history` the request's last seq (None: no row yet), read by this action
    after taking the request's lock, before recording any history row itself."""
    ctx.cache.setdefault("history_seq", {})[req.id] = last_seq or 0


def history(ctx: ActionContext, req: ApprovalRequest, action: str, *,
            from_state: str | None = None, to_state: str | None = None,
            step_id: str | None = None, task: ApprovalTask | None = None,
            actor: str | None = None, data: dict[str, Any] | None = None,
            budget: dict[str, Any] | None = None) -> None:
    """Record one history row (written with the action's other rows; see the module)."""
    # The request row is locked, so the last seq read once stays the last; count on.
    seqs = ctx.cache.setdefault("history_seq", {})
    if req.id not in seqs:
        # Pending rows (READS_HISTORY) are written before this read, so it sees them;
        # the action's other changes need not be flushed for it.
        with ctx.session.no_autoflush:
            seqs[req.id] = ctx.session.scalar(_READ_LAST_SEQ, {"request_id": req.id}) or 0
    seqs[req.id] += 1
    record(ctx.session, {
        "request_id": req.id, "seq": seqs[req.id], "action": action, "actor": actor or ctx.actor,
        "on_behalf_of": ctx.on_behalf_of if actor is None else None,
        "step_id": step_id or (task.step_id if task else None), "task_id": task.id if task else None,
        "from_state": from_state, "to_state": to_state, "comment": ctx.comment if actor is None else None,
        "budget": budget, "data": data, "created_at": ctx.now,
    })
