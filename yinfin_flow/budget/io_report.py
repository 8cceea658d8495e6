"""Budget lines as finance reads them: the tree, the buckets, the rule in force.

One query feeds ``budget show``, ``budget export`` and anything else that lists
lines. Read-only: nothing is locked or written.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import (
    BudgetItem,
    BudgetLine,
    BudgetPeriod,
    Company,
    CostCentre,
    Project,
)
from yinfin_flow.domain.budget import DEFAULT_RULE, Buckets, ControlRule, Mode, stopping_line
from yinfin_flow.domain.errors import NotFound

from .control import ControlContext, path_ids, read_balances

_GRANULARITY_ORDER = {"year": 0, "half": 1, "quarter": 2, "month": 3}


@dataclass(frozen=True, slots=True)
class LineReport:
    """One line with its dimensions, balances and effective control rule."""

    line_id: int
    code: str
    name: str
    company: str
    period: str
    cost_centre: str
    item: str
    project: str | None
    parent_code: str | None
    currency: str
    status: str
    owner: str | None
    depth: int  # 0 for a line whose parent is not in the report
    buckets: Buckets  # budget is the line's own; consumption rolls up its subtree
    rule: ControlRule  # the rule that governs this line (own, inherited or default)
    rule_from: str | None  # code of the line that defines ``rule``; None = shipped default
    basis_buckets: Buckets  # summed over the rule's basis (cumulative, annual…): what control sees
    effective_status: str = "open"  # the most restrictive status on the path (what consumption meets)
    status_from: str | None = None  # code of the line above that sets it; None: the line's own

    @property
    def own_rule(self) -> bool:
        return self.rule_from == self.code


def line_report(
    session: Session,
    *,
    company: str | None = None,
    period: str | None = None,
    year: int | None = None,
    line: str | None = None,
    default_rule: ControlRule = DEFAULT_RULE,
) -> list[LineReport]:
    """Lines matching the filters, parents before their children (depth-first).

    ``line`` (a line code) selects that line and its whole subtree. Unknown
    filter values raise :class:`NotFound` naming the option, so a typo is not
    mistaken for "no budget".
    """
    stmt = (
        select(BudgetLine, Company.code, BudgetPeriod.code, CostCentre.code, BudgetItem.code,
               Project.code)
        .join(Company, Company.id == BudgetLine.company_id)
        .join(BudgetPeriod, BudgetPeriod.id == BudgetLine.period_id)
        .join(CostCentre, CostCentre.id == BudgetLine.cost_centre_id)
        .join(BudgetItem, BudgetItem.id == BudgetLine.item_id)
        .outerjoin(Project, Project.id == BudgetLine.project_id)
    )
    if company is not None:
        if session.scalar(select(Company.id).where(Company.code == company)) is None:
            raise NotFound(f"no company {company!r}", field="company")
        stmt = stmt.where(Company.code == company)
    if period is not None:
        if session.scalar(select(BudgetPeriod.id).where(BudgetPeriod.code == period)) is None:
            raise NotFound(f"no budget period {period!r}", field="period")
        stmt = stmt.where(BudgetPeriod.code == period)
    if year is not None:
        stmt = stmt.where(BudgetLine.fiscal_year == year)
    if line is not None:
        root = session.scalar(select(BudgetLine).where(BudgetLine.code == line))
        if root is None:
            raise NotFound(f"no budget line {line!r}", field="line")
        stmt = stmt.where((BudgetLine.id == root.id) | BudgetLine.path.startswith(f"{root.path}/"))
    rows = session.execute(stmt).all()
    if not rows:
        return []
    lines = [r[0] for r in rows]
    dims = {r[0].id: r[1:] for r in rows}
    by_id = {ln.id: ln for ln in lines}
    parent_codes = _codes(session, {ln.parent_id for ln in lines if ln.parent_id} - set(by_id))
    parent_codes.update({i: ln.code for i, ln in by_id.items()})
    balances = read_balances(session, by_id)
    ctx = ControlContext(session, default_rule)
    ctx.prepare(lines, lock=False)
    rule_codes = _codes(session, {r.line_id for r in ctx.rules.values() if r.line_id})

    children: dict[int | None, list[BudgetLine]] = defaultdict(list)
    for ln in lines:
        children[ln.parent_id if ln.parent_id in by_id else None].append(ln)

    def sort_key(ln: BudgetLine) -> tuple[str, object, int, str]:
        return (dims[ln.id][0], ln.period_start, _GRANULARITY_ORDER.get(ln.granularity, 9), ln.code)

    out: list[LineReport] = []

    def walk(ln: BudgetLine, depth: int) -> None:
        comp, per, cc, item, proj = dims[ln.id]
        rule = ctx.effective_rule(ln)
        stop = stopping_line(path_ids(ln), {i: x.status for i, x in ctx.lines.items()})
        status_from = None
        if stop is not None and stop[0] != ln.id and stop[1].value != ln.status:
            status_from = ctx.lines[stop[0]].code
        out.append(LineReport(
            line_id=ln.id, code=ln.code, name=ln.name, company=comp, period=per,
            cost_centre=cc, item=item, project=proj,
            parent_code=parent_codes.get(ln.parent_id) if ln.parent_id else None,
            currency=ln.currency, status=ln.status, owner=ln.owner, depth=depth,
            buckets=balances.get(ln.id, Buckets()), rule=rule,
            rule_from=rule_codes.get(rule.line_id) if rule.line_id else None,
            basis_buckets=ctx.buckets(ln.id, rule.basis),
            effective_status=stop[1].value if stop is not None else "open", status_from=status_from,
        ))
        for child in sorted(children.get(ln.id, []), key=sort_key):
            walk(child, depth + 1)

    for root_line in sorted(children[None], key=sort_key):
        walk(root_line, 0)
    return out


def _codes(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(BudgetLine.id, BudgetLine.code).where(BudgetLine.id.in_(ids)))
    return {line_id: code for line_id, code in rows}


def usage_percent(b: Buckets) -> Decimal | None:
    """Consumed as a percentage of budget (None when there is no budget)."""
    if b.budget <= 0:
        return None
    return (b.consumed * 100 / b.budget).quantize(Decimal("0.1"))


def describe_rule(rule: ControlRule) -> str:
    """A one-line human description, e.g. ``hard ±5% cumulative 90:warn!,100:block!``."""
    if rule.mode is Mode.NONE:
        return "none"
    parts = [rule.mode.value]
    if rule.tolerance_percent is not None:
        parts.append(f"+{rule.tolerance_percent.normalize():f}%")
    if rule.tolerance_amount is not None:
        parts.append(f"+{rule.tolerance_amount.normalize():f}")
    if rule.basis.value != "period":
        parts.append(rule.basis.value)
    parts.append(",".join(
        f"{t.percent.normalize():f}:{t.action.value}{'!' if t.notify else ''}" for t in rule.thresholds
    ))
    if not rule.subtree:
        parts.append("(this line only)")
    return " ".join(parts)
