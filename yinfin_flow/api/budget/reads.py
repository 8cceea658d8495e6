"""Read models for the budget API: lines with their dimensions and buckets, trees, entries.

Plain queries that shape rows into the dicts the response schemas dump; nothing
here writes. Control questions (effective rule, controlling lines) go through
:class:`~yinfin_flow.budget.control.ControlContext`, the same code the service
uses, so the API shows exactly what a reservation would be checked against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from yinfin_flow.budget.control import ControlContext, path_ids
from yinfin_flow.db.models import (
    BudgetAlert,
    BudgetBalance,
    BudgetEntry,
    BudgetItem,
    BudgetLine,
    BudgetMovement,
    BudgetPeriod,
    Company,
    CostCentre,
    Project,
)
from yinfin_flow.domain.budget import Buckets, ControlRule
from yinfin_flow.domain.errors import NotFound


@dataclass(frozen=True)
class Filters:
    code: str | None = None
    company: str | None = None
    period: str | None = None
    cost_centre: str | None = None
    item: str | None = None
    project: str | None = None
    status: str | None = None


def _lines_query() -> Select[Any]:
    return (
        select(
            BudgetLine,
            BudgetBalance,
            Company.code.label("company"),
            BudgetPeriod.code.label("period"),
            CostCentre.code.label("cost_centre"),
            BudgetItem.code.label("item"),
            Project.code.label("project"),
        )
        .join(BudgetBalance, BudgetBalance.line_id == BudgetLine.id)
        .join(Company, Company.id == BudgetLine.company_id)
        .join(BudgetPeriod, BudgetPeriod.id == BudgetLine.period_id)
        .join(CostCentre, CostCentre.id == BudgetLine.cost_centre_id)
        .join(BudgetItem, BudgetItem.id == BudgetLine.item_id)
        .outerjoin(Project, Project.id == BudgetLine.project_id)
    )


def _filtered(stmt: Select[Any], f: Filters) -> Select[Any]:
    for value, column in (
        (f.code, BudgetLine.code),
        (f.company, Company.code),
        (f.period, BudgetPeriod.code),
        (f.cost_centre, CostCentre.code),
        (f.item, BudgetItem.code),
        (f.project, Project.code),
        (f.status, BudgetLine.status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


def buckets_dict(b: Buckets) -> dict[str, Any]:
    return {"budget": b.budget, "pre_encumbered": b.pre_encumbered, "encumbered": b.encumbered,
            "actual": b.actual, "available": b.available}


def _balance_buckets(bal: BudgetBalance) -> Buckets:
    return Buckets(bal.budget, bal.pre_encumbered, bal.encumbered, bal.actual)


def _line_dict(row: Any) -> dict[str, Any]:
    line: BudgetLine = row[0]
    return {
        "id": line.id,
        "code": line.code,
        "name": line.name,
        "currency": line.currency,
        "status": line.status,
        "owner": line.owner,
        "parent_id": line.parent_id,
        "dimensions": {
            "company": row.company,
            "period": row.period,
            "fiscal_year": line.fiscal_year,
            "granularity": line.granularity,
            "period_start": line.period_start,
            "period_end": line.period_end,
            "cost_centre": row.cost_centre,
            "item": row.item,
            "project": row.project,
        },
        "buckets": buckets_dict(_balance_buckets(row[1])),
    }


def page_info(page: int, page_size: int, total: int) -> dict[str, int]:
    return {"page": page, "page_size": page_size, "total": total,
            "pages": max(1, math.ceil(total / page_size))}


def list_lines(session: Session, f: Filters, page: int, page_size: int) -> dict[str, Any]:
    """One page of lines matching ``f`` (ordered by id) and the page information."""
    stmt = _filtered(_lines_query(), f)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.execute(
        stmt.order_by(BudgetLine.id).limit(page_size).offset((page - 1) * page_size)
    ).all()
    return {"items": [_line_dict(r) for r in rows], "pagination": page_info(page, page_size, total)}


def lines_by_id(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    rows = session.execute(_lines_query().where(BudgetLine.id.in_(ids))).all()
    by_id = {r[0].id: _line_dict(r) for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def _rule_dict(rule: ControlRule, line_id: int) -> dict[str, Any]:
    return {
        "mode": rule.mode.value,
        "basis": rule.basis.value,
        "tolerance_percent": None if rule.tolerance_percent is None else str(rule.tolerance_percent),
        "tolerance_amount": rule.tolerance_amount,
        "thresholds": [t.to_dict() for t in rule.thresholds],
        "subtree": rule.subtree,
        "defined_on_line_id": rule.line_id,
        "inherited": rule.line_id != line_id,
    }


def line_detail(session: Session, line_id: int, default_rule: ControlRule) -> dict[str, Any]:
    """A line with its dimensions, buckets, effective rule and every controlling line."""
    row = session.execute(_lines_query().where(BudgetLine.id == line_id)).first()
    if row is None:
        raise NotFound(f"no budget line {line_id}", field="line_id", line_id=line_id)
    line: BudgetLine = row[0]
    out = _line_dict(row)
    ctx = ControlContext(session, default_rule)
    ctx.prepare([line], lock=False)
    controlling = ctx.controlling(line)
    out["path"] = path_ids(line)
    out["rule"] = _rule_dict(controlling[0][1], line.id)
    out["controlled_by"] = [
        {
            "line_id": cid,
            "line": ctx.lines[cid].code,
            "mode": rule.mode.value,
            "basis": rule.basis.value,
            "own_line": cid == line.id,
            "currency": ctx.lines[cid].currency,
            "buckets": buckets_dict(ctx.buckets(cid, rule.basis)),
        }
        for cid, rule in controlling
    ]
    return out


def rule_of(session: Session, line_id: int, default_rule: ControlRule) -> dict[str, Any]:
    line = session.get(BudgetLine, line_id)
    if line is None:
        raise NotFound(f"no budget line {line_id}", field="line_id", line_id=line_id)
    ctx = ControlContext(session, default_rule)
    ctx.prepare([line], lock=False)
    return _rule_dict(ctx.effective_rule(line), line.id)


def tree(session: Session, company: str | None, period: str | None) -> dict[str, Any]:
    """Lines as a forest (parents before children); a filtered-out parent makes its
    matching children roots."""
    rows = session.execute(
        _filtered(_lines_query(), Filters(company=company, period=period)).order_by(BudgetLine.id)
    ).all()
    nodes: dict[int, dict[str, Any]] = {}
    parents: dict[int, int | None] = {}
    for r in rows:
        line: BudgetLine = r[0]
        nodes[line.id] = {
            "id": line.id, "code": line.code, "name": line.name, "currency": line.currency,
            "status": line.status, "buckets": buckets_dict(_balance_buckets(r[1])), "children": [],
        }
        parents[line.id] = line.parent_id
    roots = []
    for line_id, node in nodes.items():
        parent = parents[line_id]
        if parent is not None and parent in nodes:
            nodes[parent]["children"].append(node)
        else:
            roots.append(node)
    return {"roots": roots}


def require_line(session: Session, line_id: int, field: str = "line_id") -> BudgetLine:
    line = session.get(BudgetLine, line_id)
    if line is None:
        raise NotFound(f"no budget line {line_id}", field=field, line_id=line_id)
    return line


def entries(session: Session, line_id: int, page: int, page_size: int) -> dict[str, Any]:
    """A line's budget entries, newest first, with the movement each belongs to."""
    require_line(session, line_id)
    total = session.scalar(
        select(func.count()).select_from(BudgetEntry).where(BudgetEntry.line_id == line_id)
    ) or 0
    m = aliased(BudgetMovement)
    rows = session.execute(
        select(BudgetEntry, m)
        .join(m, m.id == BudgetEntry.movement_id)
        .where(BudgetEntry.line_id == line_id)
        .order_by(BudgetEntry.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    items = [
        {
            "id": e.id, "movement_id": e.movement_id, "kind": mv.kind, "bucket": e.bucket,
            "amount": e.amount, "currency": e.currency, "reservation_id": e.reservation_id,
            "document_type": mv.document_type, "document_id": mv.document_id, "step": mv.step,
            "actor": mv.actor, "reason": mv.reason, "created_at": e.created_at,
        }
        for e, mv in rows
    ]
    return {"items": items, "pagination": page_info(page, page_size, total)}


def alerts(session: Session, *, line_id: int | None, level: str | None, notify: bool | None,
           page: int, page_size: int) -> dict[str, Any]:
    """Warnings and records control produced, newest first."""
    stmt = select(BudgetAlert, BudgetLine.code, BudgetLine.currency).join(
        BudgetLine, BudgetLine.id == BudgetAlert.line_id
    )
    if line_id is not None:
        stmt = stmt.where(BudgetAlert.line_id == line_id)
    if level is not None:
        stmt = stmt.where(BudgetAlert.level == level)
    if notify is not None:
        stmt = stmt.where(BudgetAlert.notify == notify)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.execute(
        stmt.order_by(BudgetAlert.id.desc()).limit(page_size).offset((page - 1) * page_size)
    ).all()
    items = [
        {
            "id": a.id, "movement_id": a.movement_id, "line_id": a.line_id, "line": code,
            "currency": currency, "mode": a.mode, "level": a.level,
            "usage_percent": None if a.usage_percent is None else str(a.usage_percent),
            "asked": a.asked, "available_after": a.available_after, "notify": a.notify,
            "message": a.message, "created_at": a.created_at,
        }
        for a, code, currency in rows
    ]
    return {"items": items, "pagination": page_info(page, page_size, total)}
