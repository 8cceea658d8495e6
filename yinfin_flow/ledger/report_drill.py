"""The drill-down under one row of budget vs actual (业财对比): which budget lines make up
a cost centre and account's figures in the range, and which requests hold or spent
them. Selected exactly as :func:`yinfin_flow.ledger.reports.budget_vs_actual` selects
the row (own entries of lines inside the range), so the figures add up to the row's.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.budget.setup import company as company_by_code
from yinfin_flow.db.models import BudgetEntry, BudgetItem, BudgetLine, CostCentre, Reservation

from .reports import _range

BUCKETS = ("budget", "pre_encumbered", "encumbered", "actual")
MAX_REQUESTS = 200


def budget_vs_actual_drill(session: Session, company: str, *, cost_centre: str, account: str,
                           period: str | None = None, year: int | None = None) -> dict[str, Any]:
    """Lines (id, code, name, own bucket totals in the range) and the requests whose
    reservations sit on them (at most :data:`MAX_REQUESTS`, newest first, with what
    each holds now), for one cost centre and account."""
    comp = company_by_code(session, company)
    start, end, label = _range(session, comp.id, period, year)
    lines = session.execute(
        select(BudgetLine.id, BudgetLine.code, BudgetLine.name)
        .join(CostCentre, CostCentre.id == BudgetLine.cost_centre_id)
        .join(BudgetItem, BudgetItem.id == BudgetLine.item_id)
        .where(BudgetLine.company_id == comp.id, BudgetLine.period_start >= start,
               BudgetLine.period_end <= end, CostCentre.code == cost_centre,
               BudgetItem.account_code == account)
        .order_by(BudgetLine.code)).all()
    ids = [line_id for line_id, _, _ in lines]
    figures: dict[int, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(BUCKETS, Decimal(0)))
    if ids:
        for line_id, bucket, total in session.execute(
                select(BudgetEntry.line_id, BudgetEntry.bucket, func.sum(BudgetEntry.amount))
                .where(BudgetEntry.line_id.in_(ids)).group_by(BudgetEntry.line_id, BudgetEntry.bucket)):
            figures[line_id][bucket] += Decimal(total)
    requests = _requests(session, ids)
    return {"company": company, "range": label, "currency": comp.base_currency,
            "cost_centre": cost_centre, "account": account,
            "lines": [{"id": i, "code": code, "name": name, **figures[i]} for i, code, name in lines],
            "requests": requests, "more_requests": len(requests) >= MAX_REQUESTS}


def _requests(session: Session, line_ids: list[int]) -> list[dict[str, Any]]:
    if not line_ids:
        return []
    from yinfin_flow.db.models.engine import ApprovalRequest

    held: dict[tuple[str, str], dict[str, Any]] = {}
    for r, code in session.execute(
            select(Reservation, BudgetLine.code).join(BudgetLine, BudgetLine.id == Reservation.line_id)
            .where(Reservation.line_id.in_(line_ids)).order_by(Reservation.id.desc())):
        key = (r.document_type, r.document_id)
        if key not in held:
            if len(held) >= MAX_REQUESTS:
                break
            held[key] = {"document_type": r.document_type, "document_id": r.document_id,
                         "currency": r.currency, "lines": [], "request": None,
                         **dict.fromkeys(("pre_encumbered", "encumbered", "actual"), Decimal(0))}
        row = held[key]
        row["pre_encumbered"] += r.pre_encumbered
        row["encumbered"] += r.encumbered
        row["actual"] += r.actual
        if code not in row["lines"]:
            row["lines"].append(code)
    numeric = [int(doc_id) for _, doc_id in held if doc_id.isdigit()]
    if numeric:
        for req in session.scalars(select(ApprovalRequest).where(ApprovalRequest.id.in_(numeric))):
            row = held.get((req.document_type, str(req.id)))
            if row is not None:
                row["request"] = {"id": req.id, "title": req.title, "requester": req.requester,
                                  "state": req.state}
    return list(held.values())
