"""Four eyes on budget journals: an adjustment (追加/调减), a transfer (调剂) or an import
is proposed by one finance user and booked only when another approves it, as control
rule changes are (:mod:`.rule_changes`).

``pending`` → ``approved`` (booked in the same transaction through
:class:`~.service.Budgets` and :func:`.io.import_rows`, every check included) |
``rejected`` (by a reviewer, with a comment) | ``withdrawn`` (by the proposer) |
``stale`` (a line it changes had its budget changed by another approved proposal).

A proposal is tried when it is made, in a savepoint that is rolled back: what would be
refused on approval (a cut below what a hard-controlled line consumed, a closed line, a
bad import row) is refused at once, and an import's plan (lines created, adjusted by
how much, unchanged) is kept for the reviewer. Approval books it only if what the
reviewer saw still holds (each line's budget, the import's plan): otherwise
``409 budget_journal_stale`` and nothing changes.

Every actor is a person in the organisation directory (active): ``cli:fiona`` and
``fiona`` are the same person, and the proposer never decides their own proposal.
Every function works in the caller's session and transaction and publishes
``budget.journal.proposed`` / ``.approved`` / ``.rejected`` / ``.withdrawn``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetBalance, BudgetLine
from yinfin_flow.db.models.journal_proposals import KINDS, STATUSES, JournalProposal
from yinfin_flow.db.models.org import User
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import Conflict, DomainError, NotFound, ValidationError
from yinfin_flow.events import publish

from . import io
from .io_tables import Row
from .rule_changes import NotTheProposer, SegregationOfDuties, person
from .service import Budgets
from .verify import Problem

REQUIRED, OFF = "required", "off"
SETTINGS = (REQUIRED, OFF)


class UnknownPerson(DomainError):
    """Budget journals are made and decided by people of the directory, not by free text."""

    code = "unknown_person"
    http_status = 403


class ProposalNotPending(Conflict):
    code = "budget_journal_not_pending"


class StaleProposal(Conflict):
    code = "budget_journal_stale"


def require_person(session: Session, actor: str, field: str = "actor") -> str:
    """``actor`` (``cli:`` prefix allowed) names an active user of the directory."""
    who = person(actor or "").strip()
    if not who:
        raise ValidationError(field, "who is acting is required")
    if session.scalar(select(User.id).where(User.id == who, User.active.is_(True))) is None:
        raise UnknownPerson(f"{who!r} is not an active person in the directory: budget journals "
                            "are made and approved by named finance users", field=field, actor=actor)
    return actor


def _budgets(session: Session, line_ids: list[int]) -> dict[str, str]:
    rows = session.execute(select(BudgetBalance.line_id, BudgetBalance.budget)
                           .where(BudgetBalance.line_id.in_(line_ids)))
    found = {str(i): str(b) for i, b in rows}
    return {str(i): found.get(str(i), "0") for i in line_ids}


def _reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise ValidationError("reason", "a reason is required")
    return reason.strip()


class _Rehearsed(Exception):
    """Ends a rehearsal's savepoint (rolled back) once the journal went through."""


def rehearse(session: Session, book: Any) -> Any:
    """Run ``book()`` in a savepoint that is always rolled back; its refusal is raised as is."""
    result: Any = None
    try:
        with session.begin_nested():
            result = book()
            raise _Rehearsed
    except _Rehearsed:
        pass
    session.expire_all()  # nothing the rehearsal wrote may be seen afterwards
    return result


def _new(session: Session, kind: str, payload: dict[str, Any], line_ids: list[int],
         base: dict[str, Any], actor: str, reason: str) -> JournalProposal:
    proposal = JournalProposal(
        kind=kind, status="pending", payload=payload, line_ids=line_ids, base=base, reason=reason,
        proposed_by=actor, proposed_at=utcnow(),
    )
    session.add(proposal)
    session.flush()
    publish(session, "budget.journal.proposed", proposal_id=proposal.id, kind=kind,
            proposed_by=actor)
    return proposal


