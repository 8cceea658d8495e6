"""A closed or held line stops the lines under it (SQLite and PostgreSQL).

A line's effective status is the most restrictive of its own and its ancestors':
consumption under a closed ancestor is E3, under a held one E4, each naming the
ancestor that decided; budget journals are refused under a closed ancestor only;
what is held may still move on and be released. Both read paths are exercised: lines
named by id (the one-statement lock-and-read) and by code (the general path).
Every refusal runs inside ``refused``: nothing may be written.
"""

from __future__ import annotations

import pytest

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets, LineRequest
from yinfin_flow.db.engine import Database
from yinfin_flow.domain.budget import LineClosed, LineOnHold

from ..factories import JAN, Org, line_req, org_in
from .test_budget_errors import assert_clean, bal, refused, reserve


@pytest.fixture
def org(db: Database) -> Org:
    return org_in(db)


@pytest.fixture
def grandchild(db: Database, org: Org) -> int:
    """RD-APP-M / TRAVEL / 2026-01 under the child line (so under the parent too), budget 100."""
    with db.unit_of_work() as s:
        setup.create_cost_centre(s, "ACME", "RD-APP-M", "R&D Apps Mobile", parent="RD-APP", manager="li")
        line = setup.create_line(s, company_code="ACME", period_code="2026-01", cost_centre="RD-APP-M",
                                 item="TRAVEL", parent_id=org.child_line, owner="li")
        Budgets(s).adjust(None, line.id, "100", actor="cfo", reason="2026 budget", kind="original")
        return line.id


def set_status(db: Database, line_id: int, status: str) -> None:
    with db.unit_of_work() as s:
        setup.set_status(s, line_id, status)


def code_of(db: Database, line_id: int) -> str:
    with db.unit_of_work(readonly=True) as s:
        return s.get(setup.BudgetLine, line_id).code  # type: ignore[union-attr]


def request(db: Database, line_id: int, amount: str, by: str) -> LineRequest:
    """The line by id (one-statement path) or by code (general path)."""
    if by == "id":
        return line_req(line_id, amount)
    return LineRequest(ref="1", amount=amount, currency="CNY", budget_date=JAN, line_code=code_of(db, line_id))


@pytest.mark.parametrize("by", ["id", "code"])
def test_a_closed_parent_refuses_consumption_below_it_naming_the_parent(db, org, by):
    set_status(db, org.parent_line, "closed")
    with refused(db, LineClosed) as err, db.unit_of_work() as s:
        Budgets(s).reserve("a", ("expense", "1"), [request(db, org.child_line, "10", by)], actor="amy")
    d = err.value.details
    assert err.value.code == "E3_line_closed"
    assert (d["line"], d["line_id"], d["requested_line"], d["field"]) == (
        code_of(db, org.parent_line), org.parent_line, code_of(db, org.child_line), "lines[0]")
    with refused(db, LineClosed), db.unit_of_work() as s:  # preview says the same
        Budgets(s).preview([request(db, org.child_line, "10", by)])
    # a line outside the closed subtree is not affected
    reserve(db, "office", line_req(org.office_line, "10"))


@pytest.mark.parametrize("by", ["id", "code"])
def test_a_held_grandparent_refuses_consumption_with_e4(db, org, grandchild, by):
    set_status(db, org.parent_line, "hold")
    with refused(db, LineOnHold) as err, db.unit_of_work() as s:
        Budgets(s).reserve("a", ("expense", "1"), [request(db, grandchild, "10", by)], actor="amy")
    d = err.value.details
    assert err.value.code == "E4_line_on_hold"
    assert (d["line"], d["line_id"], d["requested_line"]) == (
        code_of(db, org.parent_line), org.parent_line, code_of(db, grandchild))


def test_closed_is_more_restrictive_than_hold_whichever_is_nearer(db, org, grandchild):
    set_status(db, org.child_line, "hold")
    set_status(db, org.parent_line, "closed")
    with refused(db, LineClosed) as err, db.unit_of_work() as s:
        Budgets(s).reserve("a", ("expense", "1"), [line_req(grandchild, "10")], actor="amy")
    assert err.value.details["line_id"] == org.parent_line


