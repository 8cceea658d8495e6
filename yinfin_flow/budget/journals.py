"""Budget journals: original budgets, adjustments and transfers between lines.

Journals change the ``budget`` bucket only. A cut (a negative adjustment, or the
source of a transfer) never takes a hard-controlled line, or a later period whose
basis counts it, below what is already consumed.
"""

from __future__ import annotations

from decimal import Decimal

from yinfin_flow.db.models import BudgetLine
from yinfin_flow.domain.budget import (
    Bucket,
    CurrencyMismatch,
    LineClosed,
    LineStatus,
    Mode,
    NegativeBudget,
    OverBudget,
)
from yinfin_flow.domain.errors import NotFound, ValidationError
from yinfin_flow.domain.money import parse_amount

from .base import BudgetsBase
from .control import ControlContext, require_open_path
from .results import MovementResult
from .writes import apply_to_balances, insert_entries


class BudgetJournals(BudgetsBase):
    """Budget journals of :class:`~.service.Budgets`."""

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
        require_open_path(line, ctx.lines, "line_id", consuming=False)  # hold: journals still allowed
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
        for line, f in ((src, "from_line_id"), (dst, "to_line_id")):  # hold: journals still allowed
            require_open_path(line, ctx.lines, f, consuming=False)
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
