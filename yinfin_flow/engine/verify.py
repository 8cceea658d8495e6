"""The engine's invariants, checked on a live database (for ``yinfin-flow verify``).

- A request that ended (a final state of its definition) holds no open reservation.
- A request in a final state has no open task.
- A request in an approval state has an open task that someone can act on (pending,
  for an active user): never a request holding budget that nobody can move.
- Nobody approves their own request: no approval in the history is the requester's
  (an empty route the definition approves is the system's).
- Every action taken on behalf of someone lies inside a delegation from them to the
  actor that was in force that day (and not yet revoked).

Add :data:`CHECKS` to :func:`yinfin_flow.verify.all_checks` to run them with the rest.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from yinfin_flow.budget.verify import Problem
from yinfin_flow.db.models import Reservation
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestHistory
from yinfin_flow.db.models.org import Delegation, User

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


def approvals_have_an_actionable_task(session: Session) -> list[Problem]:
    problems = []
    approval: dict[tuple[str, int], set[str]] = {}
    for name, version, h in session.execute(
        select(ApprovalRequest.workflow, ApprovalRequest.workflow_version, ApprovalRequest.workflow_hash).distinct()
    ):
        d = definitions.stored(session, name, version, h)
        approval[(name, version)] = {n for n, st in d.states.items() if st.is_approval}
    inactive = set(session.scalars(select(User.id).where(User.active.is_(False))))
    actionable: dict[int, bool] = {}
    for rid, assignee in session.execute(
        select(ApprovalTask.request_id, ApprovalTask.assignee)
        .join(ApprovalRequest, and_(ApprovalRequest.id == ApprovalTask.request_id,
                                    ApprovalRequest.round == ApprovalTask.round))
        .where(ApprovalTask.status == "pending")
    ):
        actionable[rid] = actionable.get(rid, False) or assignee not in inactive
    for rid, wf, version, state in session.execute(
        select(ApprovalRequest.id, ApprovalRequest.workflow, ApprovalRequest.workflow_version, ApprovalRequest.state)
    ):
        if state in approval[(wf, version)] and not actionable.get(rid):
            problems.append(Problem("approvals_have_an_actionable_task", f"request {rid}",
                                    f"is in {state} but no open task can be acted on"))
    return problems


def nobody_approves_their_own_request(session: Session) -> list[Problem]:
    rows = session.execute(
        select(RequestHistory.request_id, RequestHistory.seq, RequestHistory.actor)
        .join(ApprovalRequest, ApprovalRequest.id == RequestHistory.request_id)
        .where(RequestHistory.action.in_(("approve", "auto_approve")),
               or_(RequestHistory.actor == ApprovalRequest.requester,
                   RequestHistory.on_behalf_of == ApprovalRequest.requester))
    )
    return [Problem("nobody_approves_their_own_request", f"request {rid}",
                    f"history #{seq} records an approval by its requester {actor}") for rid, seq, actor in rows]


def delegated_actions_in_window(session: Session) -> list[Problem]:
    windows: dict[tuple[str, str], list[tuple[Any, Any, Any, str | None]]] = {}
    for d in session.scalars(select(Delegation)):
        windows.setdefault((d.user_id, d.deputy_id), []).append((d.start_date, d.end_date, d.revoked_at, d.workflow))
    problems = []
    for rid, seq, actor, principal, at, wf in session.execute(
        select(RequestHistory.request_id, RequestHistory.seq, RequestHistory.actor, RequestHistory.on_behalf_of,
               RequestHistory.created_at, ApprovalRequest.workflow)
        .join(ApprovalRequest, ApprovalRequest.id == RequestHistory.request_id)
        .where(RequestHistory.on_behalf_of.isnot(None))
    ):
        day = at.date()
        if not any(start <= day <= end and (revoked is None or revoked > at) and w in (None, wf)
                   for start, end, revoked, w in windows.get((principal, actor), [])):
            problems.append(Problem("delegated_actions_in_window", f"request {rid}",
                                    f"history #{seq}: {actor} acted for {principal} on {day} outside any "
                                    "delegation from them"))
    return problems


CHECKS = [ended_requests_hold_nothing, ended_requests_have_no_open_tasks, approvals_have_an_actionable_task,
          nobody_approves_their_own_request, delegated_actions_in_window]


def verify(session: Session) -> list[Problem]:
    return [p for check in CHECKS for p in check(session)]
