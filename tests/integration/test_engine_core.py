"""The engine on both databases: the shipped expense workflow end to end, budget at
every step, one transaction per action, authorisation, history."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from yinfin_flow.db.models.engine import ApprovalRequest, RequestCc
from yinfin_flow.db.models.ledger import JournalEntry
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.budget import OverBudget
from yinfin_flow.engine import service
from yinfin_flow.engine.errors import Forbidden, InvalidAction, TaskClosed, WithdrawWindowClosed

from .test_engine_support import actions, clean, expense_form, held, pending, state, world


def submit(db, org, amount="250.00", requester="amy", cc=None, **kw):
    with db.unit_of_work() as s:
        extra = {"cc": cc} if cc else {}
        req = service.submit(s, "expense", requester=requester, company="ACME", title="Beijing trip",
                             form=expense_form(org.child_line, amount, **extra), **kw)
        return req.id


def act(db, task_id, actor, action="approve", **kw):
    with db.unit_of_work() as s:
        return service.act(s, task_id, actor, action, **kw).state


def test_expense_goes_manager_finance_then_posts_and_pays(db):
    org = world(db)
    rid = submit(db, org, cc="pat")
    assert state(db, rid) == "approval"
    assert held(db, org.child_line) == (Decimal("250"), 0, 0)
    [(t1, step, who)] = pending(db, rid)
    assert (step, who) == ("manager", "wang")
    act(db, t1, "wang")
    tasks = pending(db, rid)
    assert {(s_, w) for _, s_, w in tasks} == {("finance", "fay"), ("finance", "fred")}
    act(db, tasks[1][0], "fred")  # 或签: one finance approval is enough
    assert state(db, rid) == "approved"
    assert pending(db, rid) == []
    with db.unit_of_work(readonly=True) as s:  # the definition CCs the form's cc at finish
        assert [(c.user, c.at) for c in s.scalars(select(RequestCc))] == [("pat", "finish")]
    # The ledger posted expense.approved and moved the reservation to actual.
    assert held(db, org.child_line) == (0, 0, Decimal("250"))
    with db.unit_of_work() as s:
        assert s.scalar(select(JournalEntry).where(JournalEntry.document_id == str(rid))) is not None
        service.perform(s, rid, "pay", "fay")
    assert state(db, rid) == "paid"
    assert actions(db, rid) == ["create", "submit", "approve", "step_completed", "approve",
                                "step_completed", "approve", "pay"]
    clean(db)


def test_submit_over_budget_writes_nothing(db):
    org = world(db)
    with pytest.raises(OverBudget):
        submit(db, org, amount="600.01")
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(ApprovalRequest)) is None
    assert held(db, org.child_line) == (0, 0, 0)


def test_reject_releases_and_needs_a_reason(db):
    org = world(db)
    rid = submit(db, org)
    [(t1, _, _)] = pending(db, rid)
    with pytest.raises(Exception, match="comment"):
        act(db, t1, "wang", "reject")
    act(db, t1, "wang", "reject", comment="no receipts")
    assert state(db, rid) == "rejected"
    assert held(db, org.child_line) == (0, 0, 0)
    clean(db)


def test_only_the_assignee_acts_and_the_requester_never_approves(db):
    org = world(db)
    rid = submit(db, org)
    [(t1, _, _)] = pending(db, rid)
    with pytest.raises(Forbidden):
        act(db, t1, "lee")
    with pytest.raises(Forbidden):
        act(db, t1, "amy")
    act(db, t1, "wang")
    with pytest.raises(TaskClosed):
        act(db, t1, "wang")  # a second click on a decided task


def test_withdraw_releases_within_the_window_only(db):
    org = world(db)
    rid = submit(db, org)
    with pytest.raises(Forbidden), db.unit_of_work() as s:
        service.withdraw(s, rid, "bob")
    with pytest.raises(WithdrawWindowClosed), db.unit_of_work() as s:
        service.withdraw(s, rid, "amy", now=utcnow() + timedelta(days=8))
    with db.unit_of_work() as s:
        service.withdraw(s, rid, "amy")
    assert state(db, rid) == "withdrawn"
    assert held(db, org.child_line) == (0, 0, 0)
    assert pending(db, rid) == []
    with pytest.raises(InvalidAction), db.unit_of_work() as s:
        service.withdraw(s, rid, "amy")
    clean(db)


def test_send_back_to_submitter_then_resubmit_with_a_bigger_amount_reserves_the_delta(db):
    org = world(db)
    rid = submit(db, org)
    [(t1, _, _)] = pending(db, rid)
    act(db, t1, "wang", "send_back", comment="add the taxi")
    assert state(db, rid) == "sent_back"
    assert held(db, org.child_line)[0] == Decimal("250")  # expense keeps the hold
    with db.unit_of_work() as s:
        service.resubmit(s, rid, "amy", changes={"lines": expense_form(org.child_line, "300.00")["lines"]})
    assert state(db, rid) == "approval"
    assert held(db, org.child_line)[0] == Decimal("300")
    [(t2, step, who)] = pending(db, rid)
    assert (step, who) == ("manager", "wang")
    clean(db)


def test_a_failing_budget_step_leaves_the_state_unchanged(db):
    """transitions sets row.state before the after-callback; the rollback must undo it."""
    org = world(db)
    rid = submit(db, org)
    [(t1, _, _)] = pending(db, rid)
    act(db, t1, "wang", "send_back", comment="split it")
    with pytest.raises(OverBudget), db.unit_of_work() as s:
        service.resubmit(s, rid, "amy", changes={"lines": expense_form(org.child_line, "700.00")["lines"]})
    assert state(db, rid) == "sent_back"
    assert held(db, org.child_line)[0] == Decimal("250")
    clean(db)


def test_idempotent_submit_key(db):
    org = world(db)
    a = submit(db, org, key="oa:123")
    b = submit(db, org, key="oa:123")
    assert a == b
    assert held(db, org.child_line)[0] == Decimal("250")
