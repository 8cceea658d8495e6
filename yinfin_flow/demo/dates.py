"""The demo's calendar: everything it creates is placed relative to :func:`today`.

The budget year is today's year; requests fall in the current month and the previous
one. In January the previous month would be December of a year the demo has no
budget for, so :func:`previous_month` is clamped to January (everything then falls in
January). Tests move the demo in time by replacing :func:`today`.
"""

from __future__ import annotations

from datetime import date


def today() -> date:
    return date.today()


def fiscal_year() -> int:
    return today().year


def current_month() -> int:
    return today().month


def previous_month() -> int:
    """The month before the current one, clamped to January (see the module's note)."""
    return max(1, today().month - 1)


def period(month: int) -> str:
    """``YYYY-MM`` of ``month`` in the demo's budget year."""
    return f"{fiscal_year()}-{month:02d}"


def day_in(month: int, day: int) -> date:
    """``day`` of ``month`` (in the budget year), never later than today."""
    return min(date(fiscal_year(), month, day), today())
