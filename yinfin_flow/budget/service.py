"""Budgets: every change to a budget goes through here, inside the caller's transaction.

``Budgets(session)`` works in the session it is given and never commits: the
caller's unit of work commits the budget movement together with whatever caused it
(a request's state, its tasks, audit and outbox rows), or rolls all of it back.

Every method that moves money takes an ``idempotency_key``: the same key again
returns the first result and writes nothing.

This module holds reservations; moving what they hold (advance, release,
reverse) is in :mod:`.moves`, budget journals in :mod:`.journals`, the reads and request-line resolution in
:mod:`.queries`, the request and result types in :mod:`.results`, the rows
written in :mod:`.writes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select

from yinfin_flow.db.models import BudgetEntry
from yinfin_flow.domain.budget import Bucket, InsufficientHold, LineCheck, raise_if_blocked
from yinfin_flow.domain.errors import Conflict, DomainError

from .base import SELECT_LINE, SELECT_REPLAY
from .combined import PathRead, after_refusal, lock_paths
from .control import ControlContext, require_open_path
from .journals import BudgetJournals
from .lookup import Dims, LineRow
from .moves import BudgetMoves
from .results import LineRequest, MovementResult, ReservationView, ReserveResult
from .writes import check_length, insert_alerts, insert_reservations
from .writes_pg import NewReservation, RulesChanged

# A reservation's first line and the replay check in one trip; the line is read
# as a plain row (see LineRow).
_LINE_AND_REPLAY = SELECT_LINE.add_columns(SELECT_REPLAY.scalar_subquery().label("prior"))


class Budgets(BudgetMoves, BudgetJournals):
    """The budget service for one transaction (``session``).

    ``default_mode`` is the control mode of lines no rule covers (``hard``: the
    shipped default, SAP's 90 % warn / 100 % block).
    """

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
        # Lines named by id: lock and read everything in one statement
        # (see .combined); otherwise, or when a rule with another basis exists, the
        # general path. A guarded write that finds other rules than the decision used
        # writes nothing, and the decision is made again under the same locks.
        fast = self._combined() and bool(lines) and all(req.line_id is not None for req in lines)
        ids = [req.line_id for req in lines if req.line_id is not None]
        for _ in range(5):
            read = lock_paths(self.session, ids, idempotency_key) if fast else None
            try:
                return self._reserve_once(idempotency_key, document, lines, actor, step, read)
            except RulesChanged:
                continue
        raise Conflict("control rules keep changing; try again")

    def _reserve_once(
        self, idempotency_key: str, document: tuple[str, str], lines: Sequence[LineRequest],
        actor: str, step: str | None, read: PathRead | None,
    ) -> ReserveResult:
        """Decide and write; ``read``: the lines, rules and balances locked by :func:`lock_paths`."""
        ctx = ControlContext(self.session, self.default_rule)
        known: dict[int, LineRow] = {}
        if read is not None:
            ctx.adopt(read)
            known = read.lines
        elif lines and lines[0].line_id is not None:  # the replay check and the first line in one trip
            first_id = lines[0].line_id
            row = self.session.execute(_LINE_AND_REPLAY, {"line_id": first_id, "key": idempotency_key}).first()
            prior = row.prior if row is not None else self._replay(idempotency_key)
            if prior is not None:
                return self._replayed_reserve(prior, document)
            if row is not None:
                known = {first_id: LineRow.from_row(row)}
        else:
            prior = self._replay(idempotency_key)
            if prior is not None:
                return self._replayed_reserve(prior, document)
        resolved = self._resolve(lines, known)
        for i, req in enumerate(lines):  # each reservation's own key is "<key>:<ref>"
            check_length(f"{idempotency_key}:{req.ref}", 220, f"lines[{i}].ref")
        if read is None:
            ctx.prepare([ln for ln, *_ in resolved])
        checks: list[LineCheck] = []
        try:
            for i, (line, *_rest) in enumerate(resolved):  # a closed / held ancestor stops it too
                require_open_path(line, ctx.lines, f"lines[{i}]")
            for line, amount, *_rest in resolved:
                line_checks = ctx.check(line, amount)
                raise_if_blocked(line_checks, line.code)
                checks.extend(line_checks)
                ctx.add_pending(line, Bucket.PRE_ENCUMBERED, amount)
        except DomainError:
            # A retry with this key may have committed while we waited for the locks
            # (and used the budget): its result is the answer, not a refusal. On the
            # fast path the rules may also have changed while we waited: decide again.
            if read is None:
                prior, changed = self._replay(idempotency_key), False
            else:
                prior, changed = after_refusal(self.session, idempotency_key, read)
            if prior is not None:
                return self._replayed_reserve(prior, document)
            if changed:
                raise RulesChanged() from None
            raise
        written = insert_reservations(
            self.session, idempotency_key, document,
            [
                NewReservation(req.ref, line.id, line.currency, amount, source, currency, rate, req.budget_date)
                for line, amount, rate, source, currency, req in resolved
            ],
            actor=actor, step=step, deltas=ctx.pending, rules_seen=read,
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

__all__ = [
    "Budgets",
    "Dims",
    "InsufficientHold",
    "LineRequest",
    "MovementResult",
    "ReservationView",
    "ReserveResult",
]
