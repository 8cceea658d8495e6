"""Reversal (冲销): the only correction of a posted voucher.

A reversal is a new voucher, linked to its original by ``reverses_id`` (unique:
a voucher is reversed at most once), red-ink style as Chinese ERPs do it: the
same accounts and sides with negated amounts, so period turnover nets out. Lines
that moved a reservation into ``actual`` take that actual back through the budget
service, in the same transaction.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow import events
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models.ledger import AccountingPeriod, JournalEntry, JournalLine
from yinfin_flow.domain.errors import Conflict, NotFound, ValidationError

from . import masterdata
from .periods import period_for_posting
from .posting import PostResult, next_voucher_number, replayed_result, voucher_label, write_entry


def reverse(
    session: Session,
    entry_id: int,
    *,
    key: str,
    actor: str,
    reason: str,
    posting_date: date | None = None,
) -> PostResult:
    """Reverse voucher ``entry_id`` on ``posting_date`` (default: the original's date).

    Idempotent per ``key``. Refused for a reversal itself and for a voucher that
    is already reversed.
    """
    if not key:
        raise ValidationError("key", "an idempotency key is required")
    prior = replayed_result(session, key)
    if prior is not None:
        return prior
    if not reason or not reason.strip():
        raise ValidationError("reason", "a reason is required")
    if not actor:
        raise ValidationError("actor", "who is reversing is required")
    original = session.get(JournalEntry, entry_id)
    if original is None:
        raise NotFound(f"no journal entry {entry_id}", field="entry_id")
    if original.reverses_id is not None:
        raise Conflict(f"entry {entry_id} is itself a reversal", field="entry_id")
    already = session.scalar(select(JournalEntry.id).where(JournalEntry.reverses_id == entry_id))
    if already is not None:
        raise Conflict(f"entry {entry_id} is already reversed by entry {already}",
                       field="entry_id", reversal=already)
    settings = masterdata.settings_for(session, original.company_id)
    on = posting_date or original.posting_date
    period, effective = period_for_posting(session, original.company_id, on, settings.closed_period_policy)
    # A concurrent retry of the same key waited on the period lock: now it sees the
    # first one's voucher (READ COMMITTED) and returns it instead of failing on the key.
    prior = replayed_result(session, key)
    if prior is not None:
        return prior
    orig_period = session.get(AccountingPeriod, original.period_id)
    assert orig_period is not None
    lines = list(session.scalars(
        select(JournalLine).where(JournalLine.entry_id == entry_id).order_by(JournalLine.line_no)))
    budgets = Budgets(session)
    rows = []
    for ln in lines:
        if ln.reservation_id is not None and ln.budget_amount:
            budgets.reverse_actual(f"{key}:{ln.line_no}", ln.reservation_id, ln.budget_amount,
                                   actor=actor, step="reversal")
        rows.append({
            "line_no": ln.line_no, "kind": ln.kind, "account_id": ln.account_id,
            "debit": -ln.debit, "credit": -ln.credit, "currency": ln.currency,
            "amount": -ln.amount, "rate": ln.rate, "cost_centre_id": ln.cost_centre_id,
            "project_id": ln.project_id, "partner_id": ln.partner_id,
            "memo": ln.memo, "source_ref": ln.source_ref, "reservation_id": ln.reservation_id,
            "budget_amount": -ln.budget_amount if ln.budget_amount is not None else None,
        })
    number = next_voucher_number(period)
    original_label = voucher_label(original.voucher_word, orig_period.code, original.voucher_number)
    entry = {
        "idempotency_key": key, "company_id": original.company_id, "period_id": period.id,
        "voucher_word": original.voucher_word, "voucher_number": number,
        "posting_date": effective, "document_date": on, "template": original.template,
        "document_type": original.document_type, "document_id": original.document_id,
        "summary": f"冲销 {original_label}: {reason.strip()}"[:400],
        "currency": original.currency, "reverses_id": original.id, "posted_by": actor,
    }
    new_id = write_entry(session, entry, rows)
    label = voucher_label(original.voucher_word, period.code, number)
    events.publish(session, "journal.posted", entry_id=new_id, key=key, voucher=label,
                   reverses=original.id)
    return PostResult(new_id, label, period.code, effective)


def reverse_document(
    session: Session, document_type: str, document_id: str, *, key: str, actor: str, reason: str,
    posting_date: date | None = None,
) -> list[PostResult]:
    """Reverse every unreversed voucher of a document (reversing a completed request)."""
    entries = list(session.scalars(
        select(JournalEntry)
        .where(JournalEntry.document_type == document_type, JournalEntry.document_id == document_id,
               JournalEntry.reverses_id.is_(None))
        .order_by(JournalEntry.id)
    ))
    reversed_ids = set(session.scalars(
        select(JournalEntry.reverses_id).where(JournalEntry.reverses_id.in_([e.id for e in entries]))))
    return [
        reverse(session, e.id, key=f"{key}:{e.id}", actor=actor, reason=reason, posting_date=posting_date)
        for e in entries
        if e.id not in reversed_ids
    ]
