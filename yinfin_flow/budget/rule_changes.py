"""Four eyes on control rules: a rule change is proposed by one finance user and applied
only when another approves it (segregation of duties, as SAP/Oracle budget control).

``pending`` → ``approved`` (applied in the same transaction through
:func:`~yinfin_flow.budget.setup.set_rule` and all its checks) | ``rejected`` (by a
reviewer, with a comment) | ``withdrawn`` (by the proposer) | ``stale`` (the line's rule
changed after the proposal: approving it would apply a change on top of a rule the
reviewer never saw). At most one change per line is pending.

Every function works in the caller's session and transaction. Writers lock the line
first (:func:`~yinfin_flow.budget.setup.lock_line`), so proposals, decisions and direct
rule changes of one line are serialised. Each step publishes an event
(``budget.rule_change.proposed`` / ``.approved`` / ``.rejected`` / ``.withdrawn``) in
the transaction, for whatever notifies people; the finance reviewers' queue is
:func:`list_changes` with ``status="pending"``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetLine, ControlRuleRow
from yinfin_flow.db.models.rule_changes import STATUSES, RuleChange
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import Conflict, DomainError, NotFound, ValidationError
from yinfin_flow.events import publish

from . import setup
from .verify import Problem

REQUIRED, OFF = "required", "off"
SETTINGS = (REQUIRED, OFF)


class SegregationOfDuties(DomainError):
    """The person who proposed a rule change may not decide it."""

    code = "segregation_of_duties"
    http_status = 403


class NotTheProposer(DomainError):
    code = "forbidden"
    http_status = 403


class ChangeNotPending(Conflict):
    code = "rule_change_not_pending"


class StaleChange(Conflict):
    code = "rule_change_stale"


class ChangePending(Conflict):
    code = "rule_change_pending"


def person(actor: str) -> str:
    """Who acted, whatever the channel: ``cli:fiona`` and ``fiona`` are one person."""
    return actor.removeprefix("cli:")


def rule_snapshot(row: ControlRuleRow | None) -> dict[str, Any] | None:
    """A stored rule as the reviewer compares it (JSON-ready: amounts as strings)."""
    if row is None:
        return None
    return {
        "mode": row.mode, "basis": row.basis, "subtree": row.subtree,
        "tolerance_percent": _text(row.tolerance_percent),
        "tolerance_amount": _text(row.tolerance_amount),
        "thresholds": list(row.thresholds), "version": row.version,
        "updated_by": row.updated_by, "updated_at": row.updated_at.isoformat(),
        "approved_by": row.approved_by,
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def propose(session: Session, line_id: int, *, actor: str, reason: str | None = None,
            **rule: Any) -> RuleChange:
    """Record a proposed rule for the line (checked and normalised as :func:`setup.set_rule`
    would store it); nothing changes until another finance user approves."""
    line = setup.lock_line(session, line_id)
    values = setup.rule_values(line, **rule)
    pending = session.scalar(select(RuleChange.id).where(
        RuleChange.line_id == line_id, RuleChange.status == "pending"))
    if pending is not None:
        raise ChangePending(
            f"rule change {pending} on {line.code} is still pending: it is approved, rejected "
            "or withdrawn before another is proposed", change_id=pending, line=line.code)
    current = setup.own_rule(session, line_id)
    change = RuleChange(
        line_id=line_id, status="pending", previous=rule_snapshot(current),
        base_version=current.version if current is not None else None,
        reason=reason, proposed_by=actor, proposed_at=utcnow(), **values,
    )
    session.add(change)
    session.flush()
    publish(session, "budget.rule_change.proposed", change_id=change.id, line_id=line_id,
            line=line.code, proposed_by=actor)
    return change


def _locked(session: Session, change_id: int) -> tuple[RuleChange, BudgetLine]:
    """The change, re-read after its line is locked (so its status is the latest)."""
    line_id = session.scalar(select(RuleChange.line_id).where(RuleChange.id == change_id))
    if line_id is None:
        raise NotFound(f"no rule change {change_id}", field="change_id")
    line = setup.lock_line(session, line_id)
    change = session.scalar(select(RuleChange).where(RuleChange.id == change_id)
                            .execution_options(populate_existing=True))
    assert change is not None  # changes are never deleted
    return change, line


def _require_pending(change: RuleChange, line: BudgetLine) -> None:
    if change.status == "stale":
        raise StaleChange(
            f"rule change {change.id} was proposed against a rule of {line.code} that has "
            "changed since; propose it again against the current rule",
            change_id=change.id, line=line.code, status=change.status)
    if change.status != "pending":
        raise ChangeNotPending(f"rule change {change.id} is already {change.status}",
                               change_id=change.id, status=change.status)


def _decide(change: RuleChange, status: str, actor: str, comment: str | None) -> None:
    change.status, change.decided_by, change.decided_at = status, actor, utcnow()
    change.comment = comment


def _not_the_proposer(change: RuleChange, actor: str, what: str) -> None:
    if person(actor) == person(change.proposed_by):
        raise SegregationOfDuties(
            f"{actor} proposed rule change {change.id} and cannot {what} it: another finance "
            "user decides" + (" (withdraw it instead)" if what == "reject" else ""),
            change_id=change.id, proposed_by=change.proposed_by)


def approve(session: Session, change_id: int, *, actor: str, comment: str | None = None) -> RuleChange:
    """Apply the change as its proposer's rule, approved by ``actor`` (not the proposer).

    Refused, with nothing written, if the change is not pending, if the line's rule is
    not the one it was proposed against, or if :func:`setup.set_rule` refuses it (a hard
    rule on a line already over budget beyond the tolerance).
    """
    change, line = _locked(session, change_id)
    _require_pending(change, line)
    _not_the_proposer(change, actor, "approve")
    current = setup.own_rule(session, line.id)
    if (current.version if current is not None else None) != change.base_version:
        raise StaleChange(
            f"the rule of {line.code} changed after rule change {change.id} was proposed; "
            "propose it again against the current rule",
            change_id=change.id, line=line.code, status=change.status)
    _decide(change, "approved", actor, comment)
    session.flush()  # no longer pending: set_rule marks only the others stale
    setup.set_rule(
        session, line.id, mode=change.mode, actor=change.proposed_by, basis=change.basis,
        tolerance_percent=change.tolerance_percent, tolerance_amount=change.tolerance_amount,
        thresholds=change.thresholds, subtree=change.subtree, approved_by=actor,
    )
    publish(session, "budget.rule_change.approved", change_id=change.id, line_id=line.id,
            line=line.code, proposed_by=change.proposed_by, approved_by=actor)
    return change


def reject(session: Session, change_id: int, *, actor: str, comment: str) -> RuleChange:
    """Refuse the change (a comment says why); the line's rule stays as it is."""
    if not comment or not comment.strip():
        raise ValidationError("comment", "say why the change is rejected")
    change, line = _locked(session, change_id)
    _require_pending(change, line)
    _not_the_proposer(change, actor, "reject")
    _decide(change, "rejected", actor, comment)
    session.flush()
    publish(session, "budget.rule_change.rejected", change_id=change.id, line_id=line.id,
            line=line.code, proposed_by=change.proposed_by, rejected_by=actor)
    return change


