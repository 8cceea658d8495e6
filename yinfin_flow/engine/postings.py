"""The ``posting.requested`` event a transition's posting template asks the ledger for.

Payload (the ledger's contract): ``key, template, company, posting_date, actor,
document {type, id, title, requester, partner}, lines [{ref, item, account,
cost_centre, project, amount, currency, tax_amount, memo, reservation_id}]``.

Lines carry ``reservation_id`` only when the transition's budget action is ``actual``:
the ledger then moves those reservations to ``actual`` itself, so the engine does not.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from yinfin_flow import events
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models import BudgetItem, BudgetLine, CostCentre, Project
from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.domain.workflow import Transition

from .budgeting import document
from .runtime import ActionContext


def request_posting(ctx: ActionContext, req: ApprovalRequest, t: Transition) -> dict[str, Any]:
    assert t.posting is not None
    consumes = t.budget == "actual"
    # Latest reservation per form line; ids are passed on only while it is open.
    held = {h.document_line: h for h in Budgets(ctx.session).reservations_for(*document(ctx, req))}
    codes: dict[int, tuple[str, str, str | None]] = {}
    if held:
        for line_id, item, cc, project in ctx.session.execute(
            select(BudgetLine.id, BudgetItem.code, CostCentre.code, Project.code)
            .join(BudgetItem, BudgetItem.id == BudgetLine.item_id)
            .join(CostCentre, CostCentre.id == BudgetLine.cost_centre_id)
            .outerjoin(Project, Project.id == BudgetLine.project_id)
            .where(BudgetLine.id.in_({h.line_id for h in held.values()}))
        ):
            codes[line_id] = (item, cc, project)
    lines = []
    for ln in req.form["lines"]:
        h = held.get(ln["ref"])
        item, cc, project = codes.get(h.line_id, (None, None, None)) if h else (None, None, None)
        lines.append({
            "ref": ln["ref"], "item": ln.get("item") or item, "account": ln.get("account"),
            "cost_centre": ln.get("cost_centre") or cc, "project": ln.get("project") or project,
            "amount": ln["amount"], "currency": ln["currency"], "tax_amount": ln.get("tax_amount"),
            "memo": ln.get("memo") or req.title,
            "reservation_id": h.id if (h and consumes and h.status == "open") else None,
        })
    doc_type, doc_id = document(ctx, req)
    payload = {
        "key": f"{doc_type}:{doc_id}:{t.posting}", "template": t.posting, "company": req.company,
        "posting_date": ctx.now.date(), "actor": ctx.actor,
        "document": {"type": doc_type, "id": doc_id, "title": req.title, "requester": req.requester,
                     "partner": req.form.get("partner") or f"EMP-{req.requester}"},
        "lines": lines,
    }
    events.publish(ctx.session, "posting.requested", **payload)
    return {"template": t.posting, "key": payload["key"]}
