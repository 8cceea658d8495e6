"""Four eyes on control rules (issue #5): the person who proposed a rule change cannot
approve it, and nothing changes until someone else does. Both databases.

Every refusal is checked with :func:`refused`: the line's rule and every change row are
exactly as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import partial

import pytest
from sqlalchemy import select

from yinfin_flow import events
from yinfin_flow.budget import rule_changes as rc
from yinfin_flow.budget import setup
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import ControlRuleRow
from yinfin_flow.db.models.rule_changes import RuleChange
from yinfin_flow.domain.errors import Conflict, DomainError, NotFound, ValidationError

from ..factories import Org, line_req, org_in
from .test_budget_errors import assert_clean, reserve


@pytest.fixture
def org(db: Database) -> Org:
    return org_in(db)


def state(db: Database) -> tuple[object, ...]:
    """Every rule and every change, column by column."""
    with db.unit_of_work(readonly=True) as s:
        rules = tuple(tuple(r) for r in s.execute(select(*ControlRuleRow.__table__.c)
                                                   .order_by(ControlRuleRow.line_id)).all())
        changes = tuple(tuple(r) for r in s.execute(select(*RuleChange.__table__.c)
                                                     .order_by(RuleChange.id)).all())
    return rules, changes


@contextmanager
def refused(db: Database, error: type[DomainError], code: str | None = None
            ) -> Iterator[pytest.ExceptionInfo[DomainError]]:
    before = state(db)
    with pytest.raises(error) as info:
        yield info
    if code is not None:
        assert info.value.code == code
    assert state(db) == before, "a refused call wrote something"


def propose(db: Database, line: int, actor: str = "fiona", **rule: object) -> int:
    rule.setdefault("mode", "soft")
    with db.unit_of_work() as s:
        return rc.propose(s, line, actor=actor, reason="seasonal travel", **rule).id


def own_rule(db: Database, line: int) -> ControlRuleRow | None:
    with db.unit_of_work(readonly=True) as s:
        row = s.scalar(select(ControlRuleRow).where(ControlRuleRow.line_id == line))
        if row is not None:
            s.expunge(row)
        return row


def change(db: Database, change_id: int) -> dict:
    with db.unit_of_work(readonly=True) as s:
        return rc.get_change(s, change_id)


def test_a_proposal_changes_nothing_until_another_finance_user_approves(db, org):
    with db.unit_of_work() as s:
        setup.set_rule(s, org.child_line, mode="hard", actor="cfo", tolerance_amount="10")
    cid = propose(db, org.child_line, mode="soft", tolerance_percent="5", basis="annual",
                  thresholds=[{"percent": "80", "action": "info"}])
    got = change(db, cid)
    assert got["status"] == "pending" and got["proposed_by"] == "fiona"
    assert got["reason"] == "seasonal travel" and got["line"] == "ACME/2026-01/RD-APP/TRAVEL"
    assert got["rule"]["mode"] == "soft" and got["rule"]["tolerance_percent"] == Decimal("5")
    assert got["rule"]["thresholds"] == [{"percent": "80", "action": "info", "notify": False}]
    # the reviewer sees what it replaces
    assert got["previous"]["mode"] == "hard" and got["previous"]["tolerance_amount"] == "10.0000"
    assert got["previous"]["updated_by"] == "cfo" and got["base_version"] == 1
    assert own_rule(db, org.child_line).mode == "hard"

    with refused(db, rc.SegregationOfDuties, "segregation_of_duties"), db.unit_of_work() as s:
        rc.approve(s, cid, actor="fiona")
    with refused(db, rc.SegregationOfDuties), db.unit_of_work() as s:
        rc.approve(s, cid, actor="cli:fiona")  # the same person through the CLI

    with db.unit_of_work() as s:
        rc.approve(s, cid, actor="frank", comment="ok for Q1")
    rule = own_rule(db, org.child_line)
    assert (rule.mode, rule.basis, rule.tolerance_percent, rule.tolerance_amount) == (
        "soft", "annual", Decimal("5"), None)
    assert (rule.updated_by, rule.approved_by, rule.version) == ("fiona", "frank", 2)
    got = change(db, cid)
    assert (got["status"], got["decided_by"], got["comment"]) == ("approved", "frank", "ok for Q1")
    assert got["decided_at"] is not None
    with refused(db, rc.ChangeNotPending, "rule_change_not_pending"), db.unit_of_work() as s:
        rc.approve(s, cid, actor="zhou.cfo")
    assert_clean(db)


def test_a_line_without_a_rule_of_its_own_gets_one_on_approval(db, org):
    cid = propose(db, org.office_line, mode="track")
    assert change(db, cid)["previous"] is None and change(db, cid)["base_version"] is None
    with db.unit_of_work() as s:
        rc.approve(s, cid, actor="frank")
    rule = own_rule(db, org.office_line)
    assert (rule.mode, rule.version, rule.approved_by) == ("track", 1, "frank")


def test_reject_and_withdraw_leave_the_rule_as_it_is(db, org):
    cid = propose(db, org.child_line)
    with refused(db, ValidationError), db.unit_of_work() as s:
        rc.reject(s, cid, actor="frank", comment=" ")
    with refused(db, rc.SegregationOfDuties), db.unit_of_work() as s:
        rc.reject(s, cid, actor="fiona", comment="never mind")
    with db.unit_of_work() as s:
        rc.reject(s, cid, actor="frank", comment="travel stays hard")
    got = change(db, cid)
    assert (got["status"], got["decided_by"], got["comment"]) == ("rejected", "frank", "travel stays hard")
    assert own_rule(db, org.child_line) is None

    cid = propose(db, org.child_line)  # the line is free again
    with refused(db, rc.NotTheProposer, "forbidden"), db.unit_of_work() as s:
        rc.withdraw(s, cid, actor="frank")
    with db.unit_of_work() as s:
        rc.withdraw(s, cid, actor="fiona", comment="wrong line")
    assert change(db, cid)["status"] == "withdrawn"
    with refused(db, rc.ChangeNotPending), db.unit_of_work() as s:
        rc.withdraw(s, cid, actor="fiona")
    with refused(db, rc.ChangeNotPending), db.unit_of_work() as s:
        rc.approve(s, cid, actor="frank")
    assert own_rule(db, org.child_line) is None


def test_one_pending_change_per_line(db, org):
    first = propose(db, org.child_line)
    with refused(db, rc.ChangePending, "rule_change_pending") as err, db.unit_of_work() as s:
        rc.propose(s, org.child_line, actor="frank", mode="track")
    assert err.value.details["change_id"] == first
    propose(db, org.sibling_line, actor="frank")  # another line is another matter


def test_a_proposal_is_checked_when_made(db, org):
    with refused(db, ValidationError) as err, db.unit_of_work() as s:
        rc.propose(s, org.child_line, actor="fiona", mode="hard", tolerance_percent="-1")
    assert err.value.details["field"] == "tolerance_percent"
    with refused(db, ValidationError), db.unit_of_work() as s:
        rc.propose(s, org.child_line, actor="fiona", mode="hard",
                   thresholds=[{"percent": "110", "action": "block"}])
    with refused(db, NotFound), db.unit_of_work() as s:
        rc.propose(s, 999_999, actor="fiona", mode="hard")
    with refused(db, NotFound), db.unit_of_work() as s:
        rc.approve(s, 999_999, actor="frank")


def test_a_proposal_against_a_rule_that_changed_since_is_stale(db, org):
    cid = propose(db, org.child_line, mode="soft")
    with db.unit_of_work() as s:  # someone changes the rule directly (the setting off, the demo…)
        setup.set_rule(s, org.child_line, mode="track", actor="zhou.cfo")
    got = change(db, cid)
    assert got["status"] == "stale" and "superseded" in got["comment"]
    with refused(db, rc.StaleChange, "rule_change_stale"), db.unit_of_work() as s:
        rc.approve(s, cid, actor="frank")
    assert own_rule(db, org.child_line).mode == "track"


def test_the_version_check_refuses_even_a_pending_change(db, org):
    """Belt and braces: a rule written behind set_rule's back still makes approval refuse."""
    with db.unit_of_work() as s:
        setup.set_rule(s, org.child_line, mode="hard", actor="cfo")
    cid = propose(db, org.child_line, mode="soft")
    with db.unit_of_work() as s:
        row = s.scalar(select(ControlRuleRow).where(ControlRuleRow.line_id == org.child_line))
        row.version, row.mode = row.version + 1, "none"
    with refused(db, rc.StaleChange), db.unit_of_work() as s:
        rc.approve(s, cid, actor="frank")
    assert change(db, cid)["status"] == "pending"


