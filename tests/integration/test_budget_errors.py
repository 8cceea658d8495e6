"""Every refusal of the budget service, on SQLite and PostgreSQL, and that it wrote nothing.

Each refused call runs inside :func:`refused`, which snapshots every budget table
before and after: a refusal that leaves a movement, entry, reservation, alert or
changed balance behind fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from yinfin_flow.budget import setup
from yinfin_flow.budget.lookup import Dims
from yinfin_flow.budget.service import Budgets, LineRequest
from yinfin_flow.budget.verify import verify
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import (
    BudgetAlert,
    BudgetBalance,
    BudgetEntry,
    BudgetMovement,
    ControlRuleRow,
    Reservation,
)
from yinfin_flow.domain.budget import (
    CurrencyMismatch,
    InsufficientHold,
    LineClosed,
    LineOnHold,
    NegativeBudget,
    NoBudgetLine,
    NoExchangeRate,
    OutsidePeriod,
    OverBudget,
)
from yinfin_flow.domain.errors import DomainError, NotFound, ValidationError

from ..factories import JAN, Org, line_req, org_in

FEB = date(2026, 2, 10)

def snapshot(db: Database) -> tuple[object, ...]:
    with db.unit_of_work(readonly=True) as s:
        counts = tuple(
            s.scalar(select(func.count()).select_from(m))
            for m in (BudgetMovement, BudgetEntry, Reservation, BudgetAlert, ControlRuleRow)
        )
        balances = tuple(
            s.execute(
                select(
                    BudgetBalance.line_id, BudgetBalance.budget, BudgetBalance.pre_encumbered,
                    BudgetBalance.encumbered, BudgetBalance.actual,
                ).order_by(BudgetBalance.line_id)
            ).all()
        )
        holds = tuple(
            s.execute(
                select(Reservation.id, Reservation.pre_encumbered, Reservation.encumbered,
                       Reservation.actual, Reservation.status).order_by(Reservation.id)
            ).all()
        )
    return counts, balances, holds


@contextmanager
def refused(db: Database, error: type[DomainError]) -> Iterator[pytest.ExceptionInfo[DomainError]]:
    """Expect ``error`` from the unit of work in the block, and nothing written."""
    before = snapshot(db)
    with pytest.raises(error) as info:
        yield info
    assert snapshot(db) == before, "a refused call wrote something"


def reserve(db: Database, key: str, *lines: LineRequest, doc: str = "1"):
    with db.unit_of_work() as s:
        return Budgets(s).reserve(key, ("expense", doc), list(lines), actor="amy")


def bal(db: Database, line_id: int) -> tuple[Decimal, ...]:
    with db.unit_of_work(readonly=True) as s:
        b = s.get(BudgetBalance, line_id)
        assert b is not None
        return (b.budget, b.pre_encumbered, b.encumbered, b.actual)


def assert_clean(db: Database) -> None:
    with db.unit_of_work(readonly=True) as s:
        assert [str(p) for p in verify(s)] == []


@pytest.fixture
def org(db: Database) -> Org:
    return org_in(db)


# -- E1 over budget ------------------------------------------------------------------------


def test_e1_on_the_line_itself(db, org):
    reserve(db, "a", line_req(org.office_line, "60"))
    with refused(db, OverBudget) as err, db.unit_of_work() as s:
        Budgets(s).reserve("b", ("expense", "2"), [line_req(org.office_line, "40.01")], actor="amy")
    d = err.value.details
    assert err.value.code == "E1_over_budget"
    assert d["line_id"] == org.office_line
    assert d["line"] == d["requested_line"] == "ACME/2026-01/RD/OFFICE"
    assert Decimal(d["asked"]) == Decimal("40.01")
    assert Decimal(d["available"]) == Decimal("40")
    assert {k: Decimal(v) for k, v in d["breakdown"].items()} == {
        "budget": 100, "pre_encumbered": 60, "encumbered": 0, "actual": 0, "available": 40,
    }
    assert "the line itself" in err.value.message


def test_e1_decided_by_an_ancestor(db, org):
    reserve(db, "a", line_req(org.child_line, "600"))
    # the sibling has 600 of its own, but the parent (1000, hard by default) has 400 left
    with refused(db, OverBudget) as err, db.unit_of_work() as s:
        Budgets(s).reserve("b", ("expense", "2"), [line_req(org.sibling_line, "400.01")], actor="amy")
    d = err.value.details
    assert d["line_id"] == org.parent_line
    assert d["requested_line"] == "ACME/2026-01/RD-WEB/TRAVEL"
    assert Decimal(d["available"]) == 400
    assert Decimal(d["breakdown"]["pre_encumbered"]) == 600
    assert "controlling line ACME/2026-01/RD/TRAVEL" in err.value.message
    reserve(db, "c", line_req(org.sibling_line, "400"), doc="3")
    assert bal(db, org.parent_line) == (1000, 1000, 0, 0)
    assert_clean(db)


def test_e1_inherited_hard_control_holds_in_the_middle_of_a_tree(db, org):
    """Root (soft for itself) → middle line (inherits hard) → leaf: the middle holds."""
    with db.unit_of_work() as s:
        setup.create_cost_centre(s, "ACME", "RD-APP-1", "Apps team 1", parent="RD-APP")
        leaf = setup.create_line(s, company_code="ACME", period_code="2026-01", cost_centre="RD-APP-1",
                                 item="TRAVEL", parent_id=org.child_line)
        Budgets(s).adjust(None, leaf.id, "900", actor="cfo", reason="b")
        setup.set_rule(s, org.parent_line, mode="hard", actor="cfo", tolerance_amount="10")
    with refused(db, OverBudget) as err, db.unit_of_work() as s:
        Budgets(s).reserve("a", ("expense", "1"), [line_req(leaf.id, "610.01")], actor="amy")
    assert err.value.details["line_id"] == org.child_line  # 600 + tolerance 10
    reserve(db, "b", line_req(leaf.id, "610"))
    assert_clean(db)


# -- E2 / E3 / E4 / E6 -----------------------------------------------------------------------


def test_e2_unknown_line_by_id_code_and_dimensions(db, org):
    for req in (
        LineRequest("1", "10", "CNY", JAN, line_id=987654),
        LineRequest("1", "10", "CNY", JAN, line_code="ACME/2026-01/NOPE"),
    ):
        with refused(db, NoBudgetLine) as err, db.unit_of_work() as s:
            Budgets(s).reserve("k", ("expense", "1"), [req], actor="amy")
        assert err.value.code == "E2_no_budget_line"
        assert err.value.details["field"] == "lines[0]"
    with db.unit_of_work() as s:
        setup.create_item(s, "ACME", "BOOKS", "Books")  # master data exists, no budget line
    with refused(db, NoBudgetLine), db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "1"), [LineRequest("1", "1", "CNY", JAN, dims=Dims("ACME", "RD", "BOOKS"))], actor="amy")
    # unknown master data is a validation error naming the dimension
    with refused(db, ValidationError) as err, db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "1"), [LineRequest("1", "1", "CNY", JAN, dims=Dims("ACME", "RD", "NOPE"))], actor="amy")
    assert err.value.details["field"] == "lines[0].item"


def test_e3_closed_line_refuses_consumption_and_journals_but_releases(db, org):
    r = reserve(db, "a", line_req(org.child_line, "100"))
    with db.unit_of_work() as s:
        setup.set_status(s, org.child_line, "closed")
    with refused(db, LineClosed) as err, db.unit_of_work() as s:
        Budgets(s).reserve("b", ("expense", "2"), [line_req(org.child_line, "1")], actor="amy")
    assert err.value.code == "E3_line_closed" and err.value.details["field"] == "lines[0]"
    with refused(db, LineClosed), db.unit_of_work() as s:
        Budgets(s).adjust("adj", org.child_line, "10", actor="cfo", reason="more")
    with refused(db, LineClosed), db.unit_of_work() as s:
        Budgets(s).transfer("t", org.sibling_line, org.child_line, "10", actor="cfo", reason="move")
    with refused(db, LineClosed), db.unit_of_work() as s:  # beyond what is held = new consumption
        Budgets(s).advance("x", r.reservations[0].id, "actual", "100.01", actor="ap")
    with db.unit_of_work() as s:  # what is held may still move on and be released
        Budgets(s).advance("enc", r.reservations[0].id, "encumbered", "40", actor="buyer")
        Budgets(s).release_document("close", ("expense", "1"), actor="amy")
    assert bal(db, org.child_line) == (600, 0, 0, 0)
    assert_clean(db)


def test_e4_on_hold_refuses_consumption_but_allows_journals_and_releases(db, org):
    r = reserve(db, "a", line_req(org.child_line, "100"))
    with db.unit_of_work() as s:
        setup.set_status(s, org.child_line, "hold")
    with refused(db, LineOnHold) as err, db.unit_of_work() as s:
        Budgets(s).reserve("b", ("expense", "2"), [line_req(org.child_line, "1")], actor="amy")
    assert err.value.code == "E4_line_on_hold"
    with refused(db, LineOnHold), db.unit_of_work() as s:
        Budgets(s).advance("x", r.reservations[0].id, "actual", "150", actor="ap")
    with db.unit_of_work() as s:
        b = Budgets(s)
        b.adjust("up", org.child_line, "50", actor="cfo", reason="top up")
        b.adjust("down", org.child_line, "-20", actor="cfo", reason="trim")
        b.transfer("out", org.child_line, org.sibling_line, "30", actor="cfo", reason="move")
        b.transfer("in", org.sibling_line, org.child_line, "5", actor="cfo", reason="move back")
        b.advance("inv", r.reservations[0].id, "actual", "60", actor="ap")
        b.release("rel", [r.reservations[0].id], "40", actor="amy")
    assert bal(db, org.child_line) == (605, 0, 0, 60)
    assert_clean(db)


def test_e6_date_outside_the_period_by_id_and_by_dimensions(db, org):
    with refused(db, OutsidePeriod) as err, db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "1"), [line_req(org.child_line, "1", on=FEB)], actor="amy")
    assert err.value.code == "E6_outside_budget_period"
    assert err.value.details["field"] == "lines[0].budget_date"
    dims = Dims("ACME", "RD-APP", "TRAVEL")
    with refused(db, OutsidePeriod), db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "1"), [LineRequest("1", "1", "CNY", FEB, dims=dims)], actor="amy")
    r = reserve(db, "ok", LineRequest("1", "1", "CNY", JAN, dims=dims))
    assert r.reservations[0].line_id == org.child_line


# -- currency and amounts -----------------------------------------------------------------


def test_no_exchange_rate(db, org):
    with refused(db, NoExchangeRate) as err, db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "1"), [line_req(org.child_line, "10", currency="USD")], actor="amy")
    assert err.value.details["field"] == "lines[0].currency"
    with db.unit_of_work() as s:  # a rate from after the budget date does not count
        setup.add_rate(s, "USD", "CNY", date(2026, 1, 20), "7.1")
    with refused(db, NoExchangeRate), db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "1"), [line_req(org.child_line, "10", currency="USD")], actor="amy")


def test_conversion_keeps_both_amounts_and_rounds_half_up(db, org):
    with db.unit_of_work() as s:
        setup.add_rate(s, "USD", "CNY", date(2025, 12, 1), "9")
        setup.add_rate(s, "USD", "CNY", date(2026, 1, 1), "7.1225")  # the latest on or before
    r = reserve(db, "k", line_req(org.child_line, "10.00", currency="USD"))
    v = r.reservations[0]
    # 10.00 * 7.1225 = 71.225 → 71.23 half up (banker's rounding would give 71.22)
    assert (v.amount, v.currency) == (Decimal("71.23"), "CNY")
    assert (v.source_amount, v.source_currency, v.rate) == (Decimal("10"), "USD", Decimal("7.1225"))
    with db.unit_of_work(readonly=True) as s:
        row = s.get(Reservation, v.id)
        assert (row.source_amount, row.source_currency, row.pre_encumbered) == (
            Decimal("10"), "USD", Decimal("71.23"))
    assert bal(db, org.child_line)[1] == Decimal("71.23")
    # moving on in the request currency uses the reservation's own rate
    with db.unit_of_work() as s:
        Budgets(s).advance("inv", v.id, "actual", "4.00", currency="USD", actor="ap")
    assert bal(db, org.child_line)[1:] == (Decimal("42.74"), 0, Decimal("28.49"))
    with refused(db, CurrencyMismatch), db.unit_of_work() as s:
        Budgets(s).advance("inv2", v.id, "actual", "1", currency="EUR", actor="ap")
    assert_clean(db)


@pytest.mark.parametrize(
    ("amount", "currency", "field"),
    [
        ("0", "CNY", "lines[0].amount"),
        ("-1", "CNY", "lines[0].amount"),
        ("NaN", "CNY", "lines[0].amount"),
        ("Infinity", "CNY", "lines[0].amount"),
        ("1.001", "CNY", "lines[0].amount"),
        (1.5, "CNY", "lines[0].amount"),
        ("1", "XYZ", "lines[0].currency"),
    ],
)
def test_bad_amounts_are_refused_naming_the_field(db, org, amount, currency, field):
    with refused(db, ValidationError) as err, db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "1"), [line_req(org.child_line, amount, currency=currency)], actor="amy")
    assert err.value.details["field"] == field


def test_bad_journal_and_move_inputs_write_nothing(db, org):
    r = reserve(db, "a", line_req(org.child_line, "100"))
    rid = r.reservations[0].id
    cases = [
        (ValidationError, lambda b: b.adjust("j", org.child_line, "0", actor="cfo", reason="r")),
        (ValidationError, lambda b: b.adjust("j", org.child_line, "1", actor="cfo", reason=" ")),
        (ValidationError, lambda b: b.adjust("j", org.child_line, "1.001", actor="cfo", reason="r")),
        (NotFound, lambda b: b.adjust("j", 987654, "1", actor="cfo", reason="r")),
        (ValidationError, lambda b: b.transfer("j", org.child_line, org.child_line, "1", actor="cfo", reason="r")),
        (ValidationError, lambda b: b.transfer("j", org.child_line, org.sibling_line, "-1", actor="cfo", reason="r")),
        (ValidationError, lambda b: b.advance("j", rid, "budget", actor="ap")),
        (ValidationError, lambda b: b.advance("j", rid, "actual", "0", actor="ap")),
        (ValidationError, lambda b: b.advance("j", rid, "actual", "1", actor="")),
        (NotFound, lambda b: b.advance("j", 987654, "actual", actor="ap")),
        (InsufficientHold, lambda b: b.release("j", [rid], "100.01", actor="amy")),
        (ValidationError, lambda b: b.release("j", [rid], "-1", actor="amy")),
        (ValidationError, lambda b: b.reserve("j", ("expense", "2"), [], actor="amy")),
        (ValidationError, lambda b: b.reserve("j", ("expense", "2"), [line_req(org.child_line, "1"), line_req(org.sibling_line, "1")], actor="amy")),
    ]
    for error, call in cases:
        with refused(db, error), db.unit_of_work() as s:
            call(Budgets(s))


def test_a_budget_cut_below_zero_is_refused(db, org):
    with db.unit_of_work() as s:
        setup.set_rule(s, org.office_line, mode="track", actor="cfo")  # not hard: only the floor applies
    with refused(db, NegativeBudget) as err, db.unit_of_work() as s:
        Budgets(s).adjust("cut", org.office_line, "-100.01", actor="cfo", reason="cut")
    assert err.value.code == "negative_budget"
    assert err.value.details["field"] == "amount"
    with refused(db, NegativeBudget), db.unit_of_work() as s:
        Budgets(s).transfer("t", org.office_line, org.child_line, "100.01", actor="cfo", reason="r")


def test_a_conversion_too_large_for_storage_is_a_validation_error(db, org):
    with db.unit_of_work() as s:
        setup.add_rate(s, "USD", "CNY", date(2026, 1, 1), "7.2")
    with refused(db, ValidationError) as err, db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "1"), [line_req(org.child_line, "99999999999999", currency="USD")], actor="amy")
    assert err.value.details["field"] == "lines[0].amount"


# -- transfers ---------------------------------------------------------------------------


def test_transfer_never_drives_the_hard_source_below_zero(db, org):
    reserve(db, "a", line_req(org.child_line, "500"))
    with refused(db, OverBudget) as err, db.unit_of_work() as s:
        Budgets(s).transfer("t1", org.child_line, org.sibling_line, "100.01", actor="cfo", reason="r")
    assert Decimal(err.value.details["available"]) == 100
    with refused(db, OverBudget), db.unit_of_work() as s:
        Budgets(s).adjust("cut", org.child_line, "-100.01", actor="cfo", reason="r")
    with db.unit_of_work() as s:
        Budgets(s).transfer("t2", org.child_line, org.sibling_line, "100", actor="cfo", reason="r")
    assert bal(db, org.child_line) == (500, 500, 0, 0)
    assert bal(db, org.sibling_line)[0] == 700
    assert_clean(db)


def test_transfer_between_currencies_is_refused(db, org):
    with db.unit_of_work() as s:
        usd = setup.create_line(s, company_code="ACME", period_code="2026-01", cost_centre="RD-WEB",
                                item="OFFICE", currency="USD")
    with refused(db, CurrencyMismatch), db.unit_of_work() as s:
        Budgets(s).transfer("t", org.office_line, usd.id, "1", actor="cfo", reason="r")


def test_preview_writes_nothing_and_reports_the_block(db, org):
    before = snapshot(db)
    with db.unit_of_work() as s:
        checks = Budgets(s).preview([line_req(org.child_line, "500", ref="1"), line_req(org.sibling_line, "600", ref="2")])
    assert snapshot(db) == before
    blocked = [c for c in checks if c.blocked]
    assert [c.line_id for c in blocked] == [org.parent_line]  # 500 + 600 > 1000 together
    with refused(db, NoBudgetLine), db.unit_of_work() as s:
        Budgets(s).preview([LineRequest("1", "1", "CNY", JAN, line_id=987654)])


def test_replaying_a_key_writes_nothing(db, org):
    r = reserve(db, "k", line_req(org.child_line, "10"))
    before = snapshot(db)
    again = reserve(db, "k", line_req(org.child_line, "10"))
    assert again.replayed and again.movement_id == r.movement_id
    with db.unit_of_work() as s:
        Budgets(s).release("rel", [r.reservations[0].id], actor="amy")
    before = snapshot(db)
    with db.unit_of_work() as s:
        assert Budgets(s).release("rel", [r.reservations[0].id], actor="amy").replayed
    assert snapshot(db) == before


def test_oversized_identifiers_are_validation_errors_not_database_errors(db, org):
    long = "x" * 300
    cases = [
        ("document_id", lambda b: b.reserve("k", ("expense", "9" * 65), [line_req(org.child_line, "1")], actor="amy")),
        ("document_type", lambda b: b.reserve("k", ("e" * 33, "1"), [line_req(org.child_line, "1")], actor="amy")),
        ("actor", lambda b: b.reserve("k", ("expense", "1"), [line_req(org.child_line, "1")], actor="a" * 65)),
        ("idempotency_key", lambda b: b.adjust(long, org.child_line, "1", actor="cfo", reason="r")),
        ("lines[0].ref", lambda b: b.reserve("k", ("expense", "1"), [line_req(org.child_line, "1", ref="r" * 65)], actor="amy")),
        ("lines[0].ref", lambda b: b.reserve("k" * 200, ("expense", "1"), [line_req(org.child_line, "1", ref="r" * 30)], actor="amy")),
        ("lines[0].ref", lambda b: b.reserve("k", ("expense", "1"), [line_req(org.child_line, "1", ref="")], actor="amy")),
    ]
    for field, call in cases:
        with refused(db, ValidationError) as err, db.unit_of_work() as s:
            call(Budgets(s))
        assert err.value.details["field"] == field


def test_the_same_line_twice_in_one_request_is_checked_as_a_whole(db, org):
    with refused(db, OverBudget), db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "1"), [line_req(org.office_line, "60", ref="1"),
                                                   line_req(org.office_line, "40.01", ref="2")], actor="amy")
    r = reserve(db, "k2", line_req(org.office_line, "60", ref="1"), line_req(org.office_line, "40", ref="2"))
    assert len(r.reservations) == 2
    assert_clean(db)


@pytest.mark.parametrize("rate", ["0", "-1", "NaN", "abc", 7.1, "7.12345678901", "10000000000"])
def test_bad_exchange_rates_are_refused(db, org, rate):
    with refused(db, ValidationError) as err, db.unit_of_work() as s:
        setup.add_rate(s, "USD", "CNY", date(2026, 1, 1), rate)
    assert err.value.details["field"] == "rate"
