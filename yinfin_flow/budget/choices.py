"""Which budget lines a person may charge a request line to, searched as they type.

A person charges the lines of their own department and of the departments below it,
in a period that covers the line's date, while the line is open. What reserving an
amount there would do is the preview's answer (:meth:`~.service.Budgets.preview`),
not this module's: here only the choice.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetBalance, BudgetItem, BudgetLine, CostCentre, Project
from yinfin_flow.db.models.org import User


def _departments(session: Session, user_id: str) -> list[int]:
    user = session.get(User, user_id)
    if user is None or user.cost_centre_id is None:
        return []
    rows = session.execute(select(CostCentre.id, CostCentre.parent_id)
                           .where(CostCentre.company_id == user.company_id)).all()
    below: dict[int | None, list[int]] = {}
    for cc_id, parent in rows:
        below.setdefault(parent, []).append(cc_id)
    out, todo = [], [user.cost_centre_id]
    while todo:
        cc = todo.pop()
        out.append(cc)
        todo.extend(below.get(cc, []))
    return out


def chargeable(session: Session, user_id: str, *, on: date, query: str = "",
               limit: int = 20) -> list[dict[str, Any]]:
    """Open lines of the user's department tree covering ``on`` whose cost centre, item,
    project or name contains ``query`` (any case), most specific period first."""
    ccs = _departments(session, user_id)
    if not ccs:
        return []
    stmt = (
        select(BudgetLine, BudgetBalance, CostCentre.code, CostCentre.name, BudgetItem.code,
               BudgetItem.name, Project.code)
        .join(BudgetBalance, BudgetBalance.line_id == BudgetLine.id)
        .join(CostCentre, CostCentre.id == BudgetLine.cost_centre_id)
        .join(BudgetItem, BudgetItem.id == BudgetLine.item_id)
        .outerjoin(Project, Project.id == BudgetLine.project_id)
        .where(BudgetLine.cost_centre_id.in_(ccs), BudgetLine.status == "open",
               BudgetLine.period_start <= on, BudgetLine.period_end >= on)
    )
    words = [w for w in query.strip().lower().split() if w][:5]
    for w in words:
        like = f"%{w}%"
        stmt = stmt.where(or_(CostCentre.code.ilike(like), CostCentre.name.ilike(like),
                              BudgetItem.code.ilike(like), BudgetItem.name.ilike(like),
                              BudgetLine.name.ilike(like), Project.code.ilike(like)))
    stmt = stmt.order_by(BudgetLine.period_start.desc(),
                         CostCentre.code, BudgetItem.code).limit(limit)
    out = []
    for line, bal, cc, cc_name, item, item_name, project in session.execute(stmt).all():
        out.append({
            "id": line.id, "code": line.code, "name": line.name, "currency": line.currency,
            "cost_centre": cc, "cost_centre_name": cc_name, "item": item, "item_name": item_name,
            "project": project, "period_start": line.period_start.isoformat(),
            "period_end": line.period_end.isoformat(),
            "available": bal.budget - bal.pre_encumbered - bal.encumbered - bal.actual,
        })
    return out
