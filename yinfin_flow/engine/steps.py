"""Approval steps inside an approval state: route, tasks, countersign, completion.

Route: on entering an approval state the steps whose ``when`` holds are planned
(``request.route``); ``request.step_index`` points at the current one. Each (re)submit
starts a new ``round``; tasks and approvals of earlier rounds no longer count.

Tasks of a step (one per approver; ``kind`` approve) and how the step completes:

=========  =====================================  ====================================
mode       approves when                          rejects when
=========  =====================================  ====================================
all 会签    every approver approved                anyone rejects
any 或签    one approver approved (others cancel)  anyone rejects
sequence   every approver, one after the other    anyone rejects
quorum     M approved (M capped at N)             so many rejected M can't be reached
=========  =====================================  ====================================

Added approvers (加签) must always approve too: ``before`` holds the adder's task
(status ``held``) until the added person approves; ``after`` counts the adder's approval
and adds a task; ``parallel`` adds a task alongside. Someone who already approved an
earlier step of this round is approved automatically when the definition says so.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, literal, or_, select, update
from sqlalchemy.orm import Session, aliased, make_transient_to_detached

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, EngineTimer, RequestHistory
from yinfin_flow.db.objects import Reader
from yinfin_flow.domain.errors import NotFound
from yinfin_flow.domain.workflow import State, Step

from . import budgeting, route_policy, routing
from .pending import before_read, insert_returning_id
from .runtime import (
    LAST_SEQ,
    READS_HISTORY,
    ActionContext,
    check_version,
    deferred,
    history,
    publish,
    start_history,
    task_event,
)

OPEN = ("pending", "waiting", "held")
#: ``status IN OPEN`` with one bound value each: an IN of a plain tuple is an
#: "expanding" parameter that SQLAlchemy re-renders at every execution (postcompile,
#: ~2 % of an approval's client CPU); these are rendered once, when cached.
_STATUS_OPEN = ApprovalTask.status.in_([literal(s, ApprovalTask.status.type) for s in OPEN])
APPROVED = ("approved", "auto_approved")
OVERRIDE_STEP = "override"
FALLBACK_STEP = route_policy.FALLBACK_STEP
#: Tasks that no longer take part in their step's decision.
GONE = ("transferred", "cancelled", "voided", "sent_back")


def approval_state(ctx: ActionContext, req: ApprovalRequest) -> State:
    return ctx.definition.states[req.state]


def steps_of(ctx: ActionContext, req: ApprovalRequest) -> dict[str, Step]:
    steps = {s.id: s for s in approval_state(ctx, req).steps}
    ov = ctx.definition.override
    if ov is not None:
        steps[OVERRIDE_STEP] = Step(OVERRIDE_STEP, "Budget override", ov.approvers, mode="any", override=True)
    if ctx.definition.empty_route == "fallback":
        steps[FALLBACK_STEP] = Step(FALLBACK_STEP, "Fallback approval", ctx.definition.fallback_approvers,
                                    mode="any")
    return steps


def plan(ctx: ActionContext, req: ApprovalRequest) -> list[str]:
    route = [s.id for s in approval_state(ctx, req).steps if routing.matches(s.when, req)]
    if req.override and req.override.get("status") == "pending":
        route.insert(0, OVERRIDE_STEP)
    return route


def current_step(ctx: ActionContext, req: ApprovalRequest) -> Step | None:
    if req.step_index is None or req.step_index >= len(req.route):
        return None
    return steps_of(ctx, req)[req.route[req.step_index]]


def tasks_of(ctx: ActionContext, req: ApprovalRequest, step_id: str | None = None) -> list[ApprovalTask]:
    """The tasks of the request's current round (read once per action, then kept up to date)."""
    key = (req.id, req.round)
    tasks = ctx.cache.get("tasks", {}).get(key)
    if tasks is None:
        tasks = list(ctx.session.scalars(
            select(ApprovalTask).where(ApprovalTask.request_id == req.id, ApprovalTask.round == req.round)))
        ctx.cache.setdefault("tasks", {})[key] = tasks
    out = [t for t in tasks if step_id is None or t.step_id == step_id]
    return sorted(out, key=lambda t: (t.position, t.id))


