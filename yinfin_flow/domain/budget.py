"""Budget arithmetic and control decisions: pure, no I/O.

The services load balances and rules, ask this module what to do, then write.
Vocabulary follows DESIGN.md: buckets ``budget``, ``pre_encumbered``,
``encumbered``, ``actual``; ``available = budget - pre_encumbered - encumbered - actual``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import DomainError
from .money import to_storage

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class Bucket(enum.StrEnum):
    BUDGET = "budget"
    PRE_ENCUMBERED = "pre_encumbered"
    ENCUMBERED = "encumbered"
    ACTUAL = "actual"


#: Buckets that consume budget, in the order a reservation moves through them.
CONSUMING = (Bucket.PRE_ENCUMBERED, Bucket.ENCUMBERED, Bucket.ACTUAL)


class Mode(enum.StrEnum):
    HARD = "hard"  # 刚性: block when over (beyond tolerance)
    SOFT = "soft"  # 柔性: allow, record a warning
    TRACK = "track"  # record only
    NONE = "none"  # nothing recorded


class Basis(enum.StrEnum):
    PERIOD = "period"  # the line's own period alone
    CUMULATIVE = "cumulative"  # this fiscal year's periods up to and including this one
    ANNUAL = "annual"  # every period of the fiscal year
    OVERALL = "overall"  # every period, all years


class LineStatus(enum.StrEnum):
    OPEN = "open"
    HOLD = "hold"  # consumption refused; budget journals and releases still allowed
    CLOSED = "closed"  # nothing new; releases of what is held still allowed


def stopping_line(path: Sequence[int], statuses: dict[int, str], *, consuming: bool = True) -> tuple[int, LineStatus] | None:
    """The line on ``path`` (root first, the line itself last) whose status stops a change.

    A line's effective status is the most restrictive of its own and its ancestors':
    closing (or holding) a department's budget closes (holds) everything under it.
    Closed is more restrictive than hold; between lines of the same status the nearest
    to the line (the line itself first) is named. ``consuming=False`` (a budget
    journal): only closed stops it, hold refuses consumption alone. ``None``: nothing
    stops it.
    """
    stops = (LineStatus.CLOSED, LineStatus.HOLD) if consuming else (LineStatus.CLOSED,)
    for status in stops:
        for line_id in reversed(path):
            if statuses.get(line_id) == status.value:
                return line_id, status
    return None


class Action(enum.StrEnum):
    INFO = "info"
    WARN = "warn"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Threshold:
    """At ``percent`` usage (after the request), take ``action``; ``notify`` the owner."""

    percent: Decimal
    action: Action
    notify: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"percent": str(self.percent), "action": self.action.value, "notify": self.notify}


#: SAP's delivered availability-control profile: warn at 90 %, error at 100 %.
DEFAULT_THRESHOLDS: tuple[Threshold, ...] = (
    Threshold(Decimal(90), Action.WARN, notify=True),
    Threshold(Decimal(100), Action.BLOCK, notify=True),
)


@dataclass(frozen=True, slots=True)
class ControlRule:
    """How finance controls a line (and, with ``subtree``, every line below it)."""

    mode: Mode = Mode.HARD
    tolerance_percent: Decimal | None = None
    tolerance_amount: Decimal | None = None
    thresholds: tuple[Threshold, ...] = DEFAULT_THRESHOLDS
    basis: Basis = Basis.PERIOD
    subtree: bool = True
    line_id: int | None = None  # where the rule is defined; None = the shipped default

    def tolerance(self, budget: Decimal) -> Decimal:
        """Allowed overrun in money: the smaller of the % and the absolute limit."""
        limits = []
        if self.tolerance_percent is not None:
            limits.append(max(budget, ZERO) * self.tolerance_percent / HUNDRED)
        if self.tolerance_amount is not None:
            limits.append(self.tolerance_amount)
        return min(limits) if limits else ZERO


DEFAULT_RULE = ControlRule()


@dataclass(frozen=True, slots=True)
class Buckets:
    budget: Decimal = ZERO
    pre_encumbered: Decimal = ZERO
    encumbered: Decimal = ZERO
    actual: Decimal = ZERO

    @property
    def consumed(self) -> Decimal:
        return self.pre_encumbered + self.encumbered + self.actual

    @property
    def available(self) -> Decimal:
        return self.budget - self.consumed

    def __add__(self, other: Buckets) -> Buckets:
        return Buckets(
            self.budget + other.budget,
            self.pre_encumbered + other.pre_encumbered,
            self.encumbered + other.encumbered,
            self.actual + other.actual,
        )

    def get(self, bucket: Bucket) -> Decimal:
        value: Decimal = getattr(self, bucket.value)
        return value

    def to_dict(self) -> dict[str, str]:
        return {
            "budget": str(self.budget),
            "pre_encumbered": str(self.pre_encumbered),
            "encumbered": str(self.encumbered),
            "actual": str(self.actual),
            "available": str(self.available),
        }

    @staticmethod
    def total(items: Iterable[Buckets]) -> Buckets:
        out = Buckets()
        for b in items:
            out = out + b
        return out


# -- refusals (codes follow PeopleSoft's budget exception codes where they exist) --


class BudgetError(DomainError):
    http_status = 409


class OverBudget(BudgetError):
    """E1: the request exceeds what the controlling line allows, tolerance included."""

    code = "E1_over_budget"


class ThresholdBlocked(OverBudget):
    """E1 by a ``block`` threshold below the budget (e.g. ``80:block``): the request
    would take usage beyond it, though the line may still have budget left."""

    code = "E1_threshold_blocked"


class NoBudgetLine(BudgetError):
    code = "E2_no_budget_line"
    http_status = 422


class LineClosed(BudgetError):
    code = "E3_line_closed"


class LineOnHold(BudgetError):
    code = "E4_line_on_hold"


class OutsidePeriod(BudgetError):
    code = "E6_outside_budget_period"
    http_status = 422


class CurrencyMismatch(BudgetError):
    code = "currency_mismatch"
    http_status = 422


class NoExchangeRate(BudgetError):
    code = "no_exchange_rate"
    http_status = 422


class InsufficientHold(BudgetError):
    """A move or release asks for more than the reservation holds in that stage."""

    code = "insufficient_hold"


class NegativeBudget(BudgetError):
    """A cut (negative adjustment or transfer out) would take a line's budget below zero."""

    code = "negative_budget"


