"""Year-end: roll open commitments (encumbrances) into the next fiscal year.

For every open reservation of ``year`` that still holds something (an approved PO
not yet invoiced, say): release and close it in the old year's line, then reserve
the same amount in the matching line of the next year (same company, cost centre,
item and project; the same month, or the year line) and move it on to the stage
it was in. With ``with_budget`` the budget travels too: the old line gives up what
was rolled, the new line receives it (carry-forward, 预算结转). All through the
budget service, in the caller's one transaction: all rolled or none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.budget.service import Budgets, LineRequest
from yinfin_flow.budget.setup import company as company_by_code
from yinfin_flow.db.models import BudgetLine, Reservation
from yinfin_flow.domain.budget import NoBudgetLine


@dataclass
class RolledCommitment:
    reservation_id: int
    document: str
    from_line: str
    to_line: str
    amount: Decimal
    new_reservation_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"reservation_id": self.reservation_id, "document": self.document,
                "from_line": self.from_line, "to_line": self.to_line, "amount": str(self.amount),
                "new_reservation_id": self.new_reservation_id}


@dataclass
class RollForward:
    year: int
    with_budget: bool
    rolled: list[RolledCommitment] = field(default_factory=list)


def _shifted(d: date) -> date:
    try:
        return d.replace(year=d.year + 1)
    except ValueError:  # 29 February
        return d.replace(year=d.year + 1, day=28)


def next_year_line(session: Session, line: BudgetLine) -> BudgetLine:
    """The next year's line of the same series: same granularity and month, else the finest covering it."""
    target = _shifted(line.period_start)
    candidates = list(session.scalars(select(BudgetLine).where(
        BudgetLine.series_key == line.series_key, BudgetLine.fiscal_year == line.fiscal_year + 1,
        BudgetLine.period_start <= target, BudgetLine.period_end >= target)))
    same = [c for c in candidates if c.granularity == line.granularity]
    pick = same or sorted(candidates, key=lambda c: (c.period_end - c.period_start, c.id))
    if not pick:
        raise NoBudgetLine(
            f"no {line.fiscal_year + 1} budget line to roll {line.code} into: create next year's lines first",
            field="year", line=line.code,
        )
    return pick[0]


def roll_forward(
    session: Session, company: str, year: int, *, with_budget: bool, actor: str, key: str | None = None,
) -> RollForward:
    """Roll every open commitment of ``company``'s fiscal ``year`` into ``year + 1``.

    Idempotent per ``key`` (default ``yearend:<company>:<year>``): each reservation's
    movements are keyed by it, so a rerun after success finds nothing open to roll.
    """
    comp = company_by_code(session, company)
    key = key or f"yearend:{company}:{year}"
    budgets = Budgets(session)
    result = RollForward(year, with_budget)
    rows = session.execute(
        select(Reservation, BudgetLine)
        .join(BudgetLine, BudgetLine.id == Reservation.line_id)
        .where(BudgetLine.company_id == comp.id, BudgetLine.fiscal_year == year,
               Reservation.status == "open")
        .order_by(Reservation.id)
    ).all()
    for res, line in rows:
        pre, enc = res.pre_encumbered, res.encumbered
        amount = pre + enc
        if amount <= 0:
            continue
        new_line = next_year_line(session, line)
        k = f"{key}:{res.id}"
        budgets.release(f"{k}:release", [res.id], actor=actor, close=True, step="yearend",
                        reason=f"rolled forward to {year + 1}")
        if with_budget:
            budgets.adjust(f"{k}:budget-out", line.id, -amount, actor=actor,
                           reason=f"carry-forward of {res.document_type}:{res.document_id} to {year + 1}")
            budgets.adjust(f"{k}:budget-in", new_line.id, amount, actor=actor,
                           reason=f"carry-forward of {res.document_type}:{res.document_id} from {year}")
        reserved = budgets.reserve(
            f"{k}:reserve", (res.document_type, res.document_id),
            [LineRequest(ref=f"{res.document_line}@{year + 1}", amount=amount, currency=line.currency,
                         budget_date=new_line.period_start, line_id=new_line.id)],
            actor=actor, step="yearend",
        )
        new_id = reserved.reservations[0].id
        if enc > 0:
            budgets.advance(f"{k}:encumber", new_id, "encumbered", enc, actor=actor, step="yearend")
        result.rolled.append(RolledCommitment(
            res.id, f"{res.document_type}:{res.document_id}", line.code, new_line.code, amount, new_id))
    return result
