"""Accounting periods (会计期间): one per company and month, open or closed.

Posting and closing both lock the period row, so they never interleave: a voucher
is either in the period before it closes, or refused.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.budget.setup import company as company_by_code
from yinfin_flow.db.models.ledger import AccountingPeriod, JournalEntry, JournalSync
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import Conflict, DomainError, ValidationError


class PeriodClosed(DomainError):
    """The posting date falls in a closed period (and the company does not roll on)."""

    code = "period_closed"
    http_status = 409


class NoOpenPeriod(DomainError):
    code = "no_open_period"
    http_status = 409


def parse_code(code: str, field: str = "period") -> tuple[int, int]:
    try:
        year_s, month_s = code.split("-")
        year, month = int(year_s), int(month_s)
    except ValueError:
        raise ValidationError(field, f"{code!r} is not a period like 2026-01") from None
    if not (1900 < year < 3000 and 1 <= month <= 12) or len(code) != 7:
        raise ValidationError(field, f"{code!r} is not a period like 2026-01")
    return year, month


def code_for(on: date) -> str:
    return f"{on.year}-{on.month:02d}"


def open_period(session: Session, company_code: str, code: str) -> AccountingPeriod:
    """Create the month if needed and open it (re-opening a closed month is allowed: 反结账)."""
    comp = company_by_code(session, company_code)
    year, month = parse_code(code)
    row = session.scalar(
        select(AccountingPeriod)
        .where(AccountingPeriod.company_id == comp.id, AccountingPeriod.code == code)
        .with_for_update()
    )
    if row is None:
        row = AccountingPeriod(
            company_id=comp.id, code=code, fiscal_year=year, number=month,
            start_date=date(year, month, 1),
            end_date=date(year, month, calendar.monthrange(year, month)[1]),
            status="open", last_voucher_number=0,
        )
        session.add(row)
    else:
        row.status, row.closed_by, row.closed_at = "open", None, None
    session.flush()
    return row


def open_year(session: Session, company_code: str, year: int) -> list[AccountingPeriod]:
    return [open_period(session, company_code, f"{year}-{m:02d}") for m in range(1, 13)]


@dataclass(frozen=True)
class Blocker:
    entry_id: int
    voucher: str
    status: str

    def to_dict(self) -> dict[str, object]:
        return {"entry_id": self.entry_id, "voucher": self.voucher, "status": self.status}


def close_period(session: Session, company_code: str, code: str, *, actor: str) -> AccountingPeriod:
    """Close a month. Refused, listing them, while any voucher in it waits for (or failed) ERP sync."""
    comp = company_by_code(session, company_code)
    parse_code(code)
    row = session.scalar(
        select(AccountingPeriod)
        .where(AccountingPeriod.company_id == comp.id, AccountingPeriod.code == code)
        .with_for_update()
    )
    if row is None:
        raise ValidationError("period", f"no accounting period {code} for {company_code}")
    if row.status == "closed":
        return row
    blockers = [
        Blocker(e.id, f"{e.voucher_word}-{code}-{e.voucher_number:04d}", status)
        for e, status in session.execute(
            select(JournalEntry, JournalSync.status)
            .join(JournalSync, JournalSync.entry_id == JournalEntry.id)
            .where(JournalEntry.period_id == row.id, JournalSync.status != "synced")
            .order_by(JournalEntry.voucher_number)
        )
    ]
    if blockers:
        raise Conflict(
            f"period {code} has {len(blockers)} voucher(s) not yet synced to the ERP: "
            + ", ".join(f"{b.voucher} ({b.status})" for b in blockers),
            field="period", unsynced=[b.to_dict() for b in blockers],
        )
    row.status, row.closed_by, row.closed_at = "closed", actor, utcnow()
    session.flush()
    return row


def period_for_posting(
    session: Session, company_id: int, on: date, policy: str, field: str = "posting_date"
) -> tuple[AccountingPeriod, date]:
    """The locked period a voucher dated ``on`` goes into, and its effective posting date.

    A closed month is refused, or, under the ``next_open`` policy, the voucher goes
    to the first day of the next open month.
    """
    row = session.scalar(
        select(AccountingPeriod)
        .where(
            AccountingPeriod.company_id == company_id,
            AccountingPeriod.start_date <= on,
            AccountingPeriod.end_date >= on,
        )
        .with_for_update()
    )
    if row is None:
        raise NoOpenPeriod(f"no accounting period covers {on}: open {code_for(on)} first",
                           field=field, date=str(on))
    if row.status == "open":
        return row, on
    if policy != "next_open":
        raise PeriodClosed(f"accounting period {row.code} is closed", field=field,
                           period=row.code, date=str(on))
    nxt = session.scalar(
        select(AccountingPeriod)
        .where(
            AccountingPeriod.company_id == company_id,
            AccountingPeriod.start_date > on,
            AccountingPeriod.status == "open",
        )
        .order_by(AccountingPeriod.start_date)
        .limit(1)
        .with_for_update()
    )
    if nxt is None:
        raise NoOpenPeriod(f"accounting period {row.code} is closed and no later period is open",
                           field=field, period=row.code)
    return nxt, nxt.start_date


def list_periods(session: Session, company_code: str) -> list[AccountingPeriod]:
    comp = company_by_code(session, company_code)
    return list(session.scalars(
        select(AccountingPeriod).where(AccountingPeriod.company_id == comp.id).order_by(AccountingPeriod.start_date)
    ))
