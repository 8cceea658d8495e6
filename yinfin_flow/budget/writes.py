"""Writing budget movements: the movement header, reservations, entries and alerts.

Only :class:`~yinfin_flow.budget.service.Budgets` calls these, after control has
decided and with the balance rows locked; every row is written in the caller's
transaction. The statements are built once, with the values passed at execute
time: the ORM's bulk-insert path and a fresh ``.values(...)`` per call cost about
a fifth of a reservation's client CPU (bench/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetAlert, BudgetEntry, BudgetMovement, Reservation
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.budget import Bucket, LineCheck
from yinfin_flow.domain.errors import ValidationError

_movements = BudgetMovement.__table__
# ON CONFLICT DO NOTHING: when a retry with the same key commits first, the insert
# (on PostgreSQL after waiting for it) returns no row instead of failing, and the
# caller replays. A unique violation would abort the whole PostgreSQL transaction.
_INSERT_MOVEMENT = {
    name: dialect.insert(_movements)
    .on_conflict_do_nothing(index_elements=[_movements.c.idempotency_key])
    .returning(_movements.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_INSERT_RESERVATIONS = insert(Reservation.__table__).returning(
    Reservation.__table__.c.id, sort_by_parameter_order=True
)
_INSERT_ENTRIES = insert(BudgetEntry.__table__)
_INSERT_ALERTS = insert(BudgetAlert.__table__)

# PostgreSQL: a reservation's movement, reservations and entries in one statement,
# so one round trip instead of three while the balance rows are locked. The lines
# come as arrays (one statement text for any number of lines). When the key is
# taken, ``m`` is empty, nothing else is inserted and no row comes back.
_RESERVE_PG = text("""
WITH m AS (
    INSERT INTO budget_movements (kind, idempotency_key, document_type, document_id,
                                  step, actor, created_at)
    VALUES ('reserve', :key, :document_type, :document_id, :step, :actor, :now)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), r AS (
    INSERT INTO reservations (idempotency_key, document_type, document_id, document_line,
                              line_id, currency, source_amount, source_currency, rate,
                              budget_date, pre_encumbered, encumbered, actual, status,
                              created_at, updated_at)
    SELECT v.key, :document_type, :document_id, v.ref, v.line_id, v.currency, v.source_amount,
           v.source_currency, v.rate, v.budget_date, v.amount, 0, 0, 'open', :now, :now
    FROM m, unnest(CAST(:keys AS text[]), CAST(:refs AS text[]), CAST(:line_ids AS bigint[]),
                   CAST(:currencies AS text[]), CAST(:source_amounts AS numeric[]),
                   CAST(:source_currencies AS text[]), CAST(:rates AS numeric[]),
                   CAST(:budget_dates AS date[]), CAST(:amounts AS numeric[]))
         AS v(key, ref, line_id, currency, source_amount, source_currency, rate, budget_date, amount)
    RETURNING id, line_id, document_line, pre_encumbered, currency
), e AS (
    INSERT INTO budget_entries (movement_id, line_id, reservation_id, bucket, amount,
                                currency, created_at)
    SELECT m.id, r.line_id, r.id, 'pre_encumbered', r.pre_encumbered, r.currency, :now
    FROM m, r
)
SELECT m.id AS movement_id, r.id AS reservation_id, r.document_line FROM m JOIN r ON true
""")


def check_length(value: str | None, limit: int, field: str) -> None:
    """Refuse a string longer than its column (``field`` names it in the error)."""
    if value is not None and len(value) > limit:
        raise ValidationError(field, f"at most {limit} characters")


def check_movement(key: str | None, actor: str, document: tuple[str, str] | None,
                   step: str | None) -> None:
    """Refuse what the columns cannot hold (PostgreSQL would raise a raw DataError)."""
    if not actor:
        raise ValidationError("actor", "who is acting is required")
    check_length(key, 200, "idempotency_key")
    check_length(actor, 64, "actor")
    check_length(step, 64, "step")
    if document:
        check_length(document[0], 32, "document_type")
        check_length(document[1], 64, "document_id")


def insert_movement(
    session: Session,
    kind: str,
    key: str | None,
    actor: str,
    *,
    document: tuple[str, str] | None = None,
    step: str | None = None,
    reason: str | None = None,
) -> int | None:
    """Insert a movement; ``None`` when one with ``key`` exists already (replay it)."""
    check_movement(key, actor, document, step)
    return session.scalar(
        _INSERT_MOVEMENT[session.get_bind().dialect.name],
        {
            "kind": kind,
            "idempotency_key": key,
            "document_type": document[0] if document else None,
            "document_id": document[1] if document else None,
            "step": step,
            "actor": actor,
            "reason": reason,
            "created_at": utcnow(),
        },
    )


@dataclass(frozen=True, slots=True)
class NewReservation:
    """One reservation row to write: what a request line holds on one budget line."""

    ref: str
    line_id: int
    currency: str
    amount: Decimal  # in the line's currency
    source_amount: Decimal
    source_currency: str
    rate: Decimal
    budget_date: date


def insert_reservations(
    session: Session,
    key: str,
    document: tuple[str, str],
    rows: Sequence[NewReservation],
    *,
    actor: str,
    step: str | None,
) -> tuple[int, list[int]] | None:
    """Write a reservation's movement, its reservations (``<key>:<ref>``) and their entries.

    Returns the movement id and the reservation ids in the order of ``rows``, or
    ``None`` when a movement with ``key`` exists already (the caller replays it).
    """
    check_movement(key, actor, document, step)
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        return _insert_reservations_pg(session, key, document, rows, actor, step, now)
    movement_id = insert_movement(session, "reserve", key, actor, document=document, step=step)
    if movement_id is None:
        return None
    res_ids = list(session.scalars(_INSERT_RESERVATIONS, [
        {
            "idempotency_key": f"{key}:{r.ref}",
            "document_type": document[0],
            "document_id": document[1],
            "document_line": r.ref,
            "line_id": r.line_id,
            "currency": r.currency,
            "source_amount": r.source_amount,
            "source_currency": r.source_currency,
            "rate": r.rate,
            "budget_date": r.budget_date,
            "pre_encumbered": r.amount,
            "encumbered": Decimal(0),
            "actual": Decimal(0),
            "status": "open",
            "created_at": now,
            "updated_at": now,
        }
        for r in rows
    ]))
    insert_entries(session, movement_id, [
        (r.line_id, res_id, Bucket.PRE_ENCUMBERED, r.amount, r.currency)
        for r, res_id in zip(rows, res_ids, strict=True)
    ])
    return movement_id, res_ids


def _insert_reservations_pg(
    session: Session, key: str, document: tuple[str, str], rows: Sequence[NewReservation],
    actor: str, step: str | None, now: datetime,
) -> tuple[int, list[int]] | None:
    result = session.execute(_RESERVE_PG, {
        "key": key, "document_type": document[0], "document_id": document[1], "step": step,
        "actor": actor, "now": now,
        "keys": [f"{key}:{r.ref}" for r in rows],
        "refs": [r.ref for r in rows],
        "line_ids": [r.line_id for r in rows],
        "currencies": [r.currency for r in rows],
        "source_amounts": [r.source_amount for r in rows],
        "source_currencies": [r.source_currency for r in rows],
        "rates": [r.rate for r in rows],
        "budget_dates": [r.budget_date for r in rows],
        "amounts": [r.amount for r in rows],
    }).all()
    if not result:
        return None
    by_ref = {ref: int(res_id) for _, res_id, ref in result}
    return int(result[0].movement_id), [by_ref[r.ref] for r in rows]


def insert_entries(
    session: Session, movement_id: int, rows: Sequence[tuple[int, int | None, Bucket, Decimal, str]],
) -> None:
    """One entry per ``(line_id, reservation_id, bucket, amount, currency)``; zeros are skipped."""
    now = utcnow()
    values = [
        {
            "movement_id": movement_id,
            "line_id": line_id,
            "reservation_id": res_id,
            "bucket": bucket.value,
            "amount": amount,
            "currency": currency,
            "created_at": now,
        }
        for line_id, res_id, bucket, amount, currency in rows
        if amount != 0
    ]
    if values:
        session.execute(_INSERT_ENTRIES, values)


def insert_alerts(session: Session, movement_id: int, checks: Sequence[LineCheck]) -> None:
    """An alert for each check that reached a threshold without blocking."""
    now = utcnow()
    values: list[dict[str, Any]] = [
        {
            "movement_id": movement_id,
            "line_id": c.line_id,
            "mode": c.rule.mode.value,
            "level": "over" if c.over else c.level.value if c.level else "over",
            "usage_percent": c.usage_percent,
            "asked": c.delta,
            "available_after": c.available_after,
            "notify": c.notify,
            "message": (
                f"{c.line_label}: {c.usage_percent}% used after this request "
                f"({c.rule.mode.value} control, available after {c.available_after} {c.currency})"
            ),
            "created_at": now,
        }
        for c in checks
        if c.level is not None and not c.blocked
    ]
    if values:
        session.execute(_INSERT_ALERTS, values)