@pytest.mark.parametrize("by", ["id", "code"])
def test_a_held_line_under_a_closed_parent_is_refused_as_closed(db, org, by):
    r = reserve(db, "a", line_req(org.child_line, "100"))
    set_status(db, org.child_line, "hold")
    set_status(db, org.parent_line, "closed")
    with refused(db, LineClosed) as err, db.unit_of_work() as s:
        Budgets(s).reserve("b", ("expense", "2"), [request(db, org.child_line, "10", by)], actor="amy")
    assert err.value.details["line_id"] == org.parent_line
    with refused(db, LineClosed) as err, db.unit_of_work() as s:  # beyond what is held
        Budgets(s).advance("x", r.reservations[0].id, "actual", "100.01", actor="ap")
    assert err.value.details["line_id"] == org.parent_line
    set_status(db, org.parent_line, "open")  # then the line's own hold decides again
    with refused(db, LineOnHold) as err, db.unit_of_work() as s:
        Budgets(s).reserve("b", ("expense", "2"), [request(db, org.child_line, "10", by)], actor="amy")
    assert "line_id" not in err.value.details and err.value.details["line"] == code_of(db, org.child_line)


def test_all_or_nothing_when_one_line_of_a_request_is_under_a_closed_parent(db, org):
    set_status(db, org.parent_line, "closed")
    with refused(db, LineClosed) as err, db.unit_of_work() as s:
        Budgets(s).reserve("a", ("expense", "1"), [line_req(org.office_line, "10", ref="1"),
                                                   line_req(org.sibling_line, "10", ref="2")], actor="amy")
    assert err.value.details["field"] == "lines[1]"


def test_journals_under_a_held_parent_are_allowed_under_a_closed_one_refused(db, org):
    set_status(db, org.parent_line, "hold")
    with db.unit_of_work() as s:
        b = Budgets(s)
        b.adjust("up", org.child_line, "50", actor="cfo", reason="top up")
        b.transfer("out", org.child_line, org.sibling_line, "30", actor="cfo", reason="move")
    assert bal(db, org.child_line) == (620, 0, 0, 0)
    set_status(db, org.parent_line, "closed")
    with refused(db, LineClosed) as err, db.unit_of_work() as s:
        Budgets(s).adjust("up2", org.child_line, "50", actor="cfo", reason="top up")
    assert (err.value.details["line_id"], err.value.details["field"]) == (org.parent_line, "line_id")
    with refused(db, LineClosed) as err, db.unit_of_work() as s:  # into the closed subtree
        Budgets(s).transfer("in", org.office_line, org.sibling_line, "5", actor="cfo", reason="move")
    assert (err.value.details["line_id"], err.value.details["field"]) == (org.parent_line, "to_line_id")
    with db.unit_of_work() as s:  # outside the closed subtree
        Budgets(s).adjust("office", org.office_line, "10", actor="cfo", reason="top up")
    assert_clean(db)


def test_what_is_held_under_a_closed_parent_moves_on_and_is_released_but_not_increased(db, org):
    r = reserve(db, "a", line_req(org.child_line, "100"))
    set_status(db, org.parent_line, "closed")
    res_id = r.reservations[0].id
    with refused(db, LineClosed), db.unit_of_work() as s:  # beyond what is held = new consumption
        Budgets(s).advance("x", res_id, "actual", "100.01", actor="ap")
    with db.unit_of_work() as s:
        Budgets(s).advance("enc", res_id, "encumbered", "40", actor="buyer")
        Budgets(s).release_document("close", ("expense", "1"), actor="amy")
    assert bal(db, org.child_line) == (600, 0, 0, 0)
    assert_clean(db)


def test_reopening_the_parent_allows_consumption_again(db, org):
    set_status(db, org.parent_line, "closed")
    with refused(db, LineClosed), db.unit_of_work() as s:
        Budgets(s).reserve("a", ("expense", "1"), [line_req(org.child_line, "10")], actor="amy")
    set_status(db, org.parent_line, "open")
    r = reserve(db, "a", line_req(org.child_line, "10"))
    assert not r.replayed and bal(db, org.child_line) == (600, 10, 0, 0)
