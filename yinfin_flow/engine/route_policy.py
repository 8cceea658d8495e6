"""What a definition says about a route before its first task: an empty route, and a
step nobody can approve (``settings.empty_route`` and ``settings.no_approver: fail``).

Both are decided on entering approval (:func:`yinfin_flow.engine.steps.enter`), at
submit or resubmit, so a request is never accepted into a route it cannot finish.
"""

from __future__ import annotations

from typing import Any

from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.domain.workflow import Step

from . import routing
from .errors import EmptyRoute, NoApprover
from .runtime import ActionContext, deferred, history

#: The step of a request no step's condition matched (``settings.empty_route: fallback``).
FALLBACK_STEP = "fallback"


def empty_route(ctx: ActionContext, req: ApprovalRequest, route: list[str]) -> list[str]:
    """The route of a request no step matched (``route`` holds at most the override step).

    ``refuse`` raises :class:`EmptyRoute` (nothing is written); ``fallback`` routes it
    to the fallback step; ``auto_approve`` leaves the route empty and marks the action
    so the approval that follows is recorded as the system's, never the requester's.
    """
    policy = ctx.definition.empty_route
    if policy == "fallback":
        history(ctx, req, "empty_route", actor="system", data={"policy": policy, "step": FALLBACK_STEP})
        return [*route, FALLBACK_STEP]
    if policy == "auto_approve" or route:  # an override step alone still needs its approver
        if not route:
            history(ctx, req, "empty_route", actor="system", data={"policy": policy})
            ctx.data["approved_by_system"] = True
        return route
    raise EmptyRoute(
        f"no approval step of {ctx.definition.name} applies to this request and the definition "
        "refuses such requests (settings.empty_route: refuse)", field="form", workflow=ctx.definition.name)


def require_approvers(ctx: ActionContext, req: ApprovalRequest, steps: list[Step], deputies: Any) -> None:
    """``no_approver: fail``: every step of the route must have someone to approve it."""
    for step in steps:
        with deferred(ctx.session):
            people = routing.resolve(ctx.session, step.approvers, req, ctx.now.date(), deputies)
        if not people:
            raise NoApprover(f"no approver found for step {step.id!r} ({step.title}) of {ctx.definition.name}",
                             field="approvers", step=step.id)