@dataclass(frozen=True, slots=True)
class LineCheck:
    """What control says about one controlling line for one proposed change."""

    line_id: int
    line_label: str
    rule: ControlRule
    basis_buckets: Buckets  # the buckets over the rule's basis, before the change
    delta: Decimal  # extra consumption asked
    currency: str
    level: Action | None  # highest threshold reached (None: below every threshold)
    blocked: bool  # True only for hard control over its limit
    over: bool  # over budget + tolerance, whatever the mode
    notify: bool
    decided_by_self: bool  # the line asked for, or an ancestor
    threshold: Threshold | None = None  # the threshold that set ``level`` (None: none, or over budget)

    @property
    def available_after(self) -> Decimal:
        return self.basis_buckets.available - self.delta

    @property
    def tolerance(self) -> Decimal:
        """The rule's allowed overrun on this line, at the stored scale (for answers)."""
        return to_storage(self.rule.tolerance(self.basis_buckets.budget))

    @property
    def usage_percent(self) -> Decimal | None:
        budget = self.basis_buckets.budget
        if budget <= 0:
            return None
        return ((self.basis_buckets.consumed + self.delta) * HUNDRED / budget).quantize(
            Decimal("0.01")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "line_id": self.line_id,
            "line": self.line_label,
            "mode": self.rule.mode.value,
            "basis": self.rule.basis.value,
            "rule_line_id": self.rule.line_id,
            "currency": self.currency,
            "asked": str(self.delta),
            "available": str(self.basis_buckets.available),
            "available_after": str(self.available_after),
            "tolerance": str(self.tolerance),
            "usage_percent": None if self.usage_percent is None else str(self.usage_percent),
            "level": None if self.level is None else self.level.value,
            "blocked": self.blocked,
            "over": self.over,
            "breakdown": self.basis_buckets.to_dict(),
            "threshold": None if self.threshold is None else self.threshold.to_dict(),
        }


