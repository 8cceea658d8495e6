"""Budgets as finance browses them: a period's line tree with each line's utilisation,
its threshold level and where its rule comes from; utilisation per cost centre; budget
against committed and actual month by month; a line's open reservations, journals and
the vouchers of its documents. Read-only (the read database serves it when there is one).

Amounts stay :class:`~decimal.Decimal` here; the console turns them into text for pages
and charts (never floats).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import (
    BudgetBalance,
    BudgetEntry,
    BudgetLine,
    BudgetMovement,
    BudgetPeriod,
    Company,
    Reservation,
)
from yinfin_flow.db.models.ledger import JournalEntry
from yinfin_flow.domain.budget import DEFAULT_RULE, Bucket, ControlRule, Mode, check_line
from yinfin_flow.domain.errors import NotFound, ValidationError

from .io_report import LineReport, describe_rule, line_report

_GRANULARITY_ORDER = {"year": 0, "half": 1, "quarter": 2, "month": 3}
JOURNAL_KINDS = ("original", "adjustment", "transfer")


@dataclass(frozen=True)
class TreeFilter:
    company: str
    period: str
    cost_centre: str | None = None
    item: str | None = None
    project: str | None = None


def periods(session: Session, company: str) -> list[dict[str, Any]]:
    """The company's budget periods, by year, then granularity (year, half, quarter, month)."""
    company_id = session.scalar(select(Company.id).where(Company.code == company))
    if company_id is None:
        raise NotFound(f"no company {company!r}", field="company")
    rows = session.execute(select(BudgetPeriod).where(BudgetPeriod.company_id == company_id)).scalars()
    out = [{"code": p.code, "granularity": p.granularity, "fiscal_year": p.fiscal_year,
            "start": p.start_date, "end": p.end_date} for p in rows]
    out.sort(key=lambda p: (p["fiscal_year"], _GRANULARITY_ORDER.get(p["granularity"], 9), p["start"]))
    return out


def companies(session: Session) -> list[str]:
    return list(session.scalars(select(Company.code).order_by(Company.code)))


def _row(r: LineReport) -> dict[str, Any]:
    check = check_line(line_id=r.line_id, line_label=r.code, rule=r.rule, basis_buckets=r.basis_buckets,
                       delta=Decimal(0), currency=r.currency, decided_by_self=True)
    b = r.buckets
    return {
        "id": r.line_id, "code": r.code, "name": r.name, "depth": r.depth,
        "cost_centre": r.cost_centre, "item": r.item, "project": r.project, "currency": r.currency,
        "status": r.status, "effective_status": r.effective_status, "status_from": r.status_from,
        "owner": r.owner,
        "buckets": {"budget": b.budget, "pre_encumbered": b.pre_encumbered, "encumbered": b.encumbered,
                    "actual": b.actual, "available": b.available},
        "usage_percent": None if check.usage_percent is None else str(check.usage_percent),
        "level": None if check.level is None else check.level.value,
        "blocked": check.over and r.rule.mode is Mode.HARD,
        "mode": r.rule.mode.value, "basis": r.rule.basis.value, "rule": describe_rule(r.rule),
        "rule_own": r.own_rule, "rule_from": r.rule_from,
    }


def tree(session: Session, f: TreeFilter, default_rule: ControlRule = DEFAULT_RULE) -> list[dict[str, Any]]:
    """The period's lines, parents before children, with buckets, utilisation (over the
    rule's basis, as control sees it), the threshold level reached, and the rule's
    origin: the line's own, inherited from ``rule_from``, or the default (``None``).
    Cost centre, item and project filters are applied by :func:`matching`."""
    rows = line_report(session, company=f.company, period=f.period, default_rule=default_rule)
    return [_row(r) for r in rows if r.company == f.company]


def matching(rows: list[dict[str, Any]], f: TreeFilter) -> list[dict[str, Any]]:
    """The rows of :func:`tree` with ``f``'s cost centre, item and project (each line keeps its depth)."""
    return [r for r in rows if (not f.cost_centre or r["cost_centre"] == f.cost_centre)
            and (not f.item or r["item"] == f.item) and (not f.project or r["project"] == f.project)]


