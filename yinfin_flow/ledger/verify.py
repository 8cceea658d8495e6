"""Ledger checks for ``verify``: vouchers balance, are unchanged, and budget actuals match.

Listed in :mod:`yinfin_flow.verify`, which `yinfin-flow verify` runs.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.budget.verify import Problem
from yinfin_flow.db.models import BudgetLine, Reservation
from yinfin_flow.db.models.ledger import JournalEntry, JournalLine
from yinfin_flow.domain.errors import DomainError
from yinfin_flow.domain.journal import check_balanced

from . import templates
from .posting import entry_hash


def _lines_by_entry(session: Session) -> dict[int, list[JournalLine]]:
    out: dict[int, list[JournalLine]] = defaultdict(list)
    for ln in session.scalars(select(JournalLine).order_by(JournalLine.entry_id, JournalLine.line_no)):
        out[ln.entry_id].append(ln)
    return out


def journal_balances(session: Session) -> list[Problem]:
    """Every voucher balances per currency (original amounts) and in base currency."""
    problems = []
    for entry_id, lines in _lines_by_entry(session).items():
        debit_credit = sum((ln.debit - ln.credit for ln in lines), Decimal(0))
        issues = check_balanced((ln.kind, ln.currency, ln.amount, ln.debit - ln.credit) for ln in lines)
        if debit_credit != 0 and not issues:
            issues.append(f"debits and credits differ by {debit_credit}")
        problems += [Problem("journal_balances", f"journal entry {entry_id}", i) for i in issues]
    return problems


def journal_unchanged(session: Session) -> list[Problem]:
    """Each voucher still hashes to what was stored when it was posted."""
    lines = _lines_by_entry(session)
    problems = []
    for e in session.scalars(select(JournalEntry)):
        rows = [{c: getattr(ln, c) for c in (col.key for col in JournalLine.__table__.columns)} for ln in lines.get(e.id, [])]
        head = {c: getattr(e, c) for c in (col.key for col in JournalEntry.__table__.columns)}
        if entry_hash(head, rows) != e.content_hash:
            problems.append(Problem("journal_unchanged", f"journal entry {e.id}",
                                    "content differs from what was posted"))
    return problems


def actuals_match_postings(session: Session) -> list[Problem]:
    """A budget line's ``actual`` from reservations equals what postings moved there."""
    posted: dict[int, Decimal] = defaultdict(Decimal)
    for line_id, total in session.execute(
        select(Reservation.line_id, func.sum(JournalLine.budget_amount))
        .join(Reservation, Reservation.id == JournalLine.reservation_id)
        .group_by(Reservation.line_id)
    ):
        posted[line_id] = Decimal(total or 0)
    held: dict[int, Decimal] = defaultdict(Decimal)
    for line_id, total in session.execute(
        select(Reservation.line_id, func.sum(Reservation.actual)).group_by(Reservation.line_id)
    ):
        held[line_id] = Decimal(total or 0)
    codes = {lid: code for lid, code in session.execute(select(BudgetLine.id, BudgetLine.code))}
    return [
        Problem("actuals_match_postings", codes.get(lid, str(lid)),
                f"actual is {held[lid]} but postings carrying its reservations sum to {posted[lid]}")
        for lid in sorted(set(posted) | set(held))
        if held[lid] != posted[lid]
    ]


def vouchers_linked_to_reservations(session: Session) -> list[Problem]:
    """A voucher whose template consumes budget (a line marked ``reservation``), posted
    for a document that holds reservations, carries them: otherwise money was spent that
    the budget never saw as actual (and releasing the commitment showed it available)."""
    consuming: dict[str, bool] = {}

    def consumes(name: str) -> bool:
        if name not in consuming:
            try:
                consuming[name] = any(tl.reservation for tl in templates.get(name).lines)
            except DomainError:  # a template no longer on disk: nothing to say about it
                consuming[name] = False
        return consuming[name]

    docs = {(t, i) for t, i in session.execute(select(Reservation.document_type, Reservation.document_id).distinct())}
    linked = {eid for (eid,) in session.execute(
        select(JournalLine.entry_id).where(JournalLine.reservation_id.isnot(None)).distinct())}
    problems = []
    for e in session.scalars(select(JournalEntry).where(JournalEntry.reverses_id.is_(None)).order_by(JournalEntry.id)):
        if (e.document_type, e.document_id) in docs and e.id not in linked and e.template and consumes(e.template):
            problems.append(Problem("vouchers_linked_to_reservations", f"journal entry {e.id}",
                                    f"{e.template} for {e.document_type}:{e.document_id} consumes budget but is "
                                    "linked to none of the document's reservations"))
    return problems


CHECKS = [journal_balances, journal_unchanged, actuals_match_postings, vouchers_linked_to_reservations]
