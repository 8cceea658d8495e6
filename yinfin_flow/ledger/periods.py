"""Accounting periods (会计期间): one per company and month, open or closed.

Months close in order and reopen in reverse order (Kingdee 结账/反结账, SAP period
control): a month closes only when no earlier month of the company is open, and
reopens only when no later month is closed, so the closed months are always the
oldest ones. Closing and reopening lock every period row of the company in
ascending start date (one fixed order), so two of them for the same company queue
rather than each checking the other's neighbour before it changes. Posting locks the
period row it posts into, so a voucher is either in the period before it closes, or
refused.
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


class PeriodOutOfOrder(Conflict):
    """Closing past an open month, or reopening under a closed one. ``details['blocking']`` names it."""

    code = "period_out_of_order"


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


def _locked_periods(session: Session, company_id: int) -> list[AccountingPeriod]:
    """Every period of the company, oldest first, each locked in that order (PostgreSQL)."""
    return list(session.scalars(
        select(AccountingPeriod)
        .where(AccountingPeriod.company_id == company_id)
        .order_by(AccountingPeriod.start_date)
        .with_for_update()
        .execution_options(populate_existing=True)  # the locked state, not what the session held
    ))


def open_period(session: Session, company_code: str, code: str) -> AccountingPeriod:
    """Create the month if needed and open it (re-opening a closed month is allowed: 反结账).

    Refused with :class:`PeriodOutOfOrder`, naming the latest closed month, while any
    later month of the company is closed: reopen from the latest backwards.
    """
    comp = company_by_code(session, company_code)
    year, month = parse_code(code)
    rows = _locked_periods(session, comp.id)
    row = next((r for r in rows if r.code == code), None)
    if row is not None and row.status == "open":
        return row
    later_closed = [r for r in rows if r.code > code and r.status == "closed"]
    if later_closed:
        blocking = later_closed[-1].code
        verb = "reopen" if row is not None else "open"
        raise PeriodOutOfOrder(
            f"cannot {verb} {code} while a later month is closed: reopen {blocking} first "
            "(months reopen from the latest backwards)",
            field="period", period=code, blocking=blocking,
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
    """Create and open all twelve months of ``year``, oldest first.

    Months are opened from December backwards, so a year whose early months were
    closed reopens in the order :func:`open_period` requires.
    """
    opened = [open_period(session, company_code, f"{year}-{m:02d}") for m in range(12, 0, -1)]
    return opened[::-1]


@dataclass(frozen=True)
class Blocker:
    entry_id: int
    voucher: str
    status: str

    def to_dict(self) -> dict[str, object]:
        return {"entry_id": self.entry_id, "voucher": self.voucher, "status": self.status}


def close_period(session: Session, company_code: str, code: str, *, actor: str) -> AccountingPeriod:
    """Close a month. Refused, listing them, while any voucher in it waits for (or failed) ERP sync.

    Refused with :class:`PeriodOutOfOrder`, naming the earliest open month, while any
    earlier month of the company is open: months close in order. Closing a closed
    month returns it unchanged.
    """
    comp = company_by_code(session, company_code)
    parse_code(code)
    rows = _locked_periods(session, comp.id)
    row = next((r for r in rows if r.code == code), None)
    if row is None:
        raise ValidationError("period", f"no accounting period {code} for {company_code}")
    if row.status == "closed":
        return row
    earlier_open = [r for r in rows if r.code < code and r.status == "open"]
    if earlier_open:
        blocking = earlier_open[0].code
        raise PeriodOutOfOrder(
            f"cannot close {code} while an earlier month is open: close {blocking} first "
            "(months close in order)",
            field="period", period=code, blocking=blocking,
        )
    blockers = unsynced(session, row)
    if blockers:
        raise Conflict(
            f"period {code} has {len(blockers)} voucher(s) not yet synced to the ERP: "
            + ", ".join(f"{b.voucher} ({b.status})" for b in blockers),
            field="period", unsynced=[b.to_dict() for b in blockers],
        )
    row.status, row.closed_by, row.closed_at = "closed", actor, utcnow()
    session.flush()
    return row


def unsynced(session: Session, row: AccountingPeriod) -> list[Blocker]:
    """The month's vouchers that wait for (or failed) ERP sync: what blocks closing it."""
    return [
        Blocker(e.id, f"{e.voucher_word}-{row.code}-{e.voucher_number:04d}", status)
        for e, status in session.execute(
            select(JournalEntry, JournalSync.status)
            .join(JournalSync, JournalSync.entry_id == JournalEntry.id)
            .where(JournalEntry.period_id == row.id, JournalSync.status != "synced")
            .order_by(JournalEntry.voucher_number)
        )
    ]


class CloseBlocked(Conflict):
    """Closing through a month: some months have vouchers the ERP does not hold yet."""

    code = "period_close_blocked"


def close_through(session: Session, company_code: str, through: str, *, actor: str) -> list[AccountingPeriod]:
    """Close every open month of the company up to and including ``through``, oldest first
    (a first close in one action instead of one per month); the months it closed.

    All or nothing: while any of those months has a voucher that waits for (or failed)
    ERP sync, :class:`CloseBlocked` names every such month and voucher
    (``details['blocking']``) and nothing closes. Months already closed stay closed;
    reopening is still one month at a time, from the latest back (:func:`open_period`).
    """
    comp = company_by_code(session, company_code)
    parse_code(through, "through")
    rows = _locked_periods(session, comp.id)
    if not any(r.code == through for r in rows):
        raise ValidationError("through", f"no accounting period {through} for {company_code}")
    targets = [r for r in rows if r.code <= through and r.status == "open"]
    blocking = [{"period": r.code, "unsynced": [b.to_dict() for b in found]}
                for r in targets if (found := unsynced(session, r))]
    if blocking:
        names = "; ".join(f"{b['period']}: " + ", ".join(f"{v['voucher']} ({v['status']})" for v in b["unsynced"])
                          for b in blocking)
        raise CloseBlocked(f"cannot close through {through}: vouchers not yet synced to the ERP in {names}",
                           field="through", through=through, blocking=blocking)
    now = utcnow()
    for r in targets:
        r.status, r.closed_by, r.closed_at = "closed", actor, now
    session.flush()
    return targets


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


def overview(session: Session, company_code: str) -> list[dict[str, object]]:
    """Every month of the company, oldest first, with its status, who closed it and when,
    how many vouchers it holds, and for an open month what would block closing it: its
    vouchers that wait for (or failed) ERP sync (as :func:`close_through` names them)."""
    from sqlalchemy import func

    comp = company_by_code(session, company_code)
    counts = dict(session.execute(
        select(JournalEntry.period_id, func.count()).where(JournalEntry.company_id == comp.id)
        .group_by(JournalEntry.period_id)).all())
    return [{"code": r.code, "fiscal_year": r.fiscal_year, "start_date": r.start_date,
             "end_date": r.end_date, "status": r.status, "closed_by": r.closed_by,
             "closed_at": r.closed_at, "vouchers": int(counts.get(r.id, 0)),
             "blocking": [b.to_dict() for b in unsynced(session, r)] if r.status == "open" else []}
            for r in list_periods(session, company_code)]
