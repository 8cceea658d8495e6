"""Creating what budgets hang on: companies, periods, master data, lines and rules.

Finance's configuration changes; each function works in the caller's session.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from yinfin_flow.db.models import (
    BudgetBalance,
    BudgetItem,
    BudgetLine,
    BudgetPeriod,
    Company,
    ControlRuleRow,
    CostCentre,
    ExchangeRate,
    Project,
)
from yinfin_flow.db.models.rule_changes import RuleChange
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.budget import Action, Basis, LineStatus, Mode
from yinfin_flow.domain.errors import Conflict, NotFound, ValidationError
from yinfin_flow.domain.money import check_currency, parse_amount, parse_decimal

from .control import ControlContext
from .lookup import series_key

GRANULARITIES = ("year", "half", "quarter", "month")


def _one(session: Session, model: Any, field: str, **where: Any) -> Any:
    row = session.scalar(select(model).filter_by(**where))
    if row is None:
        raise ValidationError(field, f"unknown {field.replace('_', ' ')} {list(where.values())[-1]!r}")
    return row


def company(session: Session, code: str) -> Company:
    result: Company = _one(session, Company, "company", code=code)
    return result


def create_company(session: Session, code: str, name: str, base_currency: str) -> Company:
    row = Company(code=code, name=name, base_currency=check_currency(base_currency, "base_currency"))
    session.add(row)
    session.flush()
    return row


def create_periods(session: Session, company_code: str, fiscal_year: int, granularity: str) -> list[BudgetPeriod]:
    """Create the fiscal year's periods at ``granularity`` (calendar fiscal year)."""
    if granularity not in GRANULARITIES:
        raise ValidationError("granularity", f"must be one of {', '.join(GRANULARITIES)}")
    comp = company(session, company_code)
    per_year = {"year": 1, "half": 2, "quarter": 4, "month": 12}[granularity]
    months = 12 // per_year
    out = []
    for n in range(1, per_year + 1):
        first_month = (n - 1) * months + 1
        last_month = first_month + months - 1
        code = {
            "year": f"{fiscal_year}",
            "half": f"{fiscal_year}-H{n}",
            "quarter": f"{fiscal_year}-Q{n}",
            "month": f"{fiscal_year}-{n:02d}",
        }[granularity]
        existing = session.scalar(
            select(BudgetPeriod).where(BudgetPeriod.company_id == comp.id, BudgetPeriod.code == code)
        )
        if existing is not None:
            out.append(existing)
            continue
        period = BudgetPeriod(
            company_id=comp.id,
            code=code,
            fiscal_year=fiscal_year,
            granularity=granularity,
            number=n,
            start_date=date(fiscal_year, first_month, 1),
            end_date=date(fiscal_year, last_month, calendar.monthrange(fiscal_year, last_month)[1]),
        )
        session.add(period)
        out.append(period)
    session.flush()
    return out


def create_cost_centre(session: Session, company_code: str, code: str, name: str,
                       parent: str | None = None, manager: str | None = None) -> CostCentre:
    comp = company(session, company_code)
    parent_id = None
    if parent:
        parent_id = _one(session, CostCentre, "parent", company_id=comp.id, code=parent).id
    row = CostCentre(company_id=comp.id, code=code, name=name, parent_id=parent_id, manager=manager)
    session.add(row)
    session.flush()
    return row


def create_item(session: Session, company_code: str, code: str, name: str,
                account_code: str | None = None, parent: str | None = None) -> BudgetItem:
    comp = company(session, company_code)
    parent_id = None
    if parent:
        parent_id = _one(session, BudgetItem, "parent", company_id=comp.id, code=parent).id
    row = BudgetItem(company_id=comp.id, code=code, name=name, account_code=account_code, parent_id=parent_id)
    session.add(row)
    session.flush()
    return row


def create_project(session: Session, company_code: str, code: str, name: str) -> Project:
    comp = company(session, company_code)
    row = Project(company_id=comp.id, code=code, name=name)
    session.add(row)
    session.flush()
    return row


def add_rate(session: Session, from_currency: str, to_currency: str, on: date, rate: Decimal | str) -> ExchangeRate:
    if isinstance(rate, (bool, float)):
        raise ValidationError("rate", "send rates as strings or Decimals, not floating point")
    value = parse_decimal(rate, "rate", places=10, what="rate")
    if value <= 0:
        raise ValidationError("rate", "must be a positive number")
    # The column is Numeric(20, 10): PostgreSQL would round a finer rate silently, and
    # conversions must use exactly the rate that is stored.
    if value != value.quantize(Decimal("1e-10")) or value >= Decimal(10) ** 10:
        raise ValidationError("rate", "at most 10 decimal places and below 10,000,000,000")
    row = ExchangeRate(
        from_currency=check_currency(from_currency, "from_currency"),
        to_currency=check_currency(to_currency, "to_currency"),
        effective_date=on,
        rate=value,
    )
    session.add(row)
    session.flush()
    return row


