"""Four eyes on budget journals: adjustments, transfers and imports are proposals that a
second finance user approves; the proposer never decides; stale proposals are refused;
every actor is a person in the directory. Both databases.

Every refusal is checked with :func:`refused`: budgets, entries and proposals are exactly
as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from yinfin_flow import verify
from yinfin_flow.budget import journal_proposals as jp
from yinfin_flow.budget import setup
from yinfin_flow.budget.io import ImportFailed
from yinfin_flow.budget.io_tables import read_table
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetBalance, BudgetEntry, BudgetMovement
from yinfin_flow.db.models.journal_proposals import JournalProposal
from yinfin_flow.domain.budget import NegativeBudget, OverBudget
from yinfin_flow.domain.errors import DomainError, NotFound, ValidationError

from ..factories import Org, add_people, line_req, org_in
from .test_budget_errors import reserve


@pytest.fixture
def org(db: Database) -> Org:
    found = org_in(db)
    with db.unit_of_work() as s:
        add_people(s)
    return found


def budget(db: Database, line: int) -> Decimal:
    with db.unit_of_work(readonly=True) as s:
        return s.scalar(select(BudgetBalance.budget).where(BudgetBalance.line_id == line))


def state(db: Database) -> tuple[object, ...]:
    with db.unit_of_work(readonly=True) as s:
        balances = tuple(tuple(r) for r in s.execute(select(*BudgetBalance.__table__.c)
                                                       .order_by(BudgetBalance.line_id)))
        entries = s.scalar(select(func.count()).select_from(BudgetEntry))
        proposals = tuple(tuple(r) for r in s.execute(select(*JournalProposal.__table__.c)
                                                       .order_by(JournalProposal.id)))
    return balances, entries, proposals


@contextmanager
def refused(db: Database, error: type[DomainError], code: str | None = None
            ) -> Iterator[pytest.ExceptionInfo[DomainError]]:
    before = state(db)
    with pytest.raises(error) as info:
        yield info
    if code is not None:
        assert info.value.code == code
    assert state(db) == before, "a refused call wrote something"


def adjust(db: Database, line: int, amount: str, actor: str = "cfo") -> int:
    with db.unit_of_work() as s:
        return jp.propose_adjustment(s, line, amount, actor=actor, reason="Q1 hiring").id


def decide(db: Database, action: str, pid: int, actor: str, comment: str | None = "ok") -> dict:
    with db.unit_of_work() as s:
        getattr(jp, action)(s, pid, actor=actor, comment=comment)
        return jp.get_proposal(s, pid)


def test_an_adjustment_books_nothing_until_another_person_approves(db, org):
    pid = adjust(db, org.child_line, "250")
    assert budget(db, org.child_line) == 600
    with db.unit_of_work(readonly=True) as s:
        seen = jp.get_proposal(s, pid)
    assert (seen["status"], seen["kind"], seen["proposed_by"]) == ("pending", "adjustment", "cfo")
    [change] = seen["changes"]
    assert (change["line"], Decimal(change["budget_before"]), Decimal(change["budget_after"])) == (
        "ACME/2026-01/RD-APP/TRAVEL", 600, 850)

    with refused(db, jp.SegregationOfDuties, "segregation_of_duties"):
        decide(db, "approve", pid, "cfo")
    with refused(db, jp.SegregationOfDuties):
        decide(db, "approve", pid, "cli:cfo")  # the same person from the command line
    with refused(db, jp.UnknownPerson, "unknown_person"):
        decide(db, "approve", pid, "nobody")

    done = decide(db, "approve", pid, "frank")
    assert (done["status"], done["decided_by"]) == ("approved", "frank")
    assert budget(db, org.child_line) == 850
    with db.unit_of_work(readonly=True) as s:
        movement = s.get(BudgetMovement, done["movement_ids"][0])
        assert (movement.kind, movement.actor) == ("adjustment", "cfo")
        assert "approved by frank" in movement.reason
        assert verify.verify(s) == []
    with refused(db, jp.ProposalNotPending, "budget_journal_not_pending"):
        decide(db, "approve", pid, "fiona")


def test_a_transfer_waits_and_reject_and_withdraw_change_nothing(db, org):
    with db.unit_of_work() as s:
        pid = jp.propose_transfer(s, org.child_line, org.sibling_line, "100", actor="cli:fiona",
                                  reason="rebalance").id
    with refused(db, ValidationError):
        decide(db, "reject", pid, "frank", comment=" ")
    with refused(db, jp.SegregationOfDuties):
        decide(db, "reject", pid, "fiona", comment="no")
    with refused(db, jp.NotTheProposer):
        decide(db, "withdraw", pid, "frank")
    assert decide(db, "reject", pid, "frank", comment="not now")["status"] == "rejected"
    assert (budget(db, org.child_line), budget(db, org.sibling_line)) == (600, 600)

    with db.unit_of_work() as s:
        again = jp.propose_transfer(s, org.child_line, org.sibling_line, "100", actor="fiona",
                                    reason="rebalance").id
    assert decide(db, "withdraw", again, "cli:fiona", comment=None)["status"] == "withdrawn"
    with db.unit_of_work() as s:
        third = jp.propose_transfer(s, org.child_line, org.sibling_line, "100", actor="fiona",
                                    reason="rebalance").id
    decide(db, "approve", third, "cfo")
    assert (budget(db, org.child_line), budget(db, org.sibling_line)) == (500, 700)


def test_what_would_be_refused_on_approval_is_refused_when_proposed(db, org):
    reserve(db, "held", line_req(org.child_line, "550"))
    with refused(db, OverBudget):
        adjust(db, org.child_line, "-100")  # hard control: only 50 is available
    with refused(db, NegativeBudget):
        adjust(db, org.office_line, "-101")
    with refused(db, NotFound):
        adjust(db, 9999, "5")
    with refused(db, ValidationError):
        adjust(db, org.child_line, "abc")
    with refused(db, jp.UnknownPerson):
        adjust(db, org.child_line, "5", actor="ghost")  # free text is not a person
    with db.unit_of_work() as s:
        setup.set_status(s, org.child_line, "closed")
    with refused(db, DomainError, "E3_line_closed"):
        adjust(db, org.child_line, "5")


def test_a_proposal_made_against_a_budget_that_changed_is_stale(db, org):
    first = adjust(db, org.child_line, "100")
    second = adjust(db, org.child_line, "-50", actor="fiona")
    decide(db, "approve", first, "frank")
    with db.unit_of_work(readonly=True) as s:
        assert jp.get_proposal(s, second)["status"] == "stale"
    with refused(db, jp.StaleProposal, "budget_journal_stale"):
        decide(db, "approve", second, "frank")
    assert budget(db, org.child_line) == 700

    # a change booked behind its back (approval off, an override): approval sees it too
    third = adjust(db, org.office_line, "10")
    with db.unit_of_work() as s:
        from yinfin_flow.budget.service import Budgets
        Budgets(s).adjust(None, org.office_line, "5", actor="cfo", reason="direct")
    with refused(db, jp.StaleProposal) as info:
        decide(db, "approve", third, "frank")
    details = info.value.details
    assert (Decimal(details["proposed"][str(org.office_line)]), Decimal(details["now"][str(org.office_line)])) == (
        100, 105)


def test_an_import_is_proposed_with_its_plan_and_applied_on_approval(db, org, tmp_path: Path):
    path = tmp_path / "budgets.csv"
    path.write_text("company,period,cost_centre,item,amount\n"
                    "ACME,2026-01,RD-APP,TRAVEL,700\n"
                    "ACME,2026-01,RD-WEB,TRAVEL,600\n"
                    "ACME,2026-02,RD,TRAVEL,900\n", encoding="utf-8")
    header, rows = read_table(path)
    with db.unit_of_work() as s:
        pid = jp.propose_import(s, header, rows, source=path.name, actor="fiona").id
        seen = jp.get_proposal(s, pid)
    assert seen["plan"]["created"] == ["ACME/2026-02/RD/TRAVEL"]
    [adjusted] = seen["plan"]["adjusted"]
    assert (adjusted["line"], Decimal(adjusted["delta"]), adjusted["currency"]) == (
        "ACME/2026-01/RD-APP/TRAVEL", 100, "CNY")
    assert seen["plan"]["unchanged"] == 1
    assert budget(db, org.child_line) == 600  # nothing booked yet
    decide(db, "approve", pid, "frank")
    assert budget(db, org.child_line) == 700
    with db.unit_of_work(readonly=True) as s:
        assert verify.verify(s) == []

    bad = tmp_path / "bad.csv"
    bad.write_text("company,period,cost_centre,item,amount\nACME,2026-01,NOPE,TRAVEL,1\n", encoding="utf-8")
    header, rows = read_table(bad)
    with refused(db, ImportFailed), db.unit_of_work() as s:
        jp.propose_import(s, header, rows, source=bad.name, actor="fiona")


def test_an_import_whose_plan_changed_is_stale(db, org, tmp_path: Path):
    path = tmp_path / "budgets.csv"
    path.write_text("company,period,cost_centre,item,amount\nACME,2026-01,RD-APP,TRAVEL,700\n", encoding="utf-8")
    header, rows = read_table(path)
    with db.unit_of_work() as s:
        pid = jp.propose_import(s, header, rows, source=path.name, actor="fiona").id
    other = adjust(db, org.child_line, "50")
    decide(db, "approve", other, "frank")
    with db.unit_of_work(readonly=True) as s:
        assert jp.get_proposal(s, pid)["status"] == "stale"
    with refused(db, jp.StaleProposal):
        decide(db, "approve", pid, "cfo")


def test_lists_are_the_reviewers_queue_and_verify_finds_a_self_approval(db, org):
    a = adjust(db, org.child_line, "1")
    b = adjust(db, org.office_line, "2", actor="fiona")
    decide(db, "approve", b, "frank")
    with db.unit_of_work(readonly=True) as s:
        total, items = jp.list_proposals(s, status="pending")
        assert (total, [i["id"] for i in items]) == (1, [a])
        assert jp.list_proposals(s)[0] == 2
        with pytest.raises(ValidationError):
            jp.list_proposals(s, status="nope")
    with db.unit_of_work() as s:  # written behind the service's back
        s.get(JournalProposal, a).status, s.get(JournalProposal, a).decided_by = "approved", "cli:cfo"
    with db.unit_of_work(readonly=True) as s:
        problems = [p for p in verify.verify(s) if p.check == "four_eyes"]
    assert len(problems) == 1 and f"proposal {a}" in problems[0].subject
