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

Validation is a separate pass that reports EVERY bad row at once (row number as the
spreadsheet shows it, column, problem); when any row is bad :class:`ImportFailed` is
raised and, because everything happens in the caller's one transaction, nothing is
imported. All budget changes go through :func:`setup.create_line` and
:meth:`Budgets.adjust`, never by writing balances.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import (
    BudgetBalance,
    BudgetItem,
    BudgetLine,
    BudgetPeriod,
    Company,
    CostCentre,
    Project,
)
from yinfin_flow.domain.budget import DEFAULT_RULE, ControlRule
from yinfin_flow.domain.errors import DomainError, ValidationError
from yinfin_flow.domain.money import MINOR_UNITS, check_currency, parse_amount

from . import setup
from .io_report import line_report
from .io_tables import Row, read_table, write_table
from .lookup import series_key
from .service import Budgets

REQUIRED = ("company", "period", "cost_centre", "item", "amount")
OPTIONAL = ("project", "parent", "currency", "owner", "reason", "code")
COLUMNS = ("company", "period", "cost_centre", "item", "project", "parent", "currency",
           "amount", "owner", "reason")
EXPORT_COLUMNS = ("code", *COLUMNS[:-1], "pre_encumbered", "encumbered", "actual",
                  "available", "status", "control", "reason")
MONEY_COLUMNS = ("amount", "pre_encumbered", "encumbered", "actual", "available")

