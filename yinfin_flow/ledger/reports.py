"""Reports as plain data (the CLI prints them, the API serialises them).

* :func:`trial_balance`: 科目余额表 for one period: opening, turnover, closing per
  account, parents rolled up, totals that must balance.
* :func:`budget_vs_actual`: the 业财 report: per cost centre and account, the budget
  and what it holds (pre-encumbered, encumbered, actual from postings) beside what
  the general ledger shows, and the gap between the two.
* :func:`trail`: one request end to end: approvals → budget movements → vouchers →
  ERP voucher ids.

Amounts are ``Decimal``; ``to_jsonable`` turns them into strings for JSON.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.budget.setup import company as company_by_code
from yinfin_flow.db.models import (
    BudgetEntry,
    BudgetItem,
    BudgetLine,
    BudgetMovement,
    CostCentre,
    Reservation,
)
from yinfin_flow.db.models.ledger import (
    Account,
    AccountingPeriod,
    JournalEntry,
    JournalLine,
    JournalSync,
)
from yinfin_flow.domain.errors import ValidationError

from .periods import parse_code
from .posting import voucher_label

ZERO = Decimal(0)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01"))) if value == value.quantize(Decimal("0.01")) else str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def _period(session: Session, company_id: int, code: str) -> AccountingPeriod:
    parse_code(code)
    row = session.scalar(select(AccountingPeriod).where(
        AccountingPeriod.company_id == company_id, AccountingPeriod.code == code))
    if row is None:
        raise ValidationError("period", f"no accounting period {code}")
    return row


def _sides(net: Decimal) -> tuple[Decimal, Decimal]:
    return (net, ZERO) if net >= 0 else (ZERO, -net)


def trial_balance(session: Session, company: str, period: str) -> dict[str, Any]:
    """Opening, debit/credit turnover and closing per account for ``period`` (base currency)."""
    comp = company_by_code(session, company)
    p = _period(session, comp.id, period)
    net_col = JournalLine.debit - JournalLine.credit
    opening: dict[int, Decimal] = defaultdict(Decimal)
    for acc_id, total in session.execute(
        select(JournalLine.account_id, func.sum(net_col))
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .join(AccountingPeriod, AccountingPeriod.id == JournalEntry.period_id)
        .where(JournalEntry.company_id == comp.id, AccountingPeriod.start_date < p.start_date)
        .group_by(JournalLine.account_id)
    ):
        opening[acc_id] = Decimal(total)
    turnover: dict[int, tuple[Decimal, Decimal]] = {}
    for acc_id, dr, cr in session.execute(
        select(JournalLine.account_id, func.sum(JournalLine.debit), func.sum(JournalLine.credit))
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .where(JournalEntry.company_id == comp.id, JournalEntry.period_id == p.id)
        .group_by(JournalLine.account_id)
    ):
        turnover[acc_id] = (Decimal(dr), Decimal(cr))
    accounts = {a.id: a for a in session.scalars(select(Account).where(Account.company_id == comp.id))}
    # Roll every figure up to the account's ancestors (科目余额表 shows every level).
    figures: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for acc_id in set(opening) | set(turnover):
        dr, cr = turnover.get(acc_id, (ZERO, ZERO))
        node: int | None = acc_id
        while node is not None:
            f = figures[node]
            f[0] += opening.get(acc_id, ZERO)
            f[1] += dr
            f[2] += cr
            node = accounts[node].parent_id
    def depth(acc_id: int) -> int:
        d, node = 0, accounts[acc_id].parent_id
        while node is not None:
            d, node = d + 1, accounts[node].parent_id
        return d

    rows = []
    totals = dict.fromkeys(("opening_debit", "opening_credit", "debit", "credit",
                            "closing_debit", "closing_credit"), ZERO)
    for acc_id in sorted(figures, key=lambda i: accounts[i].code):
        acc = accounts[acc_id]
        op, dr, cr = figures[acc_id]
        od, oc = _sides(op)
        cd, cc = _sides(op + dr - cr)
        row = {"account": acc.code, "name": acc.name, "type": acc.type, "level": depth(acc_id) + 1,
               "opening_debit": od, "opening_credit": oc, "debit": dr, "credit": cr,
               "closing_debit": cd, "closing_credit": cc}
        rows.append(row)
        if acc.parent_id is None:
            for k in totals:
                totals[k] += row[k]
    balanced = (totals["opening_debit"] == totals["opening_credit"]
                and totals["debit"] == totals["credit"]
                and totals["closing_debit"] == totals["closing_credit"])
    return {"company": company, "period": period, "currency": comp.base_currency,
            "status": p.status, "rows": rows, "totals": totals, "balanced": balanced}


def _range(session: Session, company_id: int, period: str | None, year: int | None) -> tuple[date, date, str]:
    if period:
        p = _period(session, company_id, period)
        return p.start_date, p.end_date, period
    if year is None:
        raise ValidationError("period", "name a period (YYYY-MM) or a fiscal year")
    return date(year, 1, 1), date(year, 12, 31), str(year)


def budget_vs_actual(
    session: Session, company: str, *, period: str | None = None, year: int | None = None,
) -> dict[str, Any]:
    """Budget and its buckets beside the ledger, per cost centre and account, for a month or a year.

    ``actual`` is the budget's own actual bucket (from postings that carried a
    reservation); ``ledger`` is every posted debit minus credit on that account and
    cost centre in the range. ``unbudgeted`` = ledger − actual: spending that did not
    come through a request, which finance usually wants to see first.
    """
    comp = company_by_code(session, company)
    start, end, label = _range(session, comp.id, period, year)
    key_cols = (CostCentre.code, BudgetItem.account_code)
    rows: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(
        lambda: dict.fromkeys(("budget", "pre_encumbered", "encumbered", "actual", "ledger"), ZERO))
    # Own entries only (not the rolled-up balances), so parent lines are not counted twice.
    for cc, acc, bucket, total in session.execute(
        select(*key_cols, BudgetEntry.bucket, func.sum(BudgetEntry.amount))
        .join(BudgetLine, BudgetLine.id == BudgetEntry.line_id)
        .join(CostCentre, CostCentre.id == BudgetLine.cost_centre_id)
        .join(BudgetItem, BudgetItem.id == BudgetLine.item_id)
        .where(BudgetLine.company_id == comp.id, BudgetLine.period_start >= start,
               BudgetLine.period_end <= end, BudgetItem.account_code.isnot(None))
        .group_by(*key_cols, BudgetEntry.bucket)
    ):
        rows[(cc, acc)][bucket] += Decimal(total)
    for cc, acc, total in session.execute(
        select(CostCentre.code, Account.code, func.sum(JournalLine.debit - JournalLine.credit))
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .join(Account, Account.id == JournalLine.account_id)
        .join(CostCentre, CostCentre.id == JournalLine.cost_centre_id)
        .where(JournalEntry.company_id == comp.id, JournalEntry.posting_date >= start,
               JournalEntry.posting_date <= end, Account.type == "expense")
        .group_by(CostCentre.code, Account.code)
    ):
        rows[(cc, acc)]["ledger"] += Decimal(total)
    out = []
    for (cc, acc), f in sorted(rows.items()):
        available = f["budget"] - f["pre_encumbered"] - f["encumbered"] - f["actual"]
        used = f["pre_encumbered"] + f["encumbered"] + f["actual"]
        out.append({
            "cost_centre": cc, "account": acc, **f, "available": available,
            "usage_percent": (used * 100 / f["budget"]).quantize(Decimal("0.1")) if f["budget"] else None,
            "unbudgeted": f["ledger"] - f["actual"],
        })
    return {"company": company, "range": label, "from": start, "to": end,
            "currency": comp.base_currency, "rows": out}


def trail(session: Session, document_type: str, document_id: str) -> dict[str, Any]:
    """Everything one request caused: approvals, budget movements, vouchers, ERP ids."""
    approvals: list[dict[str, Any]] = []
    try:
        from yinfin_flow.db.models.engine import ApprovalRequest, RequestHistory
    except ImportError:  # the engine area is optional for the ledger
        ApprovalRequest = None  # type: ignore[assignment,misc]  # noqa: N806
    request = None
    if ApprovalRequest is not None and document_id.isdigit():
        request = session.scalar(select(ApprovalRequest).where(
            ApprovalRequest.id == int(document_id), ApprovalRequest.document_type == document_type))
        if request is not None:
            approvals = [
                {"seq": h.seq, "action": h.action, "actor": h.actor, "on_behalf_of": h.on_behalf_of,
                 "step": h.step_id,
                 "from": h.from_state, "to": h.to_state, "comment": h.comment, "at": h.created_at.isoformat()}
                for h in session.scalars(select(RequestHistory).where(RequestHistory.request_id == request.id)
                                         .order_by(RequestHistory.seq))
            ]
    movements = []
    for m in session.scalars(select(BudgetMovement).where(
            BudgetMovement.document_type == document_type, BudgetMovement.document_id == document_id)
            .order_by(BudgetMovement.id)):
        entries = session.execute(
            select(BudgetEntry, BudgetLine.code).join(BudgetLine, BudgetLine.id == BudgetEntry.line_id)
            .where(BudgetEntry.movement_id == m.id).order_by(BudgetEntry.id)).all()
        movements.append({
            "id": m.id, "kind": m.kind, "step": m.step, "actor": m.actor, "at": m.created_at.isoformat(),
            "entries": [{"line": code, "bucket": e.bucket, "amount": e.amount, "currency": e.currency,
                         "reservation_id": e.reservation_id} for e, code in entries],
        })
    reservations = [
        {"id": r.id, "line_id": r.line_id, "document_line": r.document_line, "currency": r.currency,
         "pre_encumbered": r.pre_encumbered, "encumbered": r.encumbered, "actual": r.actual, "status": r.status}
        for r in session.scalars(select(Reservation).where(
            Reservation.document_type == document_type, Reservation.document_id == document_id)
            .order_by(Reservation.id))
    ]
    vouchers = []
    for e, pcode, sync in session.execute(
        select(JournalEntry, AccountingPeriod.code, JournalSync)
        .join(AccountingPeriod, AccountingPeriod.id == JournalEntry.period_id)
        .outerjoin(JournalSync, JournalSync.entry_id == JournalEntry.id)
        .where(JournalEntry.document_type == document_type, JournalEntry.document_id == document_id)
        .order_by(JournalEntry.id)
    ):
        lines = session.execute(
            select(JournalLine, Account.code).join(Account, Account.id == JournalLine.account_id)
            .where(JournalLine.entry_id == e.id).order_by(JournalLine.line_no)).all()
        vouchers.append({
            "entry_id": e.id, "voucher": voucher_label(e.voucher_word, pcode, e.voucher_number),
            "date": e.posting_date, "template": e.template, "summary": e.summary, "key": e.idempotency_key,
            "reverses": e.reverses_id,
            "erp": {"status": sync.status if sync else "not_queued",
                    "voucher_id": sync.erp_voucher_id if sync else None},
            "lines": [{"line_no": ln.line_no, "account": code, "debit": ln.debit, "credit": ln.credit,
                       "currency": ln.currency, "amount": ln.amount, "reservation_id": ln.reservation_id}
                      for ln, code in lines],
        })
    return {
        "document": {"type": document_type, "id": document_id},
        "request": None if request is None else {
            "id": request.id, "title": request.title, "requester": request.requester,
            "state": request.state, "workflow": request.workflow},
        "approvals": approvals, "reservations": reservations, "budget_movements": movements,
        "vouchers": vouchers,
    }