def reached(threshold: Threshold, budget: Decimal, after_consumed: Decimal, tolerance: Decimal) -> bool:
    """The one rule for every level: a threshold is reached when usage after the change
    goes BEYOND it (exactly 80 % does not reach ``80``; 80.01 % does), as a line is over
    budget only beyond 100 %. A ``block`` at 100 % or more is relaxed by the tolerance."""
    limit = budget * threshold.percent / HUNDRED
    if threshold.action is Action.BLOCK and threshold.percent >= HUNDRED:
        return after_consumed - limit > tolerance
    return after_consumed > limit


def check_line(
    *,
    line_id: int,
    line_label: str,
    rule: ControlRule,
    basis_buckets: Buckets,
    delta: Decimal,
    currency: str,
    decided_by_self: bool,
) -> LineCheck:
    """Decide what control ``rule`` says about consuming ``delta`` more on a line.

    ``basis_buckets`` are already summed over the rule's basis (period, cumulative…).
    A zero ``delta`` re-checks what is already held (an approval step's re-check).
    """
    budget = basis_buckets.budget
    after_consumed = basis_buckets.consumed + delta
    tolerance = rule.tolerance(budget)
    over = after_consumed - budget > tolerance
    level: Action | None = None
    decided: Threshold | None = None
    notify = False
    if budget > 0:
        for t in sorted(rule.thresholds, key=lambda t: t.percent):
            if reached(t, budget, after_consumed, tolerance):
                if level is None or _rank(t.action) >= _rank(level):
                    level, decided = t.action, t
                notify = notify or t.notify
    elif after_consumed > tolerance:
        level = Action.BLOCK
    if over and (level is None or _rank(level) < _rank(Action.BLOCK)):
        level, decided = Action.BLOCK, None
    if rule.mode is not Mode.HARD or delta < 0:
        blocked = False  # reductions are never blocked; soft/track only warn or record
    elif delta == 0:
        blocked = over  # re-check of what is already held: only a real overrun blocks
    else:
        blocked = level is Action.BLOCK
    return LineCheck(
        line_id=line_id,
        line_label=line_label,
        rule=rule,
        basis_buckets=basis_buckets,
        delta=delta,
        currency=currency,
        level=level,
        blocked=blocked,
        over=over,
        notify=notify,
        decided_by_self=decided_by_self,
        threshold=decided,
    )


_RANK = {Action.INFO: 1, Action.WARN: 2, Action.BLOCK: 3}


def _rank(action: Action) -> int:
    return _RANK[action]


def raise_if_blocked(checks: Sequence[LineCheck], asked_on: str) -> None:
    """Raise :class:`OverBudget` for the first blocking check, naming who decided."""
    for c in checks:
        if c.blocked:
            where = "the line itself" if c.decided_by_self else f"controlling line {c.line_label}"
            t = c.threshold
            if not c.over and t is not None and t.percent < HUNDRED:
                raise ThresholdBlocked(
                    f"the {t.percent:g} % block threshold of {c.line_label} refuses this: usage would be "
                    f"{c.usage_percent} % (asked {c.delta} {c.currency}, budget {c.basis_buckets.budget}, "
                    f"available {c.basis_buckets.available}; decided by {where}, {c.rule.mode.value} control)",
                    line_id=c.line_id, line=c.line_label, requested_line=asked_on, asked=str(c.delta),
                    available=str(c.basis_buckets.available), currency=c.currency,
                    tolerance=str(c.tolerance), threshold=t.to_dict(),
                    usage_percent=str(c.usage_percent), breakdown=c.basis_buckets.to_dict(),
                )
            raise OverBudget(
                f"over budget on {c.line_label}: asked {c.delta} {c.currency}, "
                f"available {c.basis_buckets.available} {c.currency} "
                f"(decided by {where}, {c.rule.mode.value} control)",
                line_id=c.line_id,
                line=c.line_label,
                requested_line=asked_on,
                asked=str(c.delta),
                available=str(c.basis_buckets.available),
                currency=c.currency,
                tolerance=str(c.tolerance),
                breakdown=c.basis_buckets.to_dict(),
            )