def by_cost_centre(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Budget and consumption of the tree's lines summed per cost centre (per currency),
    with the utilisation they make."""
    sums: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in rows:
        b = r["buckets"]
        s = sums[(r["cost_centre"], r["currency"])]
        s[0] += b["budget"]
        s[1] += b["pre_encumbered"] + b["encumbered"] + b["actual"]
    out = []
    for (cc, cur), (budget, consumed) in sorted(sums.items()):
        pct = (consumed * 100 / budget).quantize(Decimal("0.1")) if budget > 0 else None
        out.append({"cost_centre": cc, "currency": cur, "budget": budget, "consumed": consumed,
                    "usage_percent": None if pct is None else str(pct)})
    return out


def by_month(session: Session, company: str, year: int) -> list[dict[str, Any]]:
    """Budget, committed (pre-encumbered + encumbered) and actual of the year's month
    lines in the company's base currency, summed over the top lines of each month (a
    parent's consumption already holds its children's, and its budget is their envelope)."""
    rows = session.execute(
        select(BudgetPeriod.code, Company.base_currency, func.sum(BudgetBalance.budget),
               func.sum(BudgetBalance.pre_encumbered + BudgetBalance.encumbered), func.sum(BudgetBalance.actual))
        .join(Company, Company.id == BudgetPeriod.company_id)
        .outerjoin(BudgetLine, (BudgetLine.period_id == BudgetPeriod.id) & BudgetLine.parent_id.is_(None)
                   & (BudgetLine.currency == Company.base_currency))
        .outerjoin(BudgetBalance, BudgetBalance.line_id == BudgetLine.id)
        .where(Company.code == company, BudgetPeriod.fiscal_year == year, BudgetPeriod.granularity == "month")
        .group_by(BudgetPeriod.code, Company.base_currency)
        .order_by(BudgetPeriod.code))
    return [{"period": p, "currency": cur, "budget": b or Decimal(0), "committed": c or Decimal(0),
             "actual": a or Decimal(0)} for p, cur, b, c, a in rows]


def open_reservations(session: Session, line_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """What documents still hold on the line, newest first."""
    rows = session.scalars(select(Reservation).where(Reservation.line_id == line_id,
                                                     Reservation.status == "open")
                           .order_by(Reservation.id.desc()).limit(limit))
    return [{"id": r.id, "document_type": r.document_type, "document_id": r.document_id,
             "document_line": r.document_line, "currency": r.currency, "budget_date": r.budget_date,
             "pre_encumbered": r.pre_encumbered, "encumbered": r.encumbered, "actual": r.actual,
             "created_at": r.created_at} for r in rows]


def journals(session: Session, line_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """The line's budget journals (original, adjustments, transfers), newest first."""
    rows = session.execute(
        select(BudgetEntry.movement_id, BudgetMovement.kind, BudgetEntry.amount, BudgetEntry.currency,
               BudgetMovement.actor, BudgetMovement.reason, BudgetEntry.created_at)
        .join(BudgetMovement, BudgetMovement.id == BudgetEntry.movement_id)
        .where(BudgetEntry.line_id == line_id, BudgetEntry.bucket == Bucket.BUDGET.value)
        .order_by(BudgetEntry.id.desc()).limit(limit))
    return [{"movement_id": m, "kind": k, "amount": a, "currency": c, "actor": who, "reason": why,
             "created_at": at} for m, k, a, c, who, why, at in rows]


def vouchers_of(session: Session, documents: set[tuple[str, str]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The vouchers posted for each (document type, document id)."""
    ids = {d for _t, d in documents}
    if not ids:
        return {}
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for v in session.scalars(select(JournalEntry).where(JournalEntry.document_id.in_(ids))
                             .order_by(JournalEntry.id)):
        key = (v.document_type or "", v.document_id or "")
        if key in documents:
            out[key].append({"id": v.id, "number": f"{v.voucher_word}-{v.voucher_number}"})
    return dict(out)



def line_by_code(session: Session, code: str, field: str = "line") -> BudgetLine:
    """The line with ``code`` (or, all digits, that id): a clear 404 naming ``field``."""
    code = (code or "").strip()
    if not code:
        raise ValidationError(field, "name a budget line (its code)")
    line = session.scalar(select(BudgetLine).where(BudgetLine.code == code))
    if line is None and code.isdigit() and int(code) < 2**31:
        line = session.get(BudgetLine, int(code))
    if line is None:
        raise NotFound(f"no budget line {code!r}", field=field)
    return line