def load_round(ctx: ActionContext, req: ApprovalRequest,
               rows: list[tuple[ApprovalTask, int | None]] | None = None) -> list[ApprovalTask]:
    """Read the current round's tasks afresh and keep them for :func:`tasks_of` for the
    rest of the action. Call it after locking the request and before recording history:
    the same statement reads the request's last history seq for :func:`history`, and
    any task still open in another round (for :func:`close_open`). ``rows``: (task,
    last seq) as :func:`lock_with_round` read them with the lock (nothing is read)."""
    if rows is None:  # on PostgreSQL without the ORM's per-statement cost (db/objects)
        rows = _READ_ROUND_TASKS(ctx.session, {"request_id": req.id, "round": req.round}, before=before_read)
    tasks = [t for t, _ in rows if t is not None and t.round == req.round]
    ctx.cache.setdefault("tasks", {})[(req.id, req.round)] = tasks
    ctx.cache.setdefault("open_elsewhere", {})[req.id] = [t for t, _ in rows
                                                          if t is not None and t.round != req.round]
    if rows:  # with no row read, history() reads the seq itself
        start_history(ctx, req, rows[0][1])
    return tasks


# Built once; populate_existing so a copy from before the lock is overwritten.
_ROUND_TASKS = (
    select(ApprovalTask, LAST_SEQ)
    .where(ApprovalTask.request_id == bindparam("request_id"),
           or_(ApprovalTask.round == bindparam("round"), _STATUS_OPEN))
    .execution_options(populate_existing=True, **{READS_HISTORY: True})
)
_READ_ROUND_TASKS = Reader(_ROUND_TASKS)


def lock_with_round(session: Session, task_id: int, expected_version: int | None = None,
                    ) -> tuple[ApprovalRequest, list[tuple[ApprovalTask, int | None]]]:
    """SQLite only: the request of a task, its round's tasks (as :func:`load_round`
    reads them) and its last history seq, in ONE statement.

    Safe on SQLite alone: a writing transaction holds the database's lock from
    ``BEGIN IMMEDIATE`` on, so nothing can change between the lock and the reads. On
    PostgreSQL a statement that waited for a row lock reads other tables as they were
    before it waited: there the lock (:func:`~.runtime.lock_request_of_task`) and the
    reads stay two statements.
    """
    rows = session.execute(_LOCK_WITH_ROUND, {"task_id": task_id}).all()
    if not rows:
        raise NotFound(f"no task {task_id}", field="task_id")
    req = rows[0][0]
    check_version(req, expected_version)
    return req, [(t, seq) for _, t, seq in rows]


_TASK = aliased(ApprovalTask)
_LOCK_WITH_ROUND = (
    select(ApprovalRequest, ApprovalTask,
           select(func.max(RequestHistory.seq)).where(RequestHistory.request_id == ApprovalRequest.id)
           .correlate(ApprovalRequest).scalar_subquery())
    .outerjoin(ApprovalTask, and_(ApprovalTask.request_id == ApprovalRequest.id,
                                  or_(ApprovalTask.round == ApprovalRequest.round, _STATUS_OPEN)))
    .where(ApprovalRequest.id == select(_TASK.request_id).where(_TASK.id == bindparam("task_id"))
           .scalar_subquery())
    .execution_options(populate_existing=True, **{READS_HISTORY: True})
)


def enter(ctx: ActionContext, req: ApprovalRequest, resume_at: str | None = None) -> None:
    """Start (or resume) approval: plan the route and open the first step that needs people.

    A route no step matches follows ``settings.empty_route`` (refuse, fallback or
    auto_approve, see :mod:`.route_policy`). With ``no_approver: fail`` every step of
    the route is resolved now, so a step nobody can approve refuses the submit instead
    of stopping the request later (see :func:`_create_tasks` for a step that loses its
    approvers after submit).
    """
    route = plan(ctx, req)
    if not [s for s in route if s != OVERRIDE_STEP]:
        route = route_policy.empty_route(ctx, req, route)
    if ctx.definition.no_approver == "fail":
        route_policy.require_approvers(ctx, req, [steps_of(ctx, req)[s] for s in route], deputies(ctx))
    if resume_at and resume_at in route:
        idx = route.index(resume_at)
        # Approvals given before the sender's step stay; the sender's and later are voided.
        void_from(ctx, req, route[idx:])
    else:
        req.round = (req.round or 0) + 1
        idx = 0
        # Rounds only go up and tasks take the request's round: a new round has none yet.
        ctx.cache.setdefault("tasks", {})[(req.id, req.round)] = []
    req.route = route
    req.step_index = idx
    open_current(ctx, req)


def void_from(ctx: ActionContext, req: ApprovalRequest, step_ids: list[str]) -> None:
    for t in tasks_of(ctx, req):
        if t.step_id in step_ids and t.status in APPROVED:
            t.status = "voided"
        elif t.step_id in step_ids and t.status in OPEN:
            close_task(ctx, req, t, "cancelled")


