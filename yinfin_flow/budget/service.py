"""Budgets: every change to a budget goes through here, inside the caller's transaction.

``Budgets(session)`` works in the session it is given and never commits: the
caller's unit of work commits the budget movement together with whatever caused it
(a request's state, its tasks, audit and outbox rows), or rolls all of it back.

Every method that moves money takes an ``idempotency_key``: the same key again
returns the first result and writes nothing.

This module holds consumption (reserve, advance, release, reverse). Budget
journals are in :mod:`.journals`, the reads and request-line resolution in
:mod:`.queries`, the request and result types in :mod:`.results`, the rows
written in :mod:`.writes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select

from yinfin_flow.db.models import (
    BudgetEntry,
    BudgetLine,
    Reservation,
)
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.budget import (
    Bucket,
    CurrencyMismatch,
    InsufficientHold,
    LineCheck,
    Move,
    StageHold,
    apply_moves,
    plan_advance,
    plan_release,
    raise_if_blocked,
)
from yinfin_flow.domain.errors import Conflict, DomainError, NotFound, ValidationError
from yinfin_flow.domain.money import Money, check_currency, parse_amount

from .base import SELECT_LINE, SELECT_REPLAY
from .control import ControlContext, apply_to_balances, path_ids, rollup
from .journals import BudgetJournals
from .lookup import Dims, LineRow
from .queries import BudgetQueries
from .results import LineRequest, MovementResult, ReservationView, ReserveResult
from .writes import (
    NewReservation,
    check_length,
    insert_alerts,
    insert_entries,
    insert_movement,
    insert_reservations,
)

# A reservation's first line and the replay check in one trip; the line is read
# as a plain row (see LineRow).
_LINE_AND_REPLAY = SELECT_LINE.add_columns(SELECT_REPLAY.scalar_subquery().label("prior"))


class Budgets(BudgetJournals, BudgetQueries):
    """The budget service for one transaction (``session``).

    ``default_mode`` is the control mode of lines no rule covers (``hard``: the
    shipped default, SAP's 90 % warn / 100 % block).
    """

    # -- helpers -------------------------------------------------------------------

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

    # -- consumption -----------------------------------------------------------------

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
            check_length(f"{idempotency_key}:{req.ref}", 220, f"lines[{i}].ref")
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
        movement_id = insert_movement(
            self.session, f"to_{target.value}", idempotency_key, actor,
            document=(res.document_type, res.document_id), step=step,
        )
        if movement_id is None:  # ... or commits now: the insert waited for it
            prior = self._replay(idempotency_key)
            assert prior is not None
            return MovementResult(prior, replayed=True)
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
            movement_id = insert_movement(
                self.session, "close", idempotency_key, actor, document=document, step=step, reason=reason,
            )
            if movement_id is None:  # a retry with this key committed meanwhile
                prior = self._replay(idempotency_key)
                assert prior is not None
                return MovementResult(prior, replayed=True)
            return MovementResult(movement_id)
        return self.release(idempotency_key, ids, actor=actor, close=True, step=step, reason=reason)


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


__all__ = [
    "Budgets",
    "Dims",
    "InsufficientHold",
    "LineRequest",
    "MovementResult",
    "ReservationView",
    "ReserveResult",
]
