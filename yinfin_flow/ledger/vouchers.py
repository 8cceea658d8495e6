"""Reading vouchers (凭证): the list with its filters and one voucher with its lines, as
the API's ``/journal/entries`` and the console's journal pages show them.

Amounts stay ``Decimal``; the callers turn them into text (:func:`~yinfin_flow.domain.money.show`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.budget.setup import company as company_by_code
from yinfin_flow.db.models import Company
from yinfin_flow.db.models.ledger import (
    Account,
    AccountingPeriod,
    JournalEntry,
    JournalLine,
    JournalSync,
)
from yinfin_flow.domain.errors import NotFound

from . import exports
from .periods import parse_code
from .posting import voucher_label


@dataclass(frozen=True)
class VoucherFilter:
    """What the voucher list narrows to; every part optional."""

    period: str | None = None
    document_id: str | None = None
    account: str | None = None  # a voucher with a line on this account or one under it
    text: str | None = None  # in the summary (摘要)
    reversals: str | None = None  # "only": reversals alone; "none": no reversals


def _totals() -> Any:
    return (select(JournalLine.entry_id, func.sum(JournalLine.debit).label("total"))
            .group_by(JournalLine.entry_id).subquery())


def _entry(e: JournalEntry, pcode: str, total: Any) -> dict[str, Any]:
    return {"id": e.id, "voucher": voucher_label(e.voucher_word, pcode, e.voucher_number),
            "period": pcode, "posting_date": e.posting_date, "summary": e.summary,
            "document": f"{e.document_type}:{e.document_id}" if e.document_type else None,
            "document_type": e.document_type, "document_id": e.document_id,
            "reverses_id": e.reverses_id, "posted_by": e.posted_by, "currency": e.currency,
            "total": Decimal(total or 0)}


def list_vouchers(session: Session, company: str, filters: VoucherFilter, *, page: int = 1,
                  page_size: int = 50) -> dict[str, Any]:
    """A company's vouchers in voucher order, narrowed by ``filters``; ``items`` and
    ``pagination`` (page, page_size, total, pages)."""
    comp = company_by_code(session, company)
    t = _totals()
    stmt = (select(JournalEntry, AccountingPeriod.code, t.c.total)
            .join(AccountingPeriod, AccountingPeriod.id == JournalEntry.period_id)
            .outerjoin(t, t.c.entry_id == JournalEntry.id)
            .where(JournalEntry.company_id == comp.id))
    if filters.period:
        parse_code(filters.period)
        stmt = stmt.where(AccountingPeriod.code == filters.period)
    if filters.document_id:
        stmt = stmt.where(JournalEntry.document_id == filters.document_id)
    if filters.account:
        # the account or any under it: a chart's child codes start with their parent's
        on_account = (select(JournalLine.entry_id)
                      .join(Account, Account.id == JournalLine.account_id)
                      .where(Account.company_id == comp.id,
                             Account.code.startswith(filters.account, autoescape=True)))
        stmt = stmt.where(JournalEntry.id.in_(on_account))
    if filters.text:
        stmt = stmt.where(JournalEntry.summary.contains(filters.text, autoescape=True))
    if filters.reversals == "only":
        stmt = stmt.where(JournalEntry.reverses_id.is_not(None))
    elif filters.reversals == "none":
        stmt = stmt.where(JournalEntry.reverses_id.is_(None))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.execute(stmt.order_by(AccountingPeriod.start_date, JournalEntry.voucher_number)
                           .offset((page - 1) * page_size).limit(page_size)).all()
    return {"items": [_entry(e, p, tot) for e, p, tot in rows],
            "pagination": {"page": page, "page_size": page_size, "total": total,
                           "pages": (total + page_size - 1) // page_size}}


def voucher(session: Session, entry_id: int) -> dict[str, Any]:
    """One voucher with its lines (account code and name, debit, credit, dimensions), who
    made it, who approved the document it books, its reversal and its ERP state.
    Raises :class:`NotFound`."""
    t = _totals()
    row = session.execute(select(JournalEntry, AccountingPeriod.code, t.c.total, Company.code)
                          .join(AccountingPeriod, AccountingPeriod.id == JournalEntry.period_id)
                          .join(Company, Company.id == JournalEntry.company_id)
                          .outerjoin(t, t.c.entry_id == JournalEntry.id)
                          .where(JournalEntry.id == entry_id)).first()
    if row is None:
        raise NotFound(f"no journal entry {entry_id}", field="entry_id")
    e, pcode, total, company = row
    lines = [vars(r) for r in exports.voucher_rows(session, company, entry_id=e.id)]
    reversed_by = session.execute(
        select(JournalEntry.id, JournalEntry.voucher_word, JournalEntry.voucher_number, AccountingPeriod.code)
        .join(AccountingPeriod, AccountingPeriod.id == JournalEntry.period_id)
        .where(JournalEntry.reverses_id == e.id)).first()
    original = None
    if e.reverses_id is not None:
        o = session.execute(
            select(JournalEntry.voucher_word, JournalEntry.voucher_number, AccountingPeriod.code)
            .join(AccountingPeriod, AccountingPeriod.id == JournalEntry.period_id)
            .where(JournalEntry.id == e.reverses_id)).one()
        original = {"id": e.reverses_id, "voucher": voucher_label(o[0], o[2], o[1])}
    sync = session.get(JournalSync, e.id)
    return {
        **_entry(e, pcode, total), "company": company, "lines": lines,
        "credit_total": sum((ln["credit"] for ln in lines), Decimal(0)),
        "document_date": e.document_date, "posted_at": e.posted_at,
        "approved_by": _approvers(session, e.document_type, e.document_id),
        "reversed_by": None if reversed_by is None else {
            "id": reversed_by[0], "voucher": voucher_label(reversed_by[1], reversed_by[3], reversed_by[2])},
        "original": original,
        "erp": {"status": sync.status, "voucher_id": sync.erp_voucher_id} if sync else None,
    }


def _approvers(session: Session, document_type: str | None, document_id: str | None) -> list[str]:
    """Who approved the request a voucher books (审核), in the order they did; empty for
    a voucher of no request (a manual voucher: nobody approved it here)."""
    if not document_type or not document_id or not document_id.isdigit():
        return []
    from yinfin_flow.db.models.engine import ApprovalRequest, RequestHistory

    found = session.scalars(
        select(RequestHistory.actor).join(ApprovalRequest, ApprovalRequest.id == RequestHistory.request_id)
        .where(ApprovalRequest.id == int(document_id), ApprovalRequest.document_type == document_type,
               RequestHistory.action == "approve")
        .order_by(RequestHistory.seq))
    return list(dict.fromkeys(found))


def accounts(session: Session, company: str) -> list[dict[str, Any]]:
    """The company's active accounts, by code (for picking one in a form or a filter)."""
    comp = company_by_code(session, company)
    return [{"code": a.code, "name": a.name, "type": a.type}
            for a in session.scalars(select(Account).where(Account.company_id == comp.id, Account.active)
                                     .order_by(Account.code))]


def company_codes(session: Session) -> list[str]:
    """The active companies' codes, in order (to pick whose books to look at)."""
    return list(session.scalars(select(Company.code).where(Company.active).order_by(Company.code)))