def create_line(
    session: Session,
    *,
    company_code: str,
    period_code: str,
    cost_centre: str,
    item: str,
    project: str | None = None,
    currency: str | None = None,
    parent_id: int | None = None,
    parent_code: str | None = None,
    owner: str | None = None,
    name: str | None = None,
    code: str | None = None,
) -> BudgetLine:
    """Create a budget line (with a zero balance); its budget comes from budget journals."""
    comp = company(session, company_code)
    period = _one(session, BudgetPeriod, "period", company_id=comp.id, code=period_code)
    cc = _one(session, CostCentre, "cost_centre", company_id=comp.id, code=cost_centre)
    it = _one(session, BudgetItem, "item", company_id=comp.id, code=item)
    if not cc.active:
        raise ValidationError("cost_centre", f"cost centre {cost_centre!r} is inactive")
    if not it.active:
        raise ValidationError("item", f"budget item {item!r} is inactive")
    proj = _one(session, Project, "project", company_id=comp.id, code=project) if project else None
    parent = None
    if parent_code is not None:
        parent = session.scalar(select(BudgetLine).where(BudgetLine.code == parent_code))
        if parent is None:
            raise ValidationError("parent", f"unknown budget line {parent_code!r}")
    elif parent_id is not None:
        parent = session.get(BudgetLine, parent_id)
        if parent is None:
            raise ValidationError("parent", f"unknown budget line {parent_id}")
    cur = check_currency(currency or comp.base_currency)
    if parent is not None and parent.currency != cur:
        raise ValidationError("currency", f"must match the parent line's currency {parent.currency}")
    skey = series_key(comp.id, cc.id, it.id, proj.id if proj else None)
    dims_key = f"{skey}|{period.id}"
    if session.scalar(select(BudgetLine.id).where(BudgetLine.dims_key == dims_key)) is not None:
        raise Conflict("a budget line for these dimensions and period exists already", field="line")
    label = code or "/".join(
        x for x in (comp.code, period.code, cc.code, it.code, proj.code if proj else None) if x
    )
    line = BudgetLine(
        code=label,
        name=name or f"{cc.name} · {it.name}" + (f" · {proj.name}" if proj else ""),
        company_id=comp.id,
        period_id=period.id,
        cost_centre_id=cc.id,
        item_id=it.id,
        project_id=proj.id if proj else None,
        series_key=skey,
        dims_key=dims_key,
        fiscal_year=period.fiscal_year,
        granularity=period.granularity,
        period_start=period.start_date,
        period_end=period.end_date,
        parent_id=parent.id if parent else None,
        currency=cur,
        status=LineStatus.OPEN.value,
        owner=owner,
    )
    session.add(line)
    session.flush()
    line.path = f"{parent.path}/{line.id}" if parent else str(line.id)
    session.execute(
        insert(BudgetBalance).values(
            line_id=line.id, budget=Decimal(0), pre_encumbered=Decimal(0),
            encumbered=Decimal(0), actual=Decimal(0), updated_at=utcnow(),
        )
    )
    session.flush()
    return line


def set_status(session: Session, line_id: int, status: str) -> BudgetLine:
    line = session.get(BudgetLine, line_id)
    if line is None:
        raise NotFound(f"no budget line {line_id}", field="line_id")
    try:
        line.status = LineStatus(status).value
    except ValueError:
        raise ValidationError("status", "must be open, hold or closed") from None
    session.flush()
    return line


def parse_thresholds(raw: Sequence[dict[str, Any]] | None, field: str = "thresholds") -> list[dict[str, Any]]:
    if raw is None:
        return [{"percent": "90", "action": "warn", "notify": True},
                {"percent": "100", "action": "block", "notify": True}]
    out = []
    for i, t in enumerate(raw):
        try:
            pct = parse_decimal(t["percent"], f"{field}[{i}].percent", places=4, what="percentage")
            if pct <= 0:
                raise ValidationError(f"{field}[{i}].percent", "must be greater than zero")
        except KeyError:
            raise ValidationError(f"{field}[{i}].percent", "is required") from None
        try:
            action = Action(t.get("action", "warn")).value
        except ValueError:
            raise ValidationError(f"{field}[{i}].action", "must be info, warn or block") from None
        if action == Action.BLOCK.value and pct > 100:
            # Control blocks at 100 % plus the tolerance; a block threshold above 100 %
            # would read as an allowance it does not give.
            raise ValidationError(
                f"{field}[{i}].percent",
                "a block threshold above 100 is not an allowance: set tolerance_percent instead",
            )
        out.append({"percent": str(pct), "action": action, "notify": bool(t.get("notify", False))})
    return sorted(out, key=lambda t: Decimal(t["percent"]))


