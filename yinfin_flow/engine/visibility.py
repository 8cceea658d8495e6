"""Who may see a request: one rule for the API, the console and the attachments.

A request is seen by its requester, by anyone with a task on it or holding one by
delegation today, and by the roles in :data:`yinfin_flow.security.policy.SEES_ALL_REQUESTS`
(finance and admins). Callers refuse everyone else with a 404, so ids are not confirmed
to exist.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.db.types import utcnow
from yinfin_flow.security.policy import SEES_ALL_REQUESTS


def delegators(session: Session, user: str) -> list[str]:
    """Users whose approvals ``user`` holds today (any workflow)."""
    from yinfin_flow.db.models.org import Delegation

    today = utcnow().date()
    return list(session.scalars(select(Delegation.user_id).where(
        Delegation.deputy_id == user, Delegation.revoked_at.is_(None),
        Delegation.start_date <= today, Delegation.end_date >= today)))


def has_task(session: Session, user: str, request_id: int) -> bool:
    """Whether ``user`` has (or holds by delegation today) a task on the request, in any
    status, or a task made for his deputy on his behalf (the delegator may act on it himself)."""
    people = [user, *delegators(session, user)]
    return bool(session.scalar(select(exists().where(
        ApprovalTask.request_id == request_id,
        ApprovalTask.assignee.in_(people) | (ApprovalTask.on_behalf_of == user)))))


def may_see(session: Session, user: str, roles: Iterable[str], req: ApprovalRequest) -> bool:
    if SEES_ALL_REQUESTS.intersection(roles) or req.requester == user:
        return True
    return has_task(session, user, req.id)
