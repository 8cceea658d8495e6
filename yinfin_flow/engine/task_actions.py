"""What send back, transfer (转交) and add approver (加签) do to a request's tasks.

Called by :func:`yinfin_flow.engine.service.act` once it holds the request's lock and has
checked that the actor may act on ``task``; each raises ValidationError naming the
argument that is wrong before changing anything.
"""

from __future__ import annotations

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.domain.errors import ValidationError

from . import steps
from .machine import fire
from .runtime import ActionContext, history


def send_back(ctx: ActionContext, req: ApprovalRequest, task: ApprovalTask, target: str) -> None:
    idx = req.step_index or 0
    if target == "submitter":
        steps.close_task(ctx, req, task, "sent_back")
        history(ctx, req, "send_back_task", task=task, data={"target": "submitter"})
        req.sent_back_by = task.step_id
        fire(ctx.definition, req, "send_back", ctx=ctx)
        return
    if target == "previous":
        if idx == 0:
            raise ValidationError("target", "this is the first step: send back to the submitter instead")
        new = idx - 1
    elif target in req.route[:idx]:
        new = req.route.index(target)
    else:
        raise ValidationError("target", f"must be previous, submitter or an earlier step of {req.route[:idx]}")
    steps.close_task(ctx, req, task, "sent_back")
    history(ctx, req, "send_back_task", task=task, data={"target": req.route[new]})
    steps.void_from(ctx, req, req.route[new:])
    req.step_index = new
    steps.open_current(ctx, req)


def transfer(ctx: ActionContext, req: ApprovalRequest, task: ApprovalTask, to: str | None) -> None:
    if not to:
        raise ValidationError("to", "name who takes the task over")
    if to == req.requester:
        raise ValidationError("to", "the requester cannot approve their own request")
    if to == task.assignee:
        raise ValidationError("to", "the task is already theirs")
    steps.close_task(ctx, req, task, "transferred")
    step = steps.steps_of(ctx, req)[task.step_id]
    new = steps.make_task(ctx, req, step, to, position=task.position, status="pending", kind=task.kind,
                          added_by=task.added_by, warnings=task.warnings)
    history(ctx, req, "transfer", task=task, data={"to": to, "new_task": new.id})


def add_approvers(ctx: ActionContext, req: ApprovalRequest, task: ApprovalTask, users: list[str],
                   position: str) -> None:
    if position not in ("before", "after", "parallel"):
        raise ValidationError("position", "must be before, after or parallel")
    if not users:
        raise ValidationError("users", "name at least one approver to add")
    for i, u in enumerate(users):
        if u == req.requester:
            raise ValidationError(f"users[{i}]", "the requester cannot approve their own request")
        if u == task.assignee:
            raise ValidationError(f"users[{i}]", "you are already on this step")
    step = steps.steps_of(ctx, req)[task.step_id]
    history(ctx, req, "add_approver", task=task, data={"users": users, "position": position})
    if position == "before":
        task.status = "held"  # waits until the added people approve
    for u in users:
        steps.make_task(ctx, req, step, u, position=task.position, status="pending", kind=position,
                        added_by=ctx.actor, warnings=task.warnings)
    if position == "after":
        steps.close_task(ctx, req, task, "approved")
        steps.after_approval(ctx, req, task)
