"""Moving what reservations hold: advance (to encumbered or actual), release, reverse.

Part of :class:`~.service.Budgets` (see there). Each action locks the
reservations it moves, then the balance rows of their lines, in the global order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from sqlalchemy import select

from yinfin_flow.db.models import BudgetLine, Reservation
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

from .combined import lock_paths
from .control import ControlContext, path_ids, require_open_path, rollup
from .lookup import LineRow
from .queries import BudgetQueries
from .results import MovementResult
from .writes import insert_alerts, insert_movement, write_movement
from .writes_pg import Entry


class BudgetMoves(BudgetQueries):
    """Advance, release and reverse of :class:`~.service.Budgets`."""

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

    # -- moves ---------------------------------------------------------------------

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
        movement_id = self._write_moves(
            f"to_{target.value}", idempotency_key, actor, (res.document_type, res.document_id),
            [(res, line, moves)], step=step,
        )
        if movement_id is None:  # ... or commits now: the insert waited for it
            prior = self._replay(idempotency_key)
            assert prior is not None
            return MovementResult(prior, replayed=True)
        self.session.flush()
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
        if plan.extra_consumption <= 0:  # nothing new to check: lock in the global order
            return self._lock_lines([res.line_id])[res.line_id], plan.moves, []
        line = self._line_row(res.line_id)
        assert line is not None  # a reservation's line is never deleted (foreign key)
        ctx = ControlContext(self.session, self.default_rule)
        ctx.prepare([line])  # control decides: rules are read again under the locks
        require_open_path(line, ctx.lines, "amount")  # a closed ancestor before the line's own hold
        self._require_consumable(line, "amount")
        checks = ctx.check(line, plan.extra_consumption)
        raise_if_blocked(checks, line.code)
        return line, plan.moves, checks

    def _lock_lines(self, line_ids: Iterable[int]) -> dict[int, BudgetLine | LineRow]:
        """Lock the balance rows of ``line_ids`` (and what control needs), in the global order.

        For moves that control does not decide (releases, liquidations, reversals):
        on PostgreSQL one statement (:func:`.combined.lock_paths`) when it applies.
        Returns the lines, by id.
        """
        ids = set(line_ids)
        if self._combined():
            read = lock_paths(self.session, ids, None)
            if read is not None:
                return dict(read.lines)
        lines = self._line_rows(ids)
        ControlContext(self.session, self.default_rule).prepare(lines.values())
        return dict(lines)

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

    def _write_moves(
        self, kind: str, key: str | None, actor: str, document: tuple[str, str] | None,
        items: Sequence[tuple[Reservation, BudgetLine | LineRow, Sequence[Move]]],
        *, step: str | None = None, reason: str | None = None,
    ) -> int | None:
        """Write the movement, every entry and balance change at once; move the stages.

        ``None`` (nothing written or changed) when a movement with ``key`` exists.
        The reservations' new stages are flushed by the caller.
        """
        entries: list[Entry] = []
        deltas: dict[tuple[int, Bucket], Decimal] = {}
        for res, line, moves in items:
            entries += [(line.id, res.id, m.bucket, m.amount, line.currency) for m in moves]
            path = path_ids(line)
            for m in moves:
                for k, v in rollup(path, m.bucket, m.amount).items():
                    deltas[k] = deltas.get(k, Decimal(0)) + v
        movement_id = write_movement(self.session, kind, key, actor, document=document, step=step,
                                     reason=reason, entries=entries, deltas=deltas)
        if movement_id is None:
            return None
        now = utcnow()
        for res, _line, moves in items:
            new = apply_moves(StageHold(res.pre_encumbered, res.encumbered, res.actual), moves)
            res.pre_encumbered, res.encumbered, res.actual = new.pre_encumbered, new.encumbered, new.actual
            res.updated_at = now
        return movement_id

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
        lines = self._lock_lines({r.line_id for r in rows})
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
        movement_id = self._write_moves(
            "close" if close else "release", idempotency_key, actor,
            (first.document_type, first.document_id) if first else None,
            [(res, lines[res.line_id], moves) for res, moves in plans if moves], step=step, reason=reason,
        )
        if movement_id is None:  # ... or commits now: the insert waited for it (nothing changed yet)
            prior = self._replay(idempotency_key)
            assert prior is not None
            return MovementResult(prior, replayed=True)
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
        value = parse_amount(amount, res.currency, "amount", positive=True)
        if value > res.actual:
            # A concurrent retry may have committed (and reversed it) while we waited.
            prior = self._replay(idempotency_key)
            if prior is not None:
                return MovementResult(prior, replayed=True)
            raise InsufficientHold(
                f"cannot reverse {value}: reservation {res.id} has {res.actual} actual",
                asked=str(value), held=str(res.actual), field="amount",
            )
        line = self._lock_lines([res.line_id])[res.line_id]
        movement_id = self._write_moves(
            "reverse_actual", idempotency_key, actor, (res.document_type, res.document_id),
            [(res, line, [Move(Bucket.ACTUAL, -value)])], step=step,
        )
        if movement_id is None:  # ... or commits now: the insert waited for it
            prior = self._replay(idempotency_key)
            assert prior is not None
            return MovementResult(prior, replayed=True)
        self.session.flush()
        return MovementResult(movement_id)