def propose_adjustment(session: Session, line_id: int, amount: Decimal | str | int, *, actor: str,
                       reason: str, kind: str = "adjustment", default_mode: str = "hard") -> JournalProposal:
    """Propose adding ``amount`` to a line's budget (negative: a cut); ``kind`` ``original``
    or ``adjustment``. Refused now if booking it now would be refused."""
    require_person(session, actor)
    reason = _reason(reason)
    budgets = Budgets(session, default_mode=default_mode)
    rehearse(session, lambda: budgets.adjust(None, line_id, amount, actor=actor, reason=reason, kind=kind))
    line = session.get(BudgetLine, line_id)
    assert line is not None  # the rehearsal found it
    value = str(Decimal(str(amount)))
    return _new(session, "adjustment", {"line_id": line_id, "amount": value, "kind": kind,
                                        "currency": line.currency},
                [line_id], {"budgets": _budgets(session, [line_id])}, actor, reason)


def propose_transfer(session: Session, from_line_id: int, to_line_id: int, amount: Decimal | str | int, *,
                     actor: str, reason: str, default_mode: str = "hard") -> JournalProposal:
    """Propose moving ``amount`` of budget between two lines (refused now if it would be then)."""
    require_person(session, actor)
    reason = _reason(reason)
    budgets = Budgets(session, default_mode=default_mode)
    rehearse(session, lambda: budgets.transfer(None, from_line_id, to_line_id, amount, actor=actor,
                                                reason=reason))
    line = session.get(BudgetLine, from_line_id)
    assert line is not None
    ids = [from_line_id, to_line_id]
    return _new(session, "transfer", {"from_line_id": from_line_id, "to_line_id": to_line_id,
                                      "amount": str(Decimal(str(amount))), "currency": line.currency},
                ids, {"budgets": _budgets(session, ids)}, actor, reason)


def propose_import(session: Session, header: list[str], rows: list[Row], *, source: str, actor: str,
                   reason: str | None = None, default_mode: str = "hard") -> JournalProposal:
    """Propose a budget file (already read): every bad row is refused now, as the import
    would be; the dry run's plan is kept for the reviewer and re-checked on approval."""
    require_person(session, actor)
    text = reason.strip() if reason and reason.strip() else f"budget import {source}"
    plan = rehearse(session, lambda: io.import_rows(session, header, rows, source=source, actor=actor,
                                                     default_mode=default_mode, reason=text))
    codes = [a[0] for a in plan.adjusted]
    ids = list(session.scalars(select(BudgetLine.id).where(BudgetLine.code.in_(codes)))) if codes else []
    payload = {"source": source, "header": header, "rows": [[n, cells] for n, cells in rows]}
    return _new(session, "import", payload, sorted(ids), {"plan": plan.to_dict()}, actor, text)


# -- decisions ------------------------------------------------------------------------


def _locked(session: Session, proposal_id: int) -> JournalProposal:
    """The proposal, locked (PostgreSQL ``FOR UPDATE``) and read afresh."""
    row = session.scalar(select(JournalProposal).where(JournalProposal.id == proposal_id)
                         .with_for_update().execution_options(populate_existing=True))
    if row is None:
        raise NotFound(f"no budget journal proposal {proposal_id}", field="proposal_id")
    return row


def _require_pending(p: JournalProposal) -> None:
    if p.status == "stale":
        raise StaleProposal(f"budget journal proposal {p.id} was made against budgets that have "
                            "changed since; propose it again", proposal_id=p.id, status=p.status)
    if p.status != "pending":
        raise ProposalNotPending(f"budget journal proposal {p.id} is already {p.status}",
                                 proposal_id=p.id, status=p.status)


