"""Control rules on both databases: bases (period, cumulative, annual), modes
(hard, soft, track, none), thresholds, and rule changes that would break hard control.

Refusals are checked with :func:`test_budget_errors.refused`: nothing may be written.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetAlert
from yinfin_flow.domain.budget import OverBudget
from yinfin_flow.domain.errors import Conflict, ValidationError

from ..factories import Org, line_req, org_in
from .test_budget_errors import FEB, assert_clean, bal, refused, reserve


@pytest.fixture
def org(db: Database) -> Org:
    return org_in(db)


# -- bases --------------------------------------------------------------------------------


def _feb_office(db: Database, org: Org, basis: str) -> int:
    with db.unit_of_work() as s:
        feb = setup.create_line(s, company_code="ACME", period_code="2026-02", cost_centre="RD", item="OFFICE")
        Budgets(s).adjust(None, feb.id, "100", actor="cfo", reason="feb budget")
        for line in (org.office_line, feb.id):
            setup.set_rule(s, line, mode="hard", actor="cfo", basis=basis)
        return feb.id


def test_period_basis_february_has_only_its_own(db, org):
    feb = _feb_office(db, org, "period")
    with refused(db, OverBudget), db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "1"), [line_req(feb, "100.01", on=FEB)], actor="amy")


def test_cumulative_basis_unused_january_is_usable_in_february(db, org):
    feb = _feb_office(db, org, "cumulative")
    reserve(db, "jan", line_req(org.office_line, "30"))
    with refused(db, OverBudget) as err, db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "2"), [line_req(feb, "170.01", on=FEB)], actor="amy")
    assert Decimal(err.value.details["available"]) == 170
    reserve(db, "feb", line_req(feb, "150", on=FEB), doc="3")
    # January's own cumulative still shows 70, but February's would go below zero
    with refused(db, OverBudget) as err, db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "4"), [line_req(org.office_line, "20.01")], actor="amy")
    assert err.value.details["line_id"] == feb
    with refused(db, OverBudget), db.unit_of_work() as s:
        Budgets(s).adjust("cut", org.office_line, "-20.01", actor="cfo", reason="cut")
    reserve(db, "jan2", line_req(org.office_line, "20"), doc="5")
    assert_clean(db)


def test_annual_basis_counts_the_whole_year(db, org):
    feb = _feb_office(db, org, "annual")
    reserve(db, "feb", line_req(feb, "200", on=FEB))
    with refused(db, OverBudget), db.unit_of_work() as s:
        Budgets(s).reserve("k", ("expense", "2"), [line_req(org.office_line, "0.01")], actor="amy")
    assert_clean(db)


# -- modes ---------------------------------------------------------------------------------


def _alerts(db: Database) -> list[tuple[int, str, str]]:
    with db.unit_of_work(readonly=True) as s:
        return [tuple(r) for r in s.execute(select(BudgetAlert.line_id, BudgetAlert.mode, BudgetAlert.level))]


def test_soft_control_allows_records_an_alert_and_warns(db, org):
    with db.unit_of_work() as s:
        setup.set_rule(s, org.office_line, mode="soft", actor="cfo")
    r = reserve(db, "k", line_req(org.office_line, "150"))
    assert [w["line_id"] for w in r.warnings] == [org.office_line]
    assert r.warnings[0]["over"] is True
    assert _alerts(db) == [(org.office_line, "soft", "over")]
    assert bal(db, org.office_line) == (100, 150, 0, 0)
    assert_clean(db)


def test_track_records_only(db, org):
    with db.unit_of_work() as s:
        setup.set_rule(s, org.office_line, mode="track", actor="cfo")
    r = reserve(db, "k", line_req(org.office_line, "150"))
    assert r.warnings == []
    assert _alerts(db) == [(org.office_line, "track", "over")]


def test_none_records_nothing(db, org):
    with db.unit_of_work() as s:
        setup.set_rule(s, org.office_line, mode="none", actor="cfo")
    r = reserve(db, "k", line_req(org.office_line, "150"))
    assert r.warnings == [] and r.checks == []
    assert _alerts(db) == []


def test_warning_threshold_is_recorded_with_notify(db, org):
    r = reserve(db, "k", line_req(org.office_line, "95"))  # default 90 % warn + notify
    assert r.warnings and r.warnings[0]["level"] == "warn"
    with db.unit_of_work(readonly=True) as s:
        alert = s.scalar(select(BudgetAlert))
        assert (alert.level, alert.notify, alert.usage_percent) == ("warn", True, Decimal("95.00"))


def test_making_control_hard_is_refused_while_over(db, org):
    with db.unit_of_work() as s:
        setup.set_rule(s, org.office_line, mode="soft", actor="cfo")
    reserve(db, "k", line_req(org.office_line, "150"))
    with refused(db, Conflict) as err, db.unit_of_work() as s:
        setup.set_rule(s, org.office_line, mode="hard", actor="cfo")
    assert err.value.details["field"] == "mode"
    with db.unit_of_work() as s:  # with tolerance covering the overrun it is allowed
        setup.set_rule(s, org.office_line, mode="hard", actor="cfo", tolerance_amount="50")
    assert_clean(db)


def test_a_rule_change_that_exposes_an_over_line_to_hard_control_is_refused(db, org):
    """Soft on the parent's subtree lets a child overrun; narrowing the rule to the
    parent alone would leave that child under the (hard) default while over."""
    with db.unit_of_work() as s:
        setup.set_rule(s, org.parent_line, mode="soft", actor="cfo", subtree=True)
    reserve(db, "k", line_req(org.child_line, "700"))
    with refused(db, Conflict) as err, db.unit_of_work() as s:
        setup.set_rule(s, org.parent_line, mode="soft", actor="cfo", subtree=False)
    assert err.value.details["line"] == "ACME/2026-01/RD-APP/TRAVEL"
    with refused(db, Conflict), db.unit_of_work() as s:  # less tolerance than the overrun needs
        setup.set_rule(s, org.child_line, mode="hard", actor="cfo", tolerance_amount="99.99")
    with db.unit_of_work() as s:
        setup.set_rule(s, org.child_line, mode="hard", actor="cfo", tolerance_amount="100")
    assert_clean(db)


def test_a_block_threshold_above_100_is_refused(db, org):
    with refused(db, ValidationError) as err, db.unit_of_work() as s:
        setup.set_rule(s, org.office_line, mode="hard", actor="cfo",
                       thresholds=[{"percent": "80", "action": "warn"}, {"percent": "110", "action": "block"}])
    assert err.value.details["field"] == "thresholds[1].percent"
