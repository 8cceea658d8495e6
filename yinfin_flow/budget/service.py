"""Budgets: every change to a budget goes through here, inside the caller's transaction.

``Budgets(session)`` works in the session it is given and never commits: the
caller's unit of work commits the budget movement together with whatever caused it
(a request's state, its tasks, audit and outbox rows), or rolls all of it back.

Every method that moves money takes an ``idempotency_key``: the same key again
returns the first result and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import (
    BudgetBalance,
    BudgetEntry,
    BudgetLine,
    BudgetMovement,
    Reservation,
)
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.budget import (
    DEFAULT_RULE,
    Action,
    Bucket,
    CurrencyMismatch,
    InsufficientHold,
    LineCheck,
    LineClosed,
    LineOnHold,
    LineStatus,
    Mode,
    Move,
    NegativeBudget,
    OverBudget,
    StageHold,
    apply_moves,
    plan_advance,
    plan_release,
    raise_if_blocked,
)
from yinfin_flow.domain.errors import Conflict, DomainError, NotFound, ValidationError
from yinfin_flow.domain.money import MAX_AMOUNT, Money, check_currency, parse_amount

from .control import ControlContext, apply_to_balances, path_ids, rollup
from .lookup import LINE_ROW_COLUMNS, Dims, LineRow, check_in_period, find_line, rate_for
from .writes import (
    NewReservation,
    insert_alerts,
    insert_entries,
    insert_movement,
    insert_reservations,
)

_movements = BudgetMovement.__table__
_lines = BudgetLine.__table__
_SELECT_REPLAY = select(_movements.c.id).where(_movements.c.idempotency_key == bindparam("key"))
# A reservation's first line and the replay check in one trip; the line is read
# as a plain row (see LineRow).
_SELECT_LINE = select(*(_lines.c[name] for name in LINE_ROW_COLUMNS)).where(
    _lines.c.id == bindparam("line_id")
)
_SELECT_LINES = select(*(_lines.c[name] for name in LINE_ROW_COLUMNS)).where(
    _lines.c.id.in_(bindparam("ids", expanding=True))
)
_reservations = Reservation.__table__
# The line of each reservation, in reservation order (what recheck reads).
_RESERVED_LINES = (
    select(*(_lines.c[name] for name in LINE_ROW_COLUMNS))
    .join(_reservations, _reservations.c.line_id == _lines.c.id)
    .where(_reservations.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_reservations.c.id)
)
_LINE_AND_REPLAY = _SELECT_LINE.add_columns(_SELECT_REPLAY.scalar_subquery().label("prior"))


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


def _max_len(value: str | None, limit: int, field: str) -> None:
    if value is not None and len(value) > limit:
        raise ValidationError(field, f"at most {limit} characters")


def _view(res: Reservation, line_code: str) -> ReservationView:
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


class Budgets:
    """The budget service for one transaction (``session``)."""

    def __init__(self, session: Session, *, default_mode: str = "hard") -> None:
        self.session = session
        self._dialect = session.get_bind().dialect.name
        self.default_rule = DEFAULT_RULE if default_mode == "hard" else DEFAULT_RULE.__class__(
            mode=Mode(default_mode)
        )

    # -- helpers -------------------------------------------------------------------

    def _replay(self, key: str | None) -> int | None:
        """The id of the movement already made with ``key``, if any."""
        if key is None:
            return None
        return self.session.scalar(_SELECT_REPLAY, {"key": key})

    def _new_movement(self, kind: str, key: str | None, actor: str, **kw: Any) -> int:
        """:func:`insert_movement` where a replay was ruled out under the same locks."""
        movement_id = insert_movement(self.session, kind, key, actor, **kw)
        if movement_id is None:  # only a different action reusing the key can get here
            raise Conflict(f"idempotency key {key!r} is in use by another action", field="idempotency_key")
        return movement_id

    def _line_amount(self, req: LineRequest, line: BudgetLine | LineRow, field: str) -> tuple[Decimal, Decimal, Decimal, str]:
        """(amount in line currency, rate, source amount, source currency), all validated."""
        currency = check_currency(req.currency, f"{field}.currency")
        source = parse_amount(req.amount, currency, f"{field}.amount", positive=True)
        rate = rate_for(self.session, currency, line.currency, req.budget_date, f"{field}.currency")
        amount = Money(source, currency).convert(rate, line.currency).amount
        if amount <= 0:
            raise ValidationError(f"{field}.amount", "rounds to zero in the budget currency")
        if amount >= MAX_AMOUNT:  # else the database (Numeric(20, 4) / int64) overflows
            raise ValidationError(f"{field}.amount", f"is {amount} {line.currency}: too large")
        return amount, rate, source, currency

    @staticmethod
    def _require_consumable(line: BudgetLine | LineRow, field: str) -> None:
        if line.status == LineStatus.CLOSED.value:
            raise LineClosed(f"budget line {line.code} is closed", line=line.code, field=field)
        if line.status == LineStatus.HOLD.value:
            raise LineOnHold(f"budget line {line.code} is on hold", line=line.code, field=field)

    def _lock_reservations(self, ids: Sequence[int]) -> list[Reservation]:
        rows = list(
            self.session.scalars(
                select(Reservation)
                .where(Reservation.id.in_(sorted(set(ids))))
                .order_by(Reservation.id)
                .with_for_update()
                # The session may hold these rows from before the lock; what we waited
                # for must overwrite them, or the stages would be computed from stale values.
                .execution_options(populate_existing=True)
            )
        )
        if len(rows) != len(set(ids)):
            missing = sorted(set(ids) - {r.id for r in rows})
            raise NotFound(f"no reservation {missing}", reservations=missing)
        return rows

    # -- queries -------------------------------------------------------------------

    def preview(self, lines: Sequence[LineRequest]) -> list[LineCheck]:
        """What reserving ``lines`` would do, without writing or locking anything.

        Raises the same errors a real reservation would, except over-budget, which
        comes back as checks with ``blocked`` set.
        """
        ctx = ControlContext(self.session, self.default_rule)
        resolved = self._resolve(lines)
        ctx.prepare([ln for ln, *_ in resolved], lock=False)
        checks: list[LineCheck] = []
        for line, amount, *_ in resolved:
            checks.extend(ctx.check(line, amount))
            ctx.add_pending(line, Bucket.PRE_ENCUMBERED, amount)
        return checks

    def reservations_for(self, document_type: str, document_id: str) -> list[ReservationView]:
        rows = self.session.execute(
            select(Reservation, BudgetLine.code)
            .join(BudgetLine, BudgetLine.id == Reservation.line_id)
            .where(Reservation.document_type == document_type, Reservation.document_id == document_id)
            .order_by(Reservation.id)
        ).all()
        return [_view(r, code) for r, code in rows]

    def recheck(self, reservation_ids: Sequence[int]) -> list[LineCheck]:
        """Re-check what reservations already hold against today's balances (no write)."""
        if not reservation_ids:
            return []
        lines: dict[int, LineRow] = {}
        held_on = [  # one line per reservation, in reservation order
            lines.setdefault(row.id, LineRow.from_row(row))
            for row in self.session.execute(_RESERVED_LINES, {"ids": list(reservation_ids)})
        ]
        ctx = ControlContext(self.session, self.default_rule)
        ctx.prepare(lines.values(), lock=False)
        checks = []
        seen: set[int] = set()
        for line in held_on:
            for c in ctx.check(line, Decimal(0)):
                if c.line_id not in seen:
                    seen.add(c.line_id)
                    checks.append(c)
        return checks

    # -- consumption -----------------------------------------------------------------

    def _resolve(
        self, lines: Sequence[LineRequest], known: dict[int, LineRow] | None = None,
    ) -> list[tuple[BudgetLine | LineRow, Decimal, Decimal, Decimal, str, LineRequest]]:
        """Validate ``lines`` and find each one's budget line (``known``: rows already read)."""
        if not lines:
            raise ValidationError("lines", "at least one line is required")
        refs = [r.ref for r in lines]
        if len(set(refs)) != len(refs):
            raise ValidationError("lines", "each line needs its own ref")
        for i, ref in enumerate(refs):
            if not ref:
                raise ValidationError(f"lines[{i}].ref", "is required")
            _max_len(ref, 64, f"lines[{i}].ref")
        out = []
        for i, req in enumerate(lines):
            f = f"lines[{i}]"
            line: BudgetLine | LineRow | None = None
            if req.line_id is not None:  # the common case: a plain row, no ORM entity
                line = (known or {}).get(req.line_id) or self._line_row(req.line_id)
            if line is not None:
                check_in_period(line, req.budget_date, f)
            else:  # by code or dimensions, or an unknown id (find_line says which error)
                line = find_line(
                    self.session,
                    budget_date=req.budget_date,
                    line_id=req.line_id,
                    line_code=req.line_code,
                    dims=req.dims,
                    field=f,
                )
            self._require_consumable(line, f)
            amount, rate, source, currency = self._line_amount(req, line, f)
            out.append((line, amount, rate, source, currency, req))
        return out

    def _line_row(self, line_id: int) -> LineRow | None:
        row = self.session.execute(_SELECT_LINE, {"line_id": line_id}).first()
        return None if row is None else LineRow.from_row(row)

    def _line_rows(self, line_ids: set[int]) -> dict[int, LineRow]:
        rows = self.session.execute(_SELECT_LINES, {"ids": sorted(line_ids)})
        return {row.id: LineRow.from_row(row) for row in rows}

    def reserve(
        self,
        idempotency_key: str,
        document: tuple[str, str],
        lines: Sequence[LineRequest],
        *,
        actor: str,
        step: str | None = None,
    ) -> ReserveResult:
        """Pre-encumber every line of a request, all or none.

        Each line is checked against its own budget line and every controlling
        ancestor; a hard-control refusal raises :class:`OverBudget` naming the line
        that decided, the amount asked and the amount available.
        """
        known: dict[int, LineRow] = {}
        first_id = lines[0].line_id if lines else None
        if first_id is not None:  # the replay check and the first line in one trip
            row = self.session.execute(_LINE_AND_REPLAY, {"line_id": first_id, "key": idempotency_key}).first()
            prior = row.prior if row is not None else self._replay(idempotency_key)
            if row is not None:
                known[first_id] = LineRow.from_row(row)
        else:
            prior = self._replay(idempotency_key)
        if prior is not None:
            return self._replayed_reserve(prior, document)
        resolved = self._resolve(lines, known)
        for i, req in enumerate(lines):  # each reservation's own key is "<key>:<ref>"
            _max_len(f"{idempotency_key}:{req.ref}", 220, f"lines[{i}].ref")
        ctx = ControlContext(self.session, self.default_rule)
        ctx.prepare([ln for ln, *_ in resolved])
        checks: list[LineCheck] = []
        try:
            for line, amount, *_rest in resolved:
                line_checks = ctx.check(line, amount)
                raise_if_blocked(line_checks, line.code)
                checks.extend(line_checks)
                ctx.add_pending(line, Bucket.PRE_ENCUMBERED, amount)
        except DomainError:
            # A retry with this key may have committed while we waited for the locks
            # (and used the budget): its result is the answer, not a refusal.
            prior = self._replay(idempotency_key)
            if prior is not None:
                return self._replayed_reserve(prior, document)
            raise
        written = insert_reservations(
            self.session, idempotency_key, document,
            [
                NewReservation(req.ref, line.id, line.currency, amount, source, currency, rate, req.budget_date)
                for line, amount, rate, source, currency, req in resolved
            ],
            actor=actor, step=step,
        )
        if written is None:  # a retry with this key commits now: the insert waited for it
            prior = self._replay(idempotency_key)
            assert prior is not None
            return self._replayed_reserve(prior, document)
        movement_id, res_ids = written
        views = [
            ReservationView(
                res_id, line.id, line.code, req.ref, line.currency, amount, source,
                currency, rate, amount, Decimal(0), Decimal(0), "open",
            )
            for (line, amount, rate, source, currency, req), res_id in zip(resolved, res_ids, strict=True)
        ]
        apply_to_balances(self.session, {k: v for k, v in ctx.pending.items() if v})
        insert_alerts(self.session, movement_id, checks)
        return ReserveResult(movement_id, views, checks)

    def _replayed_reserve(self, prior: int, document: tuple[str, str]) -> ReserveResult:
        mine = self._movement_reservations(prior)
        return ReserveResult(
            prior, [v for v in self.reservations_for(*document) if v.id in mine], replayed=True
        )

    def _movement_reservations(self, movement_id: int) -> set[int]:
        return {
            rid
            for rid in self.session.scalars(
                select(BudgetEntry.reservation_id).where(BudgetEntry.movement_id == movement_id)
            )
            if rid is not None
        }

    def advance(
        self,
        idempotency_key: str,
        reservation_id: int,
        target: Bucket | str,
        amount: Decimal | str | int | None = None,
        *,
        actor: str,
        currency: str | None = None,
        step: str | None = None,
    ) -> MovementResult:
        """Move (part of) a reservation on to ``encumbered`` or ``actual``.

        The earlier stage is liquidated by the same amount. ``amount`` defaults to all
        that is still open; more than was held is new consumption, checked against
        control like a reservation. ``currency`` may be the line's or the request's
        (converted at the reservation's own rate).
        """
        target = Bucket(target)
        if target not in (Bucket.ENCUMBERED, Bucket.ACTUAL):
            raise ValidationError("target", "must be encumbered or actual")
        prior = self._replay(idempotency_key)
        if prior is not None:
            return MovementResult(prior, replayed=True)
        (res,) = self._lock_reservations([reservation_id])
        try:
            line, moves, checks = self._plan_advance(res, target, amount, currency)
        except DomainError:
            # A retry with this key may have committed while we waited for the lock
            # (and moved what we meant to move): its result is the answer.
            prior = self._replay(idempotency_key)
            if prior is not None:
                return MovementResult(prior, replayed=True)
            raise
        movement_id = insert_movement(self.session,
            f"to_{target.value}", idempotency_key, actor,
            document=(res.document_type, res.document_id), step=step,
        )
        if movement_id is None:  # ... or commits now: the insert waited for it
            return MovementResult(self._replay(idempotency_key) or 0, replayed=True)
        self._apply(movement_id, [(res, line, moves)])
        insert_alerts(self.session, movement_id, checks)
        return MovementResult(movement_id, checks=checks)

    def _plan_advance(
        self, res: Reservation, target: Bucket, amount: Decimal | str | int | None, currency: str | None,
    ) -> tuple[LineRow, Sequence[Move], list[LineCheck]]:
        """What advancing the locked ``res`` moves, checked under control (writes nothing)."""
        if res.status != "open":
            raise Conflict(f"reservation {res.id} is closed", reservation=res.id)
        hold = StageHold(res.pre_encumbered, res.encumbered, res.actual)
        if amount is None:
            line_amount = hold.pre_encumbered if target is Bucket.ENCUMBERED else hold.open_amount
        else:
            line_amount = self._amount_in_line_currency(res, amount, currency)
        if line_amount <= 0:
            raise ValidationError("amount", "nothing left to move")
        plan = plan_advance(hold, target, line_amount)
        line = self._line_row(res.line_id)
        assert line is not None  # a reservation's line is never deleted (foreign key)
        ctx = ControlContext(self.session, self.default_rule)
        ctx.prepare([line])
        checks: list[LineCheck] = []
        if plan.extra_consumption > 0:
            self._require_consumable(line, "amount")
            checks = ctx.check(line, plan.extra_consumption)
            raise_if_blocked(checks, line.code)
        return line, plan.moves, checks

    def _amount_in_line_currency(self, res: Reservation, amount: Decimal | str | int, currency: str | None) -> Decimal:
        cur = check_currency(currency or res.currency)
        value = parse_amount(amount, cur, "amount", positive=True)
        if cur == res.currency:
            return value
        if cur == res.source_currency:
            return Money(value, cur).convert(res.rate, res.currency).amount
        raise CurrencyMismatch(
            f"amount is in {cur}; the reservation is in {res.currency} ({res.source_currency} on the request)",
            field="currency",
        )

    def _apply(
        self, movement_id: int, items: Sequence[tuple[Reservation, BudgetLine | LineRow, Sequence[Move]]],
    ) -> None:
        """Move reservations' stages; write every entry and balance change at once."""
        now = utcnow()
        entries: list[tuple[int, int | None, Bucket, Decimal, str]] = []
        deltas: dict[tuple[int, Bucket], Decimal] = {}
        for res, line, moves in items:
            new = apply_moves(StageHold(res.pre_encumbered, res.encumbered, res.actual), moves)
            res.pre_encumbered, res.encumbered, res.actual = new.pre_encumbered, new.encumbered, new.actual
            res.updated_at = now
            entries += [(line.id, res.id, m.bucket, m.amount, line.currency) for m in moves]
            path = path_ids(line)
            for m in moves:
                for k, v in rollup(path, m.bucket, m.amount).items():
                    deltas[k] = deltas.get(k, Decimal(0)) + v
        insert_entries(self.session, movement_id, entries)
        apply_to_balances(self.session, deltas)
        self.session.flush()

    def release(
        self,
        idempotency_key: str | None,
        reservation_ids: Sequence[int],
        amount: Decimal | str | int | None = None,
        *,
        actor: str,
        close: bool = False,
        step: str | None = None,
        reason: str | None = None,
    ) -> MovementResult:
        """Give back what reservations hold open (pre-encumbered and encumbered).

        ``amount`` (one reservation only) releases part; ``close`` marks them closed
        so they can never hold anything again (what ended requests do).
        """
        prior = self._replay(idempotency_key)
        if prior is not None:
            return MovementResult(prior, replayed=True)
        if amount is not None and len(reservation_ids) != 1:
            raise ValidationError("amount", "a partial release names exactly one reservation")
        rows = self._lock_reservations(reservation_ids)
        lines = self._line_rows({r.line_id for r in rows})
        ctx = ControlContext(self.session, self.default_rule)
        ctx.prepare(lines.values())  # lock balances in the global order
        try:
            plans = [
                (res, plan_release(
                    StageHold(res.pre_encumbered, res.encumbered, res.actual),
                    None if amount is None else self._amount_in_line_currency(res, amount, None),
                ))
                for res in rows
            ]
        except DomainError:
            # A retry with this key may have committed while we waited for the locks
            # (and released what we meant to release): its result is the answer.
            prior = self._replay(idempotency_key)
            if prior is not None:
                return MovementResult(prior, replayed=True)
            raise
        # The movement names the document of the first reservation that gives anything back.
        first = next((res for res, moves in plans if moves), rows[0] if rows else None)
        movement_id = insert_movement(
            self.session, "close" if close else "release", idempotency_key, actor,
            document=(first.document_type, first.document_id) if first else None,
            step=step, reason=reason,
        )
        if movement_id is None:  # ... or commits now: the insert waited for it (nothing changed yet)
            prior = self._replay(idempotency_key)
            assert prior is not None
            return MovementResult(prior, replayed=True)
        self._apply(movement_id, [(res, lines[res.line_id], moves) for res, moves in plans if moves])
        if close:
            now = utcnow()
            for res in rows:
                res.status, res.updated_at = "closed", now
        self.session.flush()
        return MovementResult(movement_id)

    def release_document(
        self, idempotency_key: str | None, document: tuple[str, str], *, actor: str,
        reason: str | None = None, step: str | None = None,
    ) -> MovementResult:
        """Release and close every open reservation of a document (reject, withdraw, cancel, close)."""
        ids = list(
            self.session.scalars(
                select(Reservation.id).where(
                    Reservation.document_type == document[0],
                    Reservation.document_id == document[1],
                    Reservation.status == "open",
                )
            )
        )
        if not ids:
            prior = self._replay(idempotency_key)
            if prior is not None:
                return MovementResult(prior, replayed=True)
            movement_id = insert_movement(self.session, "close", idempotency_key, actor, document=document, step=step, reason=reason)
            if movement_id is None:  # a retry with this key committed meanwhile
                return MovementResult(self._replay(idempotency_key) or 0, replayed=True)
            return MovementResult(movement_id)
        return self.release(idempotency_key, ids, actor=actor, close=True, step=step, reason=reason)

    # -- budget journals -----------------------------------------------------------

    def _journal_line(self, line_id: int, field: str) -> BudgetLine:
        line = self.session.get(BudgetLine, line_id)
        if line is None:
            raise NotFound(f"no budget line {line_id}", field=field)
        return line

    def adjust(
        self,
        idempotency_key: str | None,
        line_id: int,
        amount: Decimal | str | int,
        *,
        actor: str,
        reason: str,
        kind: str = "adjustment",
    ) -> MovementResult:
        """Add to (or, negative, take from) a line's budget: ``original`` or ``adjustment``.

        A cut never takes a hard-controlled line below what it has consumed, and the
        budget itself never goes below zero.
        """
        if kind not in ("original", "adjustment"):
            raise ValidationError("kind", "must be original or adjustment")
        if not reason or not reason.strip():
            raise ValidationError("reason", "a reason is required")
        prior = self._replay(idempotency_key)
        if prior is not None:
            return MovementResult(prior, replayed=True)
        line = self._journal_line(line_id, "line_id")
        value = parse_amount(amount, line.currency, "amount", allow_zero=False)
        if line.status == LineStatus.CLOSED.value:
            raise LineClosed(f"budget line {line.code} is closed", line=line.code, field="line_id")
        ctx = ControlContext(self.session, self.default_rule)
        ctx.prepare([line])
        prior = self._replay(idempotency_key)  # a concurrent retry may have committed while we waited
        if prior is not None:
            return MovementResult(prior, replayed=True)
        if value < 0:
            self._check_cut(ctx, line, -value)
        movement_id = self._new_movement(kind, idempotency_key, actor, reason=reason)
        insert_entries(self.session, movement_id, [(line.id, None, Bucket.BUDGET, value, line.currency)])
        apply_to_balances(self.session, {(line.id, Bucket.BUDGET): value})
        return MovementResult(movement_id)

    def _check_cut(self, ctx: ControlContext, line: BudgetLine, cut: Decimal) -> None:
        own = ctx.balances[line.id]
        if own.budget - cut < 0:
            raise NegativeBudget(
                f"budget of {line.code} would go below zero ({own.budget} - {cut})",
                line=line.code, field="amount", budget=str(own.budget), asked=str(cut),
            )
        rule = ctx.effective_rule(line)
        if rule.mode is Mode.HARD:
            available = ctx.buckets(line.id, rule.basis).available
            if available - cut < 0:
                raise OverBudget(
                    f"cannot take {cut} {line.currency} from {line.code}: only {available} is available",
                    line_id=line.id, line=line.code, asked=str(cut), available=str(available),
                    currency=line.currency, field="amount",
                    breakdown=ctx.buckets(line.id, rule.basis).to_dict(),
                )
        # A later period's cumulative (or an annual) basis counts this line's budget too.
        for dep, dep_rule in ctx.dependents(line.id):
            if dep_rule.mode is not Mode.HARD:
                continue
            b = ctx.buckets(dep, dep_rule.basis)
            if b.available - cut < 0:
                label = ctx.lines[dep].code
                raise OverBudget(
                    f"cannot take {cut} {line.currency} from {line.code}: {label} "
                    f"({dep_rule.basis.value} basis) has only {b.available} available",
                    line_id=dep, line=label, asked=str(cut), available=str(b.available),
                    currency=line.currency, field="amount", breakdown=b.to_dict(),
                )

    def transfer(
        self,
        idempotency_key: str | None,
        from_line_id: int,
        to_line_id: int,
        amount: Decimal | str | int,
        *,
        actor: str,
        reason: str,
    ) -> MovementResult:
        """Move budget between two lines of the same currency.

        Never drives the source below zero available under hard control.
        """
        if not reason or not reason.strip():
            raise ValidationError("reason", "a reason is required")
        if from_line_id == to_line_id:
            raise ValidationError("to_line_id", "must differ from from_line_id")
        prior = self._replay(idempotency_key)
        if prior is not None:
            return MovementResult(prior, replayed=True)
        src = self._journal_line(from_line_id, "from_line_id")
        dst = self._journal_line(to_line_id, "to_line_id")
        if src.currency != dst.currency:
            raise CurrencyMismatch(
                f"{src.code} is in {src.currency} and {dst.code} in {dst.currency}",
                field="to_line_id",
            )
        value = parse_amount(amount, src.currency, "amount", positive=True)
        for line, f in ((src, "from_line_id"), (dst, "to_line_id")):
            if line.status == LineStatus.CLOSED.value:
                raise LineClosed(f"budget line {line.code} is closed", line=line.code, field=f)
        ctx = ControlContext(self.session, self.default_rule)
        ctx.prepare([src, dst])
        prior = self._replay(idempotency_key)  # a concurrent retry may have committed while we waited
        if prior is not None:
            return MovementResult(prior, replayed=True)
        self._check_cut(ctx, src, value)
        movement_id = self._new_movement("transfer", idempotency_key, actor, reason=reason)
        insert_entries(self.session,
            movement_id,
            [
                (src.id, None, Bucket.BUDGET, -value, src.currency),
                (dst.id, None, Bucket.BUDGET, value, dst.currency),
            ],
        )
        apply_to_balances(self.session, {(src.id, Bucket.BUDGET): -value, (dst.id, Bucket.BUDGET): value})
        return MovementResult(movement_id)

    def reverse_actual(
        self,
        idempotency_key: str,
        reservation_id: int,
        amount: Decimal | str | int,
        *,
        actor: str,
        step: str | None = None,
    ) -> MovementResult:
        """Take back ``amount`` (line currency) of a reservation's ``actual`` (a reversed posting).

        Writes a negative ``actual`` entry and rolls it up, like any movement; works on
        closed reservations too (a completed request being reversed). Never takes
        ``actual`` below zero.
        """
        prior = self._replay(idempotency_key)
        if prior is not None:
            return MovementResult(prior, replayed=True)
        (res,) = self._lock_reservations([reservation_id])
        prior = self._replay(idempotency_key)  # a concurrent retry may have committed while we waited
        if prior is not None:
            return MovementResult(prior, replayed=True)
        value = parse_amount(amount, res.currency, "amount", positive=True)
        if value > res.actual:
            raise InsufficientHold(
                f"cannot reverse {value}: reservation {res.id} has {res.actual} actual",
                asked=str(value), held=str(res.actual), field="amount",
            )
        line = self._line_row(res.line_id)
        assert line is not None  # a reservation's line is never deleted (foreign key)
        ControlContext(self.session, self.default_rule).prepare([line])  # lock in global order
        movement_id = self._new_movement(
            "reverse_actual", idempotency_key, actor,
            document=(res.document_type, res.document_id), step=step,
        )
        self._apply(movement_id, [(res, line, [Move(Bucket.ACTUAL, -value)])])
        return MovementResult(movement_id)

    def balance(self, line_id: int) -> BudgetBalance:
        bal = self.session.get(BudgetBalance, line_id)
        if bal is None:
            raise NotFound(f"no budget line {line_id}", field="line_id")
        return bal


__all__ = [
    "Budgets",
    "Dims",
    "InsufficientHold",
    "LineRequest",
    "MovementResult",
    "ReservationView",
    "ReserveResult",
]
