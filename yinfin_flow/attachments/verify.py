"""The attachments' invariant, checked on a live database (for ``yinfin-flow verify``):
a request that ended rejected, withdrawn or cancelled claims no invoice (its claims were
released when it ended, so the invoice may be reimbursed elsewhere)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.budget.verify import Problem
from yinfin_flow.db.models.attachments import Attachment
from yinfin_flow.db.models.engine import ApprovalRequest

from .service import RELEASING_STATES


def ended_requests_claim_no_invoice(session: Session) -> list[Problem]:
    rows = session.execute(
        select(ApprovalRequest.id, ApprovalRequest.state, Attachment.id, Attachment.invoice_key)
        .join(Attachment, Attachment.request_id == ApprovalRequest.id)
        .where(ApprovalRequest.state.in_(RELEASING_STATES), Attachment.invoice_key.is_not(None),
               Attachment.invoice_released_at.is_(None))
        .order_by(Attachment.id))
    return [Problem("ended_requests_claim_no_invoice", f"request {rid}",
                    f"is {state} but attachment {aid} still claims invoice {key}")
            for rid, state, aid, key in rows]


CHECKS = [ended_requests_claim_no_invoice]
