"""Reads: what reserving would do (preview), what a document holds, re-checks, balances.

Also how a request line finds its budget line and its amount in the line's
currency, which :meth:`~.service.Budgets.reserve` shares with :meth:`preview`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from sqlalchemy import bindparam, select

from yinfin_flow.db.models import BudgetBalance, BudgetLine, Reservation
from yinfin_flow.domain.budget import Bucket, LineCheck, LineClosed, LineOnHold, LineStatus
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.domain.money import MAX_AMOUNT, Money, check_currency, parse_amount

from .base import BudgetsBase
from .combined import PathRead, read_held_paths, read_paths
from .control import ControlContext, load_lines, path_ids, require_open_path
from .document_read import read_document_paths
from .lookup import LINE_ROW_COLUMNS, LineRow, check_in_period, find_line, rate_for
from .results import LineRequest, ReservationView, view_of
from .writes import check_length

_ONE = Decimal(1)
_lines = BudgetLine.__table__
_reservations = Reservation.__table__
# The line of each reservation, in reservation order (what recheck reads).
_RESERVED_LINES = (
    select(*(_lines.c[name] for name in LINE_ROW_COLUMNS))
    .join(_reservations, _reservations.c.line_id == _lines.c.id)
    .where(_reservations.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_reservations.c.id)
)

# A document's reservations with their lines' codes, in reservation order. Built once:
# building a select costs more CPU than running this one (it runs at every approval).
_DOCUMENT_RESERVATIONS = (
    select(Reservation, BudgetLine.code)
    .join(BudgetLine, BudgetLine.id == Reservation.line_id)
    .where(Reservation.document_type == bindparam("document_type"),
           Reservation.document_id == bindparam("document_id"))
    .order_by(Reservation.id)
)


class BudgetQueries(BudgetsBase):
    """The reads of :class:`~.service.Budgets`, and request-line resolution."""

    def preview(self, lines: Sequence[LineRequest]) -> list[LineCheck]:
        """What reserving ``lines`` would do, without writing or locking anything.

        Raises the same errors a real reservation would, except over-budget, which
        comes back as checks with ``blocked`` set.
        """
        ctx = ControlContext(self.session, self.default_rule)
        known: dict[int, LineRow] = {}
        read = None
        if self._combined() and lines and all(req.line_id is not None for req in lines):
            # lines, ancestors, rules and balances in one statement (see .combined)
            read = read_paths(self.session, [req.line_id for req in lines if req.line_id is not None])
            known = read.lines if read is not None else {}
        resolved = self._resolve(lines, known)
        self._prepare_read(ctx, read, [ln for ln, *_ in resolved])
        for i, (line, *_rest) in enumerate(resolved):
            require_open_path(line, ctx.lines, f"lines[{i}]")
        checks: list[LineCheck] = []
        for line, amount, *_ in resolved:
            checks.extend(ctx.check(line, amount))
            ctx.add_pending(line, Bucket.PRE_ENCUMBERED, amount)
        return checks

    def reservations_for(self, document_type: str, document_id: str) -> list[ReservationView]:
        rows = self.session.execute(_DOCUMENT_RESERVATIONS, {"document_type": document_type,
                                                             "document_id": document_id}).all()
        return [view_of(r, code) for r, code in rows]

    def recheck(self, reservation_ids: Sequence[int]) -> list[LineCheck]:
        """Re-check what reservations already hold against today's balances (no write)."""
        if not reservation_ids:
            return []
        if self._combined():  # lines, ancestors, rules and balances in one statement
            return self._recheck_read(read_held_paths(self.session, reservation_ids))
        lines: dict[int, LineRow] = {}
        ctx = ControlContext(self.session, self.default_rule)
        held_on = [  # one line per reservation, in reservation order
            lines.setdefault(row.id, LineRow.from_row(row))
            for row in self.session.execute(_RESERVED_LINES, {"ids": list(reservation_ids)})
        ]
        ctx.prepare(lines.values(), lock=False)
        return self._checks_of(ctx, held_on)

    def read_document(self, document_type: str, document_id: str) -> tuple[list[ReservationView], list[LineCheck]]:
        """:meth:`reservations_for` and the :meth:`recheck` of the open ones, in one statement
        where the combined reads apply (:mod:`.document_read`): the same two answers."""
        if not self._combined():
            views = self.reservations_for(document_type, document_id)
            return views, self.recheck([v.id for v in views if v.status == "open"])
        doc = read_document_paths(self.session, document_type, document_id)
        if not any(v.status == "open" for v in doc.reservations):
            return doc.reservations, []
        return doc.reservations, self._recheck_read(doc.read)

    def _recheck_read(self, read: PathRead | None) -> list[LineCheck]:
        """The re-check of the reservations a held read (``read.held``) maps to their lines."""
        ctx = ControlContext(self.session, self.default_rule)
        held_on = [] if read is None else [read.lines[line_id] for _, line_id in read.held or []]
        lines = {ln.id: ln for ln in held_on}
        self._prepare_read(ctx, read, lines.values())
        return self._checks_of(ctx, held_on)

    @staticmethod
    def _checks_of(ctx: ControlContext, held_on: Sequence[BudgetLine | LineRow]) -> list[LineCheck]:
        """Each line held on and its controlling ancestors checked once, in reservation order."""
        checks = []
        seen: set[int] = set()
        for line in held_on:
            for c in ctx.check(line, Decimal(0)):
                if c.line_id not in seen:
                    seen.add(c.line_id)
                    checks.append(c)
        return checks

    def _combined(self) -> bool:
        """Whether the one-statement reads of :mod:`.combined` apply (both databases do)."""
        return self.session.get_bind().dialect.name in ("postgresql", "sqlite")

    @staticmethod
    def _prepare_read(ctx: ControlContext, read: PathRead | None, lines: Iterable[BudgetLine | LineRow]) -> None:
        """Prepare ``ctx`` (without locking) from a combined ``read`` if it is enough."""
        if read is not None and not read.basis_rules:
            ctx.adopt(read)
            return
        if read is not None:  # what was read already is not read again
            ctx.lines.update(read.lines)
            ctx.balances.update(read.balances)
        # A rule with another basis brings in other periods' lines: the general path.
        ctx.prepare(lines, lock=False)

    def balance(self, line_id: int) -> BudgetBalance:
        bal = self.session.get(BudgetBalance, line_id)
        if bal is None:
            raise NotFound(f"no budget line {line_id}", field="line_id")
        return bal

    # -- request lines ---------------------------------------------------------------

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
            check_length(ref, 64, f"lines[{i}].ref")
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
            if line.status == LineStatus.HOLD.value:  # a closed ancestor is more restrictive: it decides
                require_open_path(line, {**load_lines(self.session, path_ids(line)), **(known or {})}, f)
            self._require_consumable(line, f)
            amount, rate, source, currency = self._line_amount(req, line, f)
            out.append((line, amount, rate, source, currency, req))
        return out

    def _line_amount(self, req: LineRequest, line: BudgetLine | LineRow, field: str) -> tuple[Decimal, Decimal, Decimal, str]:
        """(amount in line currency, rate, source amount, source currency), all validated."""
        currency = check_currency(req.currency, f"{field}.currency")
        source = parse_amount(req.amount, currency, f"{field}.amount", positive=True)
        if currency == line.currency:  # what convert at rate 1 gives, without looking a rate up
            rate, amount = _ONE, Money(source, currency).round().amount
        else:
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
