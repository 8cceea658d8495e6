"""Timers as rows fired by the scheduler function, exactly once; concurrent approvers.

On both databases (``db`` is conftest's, parametrised): an escalation writes through
the engine's PostgreSQL path (the next INSERT carries the other changes) as well.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from yinfin_flow.db.models.engine import EngineTimer, RequestHistory
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import Conflict
from yinfin_flow.engine import service
from yinfin_flow.engine.timers import fire_due_timers

from .test_engine_support import clean, expense_form, flow, held, pending, state, world


def timed(tmp, action, extra="", version=1):
    return flow(tmp, f"      - {{id: a, approvers: [{{type: user, user: pat}}], "
                     f"timeout: {{hours: 2, action: {action}{extra}}}}}\n", version=version)


def go(db, org, wf_dir, amount="100.00"):
    with db.unit_of_work() as s:
        return service.submit(s, "flow", requester="amy", company="ACME", title="t",
                              form=expense_form(org.child_line, amount), directory=wf_dir).id


def count(db, action):
    with db.unit_of_work(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(RequestHistory).where(RequestHistory.action == action))


def test_nothing_fires_before_it_is_due(db, tmp_path):
    org = world(db)
    go(db, org, timed(tmp_path, "approve"))
    assert fire_due_timers(db, utcnow() + timedelta(hours=1)) == []


def test_escalate_hands_the_task_to_the_managers_manager(db, tmp_path):
    org = world(db)
    rid = go(db, org, timed(tmp_path, "escalate"))
    later = utcnow() + timedelta(hours=3)
    [done] = fire_due_timers(db, later)
    assert done["result"] == "escalated to ceo"  # pat's manager
    assert [w for _, _, w in pending(db, rid)] == ["ceo"]
    assert fire_due_timers(db, later) == []


def test_auto_approve_and_auto_reject(db, tmp_path):
    org = world(db)
    rid = go(db, org, timed(tmp_path / "a", "approve"))
    fire_due_timers(db, utcnow() + timedelta(hours=3))
    assert state(db, rid) == "approved"
    rid2 = go(db, org, timed(tmp_path / "r", "reject", version=2))
    fire_due_timers(db, utcnow() + timedelta(hours=3))
    assert state(db, rid2) == "rejected"
    assert held(db, org.child_line) == (0, 0, 0)
    clean(db)


def test_remind_repeats_and_stops_once_the_task_is_decided(db, tmp_path):
    org = world(db)
    rid = go(db, org, timed(tmp_path, "remind", ", remind_every_hours: 1"))
    t0 = utcnow()
    assert [d["result"] for d in fire_due_timers(db, t0 + timedelta(hours=2.5))] == ["reminded pat"]
    [(task, _, _)] = pending(db, rid)
    with db.unit_of_work() as s:
        service.act(s, task, "pat", "approve")
    assert fire_due_timers(db, t0 + timedelta(hours=10)) == []  # cancelled with the task
    assert count(db, "remind") == 1


def test_decided_task_timer_does_nothing(db, tmp_path):
    org = world(db)
    rid = go(db, org, timed(tmp_path, "approve"))
    with db.unit_of_work() as s:
        service.withdraw(s, rid, "amy")
    assert fire_due_timers(db, utcnow() + timedelta(hours=3)) == []
    assert state(db, rid) == "withdrawn"


@pytest.mark.postgres
def test_two_schedulers_at_once_fire_each_timer_exactly_once(pg_db, tmp_path):
    org = world(pg_db)
    wf = timed(tmp_path, "remind")
    rids = [go(pg_db, org, wf, "10.00") for _ in range(6)]
    later = utcnow() + timedelta(hours=3)
    barrier = threading.Barrier(3)
    results: list[list] = [[], [], []]

    def run(i):
        barrier.wait()
        results[i] = fire_due_timers(pg_db, later)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fired = sorted(d["request_id"] for r in results for d in r)
    assert fired == sorted(rids)
    assert count(pg_db, "remind") == 6
    with pg_db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(EngineTimer).where(EngineTimer.status == "pending")) == 0


@pytest.mark.postgres
def test_two_any_mode_approvers_at_the_same_moment_produce_one_outcome(pg_db, tmp_path):
    org = world(pg_db)
    wf = flow(tmp_path, "      - {id: fin, mode: any, approvers: [{type: user, user: pat}, {type: user, user: quinn}]}\n")
    for _ in range(5):
        rid = go(pg_db, org, wf)
        tasks = pending(pg_db, rid)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def approve(task_id, who, barrier=barrier, outcomes=outcomes):
            barrier.wait()
            try:
                with pg_db.unit_of_work() as s:
                    service.act(s, task_id, who, "approve")
                outcomes.append("ok")
            except Conflict as err:
                outcomes.append(err.code)

        threads = [threading.Thread(target=approve, args=(t, w)) for t, _, w in tasks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["ok", "task_closed"]
        assert state(pg_db, rid) == "approved"
    assert held(pg_db, org.child_line) == (0, 0, 0)
    assert count(pg_db, "approve") == 10  # per request: one task approval + the state's approve
    clean(pg_db)


@pytest.mark.postgres
def test_first_submits_of_a_new_version_at_once_all_succeed(pg_db, tmp_path):
    org = world(pg_db)
    wf = flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n")
    barrier = threading.Barrier(4)
    errors: list[Exception] = []

    def submit():
        barrier.wait()
        try:
            go(pg_db, org, wf, "10.00")
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert held(pg_db, org.child_line)[0] == 40
