"""Control rule changes under ``/api/v1/budget``: four eyes on every rule (issue #5).

``PUT /lines/{id}/rule`` proposes (202, the pending change) while
``YINFIN_RULE_CHANGE_APPROVAL=required`` (the default) and applies at once (200, the
rule) when it is ``off``. ``/rule-changes`` lists, shows, proposes, approves, rejects
and withdraws; the service (:mod:`yinfin_flow.budget.rule_changes`) enforces that the
proposer never decides their own change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, g, jsonify

from yinfin_flow.budget import rule_changes as rc
from yinfin_flow.budget import setup

from ..identity import require_actor
from . import reads
from .rule_change_schemas import (
    RuleChangeInSchema,
    RuleChangePageSchema,
    RuleChangeQuery,
    RuleChangeSchema,
    RuleDecisionInSchema,
    RuleRejectInSchema,
)
from .schemas import IdempotencyHeaders, RuleInSchema, RuleSchema
from .simulation import of_change
from .views import ACTOR_DOC, LINE_ID, _default_rule, _flow, blp

CHANGE_ID = "<int(min=1, max=2147483647):change_id>"
RULE_FIELDS = ("mode", "basis", "tolerance_percent", "tolerance_amount", "thresholds", "subtree")


def _rule(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in RULE_FIELDS}


def _decide(action: Callable[..., Any], change_id: int, comment: str | None) -> dict[str, Any]:
    """Approve, reject or withdraw as the caller, in one transaction; the change as it ends."""
    actor = require_actor()
    st = _flow()
    with st.db.unit_of_work() as s:
        action(s, change_id, actor=actor.id, comment=comment)
        out = rc.get_change(s, change_id)
        out["simulation"] = of_change(s, out, _default_rule(st, s))  # decided: none
        return out


@blp.put(f"/lines/{LINE_ID}/rule")
@blp.arguments(RuleInSchema)
@blp.response(200, RuleSchema, description="applied at once (YINFIN_RULE_CHANGE_APPROVAL=off)")
@blp.alt_response(202, schema=RuleChangeSchema,
                  description="proposed: applies when another finance user approves it")
@blp.doc(**ACTOR_DOC)
def put_rule(body: dict[str, Any], line_id: int) -> Any:
    """Set the control rule on a line (and, with ``subtree``, below it): by default a
    proposal that another finance user approves (``/rule-changes``)."""
    actor = require_actor()
    st = _flow()
    with st.db.unit_of_work() as s:
        if st.settings.rule_change_approval == rc.OFF:
            setup.set_rule(s, line_id, actor=actor.id, **_rule(body))
            return reads.rule_of(s, line_id, _default_rule(st, s))
        change = rc.propose(s, line_id, actor=actor.id, reason=body["reason"], **_rule(body))
        if g.get("yinfin_audit_status") is not None:
            g.yinfin_audit_status = 202  # the audit row committed with the proposal says so
        out = rc.get_change(s, change.id)
        out["simulation"] = of_change(s, out, _default_rule(st, s))
    resp: Response = jsonify(RuleChangeSchema().dump(out))
    resp.status_code = 202
    return resp


@blp.get("/rule-changes")
@blp.arguments(RuleChangeQuery, location="query", as_kwargs=True)
@blp.response(200, RuleChangePageSchema)
def list_rule_changes(page: int, page_size: int, status: str | None, line_id: int | None) -> dict[str, Any]:
    """Proposed rule changes, newest first; ``status=pending`` is the reviewers' queue."""
    st = _flow()
    with st.db.unit_of_work(readonly=True) as s:
        total, items = rc.list_changes(s, status=status, line_id=line_id, page=page,
                                       page_size=page_size)
    return {"items": items, "pagination": reads.page_info(page, page_size, total)}


@blp.get(f"/rule-changes/{CHANGE_ID}")
@blp.response(200, RuleChangeSchema)
def get_rule_change(change_id: int) -> dict[str, Any]:
    """One change: the proposed rule beside the rule it replaces, and its decision."""
    st = _flow()
    with st.db.unit_of_work(readonly=True) as s:
        out = rc.get_change(s, change_id)
        out["simulation"] = of_change(s, out, _default_rule(st, s))
        return out


@blp.post("/rule-changes")
@blp.arguments(IdempotencyHeaders, location="headers", as_kwargs=True)
@blp.arguments(RuleChangeInSchema)
@blp.response(201, RuleChangeSchema)
@blp.doc(**ACTOR_DOC)
def propose_rule_change(body: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
    """Propose a rule for a line; it applies when another finance user approves it."""
    actor = require_actor()
    st = _flow()
    with st.db.unit_of_work() as s:
        change = rc.propose(s, body["line_id"], actor=actor.id, reason=body["reason"], **_rule(body))
        out = rc.get_change(s, change.id)
        out["simulation"] = of_change(s, out, _default_rule(st, s))
        return out


@blp.post(f"/rule-changes/{CHANGE_ID}/approve")
@blp.arguments(IdempotencyHeaders, location="headers", as_kwargs=True)
@blp.arguments(RuleDecisionInSchema)
@blp.response(200, RuleChangeSchema)
@blp.doc(**ACTOR_DOC)
def approve_rule_change(body: dict[str, Any], change_id: int, idempotency_key: str | None) -> dict[str, Any]:
    """Apply the change (its checks included); not by its proposer (403
    ``segregation_of_duties``); 409 ``rule_change_stale`` if the line's rule changed since."""
    return _decide(rc.approve, change_id, body["comment"])


@blp.post(f"/rule-changes/{CHANGE_ID}/reject")
@blp.arguments(IdempotencyHeaders, location="headers", as_kwargs=True)
@blp.arguments(RuleRejectInSchema)
@blp.response(200, RuleChangeSchema)
@blp.doc(**ACTOR_DOC)
def reject_rule_change(body: dict[str, Any], change_id: int, idempotency_key: str | None) -> dict[str, Any]:
    """Refuse the change with a comment; the rule stays as it is (not by its proposer)."""
    return _decide(rc.reject, change_id, body["comment"])


@blp.post(f"/rule-changes/{CHANGE_ID}/withdraw")
@blp.arguments(IdempotencyHeaders, location="headers", as_kwargs=True)
@blp.arguments(RuleDecisionInSchema)
@blp.response(200, RuleChangeSchema)
@blp.doc(**ACTOR_DOC)
def withdraw_rule_change(body: dict[str, Any], change_id: int, idempotency_key: str | None) -> dict[str, Any]:
    """The proposer takes the change back; the rule stays as it is."""
    return _decide(rc.withdraw, change_id, body["comment"])
