"""Random sequences of engine actions never break an invariant (``verify`` after each).

A hypothesis :class:`RuleBasedStateMachine` drives the shipped procurement workflow on
a small organisation: submit, approve (as the assignee, the delegator, the deputy or
the requester), reject, send back, resubmit, withdraw, a delegation window, the clock
moving on, the year-end roll with budget into 2027, issuing the PO, receiving,
invoicing in parts (or the rest) and paying. After every step ``verify`` is clean —
balances equal their entries, ended requests hold nothing, vouchers that consume budget
carry their reservations and actuals equal postings, every request in approval has a
task someone can act on, nobody approved their own request, every delegated action
lies inside its window — and a refused action wrote nothing to the budget.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.config import PROJECT_ROOT
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.domain.errors import DomainError
from yinfin_flow.engine import directory, service
from yinfin_flow.ledger import handlers, periods
from yinfin_flow.ledger.yearend import roll_forward
from yinfin_flow.verify import verify

from ..conftest import _truncate_all
from .test_budget_errors import snapshot
from .test_engine_support import world

WORKFLOWS = PROJECT_ROOT / "workflows"
START = datetime(2026, 1, 10, 9, tzinfo=UTC)
amounts = st.sampled_from(["50.00", "120.00", "199.99", "300.00", "450.00"])


def seed(db: Database) -> int:
    """The engine tests' organisation, 2027's travel lines (no budget) and books; the
    RD-APP January travel line's id (600.00 under RD's 1000.00)."""
    org = world(db)
    with db.unit_of_work() as s:
        setup.create_periods(s, "ACME", 2027, "month")
        parent = setup.create_line(s, company_code="ACME", period_code="2027-01", cost_centre="RD", item="TRAVEL")
        setup.create_line(s, company_code="ACME", period_code="2027-01", cost_centre="RD-APP", item="TRAVEL",
                          parent_id=parent.id)
        periods.open_year(s, "ACME", 2027)
    return org.child_line


class EngineMachine(RuleBasedStateMachine):
    make_db: Callable[[], tuple[Database, int]]

    def __init__(self) -> None:
        super().__init__()
        handlers.register()
        self.db, self.line = type(self).make_db()
        self.now = START
        self.requests: list[int] = []
        self.delegated = False
        self.rolled = False
        self.invoices = 0

    def teardown(self) -> None:
        self.db.dispose()

    # -- plumbing ----------------------------------------------------------------------

    def attempt(self, call: Callable[[Any], Any]) -> Any:
        """Run ``call`` in one unit of work; a refusal must leave the budget untouched."""
        before = snapshot(self.db)
        try:
            with self.db.unit_of_work() as s:
                return call(s)
        except DomainError:
            assert snapshot(self.db) == before, "a refused action wrote something"
            return None

    def pick(self, i: int, *states: str) -> ApprovalRequest | None:
        with self.db.unit_of_work(readonly=True) as s:
            found = list(s.scalars(select(ApprovalRequest).where(ApprovalRequest.state.in_(states))
                                   .order_by(ApprovalRequest.id)))
        return found[i % len(found)] if found else None

    def task(self, req: ApprovalRequest) -> ApprovalTask | None:
        with self.db.unit_of_work(readonly=True) as s:
            return s.scalar(select(ApprovalTask).where(ApprovalTask.request_id == req.id,
                                                       ApprovalTask.round == req.round,
                                                       ApprovalTask.status == "pending").order_by(ApprovalTask.id))

    # -- the requester -----------------------------------------------------------------

    @rule(amount=amounts)
    def submit(self, amount: str) -> None:
        form = {"partner": "EMP-amy", "lines": [{"ref": "1", "line_id": self.line, "amount": amount,
                                                  "currency": "CNY", "budget_date": "2026-01-15"}]}
        req = self.attempt(lambda s: service.submit(s, "procurement", requester="amy", company="ACME",
                                                    title="parts", form=form, directory=WORKFLOWS, now=self.now))
        if req is not None:
            self.requests.append(req.id)

    @rule(i=st.integers(0, 5))
    def withdraw(self, i: int) -> None:
        req = self.pick(i, "approval", "sent_back")
        if req is not None:
            self.attempt(lambda s: service.withdraw(s, req.id, "amy", now=self.now))

    @rule(i=st.integers(0, 5), amount=st.one_of(st.none(), amounts))
    def resubmit(self, i: int, amount: str | None) -> None:
        req = self.pick(i, "sent_back")
        if req is None:
            return
        changes = None if amount is None else {"lines": [{**req.form["lines"][0], "amount": amount}]}
        self.attempt(lambda s: service.resubmit(s, req.id, "amy", changes=changes, now=self.now))

    # -- approvers -----------------------------------------------------------------------

    @rule(i=st.integers(0, 5), who=st.sampled_from(["assignee", "principal", "olga", "amy"]),
          action=st.sampled_from(["approve", "approve", "reject", "send_back"]))
    def act(self, i: int, who: str, action: str) -> None:
        req = self.pick(i, "approval")
        task = self.task(req) if req is not None else None
        if req is None or task is None:
            return
        actor = {"assignee": task.assignee, "principal": task.on_behalf_of or task.assignee,
                 "olga": "olga", "amy": "amy"}[who]
        comment = "no" if action == "reject" else None
        self.attempt(lambda s: service.act(s, task.id, actor, action, comment=comment, target="submitter",
                                           now=self.now))

    @precondition(lambda self: not self.delegated)
    @rule(start=st.integers(-3, 10), days=st.integers(0, 10))
    def delegate(self, start: int, days: int) -> None:
        first = self.now.date() + timedelta(days=start)
        self.attempt(lambda s: directory.delegate(s, "wang", "olga", first, first + timedelta(days=days)))
        self.delegated = True

    @rule(days=st.integers(1, 6))
    def tick(self, days: int) -> None:
        self.now += timedelta(days=days)

    # -- finance and buyers ----------------------------------------------------------------

    @precondition(lambda self: not self.rolled)
    @rule()
    def year_end(self) -> None:
        self.attempt(lambda s: roll_forward(s, "ACME", 2026, with_budget=True, actor="cfo"))
        self.rolled = True

    @rule(i=st.integers(0, 5))
    def order_and_receive(self, i: int) -> None:
        req = self.pick(i, "approved", "ordered")
        if req is not None:
            event = "issue_po" if req.state == "approved" else "receive"
            self.attempt(lambda s: service.perform(s, req.id, event, "buyer", now=self.now))

    @rule(i=st.integers(0, 5), share=st.sampled_from([None, "0.25", "0.5"]))
    def invoice(self, i: int, share: str | None) -> None:
        req = self.pick(i, "received", "invoiced")
        if req is None:
            return
        self.invoices += 1
        data: dict[str, Any] = {"invoice": f"INV-{self.invoices}"}
        if share is not None:
            part = (Decimal(req.form["amount"]) * Decimal(share)).quantize(Decimal("0.01"))
            data["lines"] = [{"ref": "1", "amount": str(part)}]
        self.attempt(lambda s: service.perform(s, req.id, "match_invoice", "fay", data=data, now=self.now))

    @rule(i=st.integers(0, 5))
    def pay(self, i: int) -> None:
        req = self.pick(i, "invoiced")
        if req is not None:
            self.attempt(lambda s: service.perform(s, req.id, "pay", "fay", now=self.now))

    # -- after every step ------------------------------------------------------------------

    @invariant()
    def every_invariant_holds(self) -> None:
        with self.db.unit_of_work(readonly=True) as s:
            problems = verify(s)
            assert problems == [], [str(p) for p in problems]
            closed = s.scalars(select(ApprovalRequest.id).where(ApprovalRequest.state == "closed")).all()
            for rid in closed:  # a closed order holds nothing: what was not invoiced went back
                held = Budgets(s).reservations_for("procurement", str(rid))
                assert all(h.pre_encumbered == 0 and h.encumbered == 0 for h in held)


SCALE = int(os.environ.get("YINFIN_STATEFUL_EXAMPLES", "0"))
SETTINGS = dict(deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=list(HealthCheck), derandomize=False)


def test_random_engine_actions_keep_every_invariant_sqlite(sqlite_template: Path, tmp_path: Path) -> None:
    seeded = tmp_path / "seeded.sqlite"  # seed once, copy the file per example
    shutil.copy(sqlite_template, seeded)
    template = Database(f"sqlite:///{seeded}")
    line = seed(template)
    template.dispose()

    def make_db() -> tuple[Database, int]:
        path = tmp_path / f"{uuid.uuid4().hex}.sqlite"
        shutil.copy(seeded, path)
        return Database(f"sqlite:///{path}"), line

    machine = type("SQLiteEngineMachine", (EngineMachine,), {"make_db": staticmethod(make_db)})
    run_state_machine_as_test(machine, settings=settings(max_examples=SCALE or 8, stateful_step_count=18,
                                                         **SETTINGS))


@pytest.mark.postgres
def test_random_engine_actions_keep_every_invariant_postgres(pg_url: str) -> None:
    def make_db() -> tuple[Database, int]:
        db = Database(pg_url)
        _truncate_all(db)
        return db, seed(db)

    machine = type("PostgresEngineMachine", (EngineMachine,), {"make_db": staticmethod(make_db)})
    run_state_machine_as_test(machine, settings=settings(max_examples=max(SCALE // 4, 4), stateful_step_count=14,
                                                         **SETTINGS))


def test_the_machine_reaches_the_edges(sqlite_template: Path, tmp_path: Path) -> None:
    """One fixed run through the rare paths (so they are proven whatever hypothesis draws)."""
    path = tmp_path / "fixed.sqlite"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    line = seed(db)
    m = type("Fixed", (EngineMachine,), {"make_db": staticmethod(lambda: (db, line))})()
    m.delegate(start=0, days=3)
    for amount in ("120.00", "199.99", "50.00"):
        m.submit(amount)
    m.act(i=0, who="olga", action="approve")  # wang's task, made inside the window: on his behalf
    m.act(i=0, who="assignee", action="approve")
    m.act(i=1, who="principal", action="send_back")
    m.resubmit(i=0, amount="60.00")
    m.act(i=2, who="amy", action="approve")  # refused: nobody approves their own request
    m.tick(5)
    m.act(i=0, who="olga", action="approve")  # refused: the window is over
    for _ in range(12):  # after the window, the delegator's own tasks are his again
        m.act(i=0, who="principal", action="approve")
    assert m.pick(0, "approval") is None
    for _ in range(2):
        for i in range(3):
            m.order_and_receive(i)
    m.invoice(i=0, share="0.5")
    m.year_end()
    m.invoice(i=0, share="0.25")
    m.invoice(i=1, share=None)
    m.pay(i=0)
    m.every_invariant_holds()
    with db.unit_of_work(readonly=True) as s:
        states = sorted(s.scalars(select(ApprovalRequest.state)).all())
    assert "closed" in states and "invoiced" in states
    m.teardown()
