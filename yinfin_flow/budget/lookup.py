"""Finding the budget line a request line hits, and converting its currency."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import (
    BudgetItem,
    BudgetLine,
    Company,
    CostCentre,
    ExchangeRate,
    Project,
)
from yinfin_flow.domain.budget import NoBudgetLine, NoExchangeRate, OutsidePeriod
from yinfin_flow.domain.errors import ValidationError


@dataclass(frozen=True, slots=True)
class LineRow:
    """A snapshot of the ``budget_lines`` columns consumption and control read.

    Attribute names match :class:`BudgetLine`, so either may be passed where a
    line is read (never written). Reading plain rows skips the ORM's entity
    loading on the reservation hot path.
    """

    id: int
    code: str
    path: str
    currency: str
    status: str
    series_key: str
    granularity: str
    fiscal_year: int
    period_start: date
    period_end: date

    @classmethod
    def from_row(cls, row: Any) -> LineRow:
        return cls(*(row._mapping[name] for name in LINE_ROW_COLUMNS))


#: The columns of a :class:`LineRow`, in order, for a Core ``select``.
LINE_ROW_COLUMNS = tuple(LineRow.__slots__)  # type: ignore[attr-defined]


def check_in_period(line: BudgetLine | LineRow, budget_date: date, field: str) -> None:
    """E6 unless ``budget_date`` falls inside the line's period."""
    if not (line.period_start <= budget_date <= line.period_end):
        raise OutsidePeriod(
            f"{budget_date} is outside the budget period of {line.code} "
            f"({line.period_start} to {line.period_end})",
            field=f"{field}.budget_date",
            line=line.code,
            budget_date=str(budget_date),
        )


@dataclass(frozen=True, slots=True)
class Dims:
    """A budget line by its dimensions, as an OA form or an import names it."""

    company: str
    cost_centre: str
    item: str
    project: str | None = None


def series_key(company_id: int, cost_centre_id: int, item_id: int, project_id: int | None) -> str:
    return f"{company_id}|{cost_centre_id}|{item_id}|{project_id or '-'}"


def resolve_dims(session: Session, dims: Dims, field: str = "line") -> str:
    """Turn codes into the series key; unknown or inactive master data is a clear error."""
    company = session.scalar(select(Company).where(Company.code == dims.company))
    if company is None:
        raise ValidationError(f"{field}.company", f"unknown company {dims.company!r}")
    cc = session.scalar(
        select(CostCentre).where(
            CostCentre.company_id == company.id, CostCentre.code == dims.cost_centre
        )
    )
    if cc is None:
        raise ValidationError(f"{field}.cost_centre", f"unknown cost centre {dims.cost_centre!r}")
    if not cc.active:
        raise ValidationError(f"{field}.cost_centre", f"cost centre {dims.cost_centre!r} is inactive")
    item = session.scalar(
        select(BudgetItem).where(BudgetItem.company_id == company.id, BudgetItem.code == dims.item)
    )
    if item is None:
        raise ValidationError(f"{field}.item", f"unknown budget item {dims.item!r}")
    if not item.active:
        raise ValidationError(f"{field}.item", f"budget item {dims.item!r} is inactive")
    project_id = None
    if dims.project:
        project = session.scalar(
            select(Project).where(Project.company_id == company.id, Project.code == dims.project)
        )
        if project is None:
            raise ValidationError(f"{field}.project", f"unknown project {dims.project!r}")
        if not project.active:
            raise ValidationError(f"{field}.project", f"project {dims.project!r} is inactive")
        project_id = project.id
    return series_key(company.id, cc.id, item.id, project_id)


def find_line(
    session: Session,
    *,
    budget_date: date,
    line_id: int | None = None,
    line_code: str | None = None,
    dims: Dims | None = None,
    field: str = "line",
) -> BudgetLine:
    """The line a request line hits on ``budget_date``.

    By id or code, the date must fall inside the line's period (E6). By dimensions,
    the finest period containing the date is chosen; none containing it is E6, no
    line for those dimensions at all is E2.
    """
    if line_id is not None or line_code is not None:
        stmt = select(BudgetLine)
        stmt = (
            stmt.where(BudgetLine.id == line_id)
            if line_id is not None
            else stmt.where(BudgetLine.code == line_code)
        )
        line = session.scalar(stmt)
        if line is None:
            raise NoBudgetLine(
                f"no budget line {line_id if line_id is not None else line_code!r}",
                field=field,
                line=line_id if line_id is not None else line_code,
            )
        check_in_period(line, budget_date, field)
        return line
    if dims is None:
        raise ValidationError(field, "name a budget line by id, code or dimensions")
    key = resolve_dims(session, dims, field)
    candidates = session.scalars(
        select(BudgetLine).where(BudgetLine.series_key == key).order_by(BudgetLine.period_start)
    ).all()
    if not candidates:
        raise NoBudgetLine(
            f"no budget line for {dims.company}/{dims.cost_centre}/{dims.item}"
            + (f"/{dims.project}" if dims.project else ""),
            field=field,
            dimensions=asdict(dims),
        )
    hits = [c for c in candidates if c.period_start <= budget_date <= c.period_end]
    if not hits:
        raise OutsidePeriod(
            f"{budget_date} is outside every budget period for these dimensions",
            field=f"{field}.budget_date",
            budget_date=str(budget_date),
            dimensions=asdict(dims),
        )
    return min(hits, key=lambda c: (c.period_end - c.period_start, c.id))


def rate_for(
    session: Session, from_currency: str, to_currency: str, on: date, field: str = "currency"
) -> Decimal:
    """The rate finance loaded for ``on`` (the latest on or before it). Same currency: 1."""
    if from_currency == to_currency:
        return Decimal(1)
    row = session.scalar(
        select(ExchangeRate)
        .where(
            ExchangeRate.from_currency == from_currency,
            ExchangeRate.to_currency == to_currency,
            ExchangeRate.effective_date <= on,
        )
        .order_by(ExchangeRate.effective_date.desc())
        .limit(1)
    )
    if row is not None:
        return row.rate
    inverse = session.scalar(
        select(ExchangeRate)
        .where(
            ExchangeRate.from_currency == to_currency,
            ExchangeRate.to_currency == from_currency,
            ExchangeRate.effective_date <= on,
        )
        .order_by(ExchangeRate.effective_date.desc())
        .limit(1)
    )
    if inverse is not None:
        return (Decimal(1) / inverse.rate).quantize(Decimal("0.0000000001"))
    raise NoExchangeRate(
        f"no exchange rate from {from_currency} to {to_currency} on or before {on}",
        field=field,
        from_currency=from_currency,
        to_currency=to_currency,
        date=str(on),
    )
