"""Writing budget movements: the movement header, reservations, entries and alerts.

Only :class:`~yinfin_flow.budget.service.Budgets` calls these, after control has
decided and with the balance rows locked; every row is written in the caller's
transaction. The statements are built once, with the values passed at execute
time: the ORM's bulk-insert path and a fresh ``.values(...)`` per call cost about
a fifth of a reservation's client CPU (bench/README.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Update, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from yinfin_flow.db.models import (
    BudgetAlert,
    BudgetBalance,
    BudgetEntry,
    BudgetMovement,
    Reservation,
)
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.budget import Bucket, LineCheck
from yinfin_flow.domain.errors import ValidationError

from .combined import PathRead
from .writes_pg import (
    Entry,
    NewReservation,
    check_balance,
    move_pg,
    reserve_pg,
)

_balances = BudgetBalance.__table__

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


def write_movement(
    session: Session,
    kind: str,
    key: str | None,
    actor: str,
    *,
    document: tuple[str, str] | None = None,
    step: str | None = None,
    reason: str | None = None,
    entries: Sequence[Entry],
    deltas: dict[tuple[int, Bucket], Decimal],
) -> int | None:
    """A movement, its entries (zeros skipped) and the balance ``deltas`` (rolled up).

    One statement on PostgreSQL. Returns the movement's id, or ``None`` when one
    with ``key`` exists already (then nothing was written: replay it).
    """
    if session.get_bind().dialect.name != "postgresql":
        movement_id = insert_movement(session, kind, key, actor, document=document, step=step, reason=reason)
        if movement_id is not None:
            insert_entries(session, movement_id, entries)
            apply_to_balances(session, deltas)
        return movement_id
    check_movement(key, actor, document, step)
    return move_pg(session, kind, key, actor, document, step, reason, entries, deltas)


def insert_reservations(
    session: Session,
    key: str,
    document: tuple[str, str],
    rows: Sequence[NewReservation],
    *,
    actor: str,
    step: str | None,
    deltas: dict[tuple[int, Bucket], Decimal],
    rules_seen: PathRead | None = None,
) -> tuple[int, list[int]] | None:
    """Write a reservation's movement, its reservations (``<key>:<ref>``), their entries
    and the balance ``deltas`` (already rolled up to the ancestors).

    Returns the movement id and the reservation ids in the order of ``rows``, or
    ``None`` when a movement with ``key`` exists already (the caller replays it).
    On PostgreSQL with ``rules_seen``, raises :class:`RulesChanged` (and writes
    nothing) when the rules differ from those the decision was made with.
    """
    check_movement(key, actor, document, step)
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        return reserve_pg(session, key, document, rows, actor, step, now, deltas, rules_seen)
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
    apply_to_balances(session, deltas)
    return movement_id, res_ids


def insert_entries(session: Session, movement_id: int, rows: Sequence[Entry]) -> None:
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


@cache
def _balance_update(columns: tuple[str, ...]) -> Update:
    """``UPDATE budget_balances SET <column> = <column> + :d_<column>, …`` for one line."""
    values: dict[str, Any] = {
        c: _balances.c[c] + bindparam(f"d_{c}", type_=_balances.c[c].type) for c in columns
    }
    values["updated_at"] = bindparam("b_now", type_=_balances.c.updated_at.type)
    return (
        update(_balances)
        .where(_balances.c.line_id == bindparam("b_line_id"))
        .values(values)
        .returning(*(_balances.c[c] for c in columns))
    )


def apply_to_balances(session: Session, deltas: dict[tuple[int, Bucket], Decimal]) -> None:
    """Add ``deltas`` (already rolled up to ancestors) to the balance rows.

    A bucket may never leave ``±MAX_AMOUNT``: past it SQLite's scaled integers
    would overflow (silently, into floats) and PostgreSQL's ``Numeric(20, 4)``
    would refuse. The check reads back what the UPDATE wrote, so the caller's
    transaction rolls the whole action back.
    """
    by_line: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for (line_id, bucket), amount in deltas.items():
        if amount:
            by_line[line_id][bucket.value] = amount
    now = utcnow()
    for line_id, changes in sorted(by_line.items()):
        params: dict[str, Any] = {f"d_{k}": v for k, v in changes.items()}
        params.update(b_line_id=line_id, b_now=now)
        row = session.execute(_balance_update(tuple(changes)), params).one()
        check_balance(line_id, zip(changes, row, strict=True))