def lock_line(session: Session, line_id: int) -> BudgetLine:
    """The line, locked against other rule changes (PostgreSQL ``FOR NO KEY UPDATE``:
    reservations, which only reference the line, are not held up; SQLite writers are
    serialised by ``BEGIN IMMEDIATE`` already)."""
    line = session.scalar(
        select(BudgetLine).where(BudgetLine.id == line_id).with_for_update(key_share=True)
    )
    if line is None:
        raise NotFound(f"no budget line {line_id}", field="line_id")
    return line


def rule_values(
    line: BudgetLine,
    *,
    mode: str,
    tolerance_percent: Decimal | str | None = None,
    tolerance_amount: Decimal | str | None = None,
    thresholds: Sequence[dict[str, Any]] | None = None,
    basis: str = "period",
    subtree: bool = True,
) -> dict[str, Any]:
    """Check a rule for ``line`` and normalise it: exactly the values :func:`set_rule` stores."""
    try:
        m = Mode(mode)
    except ValueError:
        raise ValidationError("mode", "must be hard, soft, track or none") from None
    try:
        b = Basis(basis)
    except ValueError:
        raise ValidationError("basis", "must be period, cumulative, annual or overall") from None
    # Percentages carry up to four decimals (the column's scale); a stored value comes
    # back as a Decimal and is checked by value.
    tp = None if tolerance_percent in (None, "") else parse_decimal(
        tolerance_percent, "tolerance_percent", places=4, signed=True, what="percentage")
    ta = None if tolerance_amount in (None, "") else parse_amount(tolerance_amount, line.currency, "tolerance_amount")
    # The column is Numeric(7, 4): 1000 itself does not fit.
    if tp is not None and (tp < 0 or tp >= 1000):
        raise ValidationError("tolerance_percent", "must be at least 0 and below 1000")
    if ta is not None and ta < 0:
        raise ValidationError("tolerance_amount", "must not be negative")
    return {"mode": m.value, "basis": b.value, "subtree": bool(subtree), "tolerance_percent": tp,
            "tolerance_amount": ta, "thresholds": parse_thresholds(thresholds)}


def own_rule(session: Session, line_id: int) -> ControlRuleRow | None:
    """The rule set on the line itself (None: it inherits or gets the default)."""
    return session.scalar(select(ControlRuleRow).where(ControlRuleRow.line_id == line_id))


def set_rule(
    session: Session,
    line_id: int,
    *,
    mode: str,
    actor: str,
    tolerance_percent: Decimal | str | None = None,
    tolerance_amount: Decimal | str | None = None,
    thresholds: Sequence[dict[str, Any]] | None = None,
    basis: str = "period",
    subtree: bool = True,
    approved_by: str | None = None,
) -> ControlRuleRow:
    """Set (or replace) the control rule on a line.

    Any rule change that leaves the line (or a line below it) under hard control
    while it is already over budget beyond the tolerance is refused: the invariant
    ``available >= -tolerance`` must hold from the moment the rule exists. That is
    not only ``mode="hard"``: ``subtree=False`` hands the lines below back to the
    (hard) default, and a smaller tolerance tightens an existing hard rule.

    ``actor`` configured the rule, ``approved_by`` approved it (four eyes, see
    :mod:`yinfin_flow.budget.rule_changes`; None when applied without approval). Every
    change raises the rule's ``version``, and a change still pending on the line
    becomes ``stale``: it was proposed against a rule that is gone.
    """
    line = lock_line(session, line_id)
    values = rule_values(line, mode=mode, tolerance_percent=tolerance_percent,
                         tolerance_amount=tolerance_amount, thresholds=thresholds,
                         basis=basis, subtree=subtree)
    row = own_rule(session, line_id)
    if row is None:
        row = ControlRuleRow(line_id=line_id, version=1)
        session.add(row)
    else:
        row.version += 1
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_by, row.updated_at, row.approved_by = actor, utcnow(), approved_by
    session.flush()
    session.execute(
        update(RuleChange)
        .where(RuleChange.line_id == line_id, RuleChange.status == "pending")
        .values(status="stale", decided_at=utcnow(),
                comment=f"superseded: the line's rule changed (version {row.version})")
    )
    _refuse_if_over(session, line)
    return row


def _refuse_if_over(session: Session, line: BudgetLine) -> None:
    affected = [line]
    prefix = f"{line.path}/"
    affected += list(session.scalars(select(BudgetLine).where(BudgetLine.path.startswith(prefix))))
    ctx = ControlContext(session)
    ctx.prepare(affected)
    for ln in affected:
        rule = ctx.effective_rule(ln)
        if rule.mode is not Mode.HARD:
            continue
        b = ctx.buckets(ln.id, rule.basis)
        if b.available < -rule.tolerance(b.budget):
            raise Conflict(
                f"{ln.code} is already over budget ({b.available} available): "
                "raise its budget before making control hard",
                line=ln.code, field="mode", breakdown=b.to_dict(),
            )
