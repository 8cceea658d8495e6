"""db/objects.Reader: the engine's hot reads on PostgreSQL bypass the ORM's query path.
What it builds must be what the ORM would have loaded, and the session must keep one
copy of each row."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.db.objects import Reader
from yinfin_flow.engine import pending as pending_writes
from yinfin_flow.engine import runtime, steps

from .test_engine_support import one_pending_task, world

_NO_TASKS = Reader(select(ApprovalTask).where(ApprovalTask.request_id == 0))


def _columns(obj: Any) -> dict[str, Any]:
    return {a.key: getattr(obj, a.key) for a in inspect(type(obj)).column_attrs}


@pytest.fixture
def submitted(pg_db: Any, tmp_path: Any) -> tuple[int, int]:
    return one_pending_task(pg_db, tmp_path)


@pytest.mark.postgres
def test_a_read_object_equals_what_the_orm_loads_value_for_value(pg_db: Any, submitted: tuple[int, int]):
    rid, task_id = submitted
    with pg_db.unit_of_work() as s:
        orm = _columns(s.get(ApprovalRequest, rid))
        [(orm_task, orm_seq)] = s.execute(steps._ROUND_TASKS, {"request_id": rid, "round": 1}).all()
        orm_task = _columns(orm_task)
    with pg_db.unit_of_work() as s:
        # A session time zone other than UTC: values arrive as +08:00 and only the
        # column type's result processing (UTCDateTime) turns them into UTC.
        s.execute(text("SET LOCAL TIME ZONE 'Asia/Shanghai'"))
        req = runtime.lock_request_of_task(s, task_id)
        assert inspect(req).persistent and not s.dirty and not s.new
        read = _columns(req)
        [(task, seq)] = Reader(steps._ROUND_TASKS)(s, {"request_id": rid, "round": req.round})
        assert seq == orm_seq > 0
    assert {k: repr(v) for k, v in read.items()} == {k: repr(v) for k, v in orm.items()}
    assert {k: repr(v) for k, v in _columns(task).items()} == {k: repr(v) for k, v in orm_task.items()}


@pytest.mark.postgres
def test_a_row_the_session_holds_is_refreshed_in_place_not_copied(pg_db: Any, submitted: tuple[int, int]):
    rid, task_id = submitted
    with pg_db.unit_of_work() as s:
        held = s.get(ApprovalRequest, rid)
        with s.no_autoflush:
            held.title = "changed here, never flushed"
            assert runtime.lock_request_of_task(s, task_id) is held
        assert held.title == "t"  # overwritten by what the row holds, as populate_existing does
        assert not s.is_modified(held)  # nothing left to write


def _history_row(rid: int, seq: int, at: Any) -> dict[str, Any]:
    return {"request_id": rid, "seq": seq, "action": "comment", "actor": "pat", "on_behalf_of": None,
            "step_id": None, "task_id": None, "from_state": None, "to_state": None, "comment": "c",
            "budget": None, "data": None, "created_at": at}


@pytest.mark.postgres
def test_a_read_flushes_the_session_first(pg_db: Any, submitted: tuple[int, int]):
    rid, task_id = submitted
    with pg_db.unit_of_work() as s:
        task = s.get(ApprovalTask, task_id)
        task.comment = "flushed by the read"
        [(again, _)] = Reader(steps._ROUND_TASKS)(s, {"request_id": rid, "round": 1})
        assert again is task and again.comment == "flushed by the read"


@pytest.mark.postgres
def test_before_runs_ahead_of_the_read_as_the_orms_listeners_would(pg_db: Any, submitted: tuple[int, int]):
    rid, _ = submitted
    read = Reader(steps._ROUND_TASKS)
    with pg_db.unit_of_work() as s:
        [(task, last)] = read(s, {"request_id": rid, "round": 1})
        pending_writes.record(s, _history_row(rid, last + 1, task.created_at))
        [(_, unseen)] = read(s, {"request_id": rid, "round": 1})  # nothing asked to write it
        [(_, seen)] = read(s, {"request_id": rid, "round": 1},
                           before=pending_writes.before_read)  # the statement reads history
    assert (unseen, seen) == (last, last + 1)


@pytest.mark.postgres
def test_no_row_reads_nothing(pg_db: Any):
    world(pg_db)
    with pg_db.unit_of_work() as s:
        assert _NO_TASKS(s, {}) == []


@pytest.mark.postgres
def test_inside_deferred_only_a_statement_marked_reads_history_writes_it(pg_db: Any, submitted: tuple[int, int]):
    rid, task_id = submitted
    read_round = Reader(steps._ROUND_TASKS)  # marked READS_HISTORY
    with pg_db.unit_of_work() as s:
        [(task, last)] = read_round(s, {"request_id": rid, "round": 1})
        pending_writes.record(s, _history_row(rid, last + 1, task.created_at))
        with pending_writes.deferred(s):
            runtime._READ_LOCK_BY_TASK(s, {"task_id": task_id}, before=pending_writes.before_read)
            [(_, after_lock)] = read_round(s, {"request_id": rid, "round": 1})  # no before: nothing written
            [(_, after_round)] = read_round(s, {"request_id": rid, "round": 1}, before=pending_writes.before_read)
    assert (after_lock, after_round) == (last, last + 1)
