"""The budget service on both real databases: reserve, move, release, journals, errors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.budget.verify import verify
from yinfin_flow.db.models import BudgetBalance, BudgetEntry, Reservation
from yinfin_flow.domain.budget import OverBudget

from ..factories import line_req, org_in


def bal(db, line_id):
    with db.unit_of_work(readonly=True) as s:
        b = s.get(BudgetBalance, line_id)
        return (b.budget, b.pre_encumbered, b.encumbered, b.actual)


def test_reserve_rolls_up_to_parent_and_verify_is_clean(db):
    org = org_in(db)
    with db.unit_of_work() as s:
        r = Budgets(s).reserve("exp-1", ("expense", "1"), [line_req(org.child_line, "250.00")], actor="amy")
    assert r.reservations[0].pre_encumbered == Decimal("250.00")
    assert bal(db, org.child_line) == (Decimal("600"), Decimal("250"), 0, 0)
    assert bal(db, org.parent_line) == (Decimal("1000"), Decimal("250"), 0, 0)
    with db.unit_of_work(readonly=True) as s:
        assert verify(s) == []


def test_parent_control_blocks_children_together(db):
    org = org_in(db)
    with db.unit_of_work() as s:
        setup.set_rule(s, org.parent_line, mode="hard", actor="cfo", subtree=False)
    with db.unit_of_work() as s:
        Budgets(s).reserve("a", ("expense", "1"), [line_req(org.child_line, "600")], actor="amy")
    with pytest.raises(OverBudget) as err, db.unit_of_work() as s:
        Budgets(s).reserve("b", ("expense", "2"), [line_req(org.sibling_line, "500")], actor="bob")
    assert err.value.details["line_id"] == org.parent_line
    assert err.value.details["available"] == "400.0000"
    assert err.value.details["asked"] == "500.0000" or err.value.details["asked"].startswith("500")


def test_multi_line_request_is_all_or_nothing(db):
    org = org_in(db)
    with pytest.raises(OverBudget), db.unit_of_work() as s:
        Budgets(s).reserve(
            "x", ("expense", "9"),
            [line_req(org.child_line, "100", ref="1"), line_req(org.office_line, "100.01", ref="2")],
            actor="amy",
        )
    assert bal(db, org.child_line)[1] == 0
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Reservation)) == 0


def test_idempotent_reserve_writes_once(db):
    org = org_in(db)
    for _ in range(3):
        with db.unit_of_work() as s:
            r = Budgets(s).reserve("same-key", ("expense", "1"), [line_req(org.child_line, "10")], actor="amy")
    assert r.replayed
    assert bal(db, org.child_line)[1] == Decimal("10")


def test_advance_and_release_liquidate_earlier_stage(db):
    org = org_in(db)
    with db.unit_of_work() as s:
        r = Budgets(s).reserve("po-1", ("procurement", "1"), [line_req(org.child_line, "300")], actor="amy")
    rid = r.reservations[0].id
    with db.unit_of_work() as s:
        Budgets(s).advance("po-1:enc", rid, "encumbered", actor="buyer")
    assert bal(db, org.child_line)[1:] == (0, Decimal("300"), 0)
    with db.unit_of_work() as s:
        Budgets(s).advance("po-1:inv", rid, "actual", "120", actor="ap")
    assert bal(db, org.child_line)[1:] == (0, Decimal("180"), Decimal("120"))
    with db.unit_of_work() as s:
        Budgets(s).release_document("po-1:close", ("procurement", "1"), actor="ap")
    assert bal(db, org.child_line)[1:] == (0, 0, Decimal("120"))
    with db.unit_of_work(readonly=True) as s:
        assert verify(s) == []


def test_entries_are_append_only_in_the_database(db):
    org = org_in(db)
    with pytest.raises(Exception, match="append-only"), db.unit_of_work() as s:
        s.execute(text("UPDATE budget_entries SET amount = 0"))
    with pytest.raises(Exception, match="append-only"), db.unit_of_work() as s:
        s.execute(text("DELETE FROM budget_entries"))
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(BudgetEntry)) == 4
    assert org


def test_balances_never_pass_the_largest_amount(db):
    """Eleven near-maximal adjustments would overflow SQLite's scaled integers: refused."""
    from yinfin_flow.domain.errors import ValidationError

    org = org_in(db)
    big = "99999999999999.99"
    with pytest.raises(ValidationError) as err:
        for i in range(11):
            with db.unit_of_work() as s:
                Budgets(s).adjust(f"big-{i}", org.office_line, big, actor="cfo", reason="too much")
    assert err.value.details["field"] == "amount"
    with db.unit_of_work(readonly=True) as s:
        assert verify(s) == []
        assert s.get(BudgetBalance, org.office_line).budget < Decimal(10) ** 14


def test_a_request_of_many_lines_under_one_parent_rolls_up_exactly(db):
    """Seven lines locked and written at once (ids past the scalar variant, as array literals)."""
    org = org_in(db)
    with db.unit_of_work() as s:
        lines = []
        for i in range(6):
            setup.create_item(s, "ACME", f"X{i}", f"Extra {i}")
            ln = setup.create_line(s, company_code="ACME", period_code="2026-01", cost_centre="RD-APP",
                                   item=f"X{i}", parent_id=org.parent_line)
            Budgets(s).adjust(None, ln.id, "10", actor="cfo", reason="budget", kind="original")
            lines.append(ln.id)
    asks = [line_req(x, f"1.{i}7", ref=f"r{i}") for i, x in enumerate([*lines, org.child_line])]
    with db.unit_of_work() as s:
        r = Budgets(s).reserve("many", ("expense", "m"), asks, actor="amy")
    assert [v.line_id for v in r.reservations] == [*lines, org.child_line]
    assert [v.amount for v in r.reservations] == [Decimal(f"1.{i}7") for i in range(7)]
    for i, x in enumerate(lines):
        assert bal(db, x) == (Decimal("10"), Decimal(f"1.{i}7"), 0, 0)
    assert bal(db, org.parent_line)[1] == sum(Decimal(f"1.{i}7") for i in range(7))
    with db.unit_of_work(readonly=True) as s:
        assert verify(s) == []
        checks = Budgets(s).recheck([v.id for v in r.reservations])  # seven reservation ids at once
        preview = Budgets(s).preview(asks)
    assert {c.line_id for c in checks} == {*lines, org.child_line, org.parent_line}
    assert {c.line_id for c in preview} == {*lines, org.child_line, org.parent_line}
    assert not any(c.blocked for c in [*checks, *preview])


def test_an_amount_in_the_line_currency_is_kept_at_its_minor_units(db):
    org = org_in(db)
    with db.unit_of_work() as s:
        r = Budgets(s).reserve("cny", ("expense", "c"), [line_req(org.child_line, "12.3")], actor="amy")
    (v,) = r.reservations
    assert (str(v.amount), str(v.source_amount), v.rate) == ("12.30", "12.3", Decimal(1))
    assert bal(db, org.child_line)[1] == Decimal("12.30")
