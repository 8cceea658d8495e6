"""From our books to a connector: a stored journal entry as a :class:`~connectors.base.Voucher`.

Thin on purpose: it reads the ledger's own export rows
(:func:`yinfin_flow.ledger.exports.voucher_rows`, ERP codes already applied:
``external_code`` when an account / cost centre / project / partner has one), so the
ERP sees exactly what the CSV/XLSX export shows.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from yinfin_flow.db.models import Company
from yinfin_flow.db.models.ledger import AccountingPeriod, JournalEntry
from yinfin_flow.domain.errors import NotFound
from yinfin_flow.ledger.exports import VoucherRow, voucher_rows

from .base import Voucher, VoucherLine


def voucher_from_rows(rows: Iterable[VoucherRow]) -> Voucher:
    """One voucher's export rows (same ``entry_id``) as a :class:`Voucher`."""
    rows = list(rows)
    if not rows:
        raise ValueError("a voucher needs at least one line")
    first = rows[0]
    lines = []
    for r in rows:
        # like the export: the original amount is positive on its own side (red-ink negative)
        debit_side = r.debit != 0 or (r.credit == 0 and r.amount >= 0)
        lines.append(VoucherLine(
            account=r.account_erp_code, debit=r.debit, credit=r.credit, currency=r.currency,
            amount=r.amount if debit_side else -r.amount, rate=r.rate,
            memo=r.memo or r.summary, cost_centre=r.cost_centre, project=r.project,
            partner=r.partner, account_name=r.account_name, account_type=r.account_type))
    return Voucher(company="", date=first.posting_date, memo=first.summary, lines=tuple(lines),
                   currency=first.base_currency, word=first.word, number=first.voucher,
                   key=first.key)


def voucher_from_entry(session: Session, entry_id: int) -> Voucher:
    """The posted journal entry ``entry_id`` as a Voucher (``key`` = its idempotency key)."""
    entry = session.get(JournalEntry, entry_id)
    if entry is None:
        raise NotFound(f"no journal entry {entry_id}", field="entry_id")
    company = session.get(Company, entry.company_id)
    period = session.get(AccountingPeriod, entry.period_id)
    assert company is not None and period is not None  # foreign keys
    rows = [r for r in voucher_rows(session, company.code, period.code) if r.entry_id == entry_id]
    voucher = voucher_from_rows(rows)
    return Voucher(company=company.code, date=voucher.date, memo=voucher.memo,
                   lines=voucher.lines, currency=voucher.currency, word=voucher.word,
                   number=voucher.number, key=voucher.key)
