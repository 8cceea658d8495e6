"""Exchange-rate import: the rates finance loads for currency conversion.

Columns: ``from_currency``, ``to_currency``, ``date`` (ISO ``2026-01-31``), ``rate``
(units of ``to_currency`` per one ``from_currency``, e.g. ``USD,CNY,2026-01-01,7.1234``).
A rate applies from its date until the next one (see :func:`lookup.rate_for`).

Like the budget import, every bad row is reported at once and nothing is written
when any row is bad. A row for a (from, to, date) that exists with the same rate
does nothing; with a different rate it corrects the stored rate. Reservations keep
the rate they were made at, so a correction never changes what is already held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import ExchangeRate
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.limits import DEFAULT_LIMITS, Limits
from yinfin_flow.domain.money import check_currency, parse_decimal

from . import setup
from .io import ImportFailed, RowError
from .io_tables import read_table

RATE_COLUMNS = ("from_currency", "to_currency", "date", "rate")


@dataclass(slots=True)
class RatesResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0

    def summary(self) -> str:
        return f"{self.added} rate(s) added, {self.updated} corrected, {self.unchanged} unchanged"


def import_rates(session: Session, path: Path, *, fmt: str | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> RatesResult:
    """Validate every row, then add or correct rates. Raises :class:`ImportFailed`."""
    header, rows = read_table(path, fmt, limits)
    missing = [c for c in RATE_COLUMNS if c not in header]
    if missing:
        raise ImportFailed([RowError(1, c, "column is missing") for c in missing], path.name)
    errors: list[RowError] = []
    valid: list[tuple[str, str, date, Decimal]] = []
    seen: dict[tuple[str, str, date], int] = {}
    for number, cells in rows:
        before = len(errors)
        cur: dict[str, str] = {}
        for col in ("from_currency", "to_currency"):
            try:
                cur[col] = check_currency(cells.get(col, ""), col)
            except ValidationError as err:
                errors.append(RowError(number, col, err.details["problem"]))
        if len(cur) == 2 and cur["from_currency"] == cur["to_currency"]:
            errors.append(RowError(number, "to_currency", "must differ from from_currency"))
        try:
            on = date.fromisoformat(cells.get("date", ""))
        except ValueError:
            errors.append(RowError(number, "date", f"{cells.get('date')!r} is not a date (use 2026-01-31)"))
        try:  # the money grammar, with up to 10 decimals (the rate column's scale)
            rate = parse_decimal(cells.get("rate", ""), "rate", places=10, what="rate")
            if rate <= 0:
                errors.append(RowError(number, "rate", "must be a positive number"))
        except ValidationError as err:
            errors.append(RowError(number, "rate", err.details["problem"]))
        if len(errors) > before:
            continue
        key = (cur["from_currency"], cur["to_currency"], on)
        if key in seen:
            errors.append(RowError(number, "date", f"the same rate as row {seen[key]}"))
            continue
        seen[key] = number
        valid.append((*key, rate))
    if errors:
        raise ImportFailed(errors, path.name)
    result = RatesResult()
    for frm, to, on, rate in valid:
        row = session.scalar(select(ExchangeRate).where(
            ExchangeRate.from_currency == frm, ExchangeRate.to_currency == to,
            ExchangeRate.effective_date == on))
        if row is None:
            setup.add_rate(session, frm, to, on, rate)
            result.added += 1
        elif row.rate != rate:
            row.rate = rate
            result.updated += 1
        else:
            result.unchanged += 1
    session.flush()
    return result
