"""The engine's actions, one transaction each: what the API, the CLI and OA adapters call.

Every function takes the session of the caller's unit of work and never commits: the
request's state, its tasks, budget movements, history and events commit together or
not at all. Each action locks the request row first (see :mod:`.runtime` for the lock
order). Stale or racing actions get :class:`~yinfin_flow.domain.errors.Conflict`
(``task_closed``, ``stale_request``, ``invalid_action``); unauthorised ones
:class:`~.errors.Forbidden`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Insert, bindparam, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestCc
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.domain.limits import DEFAULT_LIMITS, Limits
from yinfin_flow.domain.workflow import Definition

from . import budgeting, definitions, effects, routing, steps, task_actions
from .errors import Forbidden, InvalidAction, TaskClosed, WithdrawWindowClosed
from .machine import fire
from .runtime import (
    ActionContext,
    deferred,
    history,
    lock_request,
    lock_request_of_task,
    publish,
    write_history,
)

TASK_ACTIONS = ("approve", "reject", "send_back", "transfer", "add_approver")


def _definition(session: Session, req: ApprovalRequest) -> Definition:
    return definitions.stored(session, req.workflow, req.workflow_version, req.workflow_hash)


def _insert_request(session: Session, values: dict[str, Any]) -> ApprovalRequest:
    """INSERT the new request (Core, the requester's department found in the same
    statement when not given) and hand it to the session as a loaded row: every
    column is given, so nothing is read back and the one UPDATE at the end of the
    action carries whatever submitting changed."""
    conn = session.connection()
    if values["department"] is None:
        params = {k: v for k, v in values.items() if k != "department"}
        row = conn.execute(_insert_request_stmt(True), {**params, "of_user": values["requester"]}).one()
        values["department"] = row.department
    else:
        row = conn.execute(_insert_request_stmt(False), values).one()
    req = ApprovalRequest(id=row.id, **values)
    make_transient_to_detached(req)
    session.add(req)
    return req


@cache
def _insert_request_stmt(find_department: bool) -> Insert:
    """Built once (on first use, the directory's models being imported then)."""
    from yinfin_flow.db.models import CostCentre
    from yinfin_flow.db.models.org import User

    table = ApprovalRequest.__table__
    stmt = insert(table).returning(table.c.id, table.c.department)
    if find_department:
        stmt = stmt.values(department=select(CostCentre.code).join(User, User.cost_centre_id == CostCentre.id)
                           .where(User.id == bindparam("of_user")).scalar_subquery())
    return stmt


def submit(session: Session, workflow: str, *, requester: str, company: str, title: str,
           form: dict[str, Any], department: str | None = None, key: str | None = None,
           draft: bool = False, override_reason: str | None = None,
           directory: Path | str | None = None, now: datetime | None = None,
           limits: Limits = DEFAULT_LIMITS) -> ApprovalRequest:
    """Create a request on the workflow's current version and submit it (or keep a draft).

    ``limits`` bounds the form (lines, nesting, string length): the deployment's
    ``Settings.limits`` at every door.

    ``key`` makes creation idempotent: the same key returns the first request unchanged.
    Submit reserves every line's budget, all or none; a hard-control refusal raises
    :class:`~yinfin_flow.domain.budget.OverBudget` and nothing is written, unless the
    definition allows an override and ``override_reason`` is given.
    """
    if not requester:
        raise ValidationError("requester", "is required")
    if not title or not str(title).strip():
        raise ValidationError("title", "is required")
    if key is not None:
        found = session.scalar(select(ApprovalRequest).where(ApprovalRequest.idempotency_key == key))
        if found is not None:
            return found
    now = now or utcnow()
    d = definitions.current(session, workflow, directory)
    form = budgeting.normalise_form(form, now.date(), limits)
    with deferred(session):
        req = _insert_request(session, dict(
            idempotency_key=key, workflow=d.name, workflow_version=d.version, workflow_hash=d.content_hash,
            document_type=d.document_type, title=str(title)[:200], requester=requester, company=company,
            department=department or None, form=form, state=d.initial, route=[], step_index=None, round=0,
            action_seq=0, override=None, sent_back_by=None, version=1, submitted_at=None, finished_at=None,
            created_at=now, updated_at=now,
        ))
    ctx = ActionContext(session, d, requester, now=now)
    # The request was created just now: it holds no reservation and has no history yet
    # (no need to ask the database).
    ctx.cache["held"] = (req.id, [])
    ctx.cache["history_seq"] = {req.id: 0}
    history(ctx, req, "create", to_state=d.initial)
    if not draft:
        ctx.data["override_reason"] = override_reason
        fire(d, req, "submit", ctx=ctx)
    session.flush()
    return req


def submit_draft(session: Session, request_id: int, actor: str, *, override_reason: str | None = None,
                 now: datetime | None = None) -> ApprovalRequest:
    req = lock_request(session, request_id)
    _requester_only(req, actor, "submit")
    ctx = ActionContext(session, _definition(session, req), actor, now=now or utcnow())
    ctx.data["override_reason"] = override_reason
    fire(ctx.definition, req, "submit", ctx=ctx)
    return req


def _requester_only(req: ApprovalRequest, actor: str, what: str) -> None:
    if actor != req.requester:
        raise Forbidden(f"only the requester ({req.requester}) may {what} this request", field="actor")


def _load_task(session: Session, task_id: int) -> ApprovalTask:
    task = session.get(ApprovalTask, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}", field="task_id")
    return task


def act(session: Session, task_id: int, actor: str, action: str, *, comment: str | None = None,
        target: str | None = None, to: str | None = None, users: list[str] | None = None,
        position: str | None = None, expected_version: int | None = None,
        now: datetime | None = None) -> ApprovalRequest:
    """Take ``action`` on a task: approve, reject, send_back (``target``: previous, an
    earlier step id, or submitter), transfer (``to``), add_approver (``users``,
    ``position`` before/after/parallel).

    Only the task's assignee or their delegate may act; the requester never approves.
    Two people acting at once on one request produce one outcome: the second finds its
    task closed and gets ``Conflict`` (``task_closed``).
    """
    if action not in TASK_ACTIONS:
        raise ValidationError("action", f"must be one of {', '.join(TASK_ACTIONS)}")
    rows = None
    if not isinstance(task_id, int) or isinstance(task_id, bool):
        req = lock_request(session, _load_task(session, task_id).request_id, expected_version)
    elif session.get_bind().dialect.name == "sqlite":
        # The database is locked already (BEGIN IMMEDIATE): request and round in one read.
        req, rows = steps.lock_with_round(session, task_id, expected_version)
    else:
        # One statement finds the task's request and locks it (request row first).
        req = lock_request_of_task(session, task_id, expected_version)
    d = _definition(session, req)
    ctx = ActionContext(session, d, actor, now=now or utcnow(), comment=comment)
    # The round's tasks, read once under the lock; a task of an earlier round is not
    # among them and is read on its own (it is refused as closed just below).
    task = next((t for t in steps.load_round(ctx, req, rows) if t.id == task_id), None)
    if task is None:
        task = session.scalar(select(ApprovalTask).where(ApprovalTask.id == task_id)
                              .execution_options(populate_existing=True))
    assert task is not None
    ctx.task = task
    _may_act(ctx, req, task)
    if action in ("approve", "reject") and actor == req.requester:
        raise Forbidden("the requester can never approve or reject their own request", field="actor")
    step = steps.steps_of(ctx, req)[task.step_id]
    if action == "approve":
        # Every approval re-checks what is held against today's balances (a hard
        # overrun refuses it) and records the impact the approver saw.
        # Nothing of this action is unflushed yet; no autoflush all the same, so the
        # re-check's reads never split the action's changes into two flushes.
        with session.no_autoflush:
            budget = budgeting.recheck(ctx, req) if budgeting.open_reservations(ctx, req, recheck=True) else None
        # Nothing refuses the approval from here on: the request changes now, so that
        # its UPDATE can go with the next task's INSERT (pending.insert_returning_id).
        req.updated_at = ctx.now
        steps.close_task(ctx, req, task, "approved")
        task.comment = comment
        history(ctx, req, "approve", task=task, budget=budget)
        steps.after_approval(ctx, req, task)
    elif action == "reject":
        if not comment:
            raise ValidationError("comment", "say why you reject")
        steps.close_task(ctx, req, task, "rejected")
        task.comment = comment
        history(ctx, req, "reject_task", task=task)
        if steps.rejected(step, steps.tasks_of(ctx, req, step.id)):
            fire(d, req, "reject", ctx=ctx)
    elif action == "send_back":
        task_actions.send_back(ctx, req, task, target or "submitter")
    elif action == "transfer":
        task_actions.transfer(ctx, req, task, to)
    else:
        task_actions.add_approvers(ctx, req, task, users or [], position or "after")
    req.updated_at = ctx.now
    session.flush()
    # What the action read of the budget document, for an answer that shows its
    # impact (budgeting.take_read); nothing when a budget write followed the read.
    budgeting.keep_read(ctx, req)
    return req


def _may_act(ctx: ActionContext, req: ApprovalRequest, task: ApprovalTask) -> None:
    if task.status != "pending":
        raise TaskClosed(f"task {task.id} is {task.status}; nothing to do", field="task_id",
                         status=task.status)
    if task.round != req.round or task.state_name != req.state:
        raise TaskClosed(f"task {task.id} belongs to an earlier round", field="task_id")
    wf, today = req.workflow, ctx.now.date()
    if ctx.actor == task.assignee:
        if task.on_behalf_of is not None:
            # A task made for a deputy (the delegation was in force when it was created):
            # theirs only while the delegation lasts; then it is the delegator's again.
            if routing.delegate_for(ctx.session, task.on_behalf_of, today, wf) != ctx.actor:
                raise Forbidden(f"{ctx.actor}'s delegation from {task.on_behalf_of} is not in force on "
                                f"{today}: task {task.id} is {task.on_behalf_of}'s", field="actor")
            ctx.on_behalf_of = task.on_behalf_of
        return
    if task.on_behalf_of is not None and ctx.actor == task.on_behalf_of:
        return  # the delegator still acts on his own task himself
    principal = task.on_behalf_of or task.assignee
    if task.on_behalf_of is None and routing.delegate_for(ctx.session, principal, today, wf) == ctx.actor:
        ctx.on_behalf_of = principal  # a task the delegator had before the window started
        return
    raise Forbidden(f"task {task.id} is {task.assignee}'s; {ctx.actor} may not act on it", field="actor")


def withdraw(session: Session, request_id: int, actor: str, *, comment: str | None = None,
             now: datetime | None = None) -> ApprovalRequest:
    """The requester takes the request back (releases its budget), within the window."""
    req = lock_request(session, request_id)
    _requester_only(req, actor, "withdraw")
    ctx = ActionContext(session, _definition(session, req), actor, now=now or utcnow(), comment=comment)
    window = ctx.definition.withdraw_window_hours
    if window is not None and req.submitted_at and ctx.now > req.submitted_at + timedelta(hours=window):
        raise WithdrawWindowClosed(
            f"requests can be withdrawn within {window:g} hours of submitting", field="action")
    fire(ctx.definition, req, "withdraw", ctx=ctx)
    return req


def edit(session: Session, request_id: int, actor: str, changes: dict[str, Any], *,
         task_id: int | None = None, comment: str | None = None,
         now: datetime | None = None, limits: Limits = DEFAULT_LIMITS) -> ApprovalRequest:
    """Change form fields: the requester in an editable state, or an approver on their
    pending task for the fields their step allows. While budget is held, the route and
    the reservation are recomputed together (the difference is reserved or released now).
    """
    req = lock_request(session, request_id)
    d = _definition(session, req)
    ctx = ActionContext(session, d, actor, now=now or utcnow(), comment=comment)
    if not isinstance(changes, dict) or not changes:
        raise ValidationError("changes", "name at least one field to change")
    if task_id is None:
        _requester_only(req, actor, "edit")
        if not d.states[req.state].editable:
            raise InvalidAction(f"a request that is {req.state} cannot be edited by the requester",
                                field="action")
    else:
        task = session.get(ApprovalTask, task_id)
        if task is None or task.request_id != req.id:
            raise NotFound(f"no task {task_id} on request {req.id}", field="task_id")
        ctx.task = task
        _may_act(ctx, req, task)
        allowed = steps.steps_of(ctx, req)[task.step_id].editable
        for f in changes:
            if f not in allowed:
                raise Forbidden(f"step {task.step_id} may not edit {f!r} (allowed: {list(allowed)})", field=f)
    old_amount = req.form.get("amount")
    form = {**req.form, **changes}
    req.form = budgeting.normalise_form(form, ctx.now.date(), limits)
    budget = None
    if budgeting.open_reservations(ctx, req) and task_id is not None:
        from .runtime import next_key

        budget = budgeting.reserve(ctx, req, next_key(req, "edit"), "edit")
        # Steps after the current one follow the new amount (earlier approvals stay).
        new_route = steps.plan(ctx, req)
        here = req.route[: (req.step_index or 0) + 1]
        req.route = here + [s for s in new_route if s not in here]
    if req.override and req.form.get("amount") != old_amount:
        req.override = {**req.override, "status": "void"}  # an amount edit voids the override
    history(ctx, req, "edit", task=ctx.task, data={"changes": changes}, budget=budget)
    req.updated_at = ctx.now
    session.flush()
    return req


def resubmit(session: Session, request_id: int, actor: str, *, changes: dict[str, Any] | None = None,
             comment: str | None = None, override_reason: str | None = None,
             now: datetime | None = None, limits: Limits = DEFAULT_LIMITS) -> ApprovalRequest:
    """Send a sent-back request on again (optionally with edits): the reservation follows
    the edit (difference reserved or released), then approval restarts from the first
    step or from the step that sent it back, as the definition says."""
    if changes:
        edit(session, request_id, actor, changes, now=now, limits=limits)
    req = lock_request(session, request_id)
    _requester_only(req, actor, "resubmit")
    ctx = ActionContext(session, _definition(session, req), actor, now=now or utcnow(), comment=comment)
    ctx.data["override_reason"] = override_reason
    fire(ctx.definition, req, "resubmit", ctx=ctx)
    return req


def perform(session: Session, request_id: int, event: str, actor: str, *, comment: str | None = None,
            data: dict[str, Any] | None = None, now: datetime | None = None) -> ApprovalRequest:
    """Fire a document event (issue_po, receive, pay, close…) that the definition gives to
    a role, the requester or the system."""
    req = lock_request(session, request_id)
    d = _definition(session, req)
    t = d.transition(event, req.state)
    if t is None:
        raise InvalidAction(f"cannot {event} a request that is {req.state}", field="action")
    ctx = ActionContext(session, d, actor, now=now or utcnow(), comment=comment)
    if t.by == "approver":
        raise InvalidAction(f"{event} is an approver's action: act on a task", field="action")
    if t.by == "requester":
        _requester_only(req, actor, event)
    elif t.by.startswith("role:") and not routing.holds_role(session, actor, t.by[5:], req, ctx.now.date()):
        raise Forbidden(f"{event} needs the {t.by[5:]} role in {req.company}", field="actor")
    elif t.by == "system" and actor != "system":
        raise Forbidden(f"{event} is done by the system only", field="actor")
    ctx.data["history"] = data
    fire(d, req, event, ctx=ctx)
    return req


def _involved(session: Session, req: ApprovalRequest, actor: str) -> None:
    """The requester, anyone who has or had a task on it, or anyone copied on it."""
    if actor == req.requester:
        return
    has_task = session.scalar(select(ApprovalTask.id).where(
        ApprovalTask.request_id == req.id,
        (ApprovalTask.assignee == actor) | (ApprovalTask.on_behalf_of == actor)).limit(1))
    copied = session.scalar(select(RequestCc.id).where(RequestCc.request_id == req.id,
                                                       RequestCc.user == actor).limit(1))
    if has_task is None and copied is None:
        raise Forbidden(f"{actor} is not involved in request {req.id}", field="actor")


def comment(session: Session, request_id: int, actor: str, text: str,
            now: datetime | None = None) -> None:
    """Add a comment (评论) to the request's history: the requester, its approvers and
    the people copied on it may."""
    if not text or not text.strip():
        raise ValidationError("text", "is empty")
    req = lock_request(session, request_id)
    _involved(session, req, actor)
    ctx = ActionContext(session, _definition(session, req), actor, now=now or utcnow(), comment=text)
    history(ctx, req, "comment")
    write_history(session)  # nothing else is left to flush: write it now, not at commit


def urge(session: Session, request_id: int, actor: str, now: datetime | None = None) -> list[int]:
    """Remind (催办) the current approvers: a ``task.urged`` event per pending task."""
    req = lock_request(session, request_id)
    _requester_only(req, actor, "urge")
    ctx = ActionContext(session, _definition(session, req), actor, now=now or utcnow())
    pending = [t for t in steps.tasks_of(ctx, req) if t.status == "pending"] if req.step_index is not None else []
    if not pending:
        raise InvalidAction("nobody is waiting to act on this request", field="action")
    for t in pending:
        t.urged = (t.urged or 0) + 1
        publish(ctx, "task.urged", task_id=t.id, request_id=req.id, assignee=t.assignee, by=actor)
    history(ctx, req, "urge", data={"tasks": [t.id for t in pending]})
    return [t.id for t in pending]


def copy_to(session: Session, request_id: int, actor: str, users: list[str],
            now: datetime | None = None) -> list[str]:
    """CC (抄送) people on a request by hand (the requester or its approvers)."""
    if not users:
        raise ValidationError("users", "name at least one person")
    req = lock_request(session, request_id)
    _involved(session, req, actor)
    ctx = ActionContext(session, _definition(session, req), actor, now=now or utcnow())
    done = effects.cc(ctx, req, (), "manual", users)
    history(ctx, req, "cc", data={"users": done})
    write_history(session)  # as in comment(): the rest was flushed already
    return done
