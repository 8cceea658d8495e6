"""Override requests: a hard-control refusal turned into an extra approval step.

Where the definition has an ``override`` section and the requester gives a reason
(``override_reason``), a submit that hard control refuses does not fail: nothing is
reserved, the request records the refusal (which line decided, asked, available,
shortfall) and its route starts with an ``override`` step for holders of the override
authority. The shortfall must fit the definition's cap (``cap_percent`` of the deciding
line's budget and/or ``cap_amount``), or the submit fails as before.

When the override step approves, the shortfall is added to the deciding line's budget
as an adjustment (a budget supplement with the reason, 追加预算) by the approver, and
the reservation is then made normally, so the hard-control invariant (available >=
-tolerance) still holds everywhere and ``verify`` stays clean. Any later edit of the
amount voids a pending override; the resubmit must ask again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.domain.budget import OverBudget

from .errors import InvalidAction
from .runtime import ActionContext, history, next_key


class OverrideCapExceeded(OverBudget):
    code = "override_cap_exceeded"


def requested(ctx: ActionContext, req: ApprovalRequest, refusal: OverBudget) -> bool:
    """Turn ``refusal`` into a pending override if the definition and the caller allow."""
    ov = ctx.definition.override
    reason = ctx.data.get("override_reason")
    if ov is None or not reason or not str(reason).strip():
        return False
    d = refusal.details
    asked, available = Decimal(d["asked"]), Decimal(d["available"])
    tolerance = Decimal(d.get("tolerance") or 0)
    shortfall = asked - available - tolerance
    budget = Decimal(d.get("breakdown", {}).get("budget") or 0)
    caps = []
    if ov.cap_percent is not None:
        caps.append(max(budget, Decimal(0)) * Decimal(ov.cap_percent) / 100)
    if ov.cap_amount is not None:
        caps.append(Decimal(ov.cap_amount))
    cap = min(caps) if caps else None
    if cap is not None and shortfall > cap:
        raise OverrideCapExceeded(
            f"{refusal.message}; an override may cover at most {cap} {d.get('currency', '')} "
            f"over budget, this needs {shortfall}", **d, shortfall=str(shortfall), cap=str(cap))
    req.override = {
        "status": "pending", "reason": str(reason), "line_id": d["line_id"], "line": d["line"],
        "asked": d["asked"], "available": d["available"], "shortfall": str(shortfall),
        "currency": d.get("currency"), "cap": None if cap is None else str(cap),
        "requested_by": ctx.actor, "requested_at": ctx.now.isoformat(),
    }
    return True


def approved(ctx: ActionContext, req: ApprovalRequest) -> dict[str, Any]:
    """The override step approved: supplement the deciding line, then reserve."""
    from . import budgeting

    ov = req.override or {}
    if ov.get("status") != "pending":
        raise InvalidAction("the override was voided by an edit of the amount; send the request back",
                            field="override")
    key = next_key(req, "override")
    Budgets(ctx.session).adjust(
        f"{key}:supplement", int(ov["line_id"]), Decimal(ov["shortfall"]), actor=ctx.actor,
        reason=f"override for request {req.id} approved by {ctx.actor}: {ov['reason']}",
    )
    budget = budgeting.reserve(ctx, req, key, "override")
    req.override = {**ov, "status": "approved", "approved_by": ctx.actor, "approved_at": ctx.now.isoformat()}
    history(ctx, req, "override_approved", step_id="override", budget=budget,
            data={"shortfall": ov["shortfall"], "line": ov["line"]})
    return budget
