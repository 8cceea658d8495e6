"""Budget import and export (CSV and XLSX): how finance loads a year's budget.

Columns (header row first; order free; Chinese headers accepted, see
:data:`yinfin_flow.budget.io_tables.HEADER_ALIASES`):

==============  ========  ==============================================================
column          required  meaning
==============  ========  ==============================================================
company         yes       company code, e.g. ``ACME``
period          yes       ``2026`` (year), ``2026-H1``, ``2026-Q1`` or ``2026-01``
cost_centre     yes       cost centre / department code
item            yes       budget item (预算科目) code
project         no        project code
parent          no        the parent line's code (``ACME/2026-01/RD/TRAVEL``) or, for a
                          parent in the same company and period, just ``RD/TRAVEL``
                          (cost_centre/item[/project]); the parent may be another row
                          of the same file, in any order
currency        no        ISO code; default the company's base currency
amount          yes       the line's budget (>= 0, no more decimals than the currency has)
owner           no        user who owns the line (threshold notifications go to them)
reason          no        reason recorded on the budget journal; default
                          ``budget import <file name>``
code            no        code for a NEW line (default ``company/period/cc/item[/project]``)
==============  ========  ==============================================================

Any other column is ignored, so a file written by :func:`export_budgets` (which adds
``pre_encumbered``, ``encumbered``, ``actual``, ``available``, ``status``, ``control``)
imports back unchanged.

What a row does (so re-importing the same file is a no-op):

- no line for the row's dimensions and period: the line is created and gets an
  ``original`` budget journal of ``amount`` (none when ``amount`` is 0);
- the line exists: ``amount`` is the budget it should have; the difference from its
  current budget is booked as an ``adjustment`` (a cut is refused like any other cut:
  never below zero, never below what a hard-controlled line has consumed). Equal
  amounts do nothing. ``owner`` is updated when given. ``parent``, ``currency`` and
  ``code`` must agree with the line (or be empty): the tree is not reshaped by import.
- a period code that is well formed but not set up yet creates that fiscal year's
  periods at that granularity (calendar fiscal year), like ``setup.create_periods``.
  Companies, cost centres, items and projects must exist.

Validation (:mod:`.io_validate`) is a separate pass that reports EVERY bad row at once
(row number as the spreadsheet shows it, column, problem). Refusals only the budget
service can decide (a cut below what a hard-controlled line has consumed, a closed
line) are collected the same way while applying. When any row is bad
:class:`ImportFailed` is raised and, because everything happens in the caller's one transaction, nothing is
imported. All budget changes go through :func:`setup.create_line` and
:meth:`Budgets.adjust`, never by writing balances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetBalance, BudgetPeriod, Company
from yinfin_flow.domain.budget import DEFAULT_RULE, ControlRule
from yinfin_flow.domain.errors import DomainError, ValidationError
from yinfin_flow.domain.limits import DEFAULT_LIMITS, Limits
from yinfin_flow.domain.money import MINOR_UNITS

from . import setup
from .io_report import line_report
from .io_tables import Row, read_table, write_table
from .io_validate import PERIOD, REQUIRED, PlannedRow, RowError, validate
from .service import Budgets

COLUMNS = ("company", "period", "cost_centre", "item", "project", "parent", "currency",
           "amount", "owner", "reason")
EXPORT_COLUMNS = ("code", *COLUMNS[:-1], "pre_encumbered", "encumbered", "actual",
                  "available", "status", "control", "reason")
MONEY_COLUMNS = ("amount", "pre_encumbered", "encumbered", "actual", "available")

__all__ = ["COLUMNS", "EXPORT_COLUMNS", "ImportFailed", "ImportResult", "RowError",
           "export_budgets", "import_budgets", "import_rows", "validate"]


class ImportFailed(DomainError):
    """The file has bad rows; ``errors`` lists every one. Nothing was imported."""

    code = "import_invalid"
    http_status = 422

    def __init__(self, errors: list[RowError], source: str) -> None:
        super().__init__(
            f"{source}: {len(errors)} problem(s), nothing imported",
            errors=[e.to_dict() for e in errors],
        )
        self.errors = errors


@dataclass(slots=True)
class ImportResult:
    """What an import did (or, in a dry run, would do)."""

    created: list[str] = field(default_factory=list)
    adjusted: list[tuple[str, Decimal, str]] = field(default_factory=list)  # (code, delta, currency)
    unchanged: int = 0
    periods_created: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.created)} line(s) created, {len(self.adjusted)} adjusted, "
                f"{self.unchanged} unchanged")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (amounts as strings): what a reviewer sees of an import."""
        return {"created": list(self.created),
                "adjusted": [{"line": code, "delta": str(delta), "currency": cur}
                             for code, delta, cur in self.adjusted],
                "unchanged": self.unchanged, "periods_created": list(self.periods_created)}


def import_budgets(session: Session, path: Path, *, actor: str, fmt: str | None = None,
                   default_mode: str = "hard", limits: Limits = DEFAULT_LIMITS) -> ImportResult:
    """Validate every row of ``path``, then create lines and book budget journals.

    Raises :class:`ImportFailed` listing every bad row; the caller's transaction must
    then roll back (``Database.unit_of_work`` does), so nothing is imported.
    """
    if not actor:
        raise ValidationError("actor", "who is importing is required")
    header, rows = read_table(path, fmt, limits)
    return import_rows(session, header, rows, source=path.name, actor=actor, default_mode=default_mode)