_PERIOD = re.compile(r"^(\d{4})(?:-(\d{2})|-Q([1-4])|-H([12]))?$")


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in an imported file: where it is and what is wrong."""

    row: int
    column: str
    problem: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "problem": self.problem}


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
class _Planned:
    """A validated row: what line it means and what it will do."""

    row: int
    company: Company
    period_code: str
    period: BudgetPeriod | None  # None: the period is created on import
    cost_centre: str
    item: str
    project: str | None
    currency: str
    amount: Decimal
    owner: str | None
    reason: str | None
    code: str  # the existing line's code, or the code the new line will get
    existing: BudgetLine | None
    parent_ref: str | None  # resolved parent code (an existing line or another row)


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


def import_budgets(session: Session, path: Path, *, actor: str, fmt: str | None = None,
                   default_mode: str = "hard") -> ImportResult:
    """Validate every row of ``path``, then create lines and book budget journals.

    Raises :class:`ImportFailed` listing every bad row; the caller's transaction must
    then roll back (``Database.unit_of_work`` does), so nothing is imported.
    """
    if not actor:
        raise ValidationError("actor", "who is importing is required")
    header, rows = read_table(path, fmt)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ImportFailed([RowError(1, c, "column is missing") for c in missing], path.name)
    planned, errors = validate(session, rows)
    if errors:
        raise ImportFailed(errors, path.name)
    result, errors = _apply(session, planned, actor=actor, default_reason=f"budget import {path.name}",
                            default_mode=default_mode)
    if errors:
        raise ImportFailed(errors, path.name)
    return result


def validate(session: Session, rows: list[Row]) -> tuple[list[_Planned], list[RowError]]:
    """Check every row against the format and the master data; collect every problem."""
    errors: list[RowError] = []
    planned: list[_Planned] = []
    cache = _MasterData(session)
    seen: dict[str, int] = {}  # dims key -> row that named it first
    for number, cells in rows:
        before = len(errors)

        def bad(column: str, problem: str, number: int = number) -> None:
            errors.append(RowError(number, column, problem))

        comp = None
        for col in REQUIRED:
            if not cells.get(col):
                bad(col, "is required")
        if cells.get("company"):
            comp = cache.company(cells["company"])
            if comp is None:
                bad("company", f"unknown company {cells['company']!r}")
            elif not comp.active:
                bad("company", f"company {comp.code!r} is inactive")
        period_code = cells.get("period", "")
        if period_code and not _PERIOD.match(period_code):
            bad("period", f"{period_code!r} is not a period (use 2026, 2026-H1, 2026-Q1 or 2026-01)")
        elif period_code and _PERIOD.match(period_code) and _month_out_of_range(period_code):
            bad("period", f"{period_code!r}: the month must be 01 to 12")
        currency = None
        if comp is not None:
            try:
                currency = check_currency(cells.get("currency") or comp.base_currency)
            except ValidationError as err:
                bad("currency", err.details["problem"])
        if currency is not None and cells.get("amount"):
            try:
                amount = parse_amount(cells["amount"], currency, "amount")
                if amount < 0:
                    bad("amount", "a budget cannot be negative (book cuts as a lower amount)")
            except ValidationError as err:
                bad("amount", err.details["problem"])
        ids: dict[str, int | None] = {}
        if comp is not None:
            for col, model, label in (("cost_centre", CostCentre, "cost centre"),
                                      ("item", BudgetItem, "budget item"),
                                      ("project", Project, "project")):
                value = cells.get(col)
                if not value:
                    ids[col] = None
                    continue
                obj = cache.master(model, comp.id, value)
                if obj is None:
                    bad(col, f"unknown {label} {value!r} in {comp.code}")
                elif not obj.active:
                    bad(col, f"{label} {value!r} is inactive")
                else:
                    ids[col] = obj.id
        if len(errors) > before or comp is None or currency is None:
            continue
        period = cache.period(comp.id, period_code)
        dims = series_key(comp.id, ids["cost_centre"] or 0, ids["item"] or 0, ids["project"])
        dims_key = f"{dims}|{period.id}" if period else f"{dims}|new:{period_code}"
        if dims_key in seen:
            bad("period", f"the same line as row {seen[dims_key]} (company, period, cost centre, item, project)")
            continue
        seen[dims_key] = number
        existing = session.scalar(select(BudgetLine).where(BudgetLine.dims_key == dims_key)) if period else None
        default_code = "/".join(x for x in (comp.code, period_code, cells["cost_centre"], cells["item"],
                                            cells.get("project")) if x)
        code = cells.get("code") or default_code
        if existing is not None:
            if cells.get("code") and cells["code"] != existing.code:
                bad("code", f"the line for these dimensions is {existing.code!r}; codes are not changed by import")
            if existing.currency != currency and cells.get("currency"):
                bad("currency", f"line {existing.code} is in {existing.currency}")
            currency = existing.currency
            code = existing.code
        planned.append(_Planned(
            row=number, company=comp, period_code=period_code, period=period,
            cost_centre=cells["cost_centre"], item=cells["item"], project=cells.get("project") or None,
            currency=currency, amount=parse_amount(cells["amount"], currency, "amount"),
            owner=cells.get("owner") or None, reason=cells.get("reason") or None,
            code=code, existing=existing, parent_ref=cells.get("parent") or None,
        ))
    errors.extend(_check_codes_and_parents(session, planned))
    errors.sort(key=lambda e: (e.row, e.column))
    return planned, errors


def _month_out_of_range(code: str) -> bool:
    m = _PERIOD.match(code)
    return bool(m and m.group(2) and not 1 <= int(m.group(2)) <= 12)


def _check_codes_and_parents(session: Session, planned: list[_Planned]) -> list[RowError]:
    """New codes unique; every parent found (in the file or the database) and consistent."""
    errors: list[RowError] = []
    in_file: dict[str, _Planned] = {}
    for p in planned:
        if p.code in in_file:
            errors.append(RowError(p.row, "code", f"{p.code!r} is also row {in_file[p.code].row}"))
            continue
        in_file[p.code] = p
        if p.existing is None and session.scalar(select(BudgetLine.id).where(BudgetLine.code == p.code)):
            errors.append(RowError(p.row, "code", f"a different line already has code {p.code!r}"))
    for p in planned:
        if p.parent_ref is None:
            continue
        candidates = [p.parent_ref, f"{p.company.code}/{p.period_code}/{p.parent_ref}"]
        target: _Planned | BudgetLine | None = None
        for cand in candidates:
            target = in_file.get(cand) or session.scalar(select(BudgetLine).where(BudgetLine.code == cand))
            if target is not None:
                break
        if target is None:
            errors.append(RowError(p.row, "parent", f"no budget line {p.parent_ref!r} in the file or the database"))
            continue
        p.parent_ref = target.code
        if target.code == p.code:
            errors.append(RowError(p.row, "parent", "a line cannot be its own parent"))
        elif target.currency != p.currency:
            errors.append(RowError(p.row, "parent", f"parent {target.code} is in {target.currency}, this line in {p.currency}"))
        elif p.existing is not None:
            current = session.get(BudgetLine, p.existing.parent_id) if p.existing.parent_id else None
            if current is None or current.code != target.code:
                errors.append(RowError(p.row, "parent", (
                    f"line {p.code} already sits under {current.code if current else 'no parent'}; "
                    "import does not move lines in the tree")))
    # A parent chain among new rows must end somewhere (no cycles).
    for p in planned:
        chain, cur = {p.code}, p
        while cur.parent_ref in in_file and in_file[cur.parent_ref].existing is None:
            cur = in_file[cur.parent_ref]
            if cur.code in chain:
                errors.append(RowError(p.row, "parent", "the parent chain loops back to this line"))
                break
            chain.add(cur.code)
    return errors


class _MasterData:
    """Per-import cache of master-data lookups (a budget file repeats the same codes)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[tuple[Any, ...], Any] = {}

    def _get(self, key: tuple[Any, ...], stmt: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = self.session.scalar(stmt)
        return self._cache[key]

    def company(self, code: str) -> Company | None:
        result: Company | None = self._get(("company", code), select(Company).where(Company.code == code))
        return result

    def master(self, model: Any, company_id: int, code: str) -> Any:
        return self._get((model.__name__, company_id, code),
                         select(model).where(model.company_id == company_id, model.code == code))

    def period(self, company_id: int, code: str) -> BudgetPeriod | None:
        result: BudgetPeriod | None = self._get(
            ("period", company_id, code),
            select(BudgetPeriod).where(BudgetPeriod.company_id == company_id, BudgetPeriod.code == code))
        return result


def _apply(session: Session, planned: list[_Planned], *, actor: str, default_reason: str,
           default_mode: str) -> tuple[ImportResult, list[RowError]]:
    result = ImportResult()
    errors: list[RowError] = []
    budgets = Budgets(session, default_mode=default_mode)
    by_code = {p.code: p for p in planned}
    done: dict[str, bool] = {}  # code -> applied without error

    def run(p: _Planned) -> bool:
        if p.code in done:
            return done[p.code]
        done[p.code] = False  # guards against re-entry; cycles were refused in validation
        parent = by_code.get(p.parent_ref) if p.parent_ref else None
        if parent is not None and parent.existing is None and not run(parent):
            return False  # the parent's own error is reported; this row waits on it
        try:
            _apply_row(session, budgets, p, actor, default_reason, result)
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


def _apply_row(session: Session, budgets: Budgets, p: _Planned, actor: str, default_reason: str,
               result: ImportResult) -> None:
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
    current = session.get(BudgetBalance, line.id)
    delta = p.amount - (current.budget if current else Decimal(0))
    if delta:
        budgets.adjust(None, line.id, delta, actor=actor, reason=reason, kind="adjustment")
        result.adjusted.append((line.code, delta, line.currency))
    else:
        result.unchanged += 1


def _default_code(p: _Planned) -> str:
    return "/".join(x for x in (p.company.code, p.period_code, p.cost_centre, p.item, p.project) if x)


def _ensure_period(session: Session, company_code: str, code: str, result: ImportResult) -> BudgetPeriod:
    m = _PERIOD.match(code)
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