def _not_the_proposer(p: JournalProposal, actor: str, what: str) -> None:
    if person(actor) == person(p.proposed_by):
        raise SegregationOfDuties(
            f"{actor} proposed budget journal {p.id} and cannot {what} it: another finance user "
            "decides" + (" (withdraw it instead)" if what == "reject" else ""),
            proposal_id=p.id, proposed_by=p.proposed_by)


def _decide(p: JournalProposal, status: str, actor: str, comment: str | None) -> None:
    p.status, p.decided_by, p.decided_at, p.comment = status, actor, utcnow(), comment


def approve(session: Session, proposal_id: int, *, actor: str, comment: str | None = None,
            default_mode: str = "hard") -> JournalProposal:
    """Book the proposal as its proposer's journal, approved by ``actor`` (not the proposer).

    Refused, with nothing written, when it is not pending, when a line's budget (or an
    import's plan) is no longer what the reviewer saw (``budget_journal_stale``), or when
    the budget service refuses it now.
    """
    p = _locked(session, proposal_id)
    require_person(session, actor)
    _require_pending(p)
    _not_the_proposer(p, actor, "approve")
    if p.kind != "import" and _budgets(session, p.line_ids) != p.base["budgets"]:
        raise StaleProposal(f"a budget proposal {p.id} changes was changed after it was proposed; "
                            "propose it again against the current budget", proposal_id=p.id,
                            proposed=p.base["budgets"], now=_budgets(session, p.line_ids))
    budgets = Budgets(session, default_mode=default_mode)
    reason = f"{p.reason} [proposal {p.id}, approved by {person(actor)}]"
    key = f"journal-proposal:{p.id}"
    data = p.payload
    if p.kind == "adjustment":
        ids = [budgets.adjust(key, data["line_id"], data["amount"], actor=p.proposed_by, reason=reason,
                              kind=data["kind"]).movement_id]
    elif p.kind == "transfer":
        ids = [budgets.transfer(key, data["from_line_id"], data["to_line_id"], data["amount"],
                                actor=p.proposed_by, reason=reason).movement_id]
    else:
        plan = io.import_rows(session, data["header"], [(n, c) for n, c in data["rows"]],
                              source=data["source"], actor=p.proposed_by, default_mode=default_mode,
                              reason=reason)
        if plan.to_dict() != p.base["plan"]:
            raise StaleProposal(f"budget import {p.id} would now do something else than what was "
                                "proposed; propose the file again", proposal_id=p.id,
                                proposed=p.base["plan"], now=plan.to_dict())
        ids = []
    _decide(p, "approved", actor, comment)
    p.movement_ids = ids
    _mark_others_stale(session, p)
    session.flush()
    publish(session, "budget.journal.approved", proposal_id=p.id, kind=p.kind,
            proposed_by=p.proposed_by, approved_by=actor)
    return p


def _mark_others_stale(session: Session, done: JournalProposal) -> None:
    """Pending proposals on a line whose budget ``done`` just changed were made against a
    budget that is gone."""
    touched = set(done.line_ids)
    if done.kind == "import":
        codes = done.base["plan"]["created"]
        touched |= set(session.scalars(select(BudgetLine.id).where(BudgetLine.code.in_(codes)))) if codes else set()
    for other in session.scalars(select(JournalProposal).where(
            JournalProposal.status == "pending", JournalProposal.id != done.id)):
        if touched & set(other.line_ids):
            other.status = "stale"


def reject(session: Session, proposal_id: int, *, actor: str, comment: str) -> JournalProposal:
    """Refuse the proposal (a comment says why); no budget changes."""
    if not comment or not comment.strip():
        raise ValidationError("comment", "say why the proposal is rejected")
    p = _locked(session, proposal_id)
    require_person(session, actor)
    _require_pending(p)
    _not_the_proposer(p, actor, "reject")
    _decide(p, "rejected", actor, comment)
    session.flush()
    publish(session, "budget.journal.rejected", proposal_id=p.id, kind=p.kind,
            proposed_by=p.proposed_by, rejected_by=actor)
    return p


