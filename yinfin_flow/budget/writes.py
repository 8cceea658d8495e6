"""Writing budget movements: the movement header, reservations, entries and alerts.

Only :class:`~yinfin_flow.budget.service.Budgets` calls these, after control has
decided and with the balance rows locked; every row is written in the caller's
transaction. The statements are built once, with the values passed at execute
time: the ORM's bulk-insert path and a fresh ``.values(...)`` per call cost about
a fifth of a reservation's client CPU (bench/README.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Update, bindparam, insert, text, update
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
from yinfin_flow.domain.money import MAX_AMOUNT

from .combined import RULES_SEEN_SQL, PathRead

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

# PostgreSQL: what every consuming write shares. ``g`` is the rules guard (see
# :mod:`.combined`): empty when the rules on ``:rule_ids`` (or any rule with another
# basis) differ from the ``:rules_seen`` the decision was made with; then nothing is
# written and the result is one ``stale`` row. ``u`` adds the balance deltas (one
# array per bucket) once the movement exists, and returns the new balances.
_GUARD_CTE = f"""g AS (
    SELECT 1 AS ok WHERE CAST(:rules_seen AS text) IS NULL
        OR {RULES_SEEN_SQL.format(ids="SELECT unnest(CAST(:rule_ids AS bigint[]))")} = :rules_seen
)"""
_BALANCES_CTE = """u AS (
    UPDATE budget_balances b
    SET budget = b.budget + d.budget, pre_encumbered = b.pre_encumbered + d.pre_encumbered,
        encumbered = b.encumbered + d.encumbered, actual = b.actual + d.actual, updated_at = :now
    FROM m, unnest(CAST(:bal_ids AS bigint[]), CAST(:d_budget AS numeric[]), CAST(:d_pre AS numeric[]),
                   CAST(:d_enc AS numeric[]), CAST(:d_act AS numeric[]))
         AS d(line_id, budget, pre_encumbered, encumbered, actual)
    WHERE b.line_id = d.line_id
    RETURNING b.line_id, b.budget, b.pre_encumbered, b.encumbered, b.actual
)"""
_RESULT = """
SELECT 'stale' AS kind, NULL::bigint AS id, NULL::bigint AS row_id, NULL::text AS ref,
       NULL::numeric AS budget, NULL::numeric AS pre_encumbered, NULL::numeric AS encumbered,
       NULL::numeric AS actual
WHERE NOT EXISTS (SELECT 1 FROM g)
UNION ALL
SELECT 'bal', u.line_id, NULL, NULL, u.budget, u.pre_encumbered, u.encumbered, u.actual FROM u"""

# A reservation's movement, reservations, entries and balance changes in one
# statement, so one round trip while the balance rows are locked. The lines come as
# arrays (one statement text for any number of lines). When the key is taken, ``m``
# is empty, nothing else is written and no ``res`` row comes back.
_RESERVE_PG = text(f"""
WITH {_GUARD_CTE}, m AS (
    INSERT INTO budget_movements (kind, idempotency_key, document_type, document_id,
                                  step, actor, created_at)
    SELECT 'reserve', :key, :document_type, :document_id, :step, :actor, :now FROM g
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
), {_BALANCES_CTE}{_RESULT}
UNION ALL
SELECT 'res', m.id, r.id, r.document_line, NULL, NULL, NULL, NULL FROM m JOIN r ON true
""")


class RulesChanged(Exception):
    """The guarded write found other rules than the decision used: nothing was written."""


def delta_params(deltas: dict[tuple[int, Bucket], Decimal]) -> dict[str, Any]:
    """Balance deltas as the arrays ``u`` takes (one element per line, zeros included)."""
    by_line: dict[int, dict[Bucket, Decimal]] = defaultdict(dict)
    for (line_id, bucket), amount in deltas.items():
        if amount:
            by_line[line_id][bucket] = amount
    ids = sorted(by_line)
    zero = Decimal(0)
    return {
        "bal_ids": ids,
        "d_budget": [by_line[i].get(Bucket.BUDGET, zero) for i in ids],
        "d_pre": [by_line[i].get(Bucket.PRE_ENCUMBERED, zero) for i in ids],
        "d_enc": [by_line[i].get(Bucket.ENCUMBERED, zero) for i in ids],
        "d_act": [by_line[i].get(Bucket.ACTUAL, zero) for i in ids],
    }


def guard_params(seen: PathRead | None) -> dict[str, Any]:
    """The guard's parameters: the rules ``seen`` under the locks (``None``: no guard)."""
    if seen is None:
        return {"rules_seen": None, "rule_ids": []}
    return {"rules_seen": seen.rules_seen, "rule_ids": sorted(seen.lines)}


def read_written(rows: Sequence[Any]) -> list[Any]:
    """The rows of a guarded write other than the new balances, which are checked here.

    Raises :class:`RulesChanged` when the guard stopped the write.
    """
    out = []
    for row in rows:
        if row.kind == "stale":
            raise RulesChanged()
        if row.kind == "bal":
            check_balance(row.id, (("budget", row.budget), ("pre_encumbered", row.pre_encumbered),
                                   ("encumbered", row.encumbered), ("actual", row.actual)))
        else:
            out.append(row)
    return out


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
        return _insert_reservations_pg(session, key, document, rows, actor, step, now, deltas, rules_seen)
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


def _insert_reservations_pg(
    session: Session, key: str, document: tuple[str, str], rows: Sequence[NewReservation],
    actor: str, step: str | None, now: datetime, deltas: dict[tuple[int, Bucket], Decimal],
    rules_seen: PathRead | None,
) -> tuple[int, list[int]] | None:
    result = read_written(session.execute(_RESERVE_PG, {
        **guard_params(rules_seen), **delta_params(deltas),
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
    }).all())
    if not result:
        return None
    by_ref = {row.ref: int(row.row_id) for row in result}
    return int(result[0].id), [by_ref[r.ref] for r in rows]


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


def check_balance(line_id: int, values: Iterable[tuple[str, Decimal]]) -> None:
    """Refuse a bucket at or beyond ``±MAX_AMOUNT`` (read back from the balance row)."""
    for name, value in values:
        if abs(value) >= MAX_AMOUNT:
            raise ValidationError(
                "amount",
                f"the {name} of budget line {line_id} would reach {value}, "
                f"beyond the largest amount kept ({MAX_AMOUNT})",
                line_id=line_id,
            )
