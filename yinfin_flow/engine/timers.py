"""Step timeouts as database rows, fired by a scheduler: :func:`fire_due_timers`.

When a task becomes actionable and its step has a ``timeout``, a row goes into
``engine_timers`` (``remind``, ``escalate``, ``approve`` or ``reject``, with ``due_at``).
Nothing lives in a process: the in-process runner (default) and Celery beat
(production) both just call ``fire_due_timers(db, now)`` every so often.

Exactly once, even when two schedulers run at the same moment: each timer fires in its
own transaction that first locks the request row (the engine's lock order), then
claims the timer with a conditional update (``status='pending'`` → ``'fired'``); the
loser of a race updates no row and skips. A timer whose task was decided meanwhile is
marked fired with nothing done. A timer whose action fails (e.g. the auto-approval is
refused by budget control) is marked ``failed`` with the reason, and never retried in
a loop.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.engine import ApprovalTask, EngineTimer
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import DomainError

from . import definitions, routing, steps
from .machine import fire
from .runtime import ActionContext, history, lock_request, publish

log = logging.getLogger(__name__)
SYSTEM = "system"


def fire_due_timers(db: Database, now: datetime | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Fire every timer due at ``now`` (default: the current time); one transaction each.

    Returns what was done, one dict per timer this call fired (``id``, ``kind``,
    ``request_id``, ``result``); timers another scheduler fired first are not listed.
    """
    now = now or utcnow()
    with db.unit_of_work(readonly=True) as s:
        due = s.execute(
            select(EngineTimer.id, EngineTimer.request_id)
            .where(EngineTimer.status == "pending", EngineTimer.due_at <= now)
            .order_by(EngineTimer.due_at, EngineTimer.id).limit(limit)
        ).all()
    out = []
    for timer_id, request_id in due:
        try:
            with db.unit_of_work() as s:
                done = fire_one(s, timer_id, request_id, now)
        except DomainError as err:
            log.warning("timer %s failed: %s", timer_id, err)
            with db.unit_of_work() as s:
                lock_request(s, request_id)
                s.execute(update(EngineTimer).where(EngineTimer.id == timer_id, EngineTimer.status == "pending")
                          .values(status="failed", fired_at=now, result=f"{err.code}: {err.message}"[:2000]))
            done = {"id": timer_id, "request_id": request_id, "result": f"failed: {err.code}"}
        if done is not None:
            out.append(done)
    return out


def fire_one(session: Session, timer_id: int, request_id: int, now: datetime) -> dict[str, Any] | None:
    """Fire one timer in ``session`` (the caller's transaction); None if it was already fired."""
    req = lock_request(session, request_id)
    claimed = session.execute(
        update(EngineTimer).where(EngineTimer.id == timer_id, EngineTimer.status == "pending")
        .values(status="fired", fired_at=now)
    ).rowcount
    if claimed != 1:
        return None
    timer = session.get(EngineTimer, timer_id)
    assert timer is not None
    task = session.scalar(select(ApprovalTask).where(ApprovalTask.id == timer.task_id)
                          .execution_options(populate_existing=True))
    result = "task no longer pending"
    if task is not None and task.status == "pending":
        ctx = ActionContext(session, definitions.stored(session, req.workflow, req.workflow_version,
                                                                req.workflow_hash),
                            SYSTEM, now=now, task=task)
        result = _ACTIONS[timer.kind](ctx, req, task)
    timer.result = result
    return {"id": timer_id, "kind": timer.kind, "request_id": request_id, "result": result}


def _remind(ctx: ActionContext, req: Any, task: ApprovalTask) -> str:
    task.urged = (task.urged or 0) + 1
    publish(ctx, "task.urged", task_id=task.id, request_id=req.id, assignee=task.assignee, by=SYSTEM)
    history(ctx, req, "remind", task=task)
    step = steps.steps_of(ctx, req)[task.step_id]
    if step.timeout and step.timeout.remind_every_hours:
        ctx.session.add(EngineTimer(
            request_id=req.id, task_id=task.id, kind="remind", status="pending", created_at=ctx.now,
            due_at=ctx.now + timedelta(hours=step.timeout.remind_every_hours)))
    return f"reminded {task.assignee}"


def _escalate(ctx: ActionContext, req: Any, task: ApprovalTask) -> str:
    """Hand the task to the assignee's manager (or the admin when they have none)."""
    boss = routing.manager_of(ctx.session, task.on_behalf_of or task.assignee)
    if not boss or boss == req.requester:
        boss = ctx.definition.admin
    steps.close_task(ctx, req, task, "transferred")
    step = steps.steps_of(ctx, req)[task.step_id]
    new = steps.make_task(ctx, req, step, boss, position=task.position, status="pending",
                          kind=task.kind, added_by=task.added_by, warnings=task.warnings)
    history(ctx, req, "escalate", task=task, data={"to": boss, "new_task": new.id})
    return f"escalated to {boss}"


def _approve(ctx: ActionContext, req: Any, task: ApprovalTask) -> str:
    from . import budgeting

    budget = budgeting.recheck(ctx, req) if budgeting.open_reservations(ctx, req, recheck=True) else None
    steps.close_task(ctx, req, task, "approved")
    task.comment = "approved automatically: the step timed out"
    history(ctx, req, "timeout_approve", task=task, budget=budget)
    steps.after_approval(ctx, req, task)
    return "approved"


def _reject(ctx: ActionContext, req: Any, task: ApprovalTask) -> str:
    steps.close_task(ctx, req, task, "rejected")
    task.comment = "rejected automatically: the step timed out"
    ctx.comment = task.comment
    history(ctx, req, "timeout_reject", task=task)
    step = steps.steps_of(ctx, req)[task.step_id]
    if steps.rejected(step, steps.tasks_of(ctx, req, step.id)):
        fire(ctx.definition, req, "reject", ctx=ctx)
    return "rejected"


_ACTIONS = {"remind": _remind, "escalate": _escalate, "approve": _approve, "reject": _reject}
