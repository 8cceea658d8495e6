"""An action's answer shows the budget document as the action read it, when no budget
write followed the read (``budgeting.take_read``): the same impact as reading it again,
after every kind of step, including the ones that moved budget (then nothing is kept)."""

from __future__ import annotations

from decimal import Decimal

from yinfin_flow.api.engine_reads import impact
from yinfin_flow.db.models import BudgetBalance
from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.engine import budgeting, directory, service

from .test_engine_support import expense_form, pending, state, world


def act(db, task_id, who, action="approve", **kw):
    """Act, then compare the impact from what the action kept with a fresh read in the
    same transaction; return whether the action kept its read."""
    with db.unit_of_work() as s:
        req = service.act(s, task_id, who, action, **kw)
        read = budgeting.take_read(s, req)
        assert budgeting.take_read(s, req) is None  # taken once
        if read is not None:
            assert impact(s, req, read) == impact(s, req)
        return read is not None


def submit(db, org, amount="250.00", workflow="expense", **kw):
    with db.unit_of_work() as s:
        return service.submit(s, workflow, requester="amy", company="ACME", title="trip",
                              form=expense_form(org.child_line, amount), **kw).id


def test_expense_steps_keep_the_read_until_a_step_moves_budget(db):
    org = world(db)
    rid = submit(db, org)
    t, step, who = pending(db, rid)[0]
    assert step == "manager"
    assert act(db, t, who) is True  # re-checked, nothing written to budget
    t, step, who = pending(db, rid)[0]
    assert step == "finance"
    assert act(db, t, who) is False  # the last step posts: reservations moved to actual
    assert state(db, rid) == "approved"


def test_a_reservation_made_by_the_step_is_not_answered_from_before_it(db):
    # The override step's approval supplements the line and reserves: the answer must
    # show the new reservation, which the action's earlier read did not have.
    org = world(db)
    rid = submit(db, org, "650.00", override_reason="client visit cannot wait")
    t, step, who = pending(db, rid)[0]
    assert step == "override"
    assert act(db, t, who) is False
    with db.unit_of_work(readonly=True) as s:
        shown = impact(s, s.get(ApprovalRequest, rid))
    assert shown["holds_budget"] is True
    assert [r["pre_encumbered"] for r in shown["reservations"]] == ["650.0000"]


def test_reject_and_send_back_and_the_others(db):
    org = world(db)
    rid = submit(db, org)
    t, _, who = pending(db, rid)[0]
    assert act(db, t, who, "reject", comment="no") is False  # released
    rid = submit(db, org)
    t, _, who = pending(db, rid)[0]
    assert act(db, t, who, "transfer", to="lee") is False  # nothing read: read again
    t, _, who = pending(db, rid)[0]
    assert who == "lee"
    act(db, t, who, "add_approver", users=["pat"], position="after")
    t, _, who = pending(db, rid)[0]
    assert act(db, t, who) is True
    t, step, who = pending(db, rid)[0]
    assert step == "finance"
    act(db, t, who, "send_back", comment="receipts", target="submitter")
    assert state(db, rid) == "sent_back"


def test_kept_read_matches_after_budget_moved_on_other_documents(db):
    # Other requests on the same lines change what is available: the kept re-check is
    # this transaction's, and equal to reading it again before commit.
    org = world(db)
    first = submit(db, org)
    submit(db, org, "100.00")
    t, _, who = pending(db, first)[0]
    with db.unit_of_work(readonly=True) as s:
        assert s.get(BudgetBalance, org.child_line).pre_encumbered == Decimal("350")
    assert act(db, t, who) is True


def test_procurement_transfer_and_project_workflows(db):
    org = world(db)
    with db.unit_of_work() as s:
        directory.grant_role(s, "gm", "cfo", actor="t")
        for u in ("pat", "quinn"):
            directory.grant_role(s, u, "pmo", actor="t")
        rids = [
            service.submit(s, "procurement", requester="amy", company="ACME", title="laptops",
                           form={**expense_form(org.child_line, "50.00"), "partner": "EMP-amy"}).id,
            service.submit(s, "budget_transfer", requester="amy", company="ACME", title="move",
                           form={"from_line": org.office_line, "to_line": org.sibling_line,
                                 "amount": "40.00", "budget_date": "2026-01-15", "reason": "offsite"}).id,
            service.submit(s, "project", requester="amy", company="ACME", title="new app",
                           form={"project": "APP1", "name": "New app", "parent_line": org.parent_line,
                                 "lines": [{"ref": "1", "item": "TRAVEL", "amount": "30.00",
                                            "budget_date": "2026-01-15"}]}).id,
        ]
    for rid in rids:
        with db.unit_of_work(readonly=True) as s:
            approval = s.get(ApprovalRequest, rid).state
        while state(db, rid) == approval:
            t, _, who = pending(db, rid)[0]
            act(db, t, who)
