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

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetEntry, BudgetLine, BudgetMovement
from yinfin_flow.domain.budget import (
    CONSUMING,
    DEFAULT_RULE,
    HUNDRED,
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

    def rule(self) -> ControlRule:
        return self.ctx.effective_rule(self.ctx.lines[self.line_id])

    def watch(self, on: date) -> None:
        """L's utilisation and available after a movement (under its rule's basis)."""
        if self.basis is None:
            self.basis = self.rule().basis
        b = self.ctx.buckets(self.line_id, self.basis)
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


@dataclass
class _Entry:
    movement_id: int
    id: int
    line_id: int
    reservation_id: int | None
    bucket: Bucket
    amount: Decimal
    on: date
    document: str | None


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
    entries: list[_Entry] = []
    for chunk in _chunks(relevant):
        rows = session.execute(
            select(BudgetEntry.movement_id, BudgetEntry.id, BudgetEntry.line_id, BudgetEntry.reservation_id,
                   BudgetEntry.bucket, BudgetEntry.amount, BudgetEntry.created_at,
                   BudgetMovement.document_type, BudgetMovement.document_id)
            .join(BudgetMovement, BudgetMovement.id == BudgetEntry.movement_id)
            .where(BudgetEntry.line_id.in_(_IDS), BudgetEntry.created_at >= opened,
                   BudgetEntry.created_at < closed), {"ids": chunk})
        entries += [_Entry(m, i, lid, rid, Bucket(b), amt, at.date(), f"{dt}:{di}" if dt else None)
                    for m, i, lid, rid, b, amt, at, dt, di in rows]
    entries.sort(key=lambda e: (e.movement_id, e.id))  # movement by movement, each in the order written
    in_scope = {ln.id: ln for ln in scope}
    requests: list[dict[str, Any]] = []
    i = 0
    while i < len(entries):
        j = i
        while j < len(entries) and entries[j].movement_id == entries[i].movement_id:
            j += 1
        requests += _replay_movement(entries[i:j], in_scope, up, current, what_if)
        i = j
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


def _move(ctx: ControlContext, up: dict[int, list[int]], e: _Entry) -> None:
    targets = up.get(e.line_id, []) if e.bucket in CONSUMING else (
        [e.line_id] if e.line_id in up.get(e.line_id, []) else [])
    a, bucket = e.amount, e.bucket
    for t in targets:
        b = ctx.balances.get(t) or Buckets()
        ctx.balances[t] = Buckets(
            b.budget + a if bucket is Bucket.BUDGET else b.budget,
            b.pre_encumbered + a if bucket is Bucket.PRE_ENCUMBERED else b.pre_encumbered,
            b.encumbered + a if bucket is Bucket.ENCUMBERED else b.encumbered,
            b.actual + a if bucket is Bucket.ACTUAL else b.actual,
        )


def _replay_movement(group: list[_Entry], in_scope: dict[int, BudgetLine], up: dict[int, list[int]],
                     current: _Scenario, what_if: _Scenario) -> list[dict[str, Any]]:
    """Decide the movement (if it consumes in scope) on both sides, then apply its entries."""
    consumed: dict[int, Decimal] = defaultdict(Decimal)
    for e in group:
        if e.line_id in in_scope and e.bucket in CONSUMING:
            consumed[e.line_id] += e.amount
    asks = [(lid, amount) for lid, amount in consumed.items() if amount > 0]
    reservations = {e.reservation_id for e in group if e.reservation_id is not None}
    out: list[dict[str, Any]] = []
    decided: dict[str, dict[str, Any]] = {}
    for side in (current, what_if):
        if side is what_if and reservations & side.skipped:
            continue  # a later step of a request refused earlier: it never got here
        if asks:
            checks: list[LineCheck] = []
            for lid, amount in asks:  # as a reservation checks its lines: earlier ones pending
                checks += side.ctx.check(in_scope[lid], amount)
                side.ctx.add_pending(in_scope[lid], Bucket.PRE_ENCUMBERED, amount)
            side.ctx.pending.clear()
            decided[side.name] = _outcome(checks)
            total = sum((a for _, a in asks), Decimal(0))
            if decided[side.name]["blocked"]:
                side.refused += 1
                side.refused_amount += total
            elif decided[side.name]["level"] in ("warn", "block"):
                side.warned += 1
                side.warned_amount += total
        if side is what_if and decided.get(side.name, {}).get("blocked"):
            side.skipped |= reservations  # refused: it never held anything here
            continue
        for e in group:
            if e.reservation_id is None or e.reservation_id not in side.skipped:
                _move(side.ctx, up, e)
        side.watch(group[-1].on)
    if asks and "proposed" in decided:
        first = group[0]
        out.append({
            "movement_id": first.movement_id, "document": first.document, "on": first.on,
            "lines": [in_scope[lid].code for lid, _ in asks],
            "amount": str(sum((a for _, a in asks), Decimal(0))),
            "current": decided["current"], "proposed": decided["proposed"],
        })
    return out
