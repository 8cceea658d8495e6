"""``verify``: recompute what the database maintains and compare.

Each check returns :class:`Problem` rows rather than stopping at the first, so
finance sees everything that is wrong at once. Other areas (ledger, audit) add
their own checks to :data:`CHECKS`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import case, func, literal, or_, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetBalance, BudgetEntry, BudgetLine, Reservation
from yinfin_flow.domain.budget import CONSUMING, Bucket, Mode

from .control import ControlContext, path_ids


@dataclass(frozen=True)
class Problem:
    check: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.message}"


def balances_match_entries(session: Session) -> list[Problem]:
    """Each balance equals its entries: own budget; consumption summed over the subtree."""
    own: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for line_id, bucket, total in session.execute(
        select(BudgetEntry.line_id, BudgetEntry.bucket, func.sum(BudgetEntry.amount)).group_by(
            BudgetEntry.line_id, BudgetEntry.bucket
        )
    ):
        own[(line_id, bucket)] = Decimal(total)
    lines = {ln.id: ln for ln in session.scalars(select(BudgetLine))}
    expected: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for (line_id, bucket), total in own.items():
        if bucket == Bucket.BUDGET.value:
            expected[(line_id, bucket)] += total
        else:
            for anc in path_ids(lines[line_id]):
                expected[(anc, bucket)] += total
    problems = []
    for bal in session.scalars(select(BudgetBalance)):
        for bucket in ("budget", *(b.value for b in CONSUMING)):
            want = expected[(bal.line_id, bucket)]
            got = getattr(bal, bucket)
            if want != got:
                problems.append(
                    Problem("balances", lines[bal.line_id].code,
                            f"{bucket} is {got} but its entries sum to {want}")
                )
    return problems


def reservations_match_entries(session: Session) -> list[Problem]:
    """Each reservation's stages equal its entries; closed ones hold nothing; none negative.

    The comparison runs in the database, which returns only the reservations that
    fail it: loading every reservation took most of a minute at a million entries.
    """
    sums = (
        select(
            BudgetEntry.reservation_id.label("id"),
            *(
                # NULL, not 0, where a reservation has no entry in a bucket (as before)
                func.sum(case((BudgetEntry.bucket == b.value, BudgetEntry.amount))).label(b.value)
                for b in CONSUMING
            ),
        )
        .where(BudgetEntry.reservation_id.isnot(None))
        .group_by(BudgetEntry.reservation_id)
        .subquery()
    )
    zero = literal(Decimal(0), Reservation.pre_encumbered.type)
    stages = [(getattr(Reservation, b.value), sums.c[b.value]) for b in CONSUMING]
    suspects = session.execute(
        select(Reservation, *(total for _, total in stages))
        .outerjoin(sums, sums.c.id == Reservation.id)
        .where(or_(
            *(held != func.coalesce(total, zero) for held, total in stages),
            (Reservation.status == "closed")
            & ((Reservation.pre_encumbered != zero) | (Reservation.encumbered != zero)),
            *(held < zero for held, _ in stages),
        ))
        .order_by(Reservation.id)
    )
    problems = []
    for res, *totals in suspects:
        for b, total in zip(CONSUMING, totals, strict=True):
            summed = Decimal(total) if total is not None else Decimal(0)
            if getattr(res, b.value) != summed:
                problems.append(Problem("reservations", f"reservation {res.id}",
                                        f"{b.value} is {getattr(res, b.value)} but entries sum to {summed}"))
        if res.status == "closed" and (res.pre_encumbered or res.encumbered):
            problems.append(Problem("ended_requests_hold_nothing", f"reservation {res.id}",
                                    f"closed but still holds {res.pre_encumbered + res.encumbered}"))
        if min(res.pre_encumbered, res.encumbered, res.actual) < 0:
            problems.append(Problem("reservations", f"reservation {res.id}", "a stage holds a negative amount"))
    return problems


def hard_control_holds(session: Session) -> list[Problem]:
    """Every hard-controlled line: ``available >= -tolerance`` on its rule's basis."""
    lines = list(session.scalars(select(BudgetLine)))
    ctx = ControlContext(session)
    ctx.prepare(lines, lock=False)
    problems = []
    for ln in lines:
        rule = ctx.effective_rule(ln)
        if rule.mode is not Mode.HARD:
            continue
        b = ctx.buckets(ln.id, rule.basis)
        if b.available < -rule.tolerance(b.budget):
            problems.append(Problem("hard_control", ln.code,
                                    f"available {b.available} is below -{rule.tolerance(b.budget)}"))
    return problems


CHECKS: list[Callable[[Session], list[Problem]]] = [
    balances_match_entries,
    reservations_match_entries,
    hard_control_holds,
]


def verify(session: Session) -> list[Problem]:
    problems: list[Problem] = []
    for check in CHECKS:
        problems.extend(check(session))
    return problems
