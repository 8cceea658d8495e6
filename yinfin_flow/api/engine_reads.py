"""Read side for the request and task resources: visibility and budget impact.

Who sees a request: its requester, anyone with a task on it (or delegated one),
finance and admins. Anyone else gets 404 (not 403: ids are not confirmed to exist).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from yinfin_flow.attachments import service as attachments
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestCc, RequestHistory
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound
from yinfin_flow.engine import queries, routing, visibility
from yinfin_flow.engine.budgeting import DocumentRead
from yinfin_flow.security.policy import SEES_ALL_REQUESTS

from .identity import Identity

SEES_ALL = SEES_ALL_REQUESTS


def _delegators(session: Session, user: str) -> list[str]:
    """Users whose approvals ``user`` holds today (any workflow)."""
    return visibility.delegators(session, user)


def may_see(session: Session, ident: Identity, req: ApprovalRequest) -> bool:
    return visibility.may_see(session, ident.id, ident.roles, req)


def visible_request(session: Session, ident: Identity, request_id: int) -> ApprovalRequest:
    req = session.get(ApprovalRequest, request_id)
    if req is None or not may_see(session, ident, req):
        raise NotFound(f"no request {request_id}", field="request_id")
    return req


def my_task(session: Session, ident: Identity, task_id: int) -> ApprovalTask:
    """The task if it is the caller's, made for their deputy (the delegator acts on it
    himself), or delegated to them today (else 404)."""
    task = session.get(ApprovalTask, task_id)
    if task is not None and ident.id not in (task.assignee, task.on_behalf_of):
        req = session.get(ApprovalRequest, task.request_id)
        deputy = req and routing.delegate_for(session, task.assignee, utcnow().date(), req.workflow)
        if deputy != ident.id:
            task = None
    if task is None:
        raise NotFound(f"no task {task_id} for you", field="task_id")
    return task


def list_requests(session: Session, ident: Identity, *, page: int, page_size: int,
                  state: str | None, workflow: str | None, requester: str | None,
                  submitted_from: Any, submitted_to: Any) -> dict[str, Any]:
    stmt = select(ApprovalRequest)
    if not ident.roles & SEES_ALL:
        people = [ident.id, *_delegators(session, ident.id)]
        stmt = stmt.where(or_(ApprovalRequest.requester == ident.id, exists().where(
            ApprovalTask.request_id == ApprovalRequest.id, ApprovalTask.assignee.in_(people))))
    if state:
        stmt = stmt.where(ApprovalRequest.state == state)
    if workflow:
        stmt = stmt.where(ApprovalRequest.workflow == workflow)
    if requester:
        stmt = stmt.where(ApprovalRequest.requester == requester)
    if submitted_from:
        stmt = stmt.where(ApprovalRequest.submitted_at >= datetime.combine(submitted_from, time(), UTC))
    if submitted_to:
        end = datetime.combine(submitted_to, time(), UTC) + timedelta(days=1)
        stmt = stmt.where(ApprovalRequest.submitted_at < end)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(ApprovalRequest.id.desc())
                           .offset((page - 1) * page_size).limit(page_size))
    return {"items": [queries.request_summary(r) for r in rows],
            "pagination": {"page": page, "page_size": page_size, "total": total,
                           "pages": (total + page_size - 1) // page_size}}


def impact(session: Session, req: ApprovalRequest, read: DocumentRead | None = None) -> dict[str, Any]:
    """What the request holds per line, and ``available`` on each line and controlling
    ancestor now and once this step approves.

    While the request holds budget, an approval only re-checks it and (at the last
    step) moves it on to encumbered or actual, which leaves ``available`` as it is; a
    request holding nothing (a draft, a sent-back one after release) would reserve
    its form, so the figures are those of a reservation preview.

    ``read``: the document's reservations and re-check as the engine read them in this
    transaction with no budget write since (:func:`~yinfin_flow.engine.budgeting.take_read`);
    the answer is the same as reading them again, without the statement.
    """
    b = Budgets(session)
    if read is None:  # the reservations and their re-check in one statement
        views, checks = b.read_document(req.document_type, str(req.id))
    else:
        views, checks = read.reservations, read.checks
    open_ = [v for v in views if v.status == "open"]
    held_by_line: dict[int, Decimal] = {}
    for v in open_:
        held_by_line[v.line_id] = held_by_line.get(v.line_id, Decimal(0)) + v.pre_encumbered + v.encumbered
    lines = []
    if open_:
        for c in checks:
            lines.append(_line(c, held_by_line.get(c.line_id, Decimal(0)), c.basis_buckets.available))
    elif req.finished_at is None:
        from yinfin_flow.engine.budgeting import lines_of

        try:
            wanted = lines_of(req)
            checks = b.preview(wanted) if wanted else []
        except Exception:  # noqa: BLE001 - a form that cannot be reserved shows no impact
            checks = []
        for c in checks:
            lines.append(_line(c, Decimal(0), c.available_after))
    return {"holds_budget": bool(open_), "reservations": [v.to_dict() for v in views], "lines": lines}


def _line(c: Any, held: Decimal, after: Decimal) -> dict[str, Any]:
    d = c.to_dict()
    return {"line_id": c.line_id, "line": c.line_label, "rule_line_id": c.rule.line_id,
            "mode": d["mode"], "currency": c.currency, "held": str(held),
            "available": d["available"], "available_if_approved": str(after),
            "blocked": c.blocked, "level": d["level"], "usage_percent": d["usage_percent"]}


def request_detail(session: Session, req: ApprovalRequest) -> dict[str, Any]:
    """The request as :func:`yinfin_flow.engine.queries.get_request` shows it, with
    :func:`impact` instead of its budget part (so held budget is re-checked once)."""
    tasks = session.scalars(select(ApprovalTask).where(ApprovalTask.request_id == req.id)
                            .order_by(ApprovalTask.id))
    hist = session.scalars(select(RequestHistory).where(RequestHistory.request_id == req.id)
                           .order_by(RequestHistory.seq))
    cc = session.scalars(select(RequestCc).where(RequestCc.request_id == req.id).order_by(RequestCc.id))
    step = req.route[req.step_index] if req.step_index is not None and req.step_index < len(req.route) else None
    return {
        **queries.request_summary(req), "form": queries.form_answered(req.form), "route": req.route, "current_step": step,
        "round": req.round, "override": req.override,
        "tasks": [queries.task_dict(t) for t in tasks],
        "history": [{
            "seq": h.seq, "action": h.action, "actor": h.actor, "on_behalf_of": h.on_behalf_of,
            "step": h.step_id, "task_id": h.task_id, "from_state": h.from_state, "to_state": h.to_state,
            "comment": h.comment, "budget": h.budget, "data": h.data,
            "at": h.created_at.isoformat() if h.created_at else None,
        } for h in hist],
        "cc": [{"user": c.user, "at": c.at} for c in cc],
        "attachments": attachments.summaries(session, req.id),
        "budget_impact": impact(session, req),
    }


def request_outcome(session: Session, req: ApprovalRequest, read: DocumentRead | None = None) -> dict[str, Any]:
    """The request's summary, current step and budget impact (what an action answers;
    ``read``: see :func:`impact`)."""
    step = req.route[req.step_index] if req.step_index is not None and req.step_index < len(req.route) else None
    return {**queries.request_summary(req), "current_step": step, "budget_impact": impact(session, req, read)}
