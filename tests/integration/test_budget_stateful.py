"""Random sequences of budget operations never break an invariant of DESIGN.md.

A hypothesis :class:`RuleBasedStateMachine` reserves (one or two lines), moves
reservations on to encumbered and actual (partly, fully, and beyond what was held),
releases (partly, fully, whole documents), adjusts budgets up and down, transfers,
changes control rules and line status, and replays earlier idempotency keys, on a
small tree: a parent with two children, and an office line in January and February
(so cumulative and annual bases meet). After every step:

- ``verify`` is clean: balances equal their entries bucket by bucket, reservations
  equal theirs, no stage is negative, closed reservations hold nothing, and every
  hard-controlled line has ``available >= -tolerance`` on its rule's basis;
- a refused operation wrote nothing; a replayed key wrote nothing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.budget.verify import verify
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetBalance, Reservation
from yinfin_flow.domain.budget import (
    CurrencyMismatch,
    InsufficientHold,
    LineClosed,
    LineOnHold,
    NegativeBudget,
    OverBudget,
)
from yinfin_flow.domain.errors import Conflict, DomainError, ValidationError

from ..conftest import _truncate_all
from ..factories import JAN, line_req, make_org
from .test_budget_errors import snapshot

FEB = date(2026, 2, 10)

# Small amounts against small budgets, so refusals are as common as successes.
amounts = st.sampled_from(["0.01", "1", "5", "9.99", "20", "33.33", "60"])
EXPECTED = (
    OverBudget, NegativeBudget, LineOnHold, LineClosed, InsufficientHold, Conflict,
    ValidationError, CurrencyMismatch,
)


class BudgetMachine(RuleBasedStateMachine):
    """Drives :class:`Budgets` on a fresh database per example (``make_db``)."""

    # A fresh database holding the tree built by :func:`seed`, and the tree's line dates.
    make_db: Callable[[], tuple[Database, dict[int, date]]]

    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.db, self.lines = type(self).make_db()  # line id -> the date a request on it uses
        self.ids = sorted(self.lines)
        self.done: list[Callable[[Budgets], Any]] = []  # successful keyed calls, to replay
        self.n = 0

    def teardown(self) -> None:
        self.db.dispose()

    # -- plumbing ----------------------------------------------------------------------

    def key(self) -> str:
        self.n += 1
        return f"k{self.n}"

    def attempt(self, call: Callable[[Budgets], Any], *, replayable: bool = True) -> Any:
        """Run ``call`` in one unit of work; a refusal must leave no trace."""
        before = snapshot(self.db)
        try:
            with self.db.unit_of_work() as s:
                result = call(Budgets(s))
        except EXPECTED:
            assert snapshot(self.db) == before, "a refused operation wrote something"
            return None
        if replayable:
            self.done.append(call)
        return result

    # -- consumption -------------------------------------------------------------------

    @rule(target=reservations, line=st.integers(0, 4), amount=amounts)
    def reserve(self, line: int, amount: str) -> Any:
        line_id = self.ids[line]
        doc = ("expense", self.key())
        key = self.key()
        r = self.attempt(lambda b: b.reserve(key, doc, [line_req(line_id, amount, on=self.lines[line_id])], actor="amy"))
        return multiple(*[(doc, v.id) for v in r.reservations]) if r else multiple()

    @rule(target=reservations, a=st.integers(0, 3), b=st.integers(0, 3), x=amounts, y=amounts)
    def reserve_two_lines(self, a: int, b: int, x: str, y: str) -> Any:
        if a == b:
            return multiple()
        la, lb = self.ids[a], self.ids[b]  # January lines: one date for both
        doc = ("procurement", self.key())
        key = self.key()
        r = self.attempt(lambda bud: bud.reserve(
            key, doc, [line_req(la, x, ref="1"), line_req(lb, y, ref="2")], actor="amy"))
        return multiple(*[(doc, v.id) for v in r.reservations]) if r else multiple()

    @rule(res=reservations, stage=st.sampled_from(["encumbered", "actual"]),
          amount=st.one_of(st.none(), amounts))
    def advance(self, res: tuple[tuple[str, str], int], stage: str, amount: str | None) -> None:
        key = self.key()
        self.attempt(lambda b: b.advance(key, res[1], stage, amount, actor="ap"))

    @rule(res=reservations, amount=st.one_of(st.none(), amounts))
    def release(self, res: tuple[tuple[str, str], int], amount: str | None) -> None:
        key = self.key()
        self.attempt(lambda b: b.release(key, [res[1]], amount, actor="amy"))

    @rule(res=consumes(reservations))
    def release_document(self, res: tuple[tuple[str, str], int]) -> None:
        key = self.key()
        self.attempt(lambda b: b.release_document(key, res[0], actor="amy", reason="withdrawn"))
        with self.db.unit_of_work(readonly=True) as s:
            held = s.scalars(select(Reservation).where(Reservation.document_id == res[0][1])).all()
        assert held and all(r.status == "closed" and r.pre_encumbered == r.encumbered == 0 for r in held)

    # -- budget journals and configuration --------------------------------------------

    @rule(line=st.integers(0, 4), amount=amounts, down=st.booleans())
    def adjust(self, line: int, amount: str, down: bool) -> None:
        key = self.key()
        value = f"-{amount}" if down else amount
        self.attempt(lambda b: b.adjust(key, self.ids[line], value, actor="cfo", reason="re-plan"))

    @rule(a=st.integers(0, 4), b=st.integers(0, 4), amount=amounts)
    def transfer(self, a: int, b: int, amount: str) -> None:
        key = self.key()
        self.attempt(lambda bud: bud.transfer(key, self.ids[a], self.ids[b], amount, actor="cfo", reason="move"))

    @rule(line=st.integers(0, 4), mode=st.sampled_from(["hard", "soft", "track", "none"]),
          basis=st.sampled_from(["period", "cumulative", "annual"]), subtree=st.booleans(),
          tol_pct=st.sampled_from([None, "10"]), tol_amt=st.sampled_from([None, "5"]))
    def set_rule(self, line: int, mode: str, basis: str, subtree: bool, tol_pct: str | None, tol_amt: str | None) -> None:
        def call(b: Budgets) -> None:
            setup.set_rule(b.session, self.ids[line], mode=mode, actor="cfo", basis=basis, subtree=subtree,
                           tolerance_percent=tol_pct, tolerance_amount=tol_amt)
        self.attempt(call, replayable=False)

    @rule(line=st.integers(0, 4), status=st.sampled_from(["open", "open", "hold", "closed"]))
    def set_status(self, line: int, status: str) -> None:
        self.attempt(lambda b: setup.set_status(b.session, self.ids[line], status), replayable=False)

    @precondition(lambda self: bool(self.done))
    @rule(pick=st.integers(0, 10**6))
    def replay_an_earlier_key(self, pick: int) -> None:
        call = self.done[pick % len(self.done)]
        before = snapshot(self.db)
        try:
            with self.db.unit_of_work() as s:
                result = call(Budgets(s))
        except DomainError as err:  # pragma: no cover - a replay must never be refused
            raise AssertionError(f"replaying a key was refused: {err.to_dict()}") from err
        assert result.replayed
        assert snapshot(self.db) == before, "replaying a key wrote something"

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def verify_is_clean(self) -> None:
        with self.db.unit_of_work(readonly=True) as s:
            problems = [str(p) for p in verify(s)]
            budgets = s.scalars(select(BudgetBalance.budget)).all()
        assert problems == []
        assert min(budgets) >= 0


def seed(db: Database) -> dict[int, date]:
    """Parent 100 ← children 60 + 60; office 50 in January and 50 in February."""
    with db.unit_of_work() as s:
        org = make_org(s, budgets=("100", "60", "60", "50"))
        feb = setup.create_line(s, company_code="ACME", period_code="2026-02", cost_centre="RD", item="OFFICE")
        Budgets(s).adjust(None, feb.id, "50", actor="cfo", reason="feb")
    return {org.parent_line: JAN, org.child_line: JAN, org.sibling_line: JAN, org.office_line: JAN, feb.id: FEB}


# Quick by default (the whole suite must stay fast); raise for a soak, e.g.
# YINFIN_STATEFUL_EXAMPLES=500 pytest tests/integration/test_budget_stateful.py
SCALE = int(os.environ.get("YINFIN_STATEFUL_EXAMPLES", "0"))

SETTINGS = dict(deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target], suppress_health_check=list(HealthCheck), derandomize=False)


def test_random_budget_operations_keep_every_invariant_sqlite(sqlite_template: Path, tmp_path: Path) -> None:
    seeded = tmp_path / "seeded.sqlite"  # seed once, copy the file per example
    shutil.copy(sqlite_template, seeded)
    template = Database(f"sqlite:///{seeded}")
    lines = seed(template)
    template.dispose()  # the last connection closing checkpoints the WAL into the file

    def make_db() -> tuple[Database, dict[int, date]]:
        path = tmp_path / f"{uuid.uuid4().hex}.sqlite"
        shutil.copy(seeded, path)
        return Database(f"sqlite:///{path}"), lines

    machine = type("SQLiteBudgetMachine", (BudgetMachine,), {"make_db": staticmethod(make_db)})
    run_state_machine_as_test(machine, settings=settings(max_examples=SCALE or 20, stateful_step_count=20, **SETTINGS))


@pytest.mark.postgres
def test_random_budget_operations_keep_every_invariant_postgres(pg_url: str) -> None:
    def make_db() -> tuple[Database, dict[int, date]]:
        db = Database(pg_url)
        _truncate_all(db)
        return db, seed(db)

    machine = type("PostgresBudgetMachine", (BudgetMachine,), {"make_db": staticmethod(make_db)})
    run_state_machine_as_test(machine, settings=settings(max_examples=max(SCALE // 4, 5), stateful_step_count=12, **SETTINGS))
