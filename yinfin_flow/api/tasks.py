"""``/api/v1/tasks``: my inbox (待办/已办), one task with its request's budget impact,
and the approver's actions.

Only the task's assignee, or the person it is delegated to today, sees or acts on a
task (anyone else: 404). The engine refuses the requester approving their own
request (403), and a second action on a decided task (409 ``task_closed``).
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.domain.errors import DomainError, NotFound
from yinfin_flow.engine import budgeting, queries, service

from ..extension import state
from .answers import as_dumped
from .blueprint import Blueprint
from .engine_reads import my_task, request_detail, request_outcome
from .engine_schemas import (
    ActInSchema,
    AddApproverInSchema,
    InboxQuery,
    InboxSchema,
    RejectInSchema,
    SendBackInSchema,
    TaskDetailSchema,
    TaskOutcomeSchema,
    TaskTransferInSchema,
    TextInSchema,
    UrgeSchema,
)
from .errors import register_blueprint_handlers
from .identity import require_actor

blp = Blueprint("tasks", __name__, url_prefix="/tasks",
                description="Approval tasks: my inbox and the approver's actions.")
register_blueprint_handlers(blp)

TID = "<int(min=1, max=2147483647):task_id>"
# Bodies are parsed with schema instances made once: given a class, webargs builds a
# new instance (deep copies of every field) for each request. Loading keeps no state
# on the instance, and the OpenAPI document is the same.
AUTH = {"security": [{"bearerAuth": []}, {"devUser": []}]}


def _task_detail(s: Any, task: ApprovalTask, *, changed: bool = False) -> Response:
    """The task and its request in full (built in TaskDetailSchema's dumped form: sent
    as it is, api/answers); ``changed``: an action ran in this session since the task
    was read (write it out and read the task again)."""
    if changed:
        s.flush()
        s.refresh(task)
    req = s.get(ApprovalRequest, task.request_id)
    return as_dumped({**queries.task_dict(task), "request": request_detail(s, req)})


@blp.get("")
@blp.arguments(InboxQuery, location="query", as_kwargs=True)
@blp.response(200, InboxSchema)
@blp.doc(**AUTH)
def inbox(status: str, page: int, page_size: int) -> dict[str, Any]:
    """My tasks with the status asked (``pending`` by default), newest first."""
    ident = require_actor()
    with state(current_app).db.unit_of_work(readonly=True) as s:
        items = queries.inbox(s, ident.id, status=status, limit=page * page_size)
        return {"items": items[(page - 1) * page_size:]}


@blp.get(f"/{TID}")
@blp.response(200, TaskDetailSchema)
@blp.doc(**AUTH)
def get_task(task_id: int) -> Response:
    """The task and its request, with what the request holds on each line and what
    ``available`` becomes on each line and controlling ancestor if you approve."""
    ident = require_actor()
    with state(current_app).db.unit_of_work(readonly=True) as s:
        return _task_detail(s, my_task(s, ident, task_id))


def _act(task_id: int, action: str, **kw: Any) -> Response:
    """The engine checks who may act (the assignee or their delegate today) before it
    changes anything, so the task is not read here first (a statement per action).
    When the engine refuses, the caller's claim on the task is checked afresh: anyone
    but the assignee or delegate gets 404, as on every other task endpoint, and never
    learns the task's state or its request's version from the engine's answer."""
    ident = require_actor()
    db = state(current_app).db
    try:
        with db.unit_of_work() as s:
            loaded = _keep_task(s, task_id)
            req = service.act(s, task_id, ident.id, action, **kw)
            # The budget document as the action read it (none when it wrote budget):
            # the answer's impact then needs no second read of the same rows.
            read = budgeting.take_read(s, req)
            s.flush()
            task = loaded[0] if loaded else s.get(ApprovalTask, task_id)
            assert task is not None
            # Built in TaskOutcomeSchema's dumped form: sent as it is (api/answers).
            return as_dumped({**queries.task_dict(task), "request": request_outcome(s, req, read)})
    except DomainError:
        with db.unit_of_work(readonly=True) as s:
            my_task(s, ident, task_id)  # 404 for strangers
        raise


