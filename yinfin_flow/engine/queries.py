"""Read side: a user's inbox, a request with its history and budget impact.

Both return plain dicts (JSON-ready: money as strings, times ISO 8601) so the HTTP
layer and the CLI can hand them out as they are.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from yinfin_flow.attachments import service as attachments
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestCc, RequestHistory
from yinfin_flow.db.models.org import Delegation
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound
from yinfin_flow.domain.money import show

from . import routing


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _shown(value: Any) -> Any:
    try:
        return show(Decimal(value)) if isinstance(value, (str, Decimal)) and value != "" else value
    except InvalidOperation:
        return value


def form_answered(form: dict[str, Any]) -> dict[str, Any]:
    """A stored form as answers show it: its amounts (the total, each line's ``amount`` and
    ``tax_amount``) in the one answer format, ``"250.0000"``; the rest as stored."""
    out = dict(form)
    if "amount" in out:
        out["amount"] = _shown(out["amount"])
    if isinstance(out.get("lines"), list):
        out["lines"] = [{**ln, **{k: _shown(ln[k]) for k in ("amount", "tax_amount") if k in ln}}
                        if isinstance(ln, dict) else ln for ln in out["lines"]]
    return out


def request_summary(req: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": req.id, "workflow": req.workflow, "workflow_version": req.workflow_version,
        "title": req.title, "requester": req.requester, "company": req.company,
        "department": req.department, "state": req.state, "amount": _shown(req.form.get("amount")),
        "currency": req.form.get("currency"), "version": req.version,
        "submitted_at": _iso(req.submitted_at), "finished_at": _iso(req.finished_at),
    }


def task_dict(t: ApprovalTask) -> dict[str, Any]:
    return {
        "id": t.id, "request_id": t.request_id, "step": t.step_id, "round": t.round,
        "assignee": t.assignee, "on_behalf_of": t.on_behalf_of, "status": t.status, "kind": t.kind,
        "added_by": t.added_by, "warnings": t.warnings, "comment": t.comment,
        "due_at": _iso(t.due_at), "created_at": _iso(t.created_at), "decided_at": _iso(t.decided_at),
        "urged": t.urged,
    }


def inbox(session: Session, user: str, status: str = "pending", limit: int = 100,
          on: date | None = None) -> list[dict[str, Any]]:
    """The user's tasks (待办 by default; ``approved``/``rejected``… for 已办), newest first,
    each with its request's summary and the budget warnings the approver should see.

    Pending tasks follow delegation windows (``on``: today): during a window the deputy
    sees the delegator's tasks, those made before the window too, and the delegator
    still sees his own; after it, a task made for the deputy is the delegator's again.
    """
    if status != "pending":
        rows = session.execute(
            select(ApprovalTask, ApprovalRequest)
            .join(ApprovalRequest, ApprovalRequest.id == ApprovalTask.request_id)
            .where(ApprovalTask.assignee == user, ApprovalTask.status == status)
            .order_by(ApprovalTask.id.desc()).limit(limit)
        ).all()
        return [{**task_dict(t), "request": request_summary(r)} for t, r in rows]
    on = on or utcnow().date()
    delegators = list(session.scalars(select(Delegation.user_id).where(
        Delegation.deputy_id == user, Delegation.revoked_at.is_(None),
        Delegation.start_date <= on, Delegation.end_date >= on).distinct()))
    who = or_(ApprovalTask.assignee == user, ApprovalTask.on_behalf_of == user)
    if delegators:
        who = or_(who, and_(ApprovalTask.assignee.in_(delegators), ApprovalTask.on_behalf_of.is_(None)))
    out = []
    deputy_of: dict[tuple[str, str], str | None] = {}

    def deputy(principal: str, workflow: str) -> str | None:
        if (principal, workflow) not in deputy_of:
            deputy_of[(principal, workflow)] = routing.delegate_for(session, principal, on, workflow)
        return deputy_of[(principal, workflow)]

    for t, r in session.execute(
        select(ApprovalTask, ApprovalRequest)
        .join(ApprovalRequest, ApprovalRequest.id == ApprovalTask.request_id)
        .where(who, ApprovalTask.status == "pending").order_by(ApprovalTask.id.desc())
    ):
        if t.assignee == user and t.on_behalf_of is not None and deputy(t.on_behalf_of, r.workflow) != user:
            continue  # made for me as a deputy; the window is over
        if t.assignee != user and t.on_behalf_of is None and deputy(t.assignee, r.workflow) != user:
            continue  # a delegator's task, but not delegated to me for this workflow
        out.append({**task_dict(t), "request": request_summary(r)})
        if len(out) >= limit:
            break
    return out


def cc_inbox(session: Session, user: str, limit: int = 100) -> list[dict[str, Any]]:
    """Requests the user was copied on (抄送我的)."""
    rows = session.execute(
        select(RequestCc, ApprovalRequest).join(ApprovalRequest, ApprovalRequest.id == RequestCc.request_id)
        .where(RequestCc.user == user).order_by(RequestCc.id.desc()).limit(limit)
    ).all()
    return [{"at": c.at, "created_at": _iso(c.created_at), "request": request_summary(r)} for c, r in rows]


def get_request(session: Session, request_id: int) -> dict[str, Any]:
    """A request with its form, route, tasks, history, and budget impact per line.

    ``attachments`` lists its receipts and invoices (metadata, oldest first);
    ``budget.lines`` lists each reservation; ``budget.checks`` re-checks what is held
    now, on each line and every controlling ancestor (``rule_line_id`` says whose rule).
    """
    req = session.get(ApprovalRequest, request_id)
    if req is None:
        raise NotFound(f"no request {request_id}", field="request_id")
    b = Budgets(session)
    reservations, checks = b.read_document(req.document_type, str(req.id))  # one statement
    tasks = session.scalars(select(ApprovalTask).where(ApprovalTask.request_id == req.id).order_by(ApprovalTask.id))
    hist = session.scalars(select(RequestHistory).where(RequestHistory.request_id == req.id)
                           .order_by(RequestHistory.seq))
    cc = session.scalars(select(RequestCc).where(RequestCc.request_id == req.id).order_by(RequestCc.id))
    return {
        **request_summary(req),
        "form": form_answered(req.form), "route": req.route,
        "current_step": req.route[req.step_index] if req.step_index is not None and req.step_index < len(req.route) else None,
        "round": req.round, "override": req.override,
        "tasks": [task_dict(t) for t in tasks],
        "history": [{
            "seq": h.seq, "action": h.action, "actor": h.actor, "on_behalf_of": h.on_behalf_of,
            "step": h.step_id, "task_id": h.task_id, "from_state": h.from_state, "to_state": h.to_state,
            "comment": h.comment, "budget": h.budget, "data": h.data, "at": _iso(h.created_at),
        } for h in hist],
        "cc": [{"user": c.user, "at": c.at} for c in cc],
        "attachments": attachments.summaries(session, req.id),
        "budget": {"lines": [r.to_dict() for r in reservations], "checks": [c.to_dict() for c in checks]},
    }
