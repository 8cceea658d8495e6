"""Year-end: open commitments roll into next year's lines, with or without their budget."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models import BudgetBalance, Reservation
from yinfin_flow.domain.budget import NoBudgetLine
from yinfin_flow.ledger.yearend import roll_forward
from yinfin_flow.verify import verify

from ..factories import line_req, org_in


def po_with_commitment(db, next_year_budget="0"):
    org = org_in(db)
    with db.unit_of_work() as s:
        setup.create_periods(s, "ACME", 2027, "month")
        new = setup.create_line(s, company_code="ACME", period_code="2027-01",
                                cost_centre="RD-APP", item="TRAVEL")
        if Decimal(next_year_budget):
            Budgets(s).adjust(None, new.id, next_year_budget, actor="cfo", reason="2027", kind="original")
        r = Budgets(s).reserve("po-1", ("procurement", "1"), [line_req(org.child_line, "200.00")],
                               actor="amy")
        rid = r.reservations[0].id
        Budgets(s).advance("po-1:approved", rid, "encumbered", "150.00", actor="buyer")
    return org, new.id, rid


def buckets(db, line_id):
    with db.unit_of_work(readonly=True) as s:
        b = s.get(BudgetBalance, line_id)
        return (b.budget, b.pre_encumbered, b.encumbered, b.actual)


def test_roll_forward_with_budget_moves_commitment_and_budget(db):
    org, new_line, rid = po_with_commitment(db)
    with db.unit_of_work() as s:
        result = roll_forward(s, "ACME", 2026, with_budget=True, actor="cfo")
    assert [(r.reservation_id, r.amount) for r in result.rolled] == [(rid, Decimal("200.00"))]
    assert buckets(db, org.child_line) == (Decimal("400"), 0, 0, 0)
    assert buckets(db, new_line) == (Decimal("200"), Decimal("50"), Decimal("150"), 0)
    with db.unit_of_work(readonly=True) as s:
        old = s.get(Reservation, rid)
        assert old.status == "closed"
        new = s.scalars(select(Reservation).where(Reservation.line_id == new_line)).one()
        assert (new.document_type, new.document_id) == ("procurement", "1")
        assert verify(s) == []
    # Running year-end again finds nothing open in 2026.
    with db.unit_of_work() as s:
        assert roll_forward(s, "ACME", 2026, with_budget=True, actor="cfo").rolled == []


def test_roll_forward_without_budget_consumes_next_years_budget(db):
    org, new_line, _ = po_with_commitment(db, next_year_budget="1000")
    with db.unit_of_work() as s:
        roll_forward(s, "ACME", 2026, with_budget=False, actor="cfo")
    assert buckets(db, org.child_line) == (Decimal("600"), 0, 0, 0)
    assert buckets(db, new_line) == (Decimal("1000"), Decimal("50"), Decimal("150"), 0)


def test_roll_forward_is_all_or_nothing_when_a_line_is_missing(db):
    org = org_in(db)
    with db.unit_of_work() as s:
        Budgets(s).reserve("po-1", ("procurement", "1"), [line_req(org.child_line, "200.00")], actor="amy")
    with pytest.raises(NoBudgetLine), db.unit_of_work() as s:
        roll_forward(s, "ACME", 2026, with_budget=True, actor="cfo")
    assert buckets(db, org.child_line) == (Decimal("600"), Decimal("200"), 0, 0)