def effective_rule(
    path: Sequence[int], rules: dict[int, ControlRule], default: ControlRule = DEFAULT_RULE
) -> ControlRule:
    """The rule that governs the last line of ``path`` (root first).

    Its own rule wins; else the nearest ancestor's rule marked ``subtree``; else the default.
    """
    own = rules.get(path[-1])
    if own is not None:
        return own
    for ancestor in reversed(path[:-1]):
        r = rules.get(ancestor)
        if r is not None and r.subtree:
            return r
    return default


def controlling_lines(
    path: Sequence[int], rules: dict[int, ControlRule], default: ControlRule = DEFAULT_RULE
) -> list[tuple[int, ControlRule]]:
    """Every line a consumption on ``path[-1]`` is checked against, with its rule.

    The line itself first, then each ancestor nearest first, each with the rule that
    governs it (its own, inherited through ``subtree``, or the default). Consumption
    rolls up into every ancestor's balance, so an ancestor that is under hard control
    only by inheritance must be checked too, or ``available >= -tolerance`` breaks
    for it while its subtree spends.
    """
    return [(path[i], effective_rule(path[: i + 1], rules, default)) for i in range(len(path) - 1, -1, -1)]


@dataclass(slots=True)
class StageHold:
    """What one reservation holds per consuming stage (in the line's currency)."""

    pre_encumbered: Decimal = ZERO
    encumbered: Decimal = ZERO
    actual: Decimal = ZERO

    @property
    def open_amount(self) -> Decimal:
        return self.pre_encumbered + self.encumbered


@dataclass(frozen=True, slots=True)
class Move:
    """One bucket change on one line: the unit that becomes a budget entry."""

    bucket: Bucket
    amount: Decimal


@dataclass(slots=True)
class StagePlan:
    moves: list[Move] = field(default_factory=list)
    extra_consumption: Decimal = ZERO  # consumption beyond what was held: needs control


def plan_advance(hold: StageHold, target: Bucket, amount: Decimal) -> StagePlan:
    """Plan moving ``amount`` of a reservation on to ``target`` (encumbered or actual).

    Liquidates the earlier stages by up to the same amount (latest stage first:
    encumbered before pre-encumbered when moving to actual). Anything beyond what was
    held is new consumption the caller must check against control.
    """
    if target not in (Bucket.ENCUMBERED, Bucket.ACTUAL):
        raise ValueError("can only advance to encumbered or actual")
    plan = StagePlan()
    remaining = amount
    sources = [Bucket.PRE_ENCUMBERED] if target is Bucket.ENCUMBERED else [
        Bucket.ENCUMBERED,
        Bucket.PRE_ENCUMBERED,
    ]
    for src in sources:
        held = getattr(hold, src.value)
        take = min(held, remaining)
        if take > 0:
            plan.moves.append(Move(src, -take))
            remaining -= take
    plan.moves.append(Move(target, amount))
    plan.extra_consumption = remaining
    return plan


def plan_release(hold: StageHold, amount: Decimal | None = None) -> list[Move]:
    """Plan releasing ``amount`` (default: all) of what is held open.

    The least committed stage goes first: pre-encumbered (still in approval) before
    encumbered (ordered), so a partial release never gives back an order's commitment
    while an unordered remainder is still held.
    """
    total = hold.open_amount
    if amount is None:
        amount = total
    if amount > total:
        raise InsufficientHold(
            f"cannot release {amount}: the reservation holds {total}",
            asked=str(amount),
            held=str(total),
        )
    moves = []
    remaining = amount
    for src in (Bucket.PRE_ENCUMBERED, Bucket.ENCUMBERED):
        held = getattr(hold, src.value)
        take = min(held, remaining)
        if take > 0:
            moves.append(Move(src, -take))
            remaining -= take
    return moves


def apply_moves(hold: StageHold, moves: Iterable[Move]) -> StageHold:
    out = StageHold(hold.pre_encumbered, hold.encumbered, hold.actual)
    for m in moves:
        if m.bucket is Bucket.BUDGET:
            continue
        setattr(out, m.bucket.value, getattr(out, m.bucket.value) + m.amount)
    return out
