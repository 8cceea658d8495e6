"""What happens after the machine changes a request's state (the ``after`` callback).

In order: the transition's budget action, its posting, the history row and the
``request.status_changed`` event, then the approval bookkeeping: leaving an approval
state cancels its open tasks; entering one plans the route and opens the first step;
finishing CCs the people the definition names. Any exception propagates to the unit of
work, which rolls back everything, the state change included.
"""

from __future__ import annotations

from typing import Any

from transitions import EventData

from yinfin_flow.db.models.engine import ApprovalRequest, RequestCc
from yinfin_flow.domain.budget import OverBudget

from . import budgeting, overrides, routing, steps
from .machine import fire
from .postings import request_posting
from .runtime import ActionContext, history, next_key, publish


def after_transition(event_data: EventData) -> None:
    ctx: ActionContext = event_data.kwargs["ctx"]
    req: ApprovalRequest = event_data.model
    event = event_data.event.name
    source, dest = event_data.transition.source, event_data.transition.dest
    t = ctx.definition.transition(event, source)
    assert t is not None
    key = next_key(req, event)
    # The posting goes first: a template that consumes budget moves the reservations it
    # names to actual, so it must see them open (the ledger does that move, not us).
    posting = None
    if t.posting:
        posting = request_posting(ctx, req, t)
        ctx.budget_changed()  # the ledger may have moved reservations on while posting
    budget = _budget(ctx, req, t.budget, key, event)
    if posting:
        budget["posting"] = posting
    if ctx.definition.states[source].is_approval and source != dest:
        steps.close_open(ctx, req)
        req.step_index = None
    req.updated_at = ctx.now
    if event in ("submit", "resubmit"):
        req.submitted_at = ctx.now
    if ctx.definition.states[dest].final:
        req.finished_at = ctx.now
    history(ctx, req, event, from_state=source, to_state=dest, budget=budget or None,
            data=ctx.data.get("history"))
    publish(ctx, "request.status_changed", request_id=req.id, workflow=req.workflow,
            version=req.workflow_version, event=event, old_state=source, new_state=dest,
            actor=ctx.actor, requester=req.requester)
    if event == "submit":
        cc(ctx, req, ctx.definition.cc_on_start, "start")
    if event == "approve":
        cc(ctx, req, ctx.definition.cc_on_finish, "finish")
    if ctx.definition.states[dest].is_approval and source != dest:
        resume = req.sent_back_by if (event == "resubmit" and ctx.definition.send_back.resubmit == "to_sender") else None
        steps.enter(ctx, req, resume_at=resume)


def _budget(ctx: ActionContext, req: ApprovalRequest, action: str, key: str, step: str) -> dict[str, Any]:
    if action == "reserve":
        try:
            return budgeting.reserve(ctx, req, key, step)
        except OverBudget as err:
            # A hard refusal may become an override request (reserved only once approved).
            if overrides.requested(ctx, req, err):
                return {"action": "override_requested", "refusal": err.details}
            raise
    if action == "check":
        return budgeting.preview(ctx, req)
    if action == "recheck":
        return budgeting.recheck(ctx, req)
    if action == "encumber":
        return budgeting.advance(ctx, req, key, "encumbered", step)
    if action == "actual":
        # The static check requires a posting here; the ledger moves the reservations
        # it names to actual while posting (actuals always equal postings).
        ctx.budget_changed()
        return {"action": "to_actual", "by": "ledger"}
    if action == "release":
        return budgeting.release(ctx, req, key, step)
    if action == "transfer":
        return budgeting.transfer(ctx, req, key, step)
    if action == "carve":
        return budgeting.carve(ctx, req, key, step)
    return {}


def complete_approval(ctx: ActionContext, req: ApprovalRequest) -> None:
    """Every step of the route approved: fire the state's ``approve`` transition."""
    fire(ctx.definition, req, "approve", ctx=ctx)


def cc(ctx: ActionContext, req: ApprovalRequest, rules: Any, at: str, users: list[str] | None = None) -> list[str]:
    """Copy people on the request (抄送): a row each, and one ``request.cc`` event."""
    people = list(users or [])
    if rules:
        people += routing.resolve(ctx.session, rules, req, ctx.now.date())
    people = [p for i, p in enumerate(people) if p and p not in people[:i]]
    if not people:
        return []
    existing = {c.user for c in req_cc(ctx, req, at)}
    for p in people:
        if p not in existing:
            ctx.session.add(RequestCc(request_id=req.id, user=p, at=at, created_at=ctx.now))
    ctx.session.flush()
    publish(ctx, "request.cc", request_id=req.id, workflow=req.workflow, users=people, at=at)
    return people


def req_cc(ctx: ActionContext, req: ApprovalRequest, at: str) -> list[RequestCc]:
    from sqlalchemy import select

    return list(ctx.session.scalars(select(RequestCc).where(RequestCc.request_id == req.id, RequestCc.at == at)))
