"""The validation pass of the budget import: every bad row, at once.

Checks the format of each row and looks its codes up in the master data, without
writing anything; :mod:`yinfin_flow.budget.io` then applies what validated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetItem, BudgetLine, BudgetPeriod, Company, CostCentre, Project
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.money import check_currency, parse_amount

from .io_tables import Row
from .lookup import series_key

REQUIRED = ("company", "period", "cost_centre", "item", "amount")
OPTIONAL = ("project", "parent", "currency", "owner", "reason", "code")

PERIOD = re.compile(r"^([0-9]{4})(?:-([0-9]{2})|-Q([1-4])|-H([12]))?\Z")


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


@dataclass(slots=True)
class PlannedRow:
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


def validate(session: Session, rows: list[Row]) -> tuple[list[PlannedRow], list[RowError]]:
    """Check every row against the format and the master data; collect every problem."""
    errors: list[RowError] = []
    planned: list[PlannedRow] = []
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
        if period_code and not PERIOD.match(period_code):
            bad("period", f"{period_code!r} is not a period (use 2026, 2026-H1, 2026-Q1 or 2026-01)")
        elif period_code and PERIOD.match(period_code) and _month_out_of_range(period_code):
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
        existing = cache.line_by_dims(comp.id, dims_key) if period else None
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
        try:  # again: an existing line's currency may not be the company's
            amount = parse_amount(cells["amount"], currency, "amount")
        except ValidationError as err:
            bad("amount", err.details["problem"])
            continue
        planned.append(PlannedRow(
            row=number, company=comp, period_code=period_code, period=period,
            cost_centre=cells["cost_centre"], item=cells["item"], project=cells.get("project") or None,
            currency=currency, amount=amount,
            owner=cells.get("owner") or None, reason=cells.get("reason") or None,
            code=code, existing=existing, parent_ref=cells.get("parent") or None,
        ))
    errors.extend(_check_codes_and_parents(cache, planned))
    errors.sort(key=lambda e: (e.row, e.column))
    return planned, errors


def _month_out_of_range(code: str) -> bool:
    m = PERIOD.match(code)
    return bool(m and m.group(2) and not 1 <= int(m.group(2)) <= 12)


def _check_codes_and_parents(cache: _MasterData, planned: list[PlannedRow]) -> list[RowError]:
    """New codes unique; every parent found (in the file or the database) and consistent."""
    errors: list[RowError] = []
    in_file: dict[str, PlannedRow] = {}
    for p in planned:
        if p.code in in_file:
            errors.append(RowError(p.row, "code", f"{p.code!r} is also row {in_file[p.code].row}"))
            continue
        in_file[p.code] = p
        if p.existing is None and cache.line_by_code(p.code) is not None:
            errors.append(RowError(p.row, "code", f"a different line already has code {p.code!r}"))
    for p in planned:
        if p.parent_ref is None:
            continue
        candidates = [p.parent_ref, f"{p.company.code}/{p.period_code}/{p.parent_ref}"]
        target: PlannedRow | BudgetLine | None = None
        for cand in candidates:
            target = in_file.get(cand) or cache.line_by_code(cand)
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
            current = cache.session.get(BudgetLine, p.existing.parent_id) if p.existing.parent_id else None
            if current is None or current.code != target.code:
                errors.append(RowError(p.row, "parent", (
                    f"line {p.code} already sits under {current.code if current else 'no parent'}; "
                    "import does not move lines in the tree")))
    # A parent chain among new rows must end somewhere (no cycles).
    for p in planned:
        if p.parent_ref == p.code:
            continue  # reported above as its own parent
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
        # Lines of the companies the file names, loaded once (one query, not one per row).
        self._by_dims: dict[str, BudgetLine] = {}
        self._by_code: dict[str, BudgetLine] = {}
        self._loaded: set[int] = set()

    def _load_lines(self, company_id: int) -> None:
        if company_id in self._loaded:
            return
        self._loaded.add(company_id)
        for line in self.session.scalars(select(BudgetLine).where(BudgetLine.company_id == company_id)):
            self._by_dims[line.dims_key] = line
            self._by_code[line.code] = line

    def line_by_dims(self, company_id: int, dims_key: str) -> BudgetLine | None:
        self._load_lines(company_id)
        return self._by_dims.get(dims_key)

    def line_by_code(self, code: str) -> BudgetLine | None:
        if code not in self._by_code:
            line = self.session.scalar(select(BudgetLine).where(BudgetLine.code == code))
            if line is None:
                return None
            self._by_code[code] = line
        return self._by_code[code]

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
