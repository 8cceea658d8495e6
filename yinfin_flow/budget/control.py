"""Glue between stored lines/rules/balances and the pure control decisions.

Locking: every writer locks the ``budget_balances`` rows it reads or changes in
one statement, ordered by ``line_id``. A fixed global order means two requests
that touch the same lines in opposite orders cannot deadlock. (On SQLite the
whole writing transaction is already serialised by ``BEGIN IMMEDIATE``.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetBalance, BudgetLine, ControlRuleRow
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.budget import (
    DEFAULT_RULE,
    Action,
    Basis,
    Bucket,
    Buckets,
    ControlRule,
    LineCheck,
    Mode,
    Threshold,
    check_line,
    controlling_lines,
    effective_rule,
)
from yinfin_flow.domain.errors import Conflict, ValidationError
from yinfin_flow.domain.money import MAX_AMOUNT


def path_ids(line: BudgetLine) -> list[int]:
    """Root-first ids from the root to ``line`` itself."""
    return [int(p) for p in line.path.split("/") if p]


def rule_from_row(row: ControlRuleRow) -> ControlRule:
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
    # populate_existing: a re-read after locking must see rows changed meanwhile,
    # not the copies already in the session.
    rows = session.scalars(
        select(ControlRuleRow)
        .where(ControlRuleRow.line_id.in_(ids))
        .execution_options(populate_existing=True)
    )
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
    rows = session.execute(
        select(
            BudgetBalance.line_id,
            BudgetBalance.budget,
            BudgetBalance.pre_encumbered,
            BudgetBalance.encumbered,
            BudgetBalance.actual,
        )
        .where(BudgetBalance.line_id.in_(ids))
        .order_by(BudgetBalance.line_id)
        .with_for_update()
    )
    return {r[0]: Buckets(r[1], r[2], r[3], r[4]) for r in rows}


def read_balances(session: Session, line_ids: Iterable[int]) -> dict[int, Buckets]:
    ids = sorted(set(line_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(
            BudgetBalance.line_id,
            BudgetBalance.budget,
            BudgetBalance.pre_encumbered,
            BudgetBalance.encumbered,
            BudgetBalance.actual,
        ).where(BudgetBalance.line_id.in_(ids))
    )
    return {r[0]: Buckets(r[1], r[2], r[3], r[4]) for r in rows}


def apply_to_balances(session: Session, deltas: dict[tuple[int, Bucket], Decimal]) -> None:
    """Add ``deltas`` (already rolled up to ancestors) to the balance rows.

    A bucket may never leave ``±MAX_AMOUNT``: past it SQLite's scaled integers
    would overflow (silently, into floats) and PostgreSQL's ``Numeric(20, 4)``
    would refuse. The check reads back what the UPDATE wrote, so the caller's
    transaction rolls the whole action back.
    """
    by_line: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for (line_id, bucket), amount in deltas.items():
        if amount:
            by_line[line_id][bucket.value] = amount
    now = utcnow()
    table = BudgetBalance.__table__
    for line_id, changes in sorted(by_line.items()):
        values: dict[str, Any] = {k: table.c[k] + v for k, v in changes.items()}
        values["updated_at"] = now
        cols = [table.c[k] for k in changes]
        row = session.execute(
            update(table).where(table.c.line_id == line_id).values(**values).returning(*cols)
        ).one()
        for name, value in zip(changes, row, strict=True):
            if abs(value) >= MAX_AMOUNT:
                raise ValidationError(
                    "amount",
                    f"the {name} of budget line {line_id} would reach {value}, "
                    f"beyond the largest amount kept ({MAX_AMOUNT})",
                    line_id=line_id,
                )


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
            self._rule_ids, self._no_basis_rules = set(), False
        raise Conflict("control rules keep changing; try again")

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
        if todo:
            self.rules.update(load_rules(self.session, todo))
            self._rule_ids |= todo

    def _rules_changed(self) -> bool:
        """Whether any rule read before the locks differs now (one query)."""
        where = ControlRuleRow.line_id.in_(self._rule_ids)
        if self._no_basis_rules:  # ... or a non-period rule has appeared since the probe
            where = where | (ControlRuleRow.basis != Basis.PERIOD.value)
        rows = list(
            self.session.scalars(
                select(ControlRuleRow).where(where).execution_options(populate_existing=True)
            )
        )
        if self._no_basis_rules and any(r.basis != Basis.PERIOD.value for r in rows):
            return True
        fresh = {r.line_id: rule_from_row(r) for r in rows if r.line_id in self._rule_ids}
        return fresh != {i: r for i, r in self.rules.items() if i in self._rule_ids}

    def _any_basis_rule(self) -> bool:
        return self.session.scalar(
            select(ControlRuleRow.id).where(ControlRuleRow.basis != Basis.PERIOD.value).limit(1)
        ) is not None

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
        if self.default_rule.basis is Basis.PERIOD and not self._any_basis_rule():
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
        total = Buckets()
        for i in ids:
            b = self.balances.get(i, Buckets())
            total = total + Buckets(
                b.budget + self.pending[(i, Bucket.BUDGET)],
                b.pre_encumbered + self.pending[(i, Bucket.PRE_ENCUMBERED)],
                b.encumbered + self.pending[(i, Bucket.ENCUMBERED)],
                b.actual + self.pending[(i, Bucket.ACTUAL)],
            )
        return total

    def check(self, line: BudgetLine, delta: Decimal) -> list[LineCheck]:
        """Check consuming ``delta`` more on ``line`` against it and every controlling ancestor.

        Also against lines of other periods whose basis (cumulative, annual, overall)
        counts the line or one of its ancestors.
        """
        out = []
        targets = self.controlling(line)
        seen = {cid for cid, _ in targets}
        for x in path_ids(line):
            for dep, rule in self.dependents(x):
                if dep not in seen:
                    seen.add(dep)
                    targets.append((dep, rule))
        for cid, rule in targets:
            if rule.mode is Mode.NONE:
                continue
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