def import_rows(session: Session, header: list[str], rows: list[Row], *, source: str, actor: str,
                default_mode: str = "hard", reason: str | None = None) -> ImportResult:
    """:func:`import_budgets` of a table already read (:func:`read_table`): what a budget
    journal proposal keeps and applies when it is approved. ``reason``: the journal's
    reason for rows that give none (default ``budget import <source>``)."""
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ImportFailed([RowError(1, c, "column is missing") for c in missing], source)
    planned, errors = validate(session, rows)
    if errors:
        raise ImportFailed(errors, source)
    result, errors = _apply(session, planned, actor=actor, default_reason=reason or f"budget import {source}",
                            default_mode=default_mode)
    if errors:
        raise ImportFailed(errors, source)
    return result


def _apply(session: Session, planned: list[PlannedRow], *, actor: str, default_reason: str,
           default_mode: str) -> tuple[ImportResult, list[RowError]]:
    result = ImportResult()
    errors: list[RowError] = []
    budgets = Budgets(session, default_mode=default_mode)
    by_code = {p.code: p for p in planned}
    done: dict[str, bool] = {}  # code -> applied without error
    # Each existing line appears once per file and only its own row changes its budget,
    # so reading every current budget up front (one query per 500 lines) is exact.
    current = _budgets_of(session, [p.existing.id for p in planned if p.existing is not None])

    def run(p: PlannedRow) -> bool:
        if p.code in done:
            return done[p.code]
        done[p.code] = False  # guards against re-entry; cycles were refused in validation
        parent = by_code.get(p.parent_ref) if p.parent_ref else None
        if parent is not None and parent.existing is None and not run(parent):
            return False  # the parent's own error is reported; this row waits on it
        try:
            _apply_row(session, budgets, p, actor, default_reason, result, current)
        except DomainError as err:
            column = str(err.details.get("field") or "amount").split(".")[-1]
            column = {"line_id": "amount", "line": "period", "mode": "amount"}.get(column, column)
            errors.append(RowError(p.row, column, f"{err.code}: {err.message}"))
            return False
        done[p.code] = True
        return True

    for p in planned:
        run(p)
    errors.sort(key=lambda e: e.row)
    return result, errors


def _budgets_of(session: Session, line_ids: list[int]) -> dict[int, Decimal]:
    out: dict[int, Decimal] = {}
    for i in range(0, len(line_ids), 500):
        chunk = line_ids[i:i + 500]
        rows = session.execute(select(BudgetBalance.line_id, BudgetBalance.budget)
                               .where(BudgetBalance.line_id.in_(chunk)))
        out.update({line_id: budget for line_id, budget in rows})
    return out


def _apply_row(session: Session, budgets: Budgets, p: PlannedRow, actor: str, default_reason: str,
               result: ImportResult, current: dict[int, Decimal]) -> None:
    reason = p.reason or default_reason
    if p.existing is None:
        if p.period is None:
            p.period = _ensure_period(session, p.company.code, p.period_code, result)
        line = setup.create_line(
            session, company_code=p.company.code, period_code=p.period_code,
            cost_centre=p.cost_centre, item=p.item, project=p.project, currency=p.currency,
            parent_code=p.parent_ref, owner=p.owner,
            code=None if p.code == _default_code(p) else p.code,
        )
        if p.amount:
            budgets.adjust(None, line.id, p.amount, actor=actor, reason=reason, kind="original")
        result.created.append(line.code)
        return
    line = p.existing
    if p.owner and p.owner != line.owner:
        line.owner = p.owner
    delta = p.amount - current.get(line.id, Decimal(0))
    if delta:
        budgets.adjust(None, line.id, delta, actor=actor, reason=reason, kind="adjustment")
        result.adjusted.append((line.code, delta, line.currency))
    else:
        result.unchanged += 1


def _default_code(p: PlannedRow) -> str:
    return "/".join(x for x in (p.company.code, p.period_code, p.cost_centre, p.item, p.project) if x)


def _ensure_period(session: Session, company_code: str, code: str, result: ImportResult) -> BudgetPeriod:
    existing = session.scalar(
        select(BudgetPeriod).join(Company, Company.id == BudgetPeriod.company_id)
        .where(Company.code == company_code, BudgetPeriod.code == code))
    if existing is not None:  # an earlier row of this file set the year up
        return existing
    m = PERIOD.match(code)
    assert m is not None  # validated
    granularity = "month" if m.group(2) else "quarter" if m.group(3) else "half" if m.group(4) else "year"
    periods = setup.create_periods(session, company_code, int(m.group(1)), granularity)
    label = f"{m.group(1)} ({granularity})"
    if label not in result.periods_created:
        result.periods_created.append(label)
    return next(x for x in periods if x.code == code)


def export_budgets(session: Session, path: Path, *, fmt: str | None = None, company: str | None = None,
                   period: str | None = None, year: int | None = None,
                   default_rule: ControlRule = DEFAULT_RULE) -> int:
    """Write the lines (tree order) with their buckets; returns how many lines.

    The layout is one :func:`import_budgets` reads back: importing the file
    unchanged is a no-op.
    """
    lines = line_report(session, company=company, period=period, year=year, default_rule=default_rule)
    rows = []
    for r in lines:
        q = Decimal(1).scaleb(-MINOR_UNITS[r.currency])
        b = r.buckets
        rows.append([
            r.code, r.company, r.period, r.cost_centre, r.item, r.project, r.parent_code,
            r.currency, b.budget.quantize(q), r.owner,
            *(v.quantize(q) for v in (b.pre_encumbered, b.encumbered, b.actual, b.available)),
            r.status, r.rule.mode.value, None,
        ])
    write_table(path, EXPORT_COLUMNS, rows, fmt, money_columns=MONEY_COLUMNS)
    return len(rows)
