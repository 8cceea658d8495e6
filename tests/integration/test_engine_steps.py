"""Countersign modes, transfer, add approver, CC, urge, delegation, auto-approve, no approver.

Routing logic, on both databases (``db`` is conftest's, parametrised): the engine's
writes take a different path on PostgreSQL (task changes, history and the request's
UPDATE inside the next INSERT), so every task action is proven there too.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from yinfin_flow import events
from yinfin_flow.db.models.engine import ApprovalTask, RequestCc
from yinfin_flow.engine import directory, service
from yinfin_flow.engine.errors import Forbidden, NoApprover

from .test_engine_support import actions, clean, expense_form, flow, held, pending, state, world


def step(id_, users, mode="all", extra=""):
    rules = ", ".join(f"{{type: user, user: {u}}}" for u in users)
    return f"      - {{id: {id_}, approvers: [{rules}], mode: {mode}{extra}}}\n"


def go(db, org, wf_dir, requester="amy", amount="100.00", **form_extra):
    with db.unit_of_work() as s:
        return service.submit(s, "flow", requester=requester, company="ACME", title="t",
                              form=expense_form(org.child_line, amount, **form_extra), directory=wf_dir).id


def act(db, task_id, actor, action="approve", **kw):
    with db.unit_of_work() as s:
        service.act(s, task_id, actor, action, **kw)


def who(db, rid):
    return sorted(w for _, _, w in pending(db, rid))


def task_of(db, rid, user):
    return next(t for t, _, w in pending(db, rid) if w == user)


def test_all_mode_needs_everyone(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("board", ["pat", "quinn"], "all")))
    act(db, task_of(db, rid, "pat"), "pat")
    assert state(db, rid) == "approval" and who(db, rid) == ["quinn"]
    act(db, task_of(db, rid, "quinn"), "quinn")
    assert state(db, rid) == "approved"
    assert held(db, org.child_line) == (0, 0, 0)
    clean(db)


def test_sequence_mode_asks_one_after_another(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("chain", ["pat", "quinn", "olga"], "sequence")))
    assert who(db, rid) == ["pat"]
    act(db, task_of(db, rid, "pat"), "pat")
    assert who(db, rid) == ["quinn"]
    act(db, task_of(db, rid, "quinn"), "quinn")
    act(db, task_of(db, rid, "olga"), "olga")
    assert state(db, rid) == "approved"


def test_quorum_two_of_three_and_one_rejection_is_not_enough_to_reject(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("pmo", ["pat", "quinn", "olga"], "quorum", ", quorum: 2")))
    act(db, task_of(db, rid, "pat"), "pat", "reject", comment="too dear")
    assert state(db, rid) == "approval"
    act(db, task_of(db, rid, "quinn"), "quinn")
    assert state(db, rid) == "approval"
    act(db, task_of(db, rid, "olga"), "olga")
    assert state(db, rid) == "approved"


def test_quorum_rejects_once_it_cannot_be_reached(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("pmo", ["pat", "quinn", "olga"], "quorum", ", quorum: 2")))
    act(db, task_of(db, rid, "pat"), "pat", "reject", comment="no")
    act(db, task_of(db, rid, "quinn"), "quinn", "reject", comment="no")
    assert state(db, rid) == "rejected"
    assert pending(db, rid) == []
    assert held(db, org.child_line) == (0, 0, 0)


def test_any_mode_cancels_the_others(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("fin", ["pat", "quinn"], "any") + step("boss", ["olga"])))
    act(db, task_of(db, rid, "quinn"), "quinn")
    assert who(db, rid) == ["olga"]
    with db.unit_of_work(readonly=True) as s:
        statuses = {t.assignee: t.status for t in s.scalars(select(ApprovalTask).where(ApprovalTask.step_id == "fin"))}
    assert statuses == {"pat": "cancelled", "quinn": "approved"}


def test_transfer_hands_the_task_over(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("a", ["pat"])))
    with pytest.raises(Exception, match="requester"):
        act(db, task_of(db, rid, "pat"), "pat", "transfer", to="amy")
    act(db, task_of(db, rid, "pat"), "pat", "transfer", to="quinn", comment="I'm away")
    assert who(db, rid) == ["quinn"]
    act(db, task_of(db, rid, "quinn"), "quinn")
    assert state(db, rid) == "approved"
    assert "transfer" in actions(db, rid)


@pytest.mark.parametrize("position", ["before", "after", "parallel"])
def test_add_approver(db, tmp_path, position):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("a", ["pat"]) + step("b", ["olga"])))
    act(db, task_of(db, rid, "pat"), "pat", "add_approver", users=["quinn"], position=position)
    if position == "before":
        assert who(db, rid) == ["quinn"]  # pat's task waits for quinn
        act(db, task_of(db, rid, "quinn"), "quinn")
        assert who(db, rid) == ["pat"]
        act(db, task_of(db, rid, "pat"), "pat")
    elif position == "after":
        assert who(db, rid) == ["quinn"]  # pat's approval counted
        act(db, task_of(db, rid, "quinn"), "quinn")
    else:
        assert who(db, rid) == ["pat", "quinn"]
        act(db, task_of(db, rid, "pat"), "pat")
        assert who(db, rid) == ["quinn"]
        act(db, task_of(db, rid, "quinn"), "quinn")
    assert who(db, rid) == ["olga"]


def test_send_back_to_the_previous_step_voids_its_approval(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("a", ["pat"]) + step("b", ["quinn"])))
    act(db, task_of(db, rid, "pat"), "pat")
    act(db, task_of(db, rid, "quinn"), "quinn", "send_back", target="previous", comment="ask pat again")
    assert who(db, rid) == ["pat"]
    assert state(db, rid) == "approval"
    act(db, task_of(db, rid, "pat"), "pat")
    assert who(db, rid) == ["quinn"]


def test_resubmit_to_sender_skips_earlier_steps(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("a", ["pat"]) + step("b", ["quinn"]), resubmit="to_sender"))
    act(db, task_of(db, rid, "pat"), "pat")
    act(db, task_of(db, rid, "quinn"), "quinn", "send_back", comment="fix it")
    assert state(db, rid) == "sent_back"
    with db.unit_of_work() as s:
        service.resubmit(s, rid, "amy")
    assert who(db, rid) == ["quinn"]


def test_repeat_approver_is_approved_automatically(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("a", ["pat"]) + step("b", ["pat", "quinn"])))
    act(db, task_of(db, rid, "pat"), "pat")
    assert who(db, rid) == ["quinn"]
    assert "auto_approve" in actions(db, rid)


def test_repeat_approver_asked_again_when_configured(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, step("a", ["pat"]) + step("b", ["pat"]), auto="false"))
    act(db, task_of(db, rid, "pat"), "pat")
    assert who(db, rid) == ["pat"]


def test_no_approver_goes_to_admin_or_fails(db, tmp_path):
    org = world(db)
    d1 = flow(tmp_path / "admin", "      - {id: a, approvers: [{type: form_field, field: nobody}]}\n")
    rid = go(db, org, d1)
    assert who(db, rid) == ["admin"]
    d2 = flow(tmp_path / "fail", "      - {id: a, approvers: [{type: form_field, field: nobody}]}\n",
              no_approver="fail", version=2)
    with pytest.raises(NoApprover):
        go(db, org, d2)
    assert held(db, org.child_line)[0] == 100  # only the first request holds budget


def test_delegate_acts_for_the_assignee(db, tmp_path):
    org = world(db)
    with db.unit_of_work() as s:
        directory.delegate(s, "pat", "olga", date(2000, 1, 1), date(2100, 1, 1))
    rid = go(db, org, flow(tmp_path, step("a", ["pat"])))
    assert who(db, rid) == ["olga"]  # new tasks go straight to the deputy
    with db.unit_of_work(readonly=True) as s:
        t = s.scalar(select(ApprovalTask).where(ApprovalTask.request_id == rid))
        assert t.on_behalf_of == "pat"
    with pytest.raises(Forbidden):  # nobody else
        act(db, task_of(db, rid, "olga"), "quinn")
    act(db, task_of(db, rid, "olga"), "olga")
    assert state(db, rid) == "approved"


def test_urge_comment_and_cc_publish_events(db, tmp_path):
    org = world(db)
    seen = []
    events.subscribe("task.urged", lambda s, e: seen.append(e))
    events.subscribe("request.cc", lambda s, e: seen.append(e))
    try:
        rid = go(db, org, flow(tmp_path, step("a", ["pat"])))
        with db.unit_of_work() as s:
            assert service.urge(s, rid, "amy")
            service.comment(s, rid, "pat", "looking at it")
            service.copy_to(s, rid, "amy", ["quinn"])
        with pytest.raises(Forbidden), db.unit_of_work() as s:
            service.urge(s, rid, "bob")
        with pytest.raises(Forbidden), db.unit_of_work() as s:
            service.comment(s, rid, "bob", "not mine")
    finally:
        events._handlers["task.urged"].clear()
        events._handlers["request.cc"].clear()
    assert [e.name for e in seen] == ["task.urged", "request.cc"]
    assert seen[0].payload["assignee"] == "pat"
    with db.unit_of_work(readonly=True) as s:
        assert [c.user for c in s.scalars(select(RequestCc))] == ["quinn"]
    assert actions(db, rid)[-3:] == ["urge", "comment", "cc"]