def test_approval_that_would_break_hard_control_fails_and_writes_nothing(db, org):
    with db.unit_of_work() as s:
        setup.set_rule(s, org.office_line, mode="soft", actor="cfo")
    reserve(db, "k", line_req(org.office_line, "150"))  # 50 over under soft control
    cid = propose(db, org.office_line, mode="hard", tolerance_amount="49.99")
    with refused(db, Conflict, "conflict") as err, db.unit_of_work() as s:
        rc.approve(s, cid, actor="frank")
    assert err.value.details["field"] == "mode" and "over budget" in err.value.message
    assert change(db, cid)["status"] == "pending"
    assert own_rule(db, org.office_line).mode == "soft"
    assert_clean(db)


def test_each_step_publishes_an_event(db, org):
    seen: list[tuple[str, dict]] = []

    def record(session, event):
        if event.name.startswith("budget.rule_change."):
            seen.append((event.name, event.payload))

    events.subscribe("*", record)
    try:
        a = propose(db, org.child_line)
        with db.unit_of_work() as s:
            rc.approve(s, a, actor="frank")
        b = propose(db, org.sibling_line)
        with db.unit_of_work() as s:
            rc.reject(s, b, actor="frank", comment="no")
        c = propose(db, org.sibling_line)
        with db.unit_of_work() as s:
            rc.withdraw(s, c, actor="fiona")
    finally:
        events._handlers["*"].remove(record)
    assert [(n.rsplit(".", 1)[1], p["change_id"]) for n, p in seen] == [
        ("proposed", a), ("approved", a), ("proposed", b), ("rejected", b), ("proposed", c),
        ("withdrawn", c)]
    assert seen[0][1]["proposed_by"] == "fiona" and seen[1][1]["approved_by"] == "frank"


