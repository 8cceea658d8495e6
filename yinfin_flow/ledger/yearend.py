"""Year-end: roll open commitments (encumbrances) into the next fiscal year.

For every open reservation of ``year`` that still holds something (an approved PO
not yet invoiced, say): release and close it in the old year's line, then reserve
the same amount in the matching line of the next year (same company, cost centre,
item and project; the same month, or the year line) and move it on to the stage
it was in. With ``with_budget`` the budget travels too (carry-forward, 预算结转):
the new line and every line above it in the new year receive what was rolled, so the
reservation fits wherever the new year's tree has no budget of its own yet; the old
line and its ancestors give up as much of it as they have left (never below zero and
never below what they still consume: a soft, tolerance, override or cumulative line
may have committed more than its budget, which must not stop the roll). All through
the budget service, in the caller's one transaction: all rolled or none.

The new reservation's ``document_line`` is ``<ref>@<year+1>``; :func:`form_ref` gives
the form's ref back (the engine's postings find the rolled reservation by it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.budget.control import path_ids
from yinfin_flow.budget.results import form_ref
from yinfin_flow.budget.service import Budgets, LineRequest
from yinfin_flow.budget.setup import company as company_by_code
from yinfin_flow.db.models import BudgetBalance, BudgetLine, Reservation
from yinfin_flow.domain.budget import NegativeBudget, NoBudgetLine, OverBudget

ZERO = Decimal(0)


@dataclass
class RolledCommitment:
    reservation_id: int
    document: str
    from_line: str
    to_line: str
    amount: Decimal
    new_reservation_id: int
    budget_out: Decimal = ZERO  # what the old line gave up (with_budget)
    budget_in: Decimal = ZERO  # what the new line (and each line above it) received

    def to_dict(self) -> dict[str, Any]:
        return {"reservation_id": self.reservation_id, "document": self.document,
                "from_line": self.from_line, "to_line": self.to_line, "amount": str(self.amount),
                "new_reservation_id": self.new_reservation_id, "budget_out": str(self.budget_out),
                "budget_in": str(self.budget_in)}


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
        out = into = ZERO
        if with_budget:
            doc = f"{res.document_type}:{res.document_id}"
            for lid in reversed(path_ids(line)):  # the line itself first, then its ancestors
                give = _can_give(session, lid, amount)
                if give > 0:
                    try:  # a cumulative basis may still refuse the cut: the line then keeps its budget
                        with session.begin_nested():
                            budgets.adjust(f"{k}:budget-out:{lid}", lid, -give, actor=actor,
                                           reason=f"carry-forward of {doc} to {year + 1}")
                    except (OverBudget, NegativeBudget):
                        give = ZERO
                if lid == line.id:
                    out = give
            for lid in reversed(path_ids(new_line)):
                budgets.adjust(f"{k}:budget-in:{lid}", lid, amount, actor=actor,
                               reason=f"carry-forward of {doc} from {year}")
            into = amount
        reserved = budgets.reserve(
            f"{k}:reserve", (res.document_type, res.document_id),
            [LineRequest(ref=f"{form_ref(res.document_line)}@{year + 1}", amount=amount, currency=line.currency,
                         budget_date=new_line.period_start, line_id=new_line.id)],
            actor=actor, step="yearend",
        )
        new_id = reserved.reservations[0].id
        if enc > 0:
            budgets.advance(f"{k}:encumber", new_id, "encumbered", enc, actor=actor, step="yearend")
        result.rolled.append(RolledCommitment(
            res.id, f"{res.document_type}:{res.document_id}", line.code, new_line.code, amount, new_id,
            out, into))
    return result


def _can_give(session: Session, line_id: int, amount: Decimal) -> Decimal:
    """How much of ``amount`` a closing year's line can give up: not below zero and not
    below what it (and its subtree) still consumes, which a soft, tolerance, override or
    cumulative line may have taken past its budget."""
    bal = session.execute(select(BudgetBalance.budget, BudgetBalance.pre_encumbered, BudgetBalance.encumbered,
                                 BudgetBalance.actual).where(BudgetBalance.line_id == line_id)).one()
    available = bal.budget - bal.pre_encumbered - bal.encumbered - bal.actual
    return max(ZERO, min(amount, bal.budget, available))
