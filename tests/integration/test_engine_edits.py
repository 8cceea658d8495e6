"""Edits mid-flow (route and reservation recomputed together) and override requests."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.domain.budget import OverBudget
from yinfin_flow.engine import service
from yinfin_flow.engine.errors import Forbidden, InvalidAction
from yinfin_flow.engine.overrides import OverrideCapExceeded

from .test_engine_support import clean, expense_form, flow, held, pending, state, world

STEPS = (
    "      - {id: a, approvers: [{type: user, user: pat}], editable: [lines]}\n"
    "      - {id: big, when: 'form.amount > 300', approvers: [{type: user, user: olga}]}\n"
    "      - {id: c, approvers: [{type: user, user: quinn}]}\n"
)


def go(db, org, wf_dir, amount):
    with db.unit_of_work() as s:
        return service.submit(s, "flow", requester="amy", company="ACME", title="t",
                              form=expense_form(org.child_line, amount), directory=wf_dir).id


def lines(org, amount):
    return expense_form(org.child_line, amount)["lines"]


def test_approver_edit_reserves_the_delta_and_reroutes(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, STEPS), "200.00")
    [(t, _, _)] = pending(db, rid)
    with db.unit_of_work() as s:
        service.edit(s, rid, "pat", {"lines": lines(org, "350.00")}, task_id=t)
    assert held(db, org.child_line)[0] == Decimal("350")
    with db.unit_of_work(readonly=True) as s:
        assert s.get(ApprovalRequest, rid).route == ["a", "big", "c"]
    with db.unit_of_work() as s:
        service.edit(s, rid, "pat", {"lines": lines(org, "120.00")}, task_id=t)
    assert held(db, org.child_line)[0] == Decimal("120")
    with db.unit_of_work(readonly=True) as s:
        assert s.get(ApprovalRequest, rid).route == ["a", "c"]
    clean(db)


def test_approver_edit_over_budget_changes_nothing(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, STEPS), "200.00")
    [(t, _, _)] = pending(db, rid)
    with pytest.raises(OverBudget), db.unit_of_work() as s:
        service.edit(s, rid, "pat", {"lines": lines(org, "601.00")}, task_id=t)
    with db.unit_of_work(readonly=True) as s:
        assert s.get(ApprovalRequest, rid).form["amount"] == "200.00"
    assert held(db, org.child_line)[0] == Decimal("200")


def test_only_editable_fields_and_only_the_assignee(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, STEPS), "200.00")
    [(t, _, _)] = pending(db, rid)
    with pytest.raises(Forbidden), db.unit_of_work() as s:
        service.edit(s, rid, "pat", {"title": "x"}, task_id=t)
    with pytest.raises(Forbidden), db.unit_of_work() as s:
        service.edit(s, rid, "quinn", {"lines": lines(org, "1.00")}, task_id=t)
    with pytest.raises(InvalidAction), db.unit_of_work() as s:
        service.edit(s, rid, "amy", {"lines": lines(org, "1.00")})  # not in an editable state


def test_removed_and_added_lines_release_and_reserve(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, STEPS), "100.00")
    [(t, _, _)] = pending(db, rid)
    new = [{"ref": "2", "line_id": org.office_line, "amount": "40.00", "currency": "CNY", "budget_date": "2026-01-15"}]
    with db.unit_of_work() as s:
        service.edit(s, rid, "pat", {"lines": new}, task_id=t)
    assert held(db, org.child_line)[0] == 0
    assert held(db, org.office_line)[0] == Decimal("40")
    clean(db)


def submit_expense(db, org, amount, reason=None):
    with db.unit_of_work() as s:
        return service.submit(s, "expense", requester="amy", company="ACME", title="trip",
                              form=expense_form(org.child_line, amount), override_reason=reason).id


def test_override_within_the_cap_reserves_only_once_approved(db):
    org = world(db)
    with pytest.raises(OverBudget):
        submit_expense(db, org, "650.00")
    rid = submit_expense(db, org, "650.00", reason="client visit cannot wait")
    assert held(db, org.child_line)[0] == 0  # nothing reserved yet
    [(t, step, who)] = pending(db, rid)
    assert (step, who) == ("override", "olga")
    with db.unit_of_work() as s:
        service.act(s, t, "olga", "approve")
    assert held(db, org.child_line)[0] == Decimal("650")
    [(_, step, _)] = pending(db, rid)
    assert step == "manager"
    with db.unit_of_work(readonly=True) as s:
        assert s.get(ApprovalRequest, rid).override["status"] == "approved"
    clean(db)


def test_override_beyond_the_cap_is_refused(db):
    org = world(db)
    with pytest.raises(OverrideCapExceeded):
        submit_expense(db, org, "700.00", reason="please")  # 100 over; the cap is 10 % of 600
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(ApprovalRequest)) is None


def test_editing_the_amount_voids_a_pending_override(db):
    org = world(db)
    rid = submit_expense(db, org, "650.00", reason="urgent")
    [(t, _, _)] = pending(db, rid)
    with db.unit_of_work() as s:
        service.act(s, t, "olga", "send_back", comment="explain")
    with db.unit_of_work() as s:
        service.edit(s, rid, "amy", {"lines": lines(org, "640.00")})
    with db.unit_of_work(readonly=True) as s:
        assert s.get(ApprovalRequest, rid).override["status"] == "void"
    with pytest.raises(OverBudget), db.unit_of_work() as s:
        service.resubmit(s, rid, "amy")  # no new reason: a plain refusal
    with db.unit_of_work() as s:
        service.resubmit(s, rid, "amy", override_reason="still urgent")
    assert state(db, rid) == "approval"
    assert [s_ for _, s_, _ in pending(db, rid)] == ["override"]
