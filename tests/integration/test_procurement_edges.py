"""Procurement at its edges: a PO the year-end roll carried over, invoices in parts,
a purchase without a supplier; the year-end roll with over-committed lines."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models import BudgetBalance, Reservation
from yinfin_flow.db.models.ledger import JournalLine
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.engine import service
from yinfin_flow.ledger import periods
from yinfin_flow.ledger.yearend import roll_forward

from ..factories import line_req
from .test_engine_documents import approve_all
from .test_engine_support import clean, expense_form, held, state, world

FEB_2027 = datetime(2027, 2, 1, 9, tzinfo=UTC)


def next_year(db, org):
    """2027's months, RD and RD-APP travel lines (no budget), and its books open."""
    with db.unit_of_work() as s:
        setup.create_periods(s, "ACME", 2027, "month")
        parent = setup.create_line(s, company_code="ACME", period_code="2027-01", cost_centre="RD", item="TRAVEL")
        child = setup.create_line(s, company_code="ACME", period_code="2027-01", cost_centre="RD-APP",
                                  item="TRAVEL", parent_id=parent.id)
        periods.open_year(s, "ACME", 2027)
    return parent.id, child.id


def ordered(db, org, amount="1000.00", **form):
    with db.unit_of_work() as s:
        rid = service.submit(s, "procurement", requester="amy", company="ACME", title="laptops",
                             form={**expense_form(org.child_line, amount), "partner": "EMP-amy", **form}).id
    approve_all(db, rid)
    with db.unit_of_work() as s:
        service.perform(s, rid, "issue_po", "buyer")
        service.perform(s, rid, "receive", "buyer")
    return rid


def buckets(db, line_id):
    with db.unit_of_work(readonly=True) as s:
        b = s.get(BudgetBalance, line_id)
        return (b.budget, b.pre_encumbered, b.encumbered, b.actual)


def test_invoicing_a_po_rolled_into_next_year_records_its_actual(db):
    org = world(db)
    parent27, child27 = next_year(db, org)
    rid = ordered(db, org, "500.00")
    with db.unit_of_work() as s:
        roll_forward(s, "ACME", 2026, with_budget=True, actor="cfo")
    assert held(db, child27) == (0, Decimal("500"), 0)
    with db.unit_of_work() as s:
        service.perform(s, rid, "match_invoice", "fay", now=FEB_2027)
    # The invoice consumed the rolled reservation: nothing stays committed.
    assert held(db, child27) == (0, 0, Decimal("500"))
    with db.unit_of_work() as s:
        service.perform(s, rid, "pay", "fay", now=FEB_2027)
    assert state(db, rid) == "closed"
    assert buckets(db, child27) == (Decimal("500"), 0, 0, Decimal("500"))  # spent, not available again
    with db.unit_of_work(readonly=True) as s:
        linked = s.scalars(select(JournalLine.reservation_id).where(JournalLine.reservation_id.isnot(None))).all()
        rolled = s.scalars(select(Reservation.id).where(Reservation.line_id == child27)).one()
        assert linked == [rolled]
    clean(db)


def test_yearend_with_budget_rolls_a_line_committed_past_its_budget(db):
    org = world(db)
    parent27, child27 = next_year(db, org)
    with db.unit_of_work() as s:
        setup.set_rule(s, org.child_line, mode="soft", actor="cfo")  # soft: 700 on a 600 budget is allowed
        rid = Budgets(s).reserve("po-9", ("procurement", "9"), [line_req(org.child_line, "700.00")],
                                 actor="amy").reservations[0].id
        Budgets(s).advance("po-9:po", rid, "encumbered", actor="buyer")
    with db.unit_of_work() as s:
        result = roll_forward(s, "ACME", 2026, with_budget=True, actor="cfo")
    [r] = result.rolled
    assert (r.amount, r.budget_out, r.budget_in) == (Decimal("700.00"), Decimal("600"), Decimal("700.00"))
    assert buckets(db, org.child_line) == (0, 0, 0, 0)  # gave what it had, not below zero
    assert buckets(db, org.parent_line)[0] == Decimal("300")  # the parent gave up the 700 it covered
    # The new year's line and its parent got room for what was carried.
    assert buckets(db, child27) == (Decimal("700.00"), 0, Decimal("700.00"), 0)
    assert buckets(db, parent27) == (Decimal("700.00"), 0, Decimal("700.00"), 0)
    clean(db)


def test_a_procurement_is_invoiced_in_parts_and_closing_releases_the_rest(db):
    org = world(db)
    rid = ordered(db, org, "500.00")
    with db.unit_of_work() as s:
        service.perform(s, rid, "match_invoice", "fay",
                        data={"invoice": "INV-1", "lines": [{"ref": "1", "amount": "200.00"}]})
    assert held(db, org.child_line) == (0, Decimal("300"), Decimal("200"))
    with db.unit_of_work() as s:
        service.perform(s, rid, "match_invoice", "fay",
                        data={"invoice": "INV-2", "lines": [{"ref": "1", "amount": "100.00"}]})
    assert held(db, org.child_line) == (0, Decimal("200"), Decimal("300"))
    with pytest.raises(ValidationError) as err, db.unit_of_work() as s:
        service.perform(s, rid, "match_invoice", "fay",
                        data={"invoice": "INV-2", "lines": [{"ref": "1", "amount": "1.00"}]})
    assert err.value.details["field"] == "data.invoice"
    with db.unit_of_work() as s:
        service.perform(s, rid, "pay", "fay")
    assert state(db, rid) == "closed"
    assert held(db, org.child_line) == (0, 0, Decimal("300"))  # the 200 never invoiced is released
    with db.unit_of_work(readonly=True) as s:
        paid = s.scalars(select(JournalLine.credit).where(JournalLine.credit > 0)).all()
    assert Decimal("300") in paid  # the bank pays what was invoiced, not the order
    clean(db)


def test_a_purchase_without_a_supplier_is_refused_not_booked_to_the_requester(db):
    org = world(db)
    with db.unit_of_work() as s:
        rid = service.submit(s, "procurement", requester="amy", company="ACME", title="chairs",
                             form=expense_form(org.child_line, "100.00")).id
    approve_all(db, rid)
    with db.unit_of_work() as s:
        service.perform(s, rid, "issue_po", "buyer")
        service.perform(s, rid, "receive", "buyer")
    with pytest.raises(ValidationError) as err, db.unit_of_work() as s:
        service.perform(s, rid, "match_invoice", "fay")
    assert err.value.details["field"] == "form.partner"
    assert state(db, rid) == "received"
    with db.unit_of_work() as s:  # the supplier named on the invoice
        service.perform(s, rid, "match_invoice", "fay", data={"partner": "EMP-bob"})
    assert held(db, org.child_line) == (0, 0, Decimal("100"))
    clean(db)