def open_current(ctx: ActionContext, req: ApprovalRequest) -> None:
    """Create the current step's tasks; skip steps that complete at once; approve at the end."""
    from .effects import complete_approval

    while True:
        step = current_step(ctx, req)
        if step is None:
            if ctx.data.pop("approved_by_system", False):
                # An empty route the definition approves is the system's decision, never
                # the requester's (nobody approves their own request).
                complete_approval(replace(ctx, actor="system", on_behalf_of=None, comment=None), req)
            else:
                complete_approval(ctx, req)
            return
        _create_tasks(ctx, req, step)
        if not _completed(ctx, req, step):
            return
        history(ctx, req, "step_completed", step_id=step.id, actor="system",
                data={"auto": True})
        req.step_index = (req.step_index or 0) + 1


def _approved_before(ctx: ActionContext, req: ApprovalRequest, step: Step) -> set[str]:
    out: set[str] = set()
    for t in tasks_of(ctx, req):
        if t.status == "approved" and t.step_id != step.id:
            out.add(t.assignee)
            if t.on_behalf_of:
                out.add(t.on_behalf_of)
    return out


def _create_tasks(ctx: ActionContext, req: ApprovalRequest, step: Step) -> None:
    d = ctx.definition
    known = deputies(ctx)
    # Directory reads do not depend on this action's unflushed changes; not flushing
    # before them lets the action's changes go out together (fewer UPDATEs). The
    # delegations of the people found are read with them where the rule allows it.
    with deferred(ctx.session):
        people = routing.resolve(ctx.session, step.approvers, req, ctx.now.date(), known)
    if not people:
        # With ``fail`` the whole route was resolved at submit (enter); a step that has
        # lost its approvers since (someone left, a role was taken away) is not left
        # with nobody: it goes to the definition's admin, recorded, like ``admin``.
        people = [d.admin]
        history(ctx, req, "no_approver", step_id=step.id, actor="system",
                data={"policy": d.no_approver, "assigned": d.admin,
                      **({"after_submit": True} if d.no_approver == "fail" else {})})
    done = _approved_before(ctx, req, step) if d.auto_approve_repeat and not step.override else set()
    with deferred(ctx.session):  # the others' delegations, all in one statement
        routing.read_deputies(ctx.session, known, [p for p in people if p not in done])
    # Soft-control warnings go on the task for the approver to see (re-checked now).
    warnings = budgeting.warnings_of(budgeting.current_checks(ctx, req))
    for pos, person in enumerate(people):
        auto = person in done
        make_task(ctx, req, step, person, position=pos,
                  status="auto_approved" if auto else ("waiting" if step.mode == "sequence" else "pending"),
                  warnings=warnings)
    if step.mode == "sequence":
        _activate_next(ctx, req, step)


def make_task(ctx: ActionContext, req: ApprovalRequest, step: Step, person: str, *, position: int,
              status: str, kind: str = "approve", added_by: str | None = None,
              warnings: list[dict[str, Any]] | None = None, on_behalf_of: str | None = None) -> ApprovalTask:
    deputy = None
    if status in ("pending", "waiting") and on_behalf_of is None:
        with deferred(ctx.session):  # a directory read (see _create_tasks)
            deputy = routing.delegate_for(ctx.session, person, ctx.now.date(), req.workflow, deputies(ctx))
    assignee, behalf = (deputy, person) if deputy and deputy != req.requester else (person, on_behalf_of)
    values = dict(
        request_id=req.id, state_name=req.state, step_id=step.id, round=req.round, position=position,
        assignee=assignee, on_behalf_of=behalf, status=status, kind=kind, added_by=added_by,
        warnings=warnings or [], comment=None, due_at=None, urged=0, created_at=ctx.now,
        decided_at=ctx.now if status == "auto_approved" else None,
    )
    # Inserted on its own (a Core INSERT … RETURNING id), then handed to the session as a
    # loaded row: the task id is needed now, and the ORM's flush machinery for one new
    # object cost more than the insert. The action's other pending changes wait for its
    # single flush at the end (the request row this refers to exists already); its
    # history rows so far go with this INSERT on PostgreSQL. Every column is given, so
    # the session treats the object exactly like a loaded row.
    with deferred(ctx.session):
        task_id = insert_returning_id(ctx.session, _TASKS, values)
    task = ApprovalTask(id=task_id, **values)
    make_transient_to_detached(task)
    ctx.session.add(task)
    cached = ctx.cache.get("tasks", {}).get((req.id, req.round))
    if cached is not None:
        cached.append(task)
    if status == "auto_approved":
        history(ctx, req, "auto_approve", task=task, actor=assignee,
                data={"reason": "already approved an earlier step"})
        task_event(ctx, req, task, "auto_approved")
    elif status == "pending":
        activate(ctx, req, task, step)
    return task


_TASKS = ApprovalTask.__table__


