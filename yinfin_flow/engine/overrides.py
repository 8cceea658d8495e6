"""Override requests: a hard-control refusal turned into an extra approval step.

Not implemented yet beyond the hook: :func:`requested` returns False, so a refusal
stays a refusal. See the engine README section for the intended behaviour.
"""

from __future__ import annotations

from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.domain.budget import OverBudget

from .runtime import ActionContext


def requested(ctx: ActionContext, req: ApprovalRequest, refusal: OverBudget) -> bool:
    return False


def approved(ctx: ActionContext, req: ApprovalRequest) -> None:
    return None
