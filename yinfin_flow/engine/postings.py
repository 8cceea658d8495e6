"""The ``posting.requested`` event a transition's posting template asks the ledger for.

Payload (the ledger's contract): ``key, template, company, posting_date, actor,
document {type, id, title, requester, partner}, lines [{ref, item, account,
cost_centre, project, amount, currency, tax_amount, memo, reservation_id}]``.

Lines carry ``reservation_id`` only when the transition's budget action is ``actual``:
the ledger then moves those reservations to ``actual`` itself, so the engine does not.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select

from yinfin_flow import events
from yinfin_flow.budget.results import form_ref
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models import BudgetItem, BudgetLine, CostCentre, Project
from yinfin_flow.db.models.engine import ApprovalRequest, RequestHistory
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.workflow import Transition

from .budgeting import document
from .runtime import READS_HISTORY, ActionContext


def request_posting(ctx: ActionContext, req: ApprovalRequest, t: Transition) -> dict[str, Any]:
    assert t.posting is not None
    consumes = t.budget == "actual"
    doc_type, doc_id = document(ctx, req)
    # Latest reservation per form line, an open one before a closed one; ids are passed
    # on only while it is open. A PO carried over by the year-end roll holds a new
    # reservation (``<ref>@<year>``) in next year's line: that is the one to consume.
    held: dict[str, Any] = {}
    for h in Budgets(ctx.session).reservations_for(*document(ctx, req)):
        ref = form_ref(h.document_line)
        if ref not in held or h.status == "open" or held[ref].status != "open":
            held[ref] = h
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
    given = ctx.data.get("history") or {}
    invoiced = _invoiced(ctx, req)
    key = f"{doc_type}:{doc_id}:{t.posting}"
    amounts: dict[str, tuple[str, Any]] = {}  # ref -> (amount, tax) this voucher posts
    if consumes and (given.get("lines") or given.get("invoice") or invoiced):
        # An invoice in parts (or the rest after earlier parts): its own voucher, keyed
        # by the invoice number, consuming what it names and leaving the rest held.
        number = str(given.get("invoice") or f"#{len(invoiced) + 1}")
        if number in invoiced:
            raise ValidationError("data.invoice", f"invoice {number} of this request is matched already")
        amounts = _invoice_lines(req, given.get("lines"), invoiced)
        key = f"{key}:{number}"
        # Recorded with the action's history row: what later parts and the payment read.
        ctx.data["history"] = {**given, "invoice": number,
                               "invoiced": [[ref, a, tx] for ref, (a, tx) in amounts.items()]}
    elif not consumes and invoiced:
        # Paying what was invoiced (in parts): the invoices' totals per line, not the order's.
        for part in invoiced.values():
            for ref, (amount, tax) in part.items():
                prior_amount, prior_tax = amounts.get(ref, ("0", None))
                amounts[ref] = (str(Decimal(prior_amount) + Decimal(amount)),
                                str(Decimal(prior_tax or 0) + Decimal(tax or 0)) if (tax or prior_tax) else None)
    lines = []
    for ln in req.form["lines"]:
        if amounts and ln["ref"] not in amounts:
            continue
        amount, tax = amounts.get(ln["ref"], (ln["amount"], ln.get("tax_amount")))
        h = held.get(ln["ref"])
        item, cc, project = codes.get(h.line_id, (None, None, None)) if h else (None, None, None)
        lines.append({
            "ref": ln["ref"], "item": ln.get("item") or item, "account": ln.get("account"),
            "cost_centre": ln.get("cost_centre") or cc, "project": ln.get("project") or project,
            "amount": amount, "currency": ln["currency"], "tax_amount": tax,
            "memo": ln.get("memo") or req.title,
            "reservation_id": h.id if (h and consumes and h.status == "open") else None,
        })
    partner = given.get("partner") or req.form.get("partner")
    if not partner:
        if ctx.definition.partner == "required":
            raise ValidationError("form.partner", f"{ctx.definition.name} posts to a supplier: name the partner "
                                  "on the request or on the action (data.partner)")
        partner = f"EMP-{req.requester}"
    payload = {
        "key": key, "template": t.posting, "company": req.company,
        "posting_date": ctx.now.date(), "actor": ctx.actor,
        "document": {"type": doc_type, "id": doc_id, "title": req.title, "requester": req.requester,
                     "partner": partner},
        "lines": lines,
    }
    events.publish(ctx.session, "posting.requested", **payload)
    return {"template": t.posting, "key": payload["key"]}


def _invoiced(ctx: ActionContext, req: ApprovalRequest) -> dict[str, dict[str, tuple[str, Any]]]:
    """The invoices matched in parts so far: number -> ref -> (amount, tax), from the
    request's history (each part's action records what it invoiced)."""
    out: dict[str, dict[str, tuple[str, Any]]] = {}
    for data in ctx.session.scalars(
        select(RequestHistory.data).where(RequestHistory.request_id == req.id,
                                          RequestHistory.action == "match_invoice")
        .order_by(RequestHistory.seq).execution_options(**{READS_HISTORY: True})
    ):
        if data and data.get("invoiced"):
            out[str(data["invoice"])] = {r: (a, tx) for r, a, tx in data["invoiced"]}
    return out


def _invoice_lines(req: ApprovalRequest, given: Any, invoiced: dict[str, dict[str, tuple[str, Any]]],
                   ) -> dict[str, tuple[str, Any]]:
    """What one invoice posts per form line: the lines it names, or the rest of the order."""
    refs = {ln["ref"]: ln for ln in req.form["lines"]}
    out: dict[str, tuple[str, Any]] = {}
    if given:
        if not isinstance(given, list):
            raise ValidationError("data.lines", "a list of {ref, amount, tax_amount}")
        for i, raw in enumerate(given):
            ref = str(raw.get("ref")) if isinstance(raw, dict) else None
            if ref not in refs:
                raise ValidationError(f"data.lines[{i}].ref", f"no line {ref!r} on the request")
            if ref in out:
                raise ValidationError(f"data.lines[{i}].ref", f"line {ref!r} is named twice")
            try:
                amount = Decimal(str(raw.get("amount")))
            except InvalidOperation:
                raise ValidationError(f"data.lines[{i}].amount", "must be a decimal number") from None
            if isinstance(raw.get("amount"), float) or not amount.is_finite() or amount <= 0:
                raise ValidationError(f"data.lines[{i}].amount", "a positive amount as a string")
            out[ref] = (str(amount), raw.get("tax_amount"))
        return out
    for ref, ln in refs.items():  # the rest of the order
        done = sum((Decimal(part[ref][0]) for part in invoiced.values() if ref in part), Decimal(0))
        rest = Decimal(ln["amount"]) - done
        if rest > 0:
            out[ref] = (str(rest), None)
    if not out:
        raise ValidationError("data.lines", "the order is invoiced in full already")
    return out
