"""What-if simulation of a control rule (规则模拟): replay a line's consumption under the
rule in force and under a proposed one, side by side. Read-only.

For a rule on line L (and, with ``subtree``, the lines below it) the budget entries of a
window (default: the last 12 months) are replayed in the order they were written
(movement by movement). Balances start as they stood when the window opened and move
entry by entry. Each movement that consumes on L or a line under it is a *request*:
before its entries are applied it is decided by :meth:`.control.ControlContext.check`
(the code live reservations run, line by line with the request's earlier lines added
as pending), once with the rules as they are and once with L's rule replaced by the
proposed one. A request refused under the proposed rule did not happen there: its
entries, and every later entry of its reservations (advances, releases), are left
out of that replay, as a live refusal would have left them out. The current side
replays what happened.

The answer names the requests refused or warned under the proposed rule (and by which
threshold), those that passed only under the current rule (or only under the proposed
one), the money involved, L's peak utilisation and the first day its available went
below zero, for both rules. Nothing is written: it runs in a read-only transaction,
on the read database when there is one.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import groupby
from operator import itemgetter
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Date, Numeric, bindparam, cast, func, select, type_coerce
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetEntry, BudgetLine, BudgetMovement
from yinfin_flow.db.types import STORAGE_PLACES
from yinfin_flow.domain.budget import (
    CONSUMING,
    DEFAULT_RULE,
    HUNDRED,
    ZERO,
    Action,
    Basis,
    Bucket,
    Buckets,
    ControlRule,
    LineCheck,
)
from yinfin_flow.domain.errors import NotFound, ValidationError

from . import setup
from .control import ControlContext, path_ids, rule_from_row
from .io_report import describe_rule

LISTED = 200  # requests listed per kind (the counts and sums cover all)
_IDS = bindparam("ids", expanding=True)
_CHUNK = 5000


def default_window(today: date) -> tuple[date, date]:
    """The last 12 months: the same day a year ago up to and including today."""
    try:
        start = today.replace(year=today.year - 1)
    except ValueError:  # 29 February
        start = today.replace(year=today.year - 1, day=28)
    return start, today


def proposed_rule(line: BudgetLine, rule: dict[str, Any]) -> ControlRule:
    """A proposed rule for ``line`` as control would hold it once stored (checked and
    normalised by :func:`setup.rule_values`, read as :func:`control.rule_from_row` reads)."""
    values = setup.rule_values(line, **rule)
    return rule_from_row(SimpleNamespace(**values, line_id=line.id))


@dataclass
class _Scenario:
    """One side of the replay: its control context, balances and what it decided."""

    name: str
    ctx: ControlContext
    line_id: int
    skipped: set[int] = field(default_factory=set)  # reservations of refused requests
    refused: int = 0
    refused_amount: Decimal = Decimal(0)
    warned: int = 0
    warned_amount: Decimal = Decimal(0)
    peak: Decimal | None = None
    peak_on: date | None = None
    negative_on: date | None = None
    basis: Basis | None = None  # L's rule's basis (rules do not change during a replay)
    targets: dict[int, list[tuple[int, ControlRule]]] = field(default_factory=dict)  # per line checked
    seen: tuple[Decimal, Decimal] | None = None  # L's (consumed, budget) at the last watch

    def rule(self) -> ControlRule:
        return self.ctx.effective_rule(self.ctx.lines[self.line_id])

    def watch(self, on: date) -> None:
        """L's utilisation and available after a movement (under its rule's basis)."""
        if self.basis is None:
            self.basis = self.rule().basis
        b = self.ctx.buckets(self.line_id, self.basis)
        seen = (b.consumed, b.budget)
        if seen == self.seen:
            return  # unchanged (a step from one bucket to the next): no new peak, same available
        self.seen = seen
        if b.budget > 0:
            usage = (b.consumed * HUNDRED / b.budget).quantize(Decimal("0.01"))
            if self.peak is None or usage > self.peak:
                self.peak, self.peak_on = usage, on
        if self.negative_on is None and b.available < 0:
            self.negative_on = on

    def summary(self) -> dict[str, Any]:
        rule = self.rule()
        return {
            "rule": {"mode": rule.mode.value, "basis": rule.basis.value, "description": describe_rule(rule),
                     "defined_on_line_id": rule.line_id},
            "refused": self.refused, "refused_amount": str(self.refused_amount),
            "warned": self.warned, "warned_amount": str(self.warned_amount),
            "peak_usage_percent": None if self.peak is None else str(self.peak),
            "peak_on": self.peak_on, "first_negative_on": self.negative_on,
        }


def _threshold(check: LineCheck) -> str | None:
    """Which threshold a check reached, for people: ``"90"``, or ``"over"`` when only the
    budget plus tolerance was passed."""
    if check.level is None:
        return None
    usage = check.usage_percent
    reached = [t.percent for t in check.rule.thresholds
               if t.action is check.level and (usage is None or t.percent <= usage)]
    if reached:
        return f"{max(reached).normalize():f}"
    return "over" if check.level is Action.BLOCK else None


def _outcome(checks: list[LineCheck]) -> dict[str, Any]:
    blocked = next((c for c in checks if c.blocked), None)
    ranked = [c for c in checks if c.level is not None]
    rank = {Action.INFO: 1, Action.WARN: 2, Action.BLOCK: 3}
    top = blocked or (max(ranked, key=lambda c: rank[c.level]) if ranked else None)  # type: ignore[index]
    return {
        "blocked": blocked is not None,
        "level": None if top is None or top.level is None else top.level.value,
        "threshold": None if top is None else _threshold(top),
        "decided_by": None if top is None else top.line_label,
        "usage_percent": None if top is None or top.usage_percent is None else str(top.usage_percent),
    }


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + _CHUNK] for i in range(0, len(ids), _CHUNK)] or [[]]


def simulate(session: Session, line_id: int, rule: dict[str, Any], *, start: date | None = None,
             end: date | None = None, default_rule: ControlRule = DEFAULT_RULE,
             today: date | None = None, every_request: bool = False) -> dict[str, Any]:
    """Replay ``line_id``'s consumption (its subtree's) over ``[start, end]`` under the rule
    in force and under ``rule`` (the fields of a rule change) in place of the line's own.

    Lists (up to :data:`LISTED` each) the requests refused or warned under the proposed
    rule and those decided differently; ``every_request`` adds every request's decisions."""
    line = session.get(BudgetLine, line_id)
    if line is None:
        raise NotFound(f"no budget line {line_id}", field="line_id")
    proposed = proposed_rule(line, rule)
    first, last = default_window(today or datetime.now(UTC).date())
    start, end = start or first, end or last
    if start > end:
        raise ValidationError("from", "must not be after to")
    scope = list(session.scalars(select(BudgetLine).where(
        (BudgetLine.id == line.id) | BudgetLine.path.startswith(f"{line.path}/"))))
    current = _Scenario("current", ControlContext(session, default_rule), line.id)
    current.ctx.prepare(scope, lock=False)
    what_if = _Scenario("proposed", ControlContext(session, default_rule), line.id)
    what_if.ctx.prepare(scope, lock=False)
    what_if.ctx.rules[line.id] = proposed
    what_if.ctx.prepare([], lock=False)  # plans again with the proposed rule (its basis lines)
    needed = set(current.ctx.balances) | set(what_if.ctx.balances)

    # Which needed lines each line's entries move: its own budget, consumption up its path.
    paths = {i: path_ids(SimpleNamespace(path=p)) for i, p in session.execute(
        select(BudgetLine.id, BudgetLine.path).where(BudgetLine.company_id == line.company_id))}
    up = {i: [a for a in p if a in needed] for i, p in paths.items()}
    relevant = sorted(i for i, targets in up.items() if targets)
    opened = datetime.combine(start, time.min, UTC)
    closed = datetime.combine(end + timedelta(days=1), time.min, UTC)
    before: dict[int, dict[Bucket, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for chunk in _chunks(relevant):
        for lid, bucket, total in session.execute(
                select(BudgetEntry.line_id, BudgetEntry.bucket, func.sum(BudgetEntry.amount))
                .where(BudgetEntry.line_id.in_(_IDS), BudgetEntry.created_at < opened)
                .group_by(BudgetEntry.line_id, BudgetEntry.bucket), {"ids": chunk}):
            _apply(before, up, lid, Bucket(bucket), total)
    for scenario in (current, what_if):
        scenario.ctx.balances = {i: Buckets(*(before[i][b] for b in Bucket)) for i in needed}
    in_scope = {ln.id: ln for ln in scope}
    replay = _Replay(in_scope, up, current, what_if)
    window = _WINDOW_PG if session.get_bind().dialect.name == "postgresql" else _WINDOW
    for chunk in _chunks(relevant):
        # Plain rows (no ORM objects), already in the order written; the window's entries
        # are read once, in one statement per few thousand lines.
        replay.runs.append(session.execute(window, {"ids": chunk, "opened": opened, "closed": closed}).all())
    requests = replay.run()
    only_old = [r for r in requests if r["proposed"]["blocked"] and not r["current"]["blocked"]]
    only_new = [r for r in requests if r["current"]["blocked"] and not r["proposed"]["blocked"]]
    warned = [r for r in requests if not r["proposed"]["blocked"] and r["proposed"]["level"] in ("warn", "block")]
    refused = [r for r in requests if r["proposed"]["blocked"]]
    return {
        "line_id": line.id, "line": line.code, "currency": line.currency, "from": start, "to": end,
        "requests": len(requests),
        "current": current.summary(), "proposed": what_if.summary(),
        "refused": {"count": len(refused), "items": refused[:LISTED]},
        "warned": {"count": len(warned), "items": warned[:LISTED]},
        "passed_only_under_current": {"count": len(only_old), "items": only_old[:LISTED]},
        "passed_only_under_proposed": {"count": len(only_new), "items": only_new[:LISTED]},
        **({"every_request": requests} if every_request else {}),
    }


def _apply(balances: dict[int, Any], up: dict[int, list[int]], line_id: int, bucket: Bucket,
           amount: Decimal) -> None:
    for target in (up.get(line_id, []) if bucket in CONSUMING else
                   [line_id] if line_id in up.get(line_id, []) else []):
        balances[target][bucket] += amount




_E, _M = BudgetEntry.__table__, BudgetMovement.__table__


def _window(amount: Any, on: Any) -> Any:
    """The window's entries of some lines, in the order written, with their movement's document."""
    return (
        select(_E.c.movement_id, _E.c.id, _E.c.line_id, _E.c.reservation_id, _E.c.bucket, amount, on,
               _M.c.document_type, _M.c.document_id)
        .join_from(_E, _M, _M.c.id == _E.c.movement_id)
        .where(_E.c.line_id.in_(_IDS), _E.c.created_at >= bindparam("opened"),
               _E.c.created_at < bindparam("closed"))
        .order_by(_E.c.movement_id, _E.c.id)
    )


_WINDOW = _window(_E.c.amount, _E.c.created_at)
# PostgreSQL: the amounts as numeric(20, 4) gives them (what Amount reads, without the
# per-value conversion) and the UTC day in place of the time: a tenth of the replay's
# time was the conversion of half a million values, done here by the server.
_WINDOW_PG = _window(type_coerce(_E.c.amount, Numeric(20, STORAGE_PLACES, asdecimal=True)),
                     cast(func.timezone("UTC", _E.c.created_at), Date))


def _day(value: date) -> date:
    return value.date() if isinstance(value, datetime) else value
_COLUMN = {b.value: n for n, b in enumerate(Bucket)}  # Buckets' fields are in Bucket's order
_CONSUMING = {b.value for b in CONSUMING}


class _Replay:
    """The window's movements replayed in order on both sides (see the module's docstring).

    Each movement is decided by :meth:`.control.ControlContext.check` with the targets
    (controlling lines and their rules) it gives for the line, worked out once per line:
    rules do not change during a replay. Balances move once per line per movement."""

    def __init__(self, in_scope: dict[int, BudgetLine], up: dict[int, list[int]],
                 current: _Scenario, what_if: _Scenario) -> None:
        self.in_scope = in_scope
        self.up = up  # consumption on a line moves these lines' balances
        self.own = {i: [i] if i in targets else [] for i, targets in up.items()}  # its budget, this one
        self.sides = (current, what_if)
        self.what_if = what_if
        self.runs: list[list[Any]] = []  # rows per chunk of lines, each in the order written
        self.requests: list[dict[str, Any]] = []

    def run(self) -> list[dict[str, Any]]:
        rows = self.runs[0] if len(self.runs) == 1 else heapq.merge(*self.runs, key=itemgetter(0, 1))
        for _movement, group in groupby(rows, key=itemgetter(0)):
            self.movement(list(group))
        return self.requests

    def movement(self, group: list[Any]) -> None:
        """Decide the movement (if it consumes in scope) on both sides, then apply its entries."""
        consumed: dict[int, Decimal] = {}
        reservations: set[int] = set()
        for _m, _i, lid, rid, bucket, amount, _on, _dt, _di in group:
            if rid is not None:
                reservations.add(rid)
            if bucket in _CONSUMING and lid in self.in_scope:
                consumed[lid] = consumed.get(lid, ZERO) + amount
        asks = [(lid, amount) for lid, amount in consumed.items() if amount > 0]
        decided: dict[str, dict[str, Any]] = {}
        last_on = _day(group[-1][6])
        deltas: dict[int, list[Decimal]] | None = None
        for side in self.sides:
            if side.skipped and not reservations.isdisjoint(side.skipped):
                continue  # a later step of a request refused earlier: it never got here
            if asks:
                outcome = decided[side.name] = self.decide(side, asks)
                if outcome["blocked"] and side is self.what_if:
                    side.skipped |= reservations  # refused: it never held anything here
                    continue
            if deltas is None:  # the same on both sides (a side that left one out skips it all)
                deltas = self.deltas(group)
            self.apply(side, deltas)
            side.watch(last_on)
        if asks and "proposed" in decided:
            first = group[0]
            self.requests.append({
                "movement_id": first[0], "document": f"{first[7]}:{first[8]}" if first[7] else None,
                "on": _day(first[6]), "lines": [self.in_scope[lid].code for lid, _ in asks],
                "amount": str(sum((a for _, a in asks), ZERO)),
                "current": decided["current"], "proposed": decided["proposed"],
            })

    def decide(self, side: _Scenario, asks: list[tuple[int, Decimal]]) -> dict[str, Any]:
        """As a reservation checks its lines: each with the earlier ones pending."""
        ctx = side.ctx
        checks: list[LineCheck] = []
        for n, (lid, amount) in enumerate(asks):
            line = self.in_scope[lid]
            targets = side.targets.get(lid)
            if targets is None:
                targets = side.targets[lid] = ctx.targets(line)
            checks += ctx.check(line, amount, targets)
            if n < len(asks) - 1:
                ctx.add_pending(line, Bucket.PRE_ENCUMBERED, amount)
        ctx.pending.clear()
        outcome = _outcome(checks)
        total = sum((a for _, a in asks), ZERO)
        if outcome["blocked"]:
            side.refused += 1
            side.refused_amount += total
        elif outcome["level"] in ("warn", "block"):
            side.warned += 1
            side.warned_amount += total
        return outcome

    def deltas(self, group: list[Any]) -> dict[int, list[Decimal]]:
        """What the movement's entries add to each needed line's buckets."""
        deltas: dict[int, list[Decimal]] = {}
        for _m, _i, lid, _rid, bucket, amount, _on, _dt, _di in group:
            column = _COLUMN[bucket]
            for target in self.up.get(lid, ()) if bucket in _CONSUMING else self.own.get(lid, ()):
                d = deltas.get(target)
                if d is None:
                    d = deltas[target] = [ZERO, ZERO, ZERO, ZERO]
                d[column] += amount
        return deltas

    @staticmethod
    def apply(side: _Scenario, deltas: dict[int, list[Decimal]]) -> None:
        balances = side.ctx.balances
        for target, d in deltas.items():
            b = balances.get(target) or Buckets()
            balances[target] = Buckets(b.budget + d[0], b.pre_encumbered + d[1], b.encumbered + d[2],
                                       b.actual + d[3])