def withdraw(session: Session, proposal_id: int, *, actor: str, comment: str | None = None) -> JournalProposal:
    """The proposer takes the proposal back; no budget changes."""
    p = _locked(session, proposal_id)
    if person(actor) != person(p.proposed_by):
        raise NotTheProposer(f"only {p.proposed_by}, who proposed budget journal {p.id}, can "
                             "withdraw it", proposal_id=p.id)
    _require_pending(p)
    _decide(p, "withdrawn", actor, comment)
    session.flush()
    publish(session, "budget.journal.withdrawn", proposal_id=p.id, kind=p.kind,
            proposed_by=p.proposed_by)
    return p


# -- reads ------------------------------------------------------------------------------


def proposal_dict(session: Session, p: JournalProposal) -> dict[str, Any]:
    """The proposal as a reviewer reads it: each line's budget then and after."""
    data = p.payload
    codes = dict(session.execute(select(BudgetLine.id, BudgetLine.code)
                                 .where(BudgetLine.id.in_(p.line_ids))).all()) if p.line_ids else {}
    changes: list[dict[str, Any]] = []
    if p.kind in ("adjustment", "transfer"):
        amount = Decimal(data["amount"])
        deltas = ({data["line_id"]: amount} if p.kind == "adjustment"
                  else {data["from_line_id"]: -amount, data["to_line_id"]: amount})
        for line_id, delta in deltas.items():
            before = Decimal(p.base["budgets"][str(line_id)])
            changes.append({"line_id": line_id, "line": codes.get(line_id), "currency": data["currency"],
                            "budget_before": str(before), "delta": str(delta),
                            "budget_after": str(before + delta)})
    return {
        "id": p.id, "kind": p.kind, "status": p.status, "reason": p.reason,
        "journal_kind": data.get("kind"), "amount": data.get("amount"), "currency": data.get("currency"),
        "source": data.get("source"), "changes": changes,
        "plan": p.base.get("plan"), "proposed_by": p.proposed_by, "proposed_at": p.proposed_at,
        "decided_by": p.decided_by, "decided_at": p.decided_at, "comment": p.comment,
        "movement_ids": p.movement_ids,
    }


def get_proposal(session: Session, proposal_id: int) -> dict[str, Any]:
    p = session.get(JournalProposal, proposal_id)
    if p is None:
        raise NotFound(f"no budget journal proposal {proposal_id}", field="proposal_id")
    return proposal_dict(session, p)


def list_proposals(session: Session, *, status: str | None = None, kind: str | None = None,
                   page: int = 1, page_size: int = 50) -> tuple[int, list[dict[str, Any]]]:
    """(how many match, the page asked for), newest first; ``status="pending"`` is the
    reviewers' queue."""
    if status is not None and status not in STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise ValidationError("kind", f"must be one of {', '.join(KINDS)}")
    where = []
    if status is not None:
        where.append(JournalProposal.status == status)
    if kind is not None:
        where.append(JournalProposal.kind == kind)
    total = session.scalar(select(func.count()).select_from(JournalProposal).where(*where)) or 0
    rows = session.scalars(select(JournalProposal).where(*where).order_by(JournalProposal.id.desc())
                           .limit(page_size).offset((page - 1) * page_size))
    return total, [proposal_dict(session, p) for p in rows]


# -- verify -----------------------------------------------------------------------------


def four_eyes_held(session: Session) -> list[Problem]:
    """No budget journal proposal was decided by the person who proposed it."""
    return [
        Problem("four_eyes", f"budget journal proposal {pid}", f"{status} by its proposer {decided_by}")
        for pid, status, proposed_by, decided_by in session.execute(
            select(JournalProposal.id, JournalProposal.status, JournalProposal.proposed_by,
                   JournalProposal.decided_by)
            .where(JournalProposal.status.in_(("approved", "rejected"))))
        if person(decided_by or "") == person(proposed_by)
    ]


CHECKS = [four_eyes_held]
