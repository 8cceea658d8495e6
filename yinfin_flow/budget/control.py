"""Glue between stored lines/rules/balances and the pure control decisions.

Locking: every writer locks the ``budget_balances`` rows it reads or changes in
one statement, ordered by ``line_id``. A fixed global order means two requests
that touch the same lines in opposite orders cannot deadlock. (On SQLite the
whole writing transaction is already serialised by ``BEGIN IMMEDIATE``.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetBalance, BudgetLine, ControlRuleRow
from yinfin_flow.domain.budget import (
    DEFAULT_RULE,
    ZERO,
    Action,
    Basis,
    Bucket,
    Buckets,
    ControlRule,
    LineCheck,
    LineClosed,
    LineOnHold,
    LineStatus,
    Mode,
    Threshold,
    check_line,
    controlling_lines,
    effective_rule,
    stopping_line,
)
from yinfin_flow.domain.errors import Conflict

from .combined import PathRead
from .lookup import LineRow

# The hot-path statements are built once, with the values bound at execute time:
# building and cache-keying a fresh statement per call cost about a third of a
# reservation's client CPU (bench/README.md). Rules and balances are read as
# plain rows (no ORM identity map), so a read after locking always sees the
# latest committed values.
_rules = ControlRuleRow.__table__
_balances = BudgetBalance.__table__
_RULE_COLUMNS = (
    _rules.c.line_id, _rules.c.mode, _rules.c.tolerance_percent, _rules.c.tolerance_amount,
    _rules.c.thresholds, _rules.c.basis, _rules.c.subtree,
)
_IDS = bindparam("ids", expanding=True)
_NOT_PERIOD = _rules.c.basis != Basis.PERIOD.value
_SELECT_RULES = select(*_RULE_COLUMNS).where(_rules.c.line_id.in_(_IDS))
# The rules of ``ids`` plus, if there is one anywhere, one rule whose basis is not
# the period: the probe of :meth:`ControlContext._load_dependents` in the same trip.
_SELECT_RULES_AND_PROBE = select(*_RULE_COLUMNS).where(
    _rules.c.line_id.in_(_IDS)
    | (_rules.c.id == select(_rules.c.id).where(_NOT_PERIOD).limit(1).scalar_subquery())
)
# The re-read after locking when the probe found none: any that appeared since shows.
_SELECT_RULES_OR_NOT_PERIOD = select(*_RULE_COLUMNS).where(_rules.c.line_id.in_(_IDS) | _NOT_PERIOD)
_BALANCE_COLUMNS = (
    _balances.c.line_id, _balances.c.budget, _balances.c.pre_encumbered,
    _balances.c.encumbered, _balances.c.actual,
)
_READ_BALANCES = select(*_BALANCE_COLUMNS).where(_balances.c.line_id.in_(_IDS))
_LOCK_BALANCES = _READ_BALANCES.order_by(_balances.c.line_id).with_for_update()


def path_ids(line: BudgetLine) -> list[int]:
    """Root-first ids from the root to ``line`` itself."""
    return [int(p) for p in line.path.split("/") if p]


def require_open_path(
    line: BudgetLine | LineRow, lines: Mapping[int, Any], field: str, *, consuming: bool = True,
) -> None:
    """E3 / E4 when an ancestor of ``line`` is closed / on hold (``consuming=False``: closed only).

    ``lines``: the lines control read, every line on ``line``'s path among them
    (:meth:`.ControlContext.prepare` and :func:`.combined.lock_paths` both read
    the whole path). The error names the ancestor that decided, as
    :class:`OverBudget` names a controlling line.
    """
    path = path_ids(line)
    stop = stopping_line(path, {i: lines[i].status for i in path if i in lines}, consuming=consuming)
    if stop is None or stop[0] == line.id:  # the line's own status: checked where it is resolved
        return
    ancestor = lines[stop[0]]
    error = LineClosed if stop[1] is LineStatus.CLOSED else LineOnHold
    state = "closed" if stop[1] is LineStatus.CLOSED else "on hold"
    raise error(f"budget line {ancestor.code} is {state}, and {line.code} is under it",
                line=ancestor.code, line_id=ancestor.id, requested_line=line.code, field=field)


def rule_from_row(row: Any) -> ControlRule:
    """A :class:`ControlRule` from a ``control_rules`` row (ORM object or plain row)."""
    return ControlRule(
        mode=Mode(row.mode),
        tolerance_percent=row.tolerance_percent,
        tolerance_amount=row.tolerance_amount,
        thresholds=tuple(
            Threshold(Decimal(t["percent"]), Action(t["action"]), bool(t.get("notify", False)))
            for t in row.thresholds
        ),
        basis=Basis(row.basis),
        subtree=row.subtree,
        line_id=row.line_id,
    )


def load_rules(session: Session, line_ids: Iterable[int]) -> dict[int, ControlRule]:
    ids = set(line_ids)
    if not ids:
        return {}
    rows = session.execute(_SELECT_RULES, {"ids": sorted(ids)})
    return {r.line_id: rule_from_row(r) for r in rows}


def load_lines(session: Session, line_ids: Iterable[int]) -> dict[int, BudgetLine]:
    ids = set(line_ids)
    if not ids:
        return {}
    return {ln.id: ln for ln in session.scalars(select(BudgetLine).where(BudgetLine.id.in_(ids)))}


def basis_line_ids(session: Session, line: BudgetLine, basis: Basis) -> list[int]:
    """The lines whose buckets count for ``line`` under ``basis``.

    Same dimensions and same period granularity (a year line never adds to months).
    """
    if basis is Basis.PERIOD:
        return [line.id]
    stmt = select(BudgetLine.id).where(
        BudgetLine.series_key == line.series_key,
        BudgetLine.granularity == line.granularity,
    )
    if basis is Basis.CUMULATIVE:
        stmt = stmt.where(
            BudgetLine.fiscal_year == line.fiscal_year,
            BudgetLine.period_start <= line.period_start,
        )
    elif basis is Basis.ANNUAL:
        stmt = stmt.where(BudgetLine.fiscal_year == line.fiscal_year)
    return sorted(session.scalars(stmt)) or [line.id]


def lock_balances(session: Session, line_ids: Iterable[int]) -> dict[int, Buckets]:
    """Lock (PostgreSQL: ``FOR UPDATE``) and read balances, always in ``line_id`` order."""
    ids = sorted(set(line_ids))
    if not ids:
        return {}
    rows = session.execute(_LOCK_BALANCES, {"ids": ids})
    return {r[0]: Buckets(r[1], r[2], r[3], r[4]) for r in rows}


def read_balances(session: Session, line_ids: Iterable[int]) -> dict[int, Buckets]:
    ids = sorted(set(line_ids))
    if not ids:
        return {}
    rows = session.execute(_READ_BALANCES, {"ids": ids})
    return {r[0]: Buckets(r[1], r[2], r[3], r[4]) for r in rows}


def rollup(path: list[int], bucket: Bucket, amount: Decimal) -> dict[tuple[int, Bucket], Decimal]:
    """A consumption on ``path[-1]`` counts on that line and on every ancestor."""
    if bucket is Bucket.BUDGET:
        return {(path[-1], bucket): amount}
    return {(line_id, bucket): amount for line_id in path}


class ControlContext:
    """Rules, basis sets and locked balances for one transaction's control checks.

    Pending consumption of earlier lines in the same request is added on top, so a
    multi-line request is checked as a whole against shared parents.
    """

    def __init__(self, session: Session, default_rule: ControlRule = DEFAULT_RULE) -> None:
        self.session = session
        self.default_rule = default_rule
        self.lines: dict[int, BudgetLine] = {}
        self.rules: dict[int, ControlRule] = {}
        self.balances: dict[int, Buckets] = {}
        self.pending: dict[tuple[int, Bucket], Decimal] = defaultdict(Decimal)
        self._basis: dict[int, list[int]] = {}
        # line id -> lines of other periods whose basis includes it, with their rules
        self._dependents: dict[int, list[tuple[int, ControlRule]]] = {}
        self._rule_ids: set[int] = set()  # every line whose rule (or its absence) was read
        self._no_basis_rules = False  # a probe found no non-period rule anywhere
        self._any_basis_rule: bool | None = None  # what the probe found; None: not asked yet
        self._prepared: list[BudgetLine] = []

    def prepare(self, lines: Iterable[BudgetLine], lock: bool = True) -> None:
        """Load paths, rules and basis sets for ``lines``, then lock every balance needed.

        Rules are read before the balance rows are locked. On PostgreSQL a rule
        change that commits while this transaction waits for the locks would go
        unseen (READ COMMITTED), so once the locks are held the rules are read
        again; if they changed, everything is worked out afresh with them.
        """
        self._prepared.extend(lines)
        reader = lock_balances if lock else read_balances
        for _ in range(5):
            needed = self._plan(self._prepared)
            self.balances.update(reader(self.session, needed - set(self.balances)))
            if not lock or self.session.get_bind().dialect.name == "sqlite" or not self._rules_changed():
                return  # SQLite: BEGIN IMMEDIATE already serialised us against rule changes
            self.rules, self._basis, self._dependents = {}, {}, {}
            self._rule_ids, self._no_basis_rules, self._any_basis_rule = set(), False, None
        raise Conflict("control rules keep changing; try again")

    def adopt(self, read: PathRead) -> None:
        """Take the lines, rules and balances of one combined read (:mod:`.combined`).

        Only when no rule with another basis than the period exists (``read.basis_rules``
        is false): then checking a line needs its own path and nothing else.
        """
        assert not read.basis_rules and self.default_rule.basis is Basis.PERIOD
        self.lines.update(read.lines)
        self.rules.update((r.line_id, rule_from_row(r)) for r in read.rule_rows)
        self.balances.update(read.balances)
        self._rule_ids |= set(read.lines)
        for i in read.lines:
            self._dependents.setdefault(i, [])
        self._any_basis_rule, self._no_basis_rules = False, True

    def _plan(self, lines: list[BudgetLine]) -> set[int]:
        """Load what checking ``lines`` needs; return the ids whose balances it reads."""
        all_ids: set[int] = set()
        for ln in lines:
            all_ids.update(path_ids(ln))
            self.lines[ln.id] = ln  # the caller has these: load only their ancestors
        self.lines.update(load_lines(self.session, all_ids - set(self.lines)))
        self._load_rules(all_ids)
        needed = set(all_ids)
        for ln in lines:
            for cid, rule in controlling_lines(path_ids(ln), self.rules, self.default_rule):
                if rule.basis is not Basis.PERIOD and cid not in self._basis:
                    self._basis[cid] = basis_line_ids(self.session, self.lines[cid], rule.basis)
                needed.update(self._basis.get(cid, [cid]))
        needed.update(self._load_dependents(all_ids))
        return needed

    def _load_rules(self, ids: set[int]) -> None:
        todo = ids - self._rule_ids
        if not todo:
            return
        if self._any_basis_rule is None and self.default_rule.basis is Basis.PERIOD:
            # The first read also answers the probe of _load_dependents: one trip, not two.
            rows = list(self.session.execute(_SELECT_RULES_AND_PROBE, {"ids": sorted(todo)}))
            self._any_basis_rule = any(r.basis != Basis.PERIOD.value for r in rows)
            self.rules.update((r.line_id, rule_from_row(r)) for r in rows if r.line_id in todo)
        else:
            self.rules.update(load_rules(self.session, todo))
        self._rule_ids |= todo

    def _rules_changed(self) -> bool:
        """Whether any rule read before the locks differs now (one query)."""
        # ... or, when the probe found none, whether a non-period rule has appeared since.
        stmt = _SELECT_RULES_OR_NOT_PERIOD if self._no_basis_rules else _SELECT_RULES
        rows = list(self.session.execute(stmt, {"ids": sorted(self._rule_ids)}))
        if self._no_basis_rules and any(r.basis != Basis.PERIOD.value for r in rows):
            return True
        fresh = {r.line_id: rule_from_row(r) for r in rows if r.line_id in self._rule_ids}
        return fresh != {i: r for i, r in self.rules.items() if i in self._rule_ids}

    def _probe_basis_rules(self) -> bool:
        """Whether any rule anywhere has a basis other than the period (asked once)."""
        if self._any_basis_rule is None:
            self._any_basis_rule = self.session.scalar(
                select(ControlRuleRow.id).where(_NOT_PERIOD).limit(1)
            ) is not None
        return self._any_basis_rule

    def _load_dependents(self, line_ids: set[int]) -> set[int]:
        """Find lines of other periods whose rule's basis counts ``line_ids``; return their basis.

        A cumulative rule on February counts January's consumption and budget, so
        consuming on January (or cutting its budget) must also be checked against
        February, or February's ``available >= -tolerance`` breaks behind its back.
        Annual and overall bases are the same in both directions.
        """
        todo = [self.lines[i] for i in line_ids if i not in self._dependents]
        for x in todo:
            self._dependents[x.id] = []
        if not todo:
            return set()
        # The common case (every rule per period) costs one indexed probe, not a series scan.
        if self.default_rule.basis is Basis.PERIOD and not self._probe_basis_rules():
            self._no_basis_rules = True
            return set()
        keys = {(x.series_key, x.granularity) for x in todo}
        series = [
            o
            for o in self.session.scalars(
                select(BudgetLine).where(BudgetLine.series_key.in_({k for k, _ in keys}))
            )
            if (o.series_key, o.granularity) in keys
        ]
        self._load_rules({i for o in series for i in path_ids(o)})
        needed: set[int] = set()
        for o in series:
            rule = effective_rule(path_ids(o), self.rules, self.default_rule)
            if rule.basis is Basis.PERIOD or rule.mode is Mode.NONE:
                continue
            basis = [z.id for z in series if _in_basis(z, o, rule.basis)]
            for x in todo:
                if x.id != o.id and _in_basis(x, o, rule.basis):
                    self.lines.setdefault(o.id, o)
                    self._basis.setdefault(o.id, sorted(basis))
                    self._dependents[x.id].append((o.id, rule))
                    needed.update(self._basis[o.id])
        return needed

    def dependents(self, line_id: int) -> list[tuple[int, ControlRule]]:
        """Lines of other periods whose control counts ``line_id`` (see :meth:`prepare`)."""
        return self._dependents.get(line_id, [])

    def controlling(self, line: BudgetLine) -> list[tuple[int, ControlRule]]:
        return controlling_lines(path_ids(line), self.rules, self.default_rule)

    def effective_rule(self, line: BudgetLine) -> ControlRule:
        return self.controlling(line)[0][1]

    def buckets(self, line_id: int, basis: Basis) -> Buckets:
        ids = [line_id] if basis is Basis.PERIOD else self._basis.get(line_id, [line_id])
        pending = self.pending
        if len(ids) == 1 and not pending:  # the common case: one line, nothing pending
            return self.balances.get(ids[0]) or Buckets()
        total = Buckets()
        for i in ids:
            b = self.balances.get(i, Buckets())
            total = total + Buckets(
                b.budget + pending.get((i, Bucket.BUDGET), ZERO),
                b.pre_encumbered + pending.get((i, Bucket.PRE_ENCUMBERED), ZERO),
                b.encumbered + pending.get((i, Bucket.ENCUMBERED), ZERO),
                b.actual + pending.get((i, Bucket.ACTUAL), ZERO),
            )
        return total

    def targets(self, line: BudgetLine) -> list[tuple[int, ControlRule]]:
        """The lines consuming on ``line`` is checked against, with their rules: the line,
        every controlling ancestor, and lines of other periods whose basis (cumulative,
        annual, overall) counts the line or one of its ancestors. Lines under no control
        (mode ``none``) are left out."""
        targets = self.controlling(line)
        seen = {cid for cid, _ in targets}
        for x in path_ids(line):
            for dep, rule in self.dependents(x):
                if dep not in seen:
                    seen.add(dep)
                    targets.append((dep, rule))
        return [(cid, rule) for cid, rule in targets if rule.mode is not Mode.NONE]

    def check(self, line: BudgetLine, delta: Decimal,
              targets: list[tuple[int, ControlRule]] | None = None) -> list[LineCheck]:
        """Check consuming ``delta`` more on ``line`` against :meth:`targets` (``targets``:
        what that gave before, for a caller that checks the same line many times with the
        rules unchanged, as a replay does)."""
        out = []
        for cid, rule in self.targets(line) if targets is None else targets:
            target = self.lines[cid]
            out.append(
                check_line(
                    line_id=cid,
                    line_label=target.code,
                    rule=rule,
                    basis_buckets=self.buckets(cid, rule.basis),
                    delta=delta,
                    currency=target.currency,
                    decided_by_self=cid == line.id,
                )
            )
        return out

    def add_pending(self, line: BudgetLine, bucket: Bucket, amount: Decimal) -> None:
        for key, value in rollup(path_ids(line), bucket, amount).items():
            self.pending[key] += value


def _in_basis(z: BudgetLine, o: BudgetLine, basis: Basis) -> bool:
    """Whether line ``z`` counts towards line ``o`` under ``basis`` (same series assumed)."""
    if z.series_key != o.series_key or z.granularity != o.granularity:
        return False
    if basis is Basis.OVERALL:
        return True
    if z.fiscal_year != o.fiscal_year:
        return False
    return basis is Basis.ANNUAL or z.period_start <= o.period_start
