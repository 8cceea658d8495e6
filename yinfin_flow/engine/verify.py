"""The engine's invariants, checked on a live database (for ``yinfin-flow verify``).

- A request that ended (a final state of its definition) holds no open reservation.
- A request in a final state has no open task.

Add :data:`CHECKS` to :func:`yinfin_flow.verify.all_checks` to run them with the rest.
"""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from yinfin_flow.budget.verify import Problem
from yinfin_flow.db.models import Reservation
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask

from . import definitions

OPEN_TASK = ("pending", "waiting", "held")


def _finals(session: Session) -> dict[tuple[str, int], set[str]]:
    out: dict[tuple[str, int], set[str]] = {}
    for name, version, h in session.execute(
        select(ApprovalRequest.workflow, ApprovalRequest.workflow_version, ApprovalRequest.workflow_hash).distinct()
    ):
        out[(name, version)] = definitions.stored(session, name, version, h).finals
    return out


def ended_requests_hold_nothing(session: Session) -> list[Problem]:
    problems = []
    finals = _finals(session)
    rows = session.execute(
        select(ApprovalRequest.id, ApprovalRequest.workflow, ApprovalRequest.workflow_version,
               ApprovalRequest.state, Reservation.id)
        .join(Reservation, and_(Reservation.document_type == ApprovalRequest.document_type,
                                Reservation.document_id == ApprovalRequest.id.cast(Reservation.document_id.type)))
        .where(Reservation.status == "open")
    )
    for rid, wf, version, state, res_id in rows:
        if state in finals[(wf, version)]:
            problems.append(Problem("ended_requests_hold_nothing", f"request {rid}",
                                    f"is {state} but reservation {res_id} is still open"))
    return problems


def ended_requests_have_no_open_tasks(session: Session) -> list[Problem]:
    problems = []
    finals = _finals(session)
    rows = session.execute(
        select(ApprovalRequest.id, ApprovalRequest.workflow, ApprovalRequest.workflow_version,
               ApprovalRequest.state, ApprovalTask.id)
        .join(ApprovalTask, ApprovalTask.request_id == ApprovalRequest.id)
        .where(ApprovalTask.status.in_(OPEN_TASK))
    )
    for rid, wf, version, state, task_id in rows:
        if state in finals[(wf, version)]:
            problems.append(Problem("ended_requests_have_no_open_tasks", f"request {rid}",
                                    f"is {state} but task {task_id} is still open"))
    return problems


CHECKS = [ended_requests_hold_nothing, ended_requests_have_no_open_tasks]


def verify(session: Session) -> list[Problem]:
    return [p for check in CHECKS for p in check(session)]
