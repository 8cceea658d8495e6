"""The approver's inbox as the console shows it: tasks of mine and those delegated to
me, filtered, sorted and paged, each with its step's countersign state.

Plain dicts like :mod:`yinfin_flow.engine.queries` (the API's inbox reads the same
tables); the console adds the budget impact of the rows it shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.db.models.org import Delegation
from yinfin_flow.domain.workflow import Step

from . import definitions, queries
from .steps import GONE

#: How the inbox may be sorted (newest first is the default, as in the API).
SORTS = ("newest", "oldest", "amount_desc", "amount_asc", "due")


@dataclass(frozen=True)
class InboxFilter:
    workflow: str | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    sort: str = "newest"


def delegators(session: Session, user: str, on: date) -> list[str]:
    """Users whose tasks ``user`` may act on today (a live delegation, any workflow)."""
    return list(session.scalars(select(Delegation.user_id).where(
        Delegation.deputy_id == user, Delegation.revoked_at.is_(None),
        Delegation.start_date <= on, Delegation.end_date >= on)))


def _amount(form: dict[str, Any]) -> Decimal:
    try:
        return Decimal(str(form.get("amount") or 0))
    except InvalidOperation:
        return Decimal(0)


def _step(req: ApprovalRequest, step_id: str) -> Step | None:
    d = definitions.stored(Session.object_session(req), req.workflow, req.workflow_version,  # type: ignore[arg-type]
                           req.workflow_hash)
    for state in d.states.values():
        for s in state.steps:
            if s.id == step_id:
                return s
    return None


def step_state(session: Session, req: ApprovalRequest, step_id: str) -> dict[str, Any]:
    """The step's title, countersign mode (all / any / sequence / quorum) and progress
    in the request's current round: how many of its tasks approved, of how many."""
    step = _step(req, step_id)
    tasks = list(session.scalars(select(ApprovalTask).where(
        ApprovalTask.request_id == req.id, ApprovalTask.round == req.round,
        ApprovalTask.step_id == step_id)))
    live = [t for t in tasks if t.status not in GONE]
    return {
        "id": step_id, "title": step.title if step else step_id,
        "mode": step.mode if step else "all", "quorum": step.quorum if step else None,
        "approved": sum(1 for t in live if t.status == "approved"), "total": len(live),
        "timeout_hours": step.timeout.hours if step and step.timeout else None,
    }


def inbox_page(session: Session, user: str, on: date, f: InboxFilter, page: int,
               page_size: int) -> dict[str, Any]:
    """One page of the pending tasks of ``user`` and of whoever delegated to them today.

    Rows are the API's task dicts with ``request`` (its summary), ``step`` (see
    :func:`step_state`) and ``delegated_from`` (the assignee, when it is not ``user``).
    ``requests``: the rows' request objects by id. The database counts, sorts and pages; only a filter or sort by amount (the form's
    ``amount``) reads every pending task's form, and then loads the page's rows alone.
    """
    people = [user, *delegators(session, user, on)]
    mine = (select(ApprovalTask.id)
            .join(ApprovalRequest, ApprovalRequest.id == ApprovalTask.request_id)
            .where(ApprovalTask.assignee.in_(people), ApprovalTask.status == "pending"))
    if f.workflow:
        mine = mine.where(ApprovalRequest.workflow == f.workflow)
    first = (page - 1) * page_size
    if f.min_amount is None and f.max_amount is None and f.sort not in ("amount_desc", "amount_asc"):
        total = int(session.scalar(select(func.count()).select_from(mine.subquery())) or 0)
        order = {"newest": (ApprovalTask.id.desc(),), "oldest": (ApprovalTask.id.asc(),),
                 # soonest due first, none last; newest first among equals
                 "due": (ApprovalTask.due_at.is_(None), ApprovalTask.due_at, ApprovalTask.id.desc())}[f.sort]
        ids = list(session.scalars(mine.order_by(*order).offset(first).limit(page_size)))
    else:
        amounts = [(tid, _amount(form)) for tid, form in session.execute(
            mine.add_columns(ApprovalRequest.form).order_by(ApprovalTask.id.desc()))]
        amounts = [(tid, a) for tid, a in amounts
                   if (f.min_amount is None or a >= f.min_amount) and (f.max_amount is None or a <= f.max_amount)]
        if f.sort in ("amount_desc", "amount_asc"):
            amounts.sort(key=lambda ta: ta[1], reverse=f.sort == "amount_desc")
        total = len(amounts)
        ids = [tid for tid, _ in amounts[first: first + page_size]]
    rows = {t.id: (t, r) for t, r in session.execute(
        select(ApprovalTask, ApprovalRequest).join(ApprovalRequest, ApprovalRequest.id == ApprovalTask.request_id)
        .where(ApprovalTask.id.in_(ids))).all()} if ids else {}
    items = []
    for tid in ids:
        t, r = rows[tid]
        items.append({**queries.task_dict(t), "request": queries.request_summary(r),
                      "step": step_state(session, r, t.step_id),
                      "delegated_from": t.assignee if t.assignee != user else None})
    return {"items": items, "total": total, "page": page, "page_size": page_size,
            "pages": max(1, (total + page_size - 1) // page_size),
            # the rows' requests, found among the user's pending tasks (for their budget impact)
            "requests": {r.id: r for t, r in rows.values()}}


def workflows_pending(session: Session, user: str, on: date) -> list[str]:
    """The workflows the user has pending tasks in (for the inbox's filter)."""
    people = [user, *delegators(session, user, on)]
    return sorted(set(session.scalars(
        select(ApprovalRequest.workflow).join(ApprovalTask, ApprovalTask.request_id == ApprovalRequest.id)
        .where(ApprovalTask.assignee.in_(people), ApprovalTask.status == "pending"))))