def deputies(ctx: ActionContext) -> Any:
    """The delegations read so far in this action (of today), for routing.delegate_for."""
    if "deputies" not in ctx.cache:
        ctx.cache["deputies"] = routing.deputies(ctx.now.date())
    return ctx.cache["deputies"]


def activate(ctx: ActionContext, req: ApprovalRequest, task: ApprovalTask, step: Step) -> None:
    """A task becomes actionable: set its due time and timer, tell the OA."""
    task.status = "pending"
    if step.timeout:
        task.due_at = ctx.now + timedelta(hours=step.timeout.hours)
        ctx.session.add(EngineTimer(request_id=req.id, task_id=task.id, kind=step.timeout.action,
                                    due_at=task.due_at, status="pending", created_at=ctx.now))
    publish(ctx, "task.created", task_id=task.id, request_id=req.id, workflow=req.workflow,
            step=task.step_id, assignee=task.assignee, on_behalf_of=task.on_behalf_of,
            kind=task.kind, due_at=task.due_at.isoformat() if task.due_at else None)


def _activate_next(ctx: ActionContext, req: ApprovalRequest, step: Step) -> None:
    tasks = tasks_of(ctx, req, step.id)
    if any(t.status in ("pending", "held") for t in tasks):
        return
    for t in tasks:
        if t.status == "waiting":
            activate(ctx, req, t, step)
            return


def close_task(ctx: ActionContext, req: ApprovalRequest, task: ApprovalTask, status: str) -> None:
    task.status = status
    task.decided_at = ctx.now
    if task.due_at is not None:  # timers are only made for tasks with a due time
        ctx.session.execute(update(EngineTimer)
                            .where(EngineTimer.task_id == task.id, EngineTimer.status == "pending")
                            .values(status="cancelled"))
    task_event(ctx, req, task, status)


def close_open(ctx: ActionContext, req: ApprovalRequest) -> None:
    """Cancel every open task of the request (it left approval, or was withdrawn)."""
    elsewhere = ctx.cache.get("open_elsewhere", {}).get(req.id)
    if elsewhere is not None:
        # Every task that can be open was read under the lock (load_round) or made by
        # this action: the session's copies say which are open now.
        found = [t for (rid, _), ts in ctx.cache["tasks"].items() if rid == req.id for t in ts] + elsewhere
    else:
        # No autoflush: a task closed earlier in this action may still read as open in
        # the database, but the session's copy (what this loop sees) has its new status.
        with deferred(ctx.session):
            found = list(ctx.session.scalars(_OPEN_TASKS, {"request_id": req.id}))
    for t in found:
        if t.status in OPEN:
            close_task(ctx, req, t, "cancelled")


_OPEN_TASKS = select(ApprovalTask).where(ApprovalTask.request_id == bindparam("request_id"),
                                         _STATUS_OPEN)


def _completed(ctx: ActionContext, req: ApprovalRequest, step: Step) -> bool:
    tasks = [t for t in tasks_of(ctx, req, step.id) if t.status not in GONE]
    base = [t for t in tasks if t.kind == "approve"]
    added = [t for t in tasks if t.kind != "approve"]
    if any(t.status not in APPROVED for t in added):
        return False
    approved = sum(t.status in APPROVED for t in base)
    if step.mode in ("all", "sequence"):
        return approved == len(base)
    if step.mode == "any":
        return approved >= 1
    return approved >= min(step.quorum or 1, len(base))


def rejected(step: Step, tasks: list[ApprovalTask]) -> bool:
    """Whether the step can no longer approve after a rejection."""
    base = [t for t in tasks if t.kind == "approve" and t.status not in GONE]
    if step.mode != "quorum":
        return True
    no = sum(t.status == "rejected" for t in base)
    return len(base) - no < min(step.quorum or 1, len(base))


def after_approval(ctx: ActionContext, req: ApprovalRequest, task: ApprovalTask) -> None:
    """Move on after ``task`` approved: wake held tasks, next in sequence, next step."""
    step = steps_of(ctx, req)[task.step_id]
    if task.kind == "before" and task.added_by:
        for t in tasks_of(ctx, req, step.id):
            if t.status == "held" and t.assignee == task.added_by:
                activate(ctx, req, t, step)
    if step.mode == "sequence":
        _activate_next(ctx, req, step)
    if _completed(ctx, req, step):
        for t in tasks_of(ctx, req, step.id):
            if t.status in OPEN:
                close_task(ctx, req, t, "cancelled")
        history(ctx, req, "step_completed", step_id=step.id, actor="system")
        if step.override:
            from .overrides import approved as override_approved

            override_approved(ctx, req)
        req.step_index = (req.step_index or 0) + 1
        open_current(ctx, req)
