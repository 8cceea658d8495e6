"""What the engine's fast paths must keep: history numbering under concurrency, history
visible in the action's own transaction, nothing left behind by a rollback, rows recorded
before a savepoint kept when the savepoint rolls back; delegations read with the
approvers decide as delegate_for does; every open task is closed when approval ends."""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm.exc import StaleDataError

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestHistory
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.engine import definitions, directory, queries, service
from yinfin_flow.engine.approvers import delegate_for
from yinfin_flow.engine.pending import deferred, insert_returning_id
from yinfin_flow.engine.runtime import ActionContext, history, lock_request

from .test_engine_support import (
    FLOW,
    actions,
    expense_form,
    flow,
    pending,
    state,
    world,
    write_workflow,
)


def go(db, org, wf_dir, amount="100.00"):
    with db.unit_of_work() as s:
        return service.submit(s, "flow", requester="amy", company="ACME", title="t",
                              form=expense_form(org.child_line, amount), directory=wf_dir).id


def seqs(db, rid):
    with db.unit_of_work(readonly=True) as s:
        return list(s.scalars(select(RequestHistory.seq).where(RequestHistory.request_id == rid)
                              .order_by(RequestHistory.seq)))


@pytest.mark.postgres
def test_two_all_mode_approvers_at_the_same_moment_both_count(pg_db, tmp_path):
    # Each approver's action waits for the other's lock on the request; the one that
    # waited must number its history after the rows the first one wrote.
    org = world(pg_db)
    wf = flow(tmp_path, "      - {id: fin, mode: all, approvers: [{type: user, user: pat}, {type: user, user: quinn}]}\n")
    for _ in range(4):
        rid = go(pg_db, org, wf)
        tasks = pending(pg_db, rid)
        assert len(tasks) == 2
        barrier = threading.Barrier(2)
        errors: list[Exception] = []

        def approve(task_id, who, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                with pg_db.unit_of_work() as s:
                    service.act(s, task_id, who, "approve")
            except Exception as err:  # noqa: BLE001 - collected and asserted below
                errors.append(err)

        threads = [threading.Thread(target=approve, args=(t, w)) for t, _, w in tasks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert state(pg_db, rid) == "approved"
        got = seqs(pg_db, rid)
        assert got == list(range(1, len(got) + 1))


def test_history_is_readable_in_the_actions_own_transaction(db, tmp_path):
    org = world(db)
    wf = flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n")
    rid = go(db, org, wf)
    with db.unit_of_work() as s:
        service.comment(s, rid, "amy", "receipt attached")
        # the API reads the detail in the same transaction, before it commits
        assert queries.get_request(s, rid)["history"][-1]["action"] == "comment"
    [(task, _, _)] = pending(db, rid)
    with db.unit_of_work() as s:
        service.act(s, task, "pat", "approve")
        assert [h["action"] for h in queries.get_request(s, rid)["history"]][-3:] == [
            "approve", "step_completed", "approve"]
    assert seqs(db, rid) == list(range(1, len(seqs(db, rid)) + 1))


def test_a_rolled_back_action_leaves_no_history_behind(db, tmp_path):
    org = world(db)
    # Approving the last step records history, then the posting refuses the request's
    # partner; the session is rolled back and used again.
    wf = write_workflow(tmp_path, FLOW.format(
        steps="      - {id: a, approvers: [{type: user, user: pat}]}\n", no_approver="admin", auto="true",
        resubmit="from_start", version=1).replace(
        "to: approved, by: approver, budget: release", "to: approved, by: approver, budget: release, "
        "posting: expense.approved"))
    with db.unit_of_work() as s:
        rid = service.submit(s, "flow", requester="amy", company="ACME", title="t",
                             form=expense_form(org.child_line, "100.00", partner="NOPE"), directory=wf).id
    before = seqs(db, rid)
    [(task, _, _)] = pending(db, rid)
    s = db.session()
    try:
        with pytest.raises(ValidationError), s.begin():
            service.act(s, task, "pat", "approve")
        with s.begin():
            service.comment(s, rid, "amy", "why did it fail?")
    finally:
        s.close()
    assert seqs(db, rid) == before + [len(before) + 1]


def _comment_ctx(s, rid):
    req = lock_request(s, rid)
    d = definitions.stored(s, req.workflow, req.workflow_version, req.workflow_hash)
    return req, ActionContext(s, d, "amy", comment="note")


def test_history_recorded_before_a_savepoint_outlives_the_savepoints_rollback(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n"))
    before = seqs(db, rid)
    with db.unit_of_work() as s:
        req, ctx = _comment_ctx(s, rid)
        history(ctx, req, "comment")  # pending: nothing has run since
        # e.g. the first use of a definition version racing another (definitions.current)
        with contextlib.suppress(ValueError), s.begin_nested():
            raise ValueError
        history(ctx, req, "comment")
    assert seqs(db, rid) == before + [len(before) + 1, len(before) + 2]


def test_history_pending_at_a_rollback_is_forgotten(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n"))
    before = seqs(db, rid)
    s = db.session()
    try:
        with pytest.raises(RuntimeError), s.begin():
            req, ctx = _comment_ctx(s, rid)
            history(ctx, req, "comment")
            raise RuntimeError("the action failed after recording history")
        with s.begin():
            req, ctx = _comment_ctx(s, rid)
            history(ctx, req, "comment")
    finally:
        s.close()
    assert seqs(db, rid) == before + [len(before) + 1]


def test_history_pending_when_a_session_is_closed_is_forgotten(db, tmp_path):
    org = world(db)
    rid = go(db, org, flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n"))
    before = seqs(db, rid)
    s = db.session()
    try:
        s.begin()
        req, ctx = _comment_ctx(s, rid)
        history(ctx, req, "comment")
        s.close()  # no commit, no explicit rollback
        with s.begin():
            req, ctx = _comment_ctx(s, rid)
            history(ctx, req, "comment")
    finally:
        s.close()
    assert seqs(db, rid) == before + [len(before) + 1]


def _statements(db, fn):
    """The statements ``fn`` sends (text, whitespace collapsed)."""
    sent: list[str] = []

    def on(_conn, _cur, statement, *_):
        sent.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", on)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", on)
    return sent


def test_an_actions_history_rows_go_out_together(db, tmp_path):
    # Written once per action (SQLite), or inside the INSERT of the next task
    # (PostgreSQL), never one INSERT per read in between; numbered all the same.
    org = world(db)
    wf = flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n"
                        "      - {id: b, approvers: [{type: user, user: quinn}]}\n")
    own = 0 if db.dialect == "postgresql" else 1
    rid = []
    sent = _statements(db, lambda: rid.append(go(db, org, wf)))
    assert sum(s.startswith("INSERT INTO request_history") for s in sent) == own
    [(task, _, _)] = pending(db, rid[0])

    def approve():
        with db.unit_of_work() as s:
            service.act(s, task, "pat", "approve")

    sent = _statements(db, approve)
    assert sum(s.startswith("INSERT INTO request_history") for s in sent) == own
    assert actions(db, rid[0]) == ["create", "submit", "approve", "step_completed"]
    assert seqs(db, rid[0]) == [1, 2, 3, 4]


def test_tasks_go_to_the_deputies_delegate_for_names(db, tmp_path):
    # The delegations are read with the approvers (one statement), or for all of a
    # step's people at once (a manager rule): the outcome is delegate_for's, person
    # by person.
    org = world(db)
    today = utcnow().date()
    day = timedelta(days=1)
    with db.unit_of_work() as s:
        directory.delegate(s, "pat", "olga", today - day, today + day)  # all workflows
        directory.delegate(s, "quinn", "fay", today - day, today + day, workflow="other")
        directory.delegate(s, "fred", "buyer", today - day, today + day, workflow="flow")
        directory.delegate(s, "gm", "amy", today - day, today + day)  # amy requests: not her
        directory.delegate(s, "lee", "zhao", today - 3 * day, today - day)  # over
        directory.delegate(s, "wang", "admin", today, today)  # amy's manager
        directory.set_active(s, "buyer", False)
    wf = flow(tmp_path, "      - {id: a, mode: all, approvers: [{type: user, user: pat}, {type: user, user: quinn},"
                        " {type: user, user: fred}, {type: user, user: gm}, {type: user, user: lee}]}\n"
                        "      - {id: b, approvers: [{type: manager}]}\n")
    rid = go(db, org, wf)
    with db.unit_of_work(readonly=True) as s:
        got = {(t.on_behalf_of or t.assignee): (t.assignee, t.on_behalf_of) for t in s.scalars(
            select(ApprovalTask).where(ApprovalTask.request_id == rid))}
        for person in ("pat", "quinn", "fred", "gm", "lee"):
            deputy = delegate_for(s, person, today, "flow")
            assert got[person] == ((deputy, person) if deputy and deputy != "amy" else (person, None))
    assert got["pat"] == ("olga", "pat")
    assert [got[p] for p in ("quinn", "fred", "gm", "lee")] == [
        ("quinn", None), ("fred", None), ("gm", None), ("lee", None)]
    for person in ("olga", "quinn", "fred", "gm", "lee"):
        with db.unit_of_work() as s:
            service.act(s, next(t for t, _, w in pending(db, rid) if w == person), person, "approve")
    assert [(w, step_) for _, step_, w in pending(db, rid)] == [("admin", "b")]  # wang's deputy


def test_a_task_left_open_in_an_earlier_round_is_cancelled_when_approval_ends(db, tmp_path):
    # The last approval cancels every open task of the request, read under the lock
    # with the round's tasks (not only those of the current round).
    org = world(db)
    rid = go(db, org, flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n"))
    with db.unit_of_work() as s:
        s.add(ApprovalTask(request_id=rid, state_name="approval", step_id="a", round=0, position=0,
                           assignee="quinn", status="pending", kind="approve", warnings=[], urged=0,
                           created_at=utcnow()))
    task = next(t for t, _, w in pending(db, rid) if w == "pat")
    with db.unit_of_work() as s:
        service.act(s, task, "pat", "approve")
    assert state(db, rid) == "approved"
    assert pending(db, rid) == []


def test_each_write_of_the_request_moves_its_version_on_by_one(db, tmp_path):
    # The request's UPDATE is written by the engine, not the ORM: same version counter,
    # one step per UPDATE, as the ORM counted.
    org = world(db)
    wf = flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n"
                        "      - {id: b, approvers: [{type: user, user: quinn}]}\n")
    rid = go(db, org, wf)

    def version():
        with db.unit_of_work(readonly=True) as s:
            return s.scalar(select(ApprovalRequest.version).where(ApprovalRequest.id == rid))

    assert version() == 2  # inserted, then submitted
    for who in ("pat", "quinn"):
        [(task, _, _)] = pending(db, rid)
        with db.unit_of_work() as s:
            service.act(s, task, who, "approve")
        # the last approval releases the budget, whose service flushes half-way: 2 UPDATEs
        assert version() == (3 if who == "pat" else 5)
    assert state(db, rid) == "approved"


@contextlib.contextmanager
def _stale_copy(pg_db, tmp_path):
    """(session, request) where the request was read before another session approved it
    (and committed); the session is rolled back and closed afterwards."""
    org = world(pg_db)
    rid = go(pg_db, org, flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n"))
    s = pg_db.session()
    try:
        s.begin()
        stale = s.get(ApprovalRequest, rid)
        assert stale is not None and stale.state == "approval"
        [(task, _, _)] = pending(pg_db, rid)
        with pg_db.unit_of_work() as other:
            service.act(other, task, "pat", "approve")
        stale.title = "changed meanwhile"
        yield s, stale
        s.rollback()
    finally:
        s.close()
    assert state(pg_db, rid) == "approved"
    assert pending(pg_db, rid) == []


@pytest.mark.postgres
def test_a_change_to_a_stale_copy_of_a_request_is_refused(pg_db, tmp_path):
    # A copy read before another action committed cannot overwrite that action.
    with _stale_copy(pg_db, tmp_path) as (s, _), pytest.raises(StaleDataError):
        s.flush()


@pytest.mark.postgres
def test_a_task_inserted_with_a_stale_requests_update_is_refused(pg_db, tmp_path):
    # On PostgreSQL a new task's INSERT carries the request's UPDATE and selects its
    # row FROM it: when the UPDATE matches nothing, nothing is inserted either.
    with _stale_copy(pg_db, tmp_path) as (s, stale):
        values = dict(request_id=stale.id, state_name="approval", step_id="a", round=1, position=0,
                      assignee="quinn", on_behalf_of=None, status="pending", kind="approve", added_by=None,
                      warnings=[], comment=None, due_at=None, urged=0, created_at=utcnow(), decided_at=None)
        with pytest.raises(StaleDataError), deferred(s):
            insert_returning_id(s, ApprovalTask.__table__, values)


def test_acting_on_a_task_that_does_not_exist_is_not_found(db, tmp_path):
    # The request is found through the task in the locking statement (on SQLite the
    # same statement reads the round): no task, no request, a 404-style error.
    org = world(db)
    rid = go(db, org, flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n"))
    [(task, _, _)] = pending(db, rid)
    with pytest.raises(NotFound) as err, db.unit_of_work() as s:
        service.act(s, task + 1000, "pat", "approve")
    assert err.value.details["field"] == "task_id"
    with db.unit_of_work() as s:  # the real one still works, version checked
        service.act(s, task, "pat", "approve", expected_version=2)
    assert state(db, rid) == "approved"
