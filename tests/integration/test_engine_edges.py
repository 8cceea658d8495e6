"""The engine at its edges: a route no step matches, a later step nobody can approve,
delegation windows, information-level alerts on tasks."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from yinfin_flow.budget import setup
from yinfin_flow.db.models.engine import ApprovalTask, RequestHistory
from yinfin_flow.engine import directory, queries, service
from yinfin_flow.engine.errors import EmptyRoute, Forbidden, NoApprover
from yinfin_flow.ledger import reports

from .test_engine_steps import act, go, step, task_of, who
from .test_engine_support import FLOW, clean, held, state, world, write_workflow


def conditional(tmp, policy=None, extra=""):
    """A flow whose only step applies above 10,000."""
    text = FLOW.format(steps="      - {id: big, when: 'form.amount > 10000', approvers: [{type: user, user: pat}]}\n",
                       no_approver="admin", auto="true", resubmit="from_start", version=1)
    if policy:
        text = text.replace("resubmit: from_start}", f"resubmit: from_start, empty_route: {policy}{extra}}}")
    return write_workflow(tmp, text)


def history_of(db, rid):
    with db.unit_of_work(readonly=True) as s:
        return [(h.action, h.actor) for h in s.scalars(
            select(RequestHistory).where(RequestHistory.request_id == rid).order_by(RequestHistory.seq))]


def test_a_route_no_step_matches_is_refused_by_default(db, tmp_path):
    org = world(db)
    with pytest.raises(EmptyRoute) as err:
        go(db, org, conditional(tmp_path))
    assert "empty_route" in err.value.message
    assert held(db, org.child_line) == (0, 0, 0)  # nothing half-done


def test_an_empty_route_goes_to_the_named_fallback(db, tmp_path):
    org = world(db)
    rid = go(db, org, conditional(tmp_path, "fallback", ", fallback_approvers: [{type: user, user: quinn}]"))
    assert who(db, rid) == ["quinn"]
    act(db, task_of(db, rid, "quinn"), "quinn")
    assert state(db, rid) == "approved"
    clean(db)


def test_an_empty_route_approved_by_the_definition_is_the_systems_approval(db, tmp_path):
    org = world(db)
    rid = go(db, org, conditional(tmp_path, "auto_approve"))
    assert state(db, rid) == "approved"
    hist = history_of(db, rid)
    assert ("empty_route", "system") in hist
    assert ("approve", "system") in hist
    assert all(actor != "amy" for action, actor in hist if action == "approve")
    clean(db)


def test_no_approver_fail_on_a_later_step_refuses_the_submit(db, tmp_path):
    org = world(db)
    wf = write_workflow(tmp_path, FLOW.format(
        steps=step("a", ["pat"]) + "      - {id: b, approvers: [{type: form_field, field: nobody}]}\n",
        no_approver="fail", auto="true", resubmit="from_start", version=1))
    with pytest.raises(NoApprover) as err:
        go(db, org, wf)
    assert err.value.details["step"] == "b"
    assert held(db, org.child_line) == (0, 0, 0)


def test_a_later_step_that_lost_its_approver_after_submit_goes_to_admin(db, tmp_path):
    org = world(db)
    wf = write_workflow(tmp_path, FLOW.format(
        steps=step("a", ["pat"]) + "      - {id: b, approvers: [{type: role, role: auditor, scope: company}]}\n",
        no_approver="fail", auto="true", resubmit="from_start", version=1))
    with db.unit_of_work() as s:
        directory.grant_role(s, "quinn", "auditor", actor="t")
    rid = go(db, org, wf)
    with db.unit_of_work() as s:
        directory.revoke_role(s, "quinn", "auditor")
    act(db, task_of(db, rid, "pat"), "pat")  # today: fails every time, the request stuck
    assert who(db, rid) == ["admin"]
    assert ("no_approver", "system") in history_of(db, rid)
    clean(db)


def window(db, start, end):
    with db.unit_of_work() as s:
        directory.delegate(s, "pat", "olga", start, end)


def at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 10, tzinfo=UTC)


def test_delegation_window_before_during_and_after(db, tmp_path):
    org = world(db)
    wf = tmp_path / "wf"
    from .test_engine_support import flow

    flow(wf, step("a", ["pat"]))
    window(db, date(2026, 3, 1), date(2026, 3, 15))
    with db.unit_of_work() as s:  # made before the window: pat's
        before = service.submit(s, "flow", requester="amy", company="ACME", title="t",
                                form={"lines": [{"ref": "1", "line_id": org.child_line, "amount": "10.00",
                                                 "budget_date": "2026-01-15"}]},
                                directory=wf, now=at(date(2026, 2, 20))).id
        during = service.submit(s, "flow", requester="amy", company="ACME", title="t",
                                form={"lines": [{"ref": "1", "line_id": org.child_line, "amount": "10.00",
                                                 "budget_date": "2026-01-15"}]},
                                directory=wf, now=at(date(2026, 3, 2))).id

    def inbox(user, d):
        with db.unit_of_work(readonly=True) as s:
            return sorted(t["request_id"] for t in queries.inbox(s, user, on=d))

    # Before the window: only pat sees (and may act on) his task.
    assert before in inbox("pat", date(2026, 2, 20))
    assert inbox("olga", date(2026, 2, 20)) == []
    # During: olga sees both (the one made before the window too); pat still sees his own.
    assert inbox("olga", date(2026, 3, 5)) == [before, during]
    assert inbox("pat", date(2026, 3, 5)) == [before, during]
    # After: it is all pat's again.
    assert inbox("olga", date(2026, 3, 16)) == []
    assert inbox("pat", date(2026, 3, 16)) == [before, during]

    with db.unit_of_work(readonly=True) as s:
        t_during = s.scalar(select(ApprovalTask).where(ApprovalTask.request_id == during))
        t_before = s.scalar(select(ApprovalTask).where(ApprovalTask.request_id == before))
        t_during_id, t_before_id = t_during.id, t_before.id
    with pytest.raises(Forbidden), db.unit_of_work() as s:  # the window is over
        service.act(s, t_during_id, "olga", "approve", now=at(date(2026, 3, 16)))
    with db.unit_of_work() as s:  # inside it, on behalf of pat
        service.act(s, t_before_id, "olga", "approve", now=at(date(2026, 3, 5)))
    with db.unit_of_work() as s:  # pat acts himself on the task made for olga
        service.act(s, t_during_id, "pat", "approve", now=at(date(2026, 3, 6)))
    with db.unit_of_work(readonly=True) as s:
        rows = {(h.request_id, h.actor, h.on_behalf_of) for h in s.scalars(
            select(RequestHistory).where(RequestHistory.action == "approve", RequestHistory.task_id.isnot(None)))}
    assert rows == {(before, "olga", "pat"), (during, "pat", None)}
    clean(db)


def test_a_deputy_acting_on_a_task_made_for_them_is_recorded_on_behalf(db, tmp_path):
    org = world(db)
    from .test_engine_support import flow

    window(db, date(2000, 1, 1), date(2100, 1, 1))
    rid = go(db, org, flow(tmp_path, step("a", ["pat"])))
    act(db, task_of(db, rid, "olga"), "olga")
    with db.unit_of_work(readonly=True) as s:
        h = s.scalar(select(RequestHistory).where(RequestHistory.request_id == rid,
                                                  RequestHistory.action == "approve",
                                                  RequestHistory.task_id.isnot(None)))
        assert (h.actor, h.on_behalf_of) == ("olga", "pat")
        trail = reports.trail(s, "expense", str(rid))
    assert {(a["action"], a["actor"], a["on_behalf_of"]) for a in trail["approvals"]} >= {("approve", "olga", "pat")}
    clean(db)


def test_info_alerts_are_shown_on_the_task_marked_as_information(db, tmp_path):
    org = world(db)
    from .test_engine_support import flow

    with db.unit_of_work() as s:
        setup.set_rule(s, org.child_line, mode="hard", actor="cfo",
                       thresholds=[{"percent": "10", "action": "info"}, {"percent": "100", "action": "block"}])
    rid = go(db, org, flow(tmp_path, step("a", ["pat"])), amount="100.00")  # 16.67 % of 600
    with db.unit_of_work(readonly=True) as s:
        t = s.scalar(select(ApprovalTask).where(ApprovalTask.request_id == rid))
        info = [w for w in t.warnings if w["line_id"] == org.child_line]
    assert [(w["level"], w["severity"]) for w in info] == [("info", "information")]
