"""What the budget service takes and answers: request lines, reservations, results.

Plain data, so the API, the engine and the CLI can build and read them without
touching the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from yinfin_flow.db.models import Reservation
from yinfin_flow.domain.budget import Action, LineCheck, Mode

from .lookup import Dims


def form_ref(document_line: str) -> str:
    """The form line a reservation belongs to: a reservation the year-end roll carried
    into the next year is ``<ref>@<year>`` (see :mod:`yinfin_flow.ledger.yearend`)."""
    return document_line.split("@", 1)[0]


@dataclass(frozen=True, slots=True)
class LineRequest:
    """One request line asking for budget: an amount, a date, and which line."""

    ref: str
    amount: Decimal | str | int
    currency: str
    budget_date: date
    line_id: int | None = None
    line_code: str | None = None
    dims: Dims | None = None


@dataclass(slots=True)
class ReservationView:
    id: int
    line_id: int
    line_code: str
    document_line: str
    currency: str
    amount: Decimal
    source_amount: Decimal
    source_currency: str
    rate: Decimal
    pre_encumbered: Decimal
    encumbered: Decimal
    actual: Decimal
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "line_id": self.line_id,
            "line": self.line_code,
            "document_line": self.document_line,
            "currency": self.currency,
            "amount": str(self.amount),
            "source_amount": str(self.source_amount),
            "source_currency": self.source_currency,
            "rate": str(self.rate),
            "pre_encumbered": str(self.pre_encumbered),
            "encumbered": str(self.encumbered),
            "actual": str(self.actual),
            "status": self.status,
        }


@dataclass(slots=True)
class ReserveResult:
    movement_id: int
    reservations: list[ReservationView]
    checks: list[LineCheck] = field(default_factory=list)
    replayed: bool = False

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """Checks the requester and approvers should see (hard and soft control)."""
        return [
            c.to_dict()
            for c in self.checks
            if c.level in (Action.WARN, Action.BLOCK) and c.rule.mode in (Mode.HARD, Mode.SOFT)
        ]


@dataclass(slots=True)
class MovementResult:
    movement_id: int
    replayed: bool = False
    checks: list[LineCheck] = field(default_factory=list)


def view_of(res: Reservation, line_code: str) -> ReservationView:
    """The view of a stored reservation (``line_code``: its budget line's code)."""
    return ReservationView(
        id=res.id,
        line_id=res.line_id,
        line_code=line_code,
        document_line=res.document_line,
        currency=res.currency,
        amount=res.pre_encumbered + res.encumbered + res.actual,
        source_amount=res.source_amount,
        source_currency=res.source_currency,
        rate=res.rate,
        pre_encumbered=res.pre_encumbered,
        encumbered=res.encumbered,
        actual=res.actual,
        status=res.status,
    )