_KEEP = "yinfin_flow.keep_task"


def _keep_task(s: Session, task_id: int) -> list[ApprovalTask]:
    """Hold on to the task when the action loads it: the session only keeps loaded
    objects weakly, so it would be read again for the answer (a statement)."""
    loaded: list[ApprovalTask] = []
    s.info[_KEEP] = (task_id, loaded)
    return loaded


@event.listens_for(Session, "loaded_as_persistent")
@event.listens_for(Session, "detached_to_persistent")  # read through db/objects
def _kept(session: Session, obj: Any) -> None:
    # One listener for all sessions, on for the ones _keep_task marks (a listener added
    # to each action's session cost ~60 Python calls per approval).
    want = session.info.get(_KEEP)
    if want is not None and isinstance(obj, ApprovalTask) and obj.id == want[0]:
        want[1][:] = [obj]


@blp.post(f"/{TID}/approve")
@blp.arguments(ActInSchema())
@blp.response(200, TaskOutcomeSchema)
@blp.doc(**AUTH)
def approve(body: dict[str, Any], task_id: int) -> Response:
    """Approve: the budget held is re-checked first (a hard overrun is 409 ``over_budget``)."""
    return _act(task_id, "approve", comment=body["comment"], expected_version=body["version"])


@blp.post(f"/{TID}/reject")
@blp.arguments(RejectInSchema())
@blp.response(200, TaskOutcomeSchema)
@blp.doc(**AUTH)
def reject(body: dict[str, Any], task_id: int) -> Response:
    """Reject (a comment saying why is required); the request's budget is released."""
    return _act(task_id, "reject", comment=body["comment"], expected_version=body["version"])


@blp.post(f"/{TID}/send-back")
@blp.arguments(SendBackInSchema())
@blp.response(200, TaskOutcomeSchema)
@blp.doc(**AUTH)
def send_back(body: dict[str, Any], task_id: int) -> Response:
    """Send back to the submitter, the previous step, or an earlier step by id."""
    return _act(task_id, "send_back", comment=body["comment"], target=body["target"],
                expected_version=body["version"])


@blp.post(f"/{TID}/transfer")
@blp.arguments(TaskTransferInSchema())
@blp.response(200, TaskOutcomeSchema)
@blp.doc(**AUTH)
def transfer(body: dict[str, Any], task_id: int) -> Response:
    """Hand the task to someone else (never to the requester)."""
    return _act(task_id, "transfer", comment=body["comment"], to=body["to"],
                expected_version=body["version"])


@blp.post(f"/{TID}/add-approver")
@blp.arguments(AddApproverInSchema())
@blp.response(200, TaskOutcomeSchema)
@blp.doc(**AUTH)
def add_approver(body: dict[str, Any], task_id: int) -> Response:
    """Add approvers (加签) before, after or beside you on this step."""
    return _act(task_id, "add_approver", comment=body["comment"], users=body["users"],
                position=body["position"], expected_version=body["version"])


@blp.post(f"/{TID}/comment")
@blp.arguments(TextInSchema())
@blp.response(201, TaskDetailSchema)
@blp.doc(**AUTH)
def comment(body: dict[str, Any], task_id: int) -> Response:
    """Comment on the task's request without deciding."""
    ident = require_actor()
    with state(current_app).db.unit_of_work() as s:
        task = my_task(s, ident, task_id)
        service.comment(s, task.request_id, ident.id, body["text"])
        return _task_detail(s, task, changed=True)


@blp.post(f"/{TID}/urge")
@blp.response(200, UrgeSchema)
@blp.doc(**AUTH)
def urge(task_id: int) -> dict[str, Any]:
    """Remind (催办) the people this task's step waits on; the request's requester only
    (the engine checks), so the task is looked up by id without the inbox filter."""
    ident = require_actor()
    with state(current_app).db.unit_of_work() as s:
        task = s.get(ApprovalTask, task_id)
        req = s.get(ApprovalRequest, task.request_id) if task else None
        if task is None or req is None or req.requester != ident.id:
            raise NotFound(f"no task {task_id} on a request of yours", field="task_id")
        return {"urged_tasks": service.urge(s, task.request_id, ident.id)}