def withdraw(session: Session, change_id: int, *, actor: str, comment: str | None = None) -> RuleChange:
    """The proposer takes the change back; the line's rule stays as it is."""
    change, line = _locked(session, change_id)
    if person(actor) != person(change.proposed_by):
        raise NotTheProposer(f"only {change.proposed_by}, who proposed rule change {change.id}, "
                             "can withdraw it", change_id=change.id)
    _require_pending(change, line)
    _decide(change, "withdrawn", actor, comment)
    session.flush()
    publish(session, "budget.rule_change.withdrawn", change_id=change.id, line_id=line.id,
            line=line.code, proposed_by=change.proposed_by)
    return change


# -- reads ------------------------------------------------------------------------------


def change_dict(change: RuleChange, line_code: str) -> dict[str, Any]:
    return {
        "id": change.id, "line_id": change.line_id, "line": line_code, "status": change.status,
        "rule": {"mode": change.mode, "basis": change.basis, "subtree": change.subtree,
                 "tolerance_percent": change.tolerance_percent,
                 "tolerance_amount": change.tolerance_amount,
                 "thresholds": list(change.thresholds)},
        "previous": change.previous, "base_version": change.base_version,
        "reason": change.reason, "proposed_by": change.proposed_by,
        "proposed_at": change.proposed_at, "decided_by": change.decided_by,
        "decided_at": change.decided_at, "comment": change.comment,
    }


def get_change(session: Session, change_id: int) -> dict[str, Any]:
    row = session.execute(select(RuleChange, BudgetLine.code).join(
        BudgetLine, BudgetLine.id == RuleChange.line_id).where(RuleChange.id == change_id)).first()
    if row is None:
        raise NotFound(f"no rule change {change_id}", field="change_id")
    return change_dict(row[0], row[1])


def list_changes(session: Session, *, status: str | None = None, line_id: int | None = None,
                 page: int = 1, page_size: int = 50) -> tuple[int, list[dict[str, Any]]]:
    """(how many match, the page asked for), newest first; ``status="pending"`` is what
    waits for a reviewer."""
    if status is not None and status not in STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(STATUSES)}")
    where = []
    if status is not None:
        where.append(RuleChange.status == status)
    if line_id is not None:
        where.append(RuleChange.line_id == line_id)
    total = session.scalar(select(func.count()).select_from(RuleChange).where(*where)) or 0
    rows = session.execute(
        select(RuleChange, BudgetLine.code).join(BudgetLine, BudgetLine.id == RuleChange.line_id)
        .where(*where).order_by(RuleChange.id.desc())
        .limit(page_size).offset((page - 1) * page_size)
    ).all()
    return total, [change_dict(c, code) for c, code in rows]


# -- verify -----------------------------------------------------------------------------


def four_eyes_held(session: Session) -> list[Problem]:
    """No change was decided by its proposer and no rule approved by whoever configured it."""
    problems = [
        Problem("four_eyes", f"rule change {cid}", f"{status} by its proposer {decided_by}")
        for cid, status, proposed_by, decided_by in session.execute(
            select(RuleChange.id, RuleChange.status, RuleChange.proposed_by, RuleChange.decided_by)
            .where(RuleChange.status.in_(("approved", "rejected"))))
        if person(decided_by or "") == person(proposed_by)
    ]
    problems += [
        Problem("four_eyes", code, f"rule configured and approved by the same person {approved_by}")
        for code, updated_by, approved_by in session.execute(
            select(BudgetLine.code, ControlRuleRow.updated_by, ControlRuleRow.approved_by)
            .join(BudgetLine, BudgetLine.id == ControlRuleRow.line_id)
            .where(ControlRuleRow.approved_by.is_not(None)))
        if person(approved_by) == person(updated_by)
    ]
    return problems


CHECKS = [four_eyes_held]