def test_list_filters_by_status_and_line_newest_first(db, org):
    a = propose(db, org.child_line)
    b = propose(db, org.sibling_line)
    with db.unit_of_work() as s:
        rc.approve(s, a, actor="frank")
    with db.unit_of_work(readonly=True) as s:
        assert [c["id"] for c in rc.list_changes(s)[1]] == [b, a]
        total, pending = rc.list_changes(s, status="pending")
        assert total == 1 and [c["id"] for c in pending] == [b]
        assert [c["id"] for c in rc.list_changes(s, line_id=org.child_line)[1]] == [a]
        assert rc.list_changes(s, page=2, page_size=1)[1][0]["id"] == a
        with pytest.raises(ValidationError):
            rc.list_changes(s, status="sleeping")


def _race(db: Database, *actions) -> list[str]:
    """Run each action in its own transaction, all released at once; 'ok' or the error code."""
    barrier = threading.Barrier(len(actions))
    out: dict[int, str] = {}

    def run(i: int, action) -> None:
        barrier.wait()
        try:
            with db.unit_of_work() as s:
                action(s)
            out[i] = "ok"
        except DomainError as err:
            out[i] = err.code

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return [out[i] for i in range(len(actions))]


def test_concurrent_proposals_and_decisions_on_postgres_one_wins(pg_db: Database):
    """The line lock serialises them: one proposal per line, one decision per change."""
    org = org_in(pg_db)
    approvals = 0
    for mode in ("soft", "track", "none", "soft"):
        got = _race(pg_db, *[partial(rc.propose, line_id=org.child_line, actor=who, mode=mode)
                             for who in ("fiona", "frank", "gina")])
        assert sorted(got) == ["ok", "rule_change_pending", "rule_change_pending"]
        with pg_db.unit_of_work(readonly=True) as s:
            (cid,) = [c["id"] for c in rc.list_changes(s, status="pending")[1]]
            proposer = rc.get_change(s, cid)["proposed_by"]
        reviewers = [u for u in ("fiona", "frank", "gina", "zhou.cfo") if u != proposer][:2]
        got = _race(pg_db, partial(rc.approve, change_id=cid, actor=reviewers[0]),
                    partial(rc.approve, change_id=cid, actor=reviewers[1]),
                    partial(rc.withdraw, change_id=cid, actor=proposer))
        assert got.count("ok") == 1 and got.count("rule_change_not_pending") == 2, got
        status = change(pg_db, cid)["status"]
        rule = own_rule(pg_db, org.child_line)
        assert status in ("approved", "withdrawn")
        approvals += status == "approved"
        if status == "approved":
            assert rule.mode == mode and rule.approved_by in reviewers
        assert (rule.version if rule is not None else 0) == approvals  # applied once, not twice


def test_verify_finds_a_rule_change_decided_by_its_proposer(db, org):
    """What the service refuses, verify finds if it was written behind its back."""
    from yinfin_flow.verify import verify

    a = propose(db, org.child_line)
    with db.unit_of_work() as s:
        rc.approve(s, a, actor="frank")
    with db.unit_of_work(readonly=True) as s:
        assert [str(p) for p in verify(s)] == []
    with db.unit_of_work() as s:
        s.get(RuleChange, a).decided_by = "cli:fiona"
        rule = s.scalar(select(ControlRuleRow).where(ControlRuleRow.line_id == org.child_line))
        rule.approved_by = "fiona"
    with db.unit_of_work(readonly=True) as s:
        assert [str(p) for p in verify(s)] == [
            f"[four_eyes] rule change {a}: approved by its proposer cli:fiona",
            "[four_eyes] ACME/2026-01/RD-APP/TRAVEL: rule configured and approved by the same person fiona",
        ]
