"""Budget control under real concurrent clients, on PostgreSQL and on a SQLite file.

Every worker thread opens its own unit of work (its own connection and transaction);
the database does the blocking (row locks in ``line_id`` order on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so threads are real concurrent clients here. A
sampler thread on yet another connection watches ``available`` while they run.

PostgreSQL's ``max_connections`` (100 by default) is shared with other test runs,
so the 200 requests go through a pool of 32 concurrent clients rather than 200.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.budget.verify import verify
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetBalance, BudgetMovement, Reservation
from yinfin_flow.domain.budget import OverBudget

from ..factories import line_req, org_in

WORKERS = {"postgresql": 32, "sqlite": 8}


@pytest.fixture(params=["sqlite", "postgres"])
def cdb(request: pytest.FixtureRequest) -> Database:
    """A database for concurrent clients: PostgreSQL, or a SQLite *file* (WAL)."""
    name = "sqlite_db" if request.param == "sqlite" else "pg_db"
    database: Database = request.getfixturevalue(name)
    return database


def hammer(db: Database, calls: list[Callable[[Budgets], Any]]) -> Counter[str]:
    """Run ``calls`` from concurrent clients, each in its own unit of work.

    Returns how many succeeded (``ok``) and were refused (``over``); anything else
    (a deadlock, "database is locked", a unique violation) is re-raised.
    """
    start = threading.Barrier(min(WORKERS[db.dialect], len(calls)))

    def run(i: int) -> str:
        if i < start.parties:
            start.wait(timeout=30)  # let the first wave collide
        try:
            with db.unit_of_work() as s:
                calls[i](Budgets(s))
            return "ok"
        except OverBudget:
            return "over"

    with ThreadPoolExecutor(WORKERS[db.dialect]) as pool:
        return Counter(pool.map(run, range(len(calls))))


class Sampler:
    """Reads balances from its own connection while the workers run."""

    def __init__(self, db: Database, line_ids: list[int]) -> None:
        self.db, self.line_ids = db, line_ids
        self.lowest: dict[int, Decimal] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.db.unit_of_work(readonly=True) as s:
                for b in s.scalars(select(BudgetBalance).where(BudgetBalance.line_id.in_(self.line_ids))):
                    available = b.budget - b.pre_encumbered - b.encumbered - b.actual
                    self.lowest[b.line_id] = min(self.lowest.get(b.line_id, available), available)
            self.samples += 1
            # A breath between samples: a reader spinning flat out holds the GIL and, on
            # SQLite, keeps WAL checkpoints from finishing, which starves the writers.
            self._stop.wait(0.002)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def available(db: Database, line_id: int) -> Decimal:
    with db.unit_of_work(readonly=True) as s:
        b = s.get(BudgetBalance, line_id)
        assert b is not None
        return b.budget - b.pre_encumbered - b.encumbered - b.actual


def assert_verified(db: Database) -> None:
    with db.unit_of_work(readonly=True) as s:
        assert [str(p) for p in verify(s)] == []


def test_200_reservations_against_a_hard_100(cdb: Database) -> None:
    org = org_in(cdb)  # office_line: budget 100.00, hard by default, no parent
    calls = [
        (lambda b, i=i: b.reserve(f"k{i}", ("expense", str(i)), [line_req(org.office_line, "1.00")], actor="amy"))
        for i in range(200)
    ]
    with Sampler(cdb, [org.office_line]) as sampler:
        outcome = hammer(cdb, calls)
    assert outcome == Counter(ok=100, over=100)
    assert sampler.samples > 0
    assert sampler.lowest[org.office_line] >= 0
    assert available(cdb, org.office_line) == 0
    with cdb.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Reservation)) == 100
    assert_verified(cdb)


def test_a_parent_holds_when_many_children_reserve_at_once(cdb: Database) -> None:
    with cdb.unit_of_work() as s:
        setup.create_company(s, "ACME", "Acme", "CNY")
        setup.create_periods(s, "ACME", 2026, "month")
        setup.create_item(s, "ACME", "TRAVEL", "Travel")
        setup.create_cost_centre(s, "ACME", "RD", "R&D")
        parent = setup.create_line(s, company_code="ACME", period_code="2026-01", cost_centre="RD", item="TRAVEL")
        setup.set_rule(s, parent.id, mode="hard", actor="cfo")
        b = Budgets(s)
        b.adjust(None, parent.id, "100", actor="cfo", reason="budget")
        children = []
        for n in range(10):
            setup.create_cost_centre(s, "ACME", f"RD-{n}", f"Team {n}", parent="RD")
            child = setup.create_line(s, company_code="ACME", period_code="2026-01", cost_centre=f"RD-{n}",
                                      item="TRAVEL", parent_id=parent.id)
            b.adjust(None, child.id, "100", actor="cfo", reason="budget")
            children.append(child.id)
        parent_id = parent.id
    calls = [
        (lambda b, i=i: b.reserve(f"k{i}", ("expense", str(i)), [line_req(children[i % 10], "1.00")], actor="amy"))
        for i in range(200)
    ]
    with Sampler(cdb, [parent_id]) as sampler:
        outcome = hammer(cdb, calls)
    assert outcome == Counter(ok=100, over=100)
    assert sampler.lowest[parent_id] >= 0
    assert available(cdb, parent_id) == 0
    assert_verified(cdb)


def test_opposite_order_requests_never_deadlock_and_add_up(cdb: Database) -> None:
    big = ("100000", "100000", "100000", "100000")
    org = org_in(cdb, budgets=big)
    a, b_ = org.child_line, org.office_line  # two lines, one with a parent
    rounds = 40

    def forward(i: int) -> Callable[[Budgets], Any]:
        def call(b: Budgets) -> None:
            b.reserve(f"f{i}", ("expense", f"f{i}"),
                      [line_req(a, "1.00", ref="1"), line_req(b_, "2.00", ref="2")], actor="amy")
            if i % 2:  # half are withdrawn again, releasing in the other order
                b.release_document(f"f{i}:w", ("expense", f"f{i}"), actor="amy")
        return call

    def backward(i: int) -> Callable[[Budgets], Any]:
        def call(b: Budgets) -> None:
            b.reserve(f"b{i}", ("expense", f"b{i}"),
                      [line_req(b_, "2.00", ref="1"), line_req(a, "1.00", ref="2")], actor="bob")
            b.transfer(f"b{i}:t", b_, a, "0.50", actor="cfo", reason="rebalance")
        return call

    def sideways(i: int) -> Callable[[Budgets], Any]:
        def call(b: Budgets) -> None:
            b.transfer(f"s{i}:t", a, b_, "0.50", actor="cfo", reason="rebalance")
        return call

    calls: list[Callable[[Budgets], Any]] = []
    for i in range(rounds):
        calls += [forward(i), backward(i), sideways(i)]
    outcome = hammer(cdb, calls)
    assert outcome == Counter(ok=3 * rounds)
    kept_forward = rounds // 2  # the even rounds were not withdrawn
    with cdb.unit_of_work(readonly=True) as s:
        bal_a = s.get(BudgetBalance, a)
        bal_b = s.get(BudgetBalance, b_)
        bal_parent = s.get(BudgetBalance, org.parent_line)
        assert bal_a.pre_encumbered == Decimal("1.00") * (kept_forward + rounds)
        assert bal_b.pre_encumbered == Decimal("2.00") * (kept_forward + rounds)
        assert bal_parent.pre_encumbered == bal_a.pre_encumbered
        # the transfers cancel out: 0.50 each way per round
        assert (bal_a.budget, bal_b.budget) == (Decimal(100000), Decimal(100000))
    assert_verified(cdb)


def test_the_same_request_retried_concurrently_is_reserved_once(cdb: Database) -> None:
    org = org_in(cdb)
    calls = [
        (lambda b: b.reserve("same-key", ("expense", "1"), [line_req(org.child_line, "10.00")], actor="amy"))
        for _ in range(8)
    ]
    outcome = hammer(cdb, calls)
    assert outcome == Counter(ok=8)
    with cdb.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(BudgetMovement).where(BudgetMovement.kind == "reserve")) == 1
    assert available(cdb, org.child_line) == Decimal(590)
    assert_verified(cdb)


def test_a_move_uses_what_the_reservation_holds_after_the_lock_not_before(pg_db: Database) -> None:
    """The session read the reservation, someone else released part, then we advance."""
    db = pg_db
    org = org_in(db)
    with db.unit_of_work() as s:
        rid = Budgets(s).reserve("r", ("po", "1"), [line_req(org.child_line, "100")], actor="amy").reservations[0].id
    with db.unit_of_work() as s:
        b = Budgets(s)
        held = s.get(Reservation, rid)  # a caller holding the row from before the lock
        assert held is not None and held.pre_encumbered == 100

        def other_client() -> None:
            with db.unit_of_work() as s2:
                Budgets(s2).release("part", [rid], "40", actor="buyer")

        t = threading.Thread(target=other_client)
        t.start()
        t.join(timeout=30)
        b.advance("enc", rid, "encumbered", actor="buyer")  # all that is still open: 60
    with db.unit_of_work(readonly=True) as s:
        res = s.get(Reservation, rid)
        assert (res.pre_encumbered, res.encumbered) == (0, 60)
    assert_verified(db)


def _wait_until_blocked(db: Database, timeout: float = 20.0) -> None:
    """Until some other session of this database waits for a row lock."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).scalar()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the other client never blocked on the lock")


def _reserve_while_a_rule_changes(db: Database, line: int, amount: str, change: Callable[[Any], Any]) -> str:
    """Reserve ``amount`` on ``line`` while ``change`` (a rule change, which locks the
    balance rows) is in progress; the reservation waits for its row lock."""
    outcome: list[str] = []

    def reserve() -> None:
        try:
            with db.unit_of_work() as s2:
                Budgets(s2).reserve("k", ("expense", "1"), [line_req(line, amount)], actor="amy")
            outcome.append("ok")
        except OverBudget:
            outcome.append("over")

    with db.unit_of_work() as s:
        change(s)
        t = threading.Thread(target=reserve)
        t.start()
        _wait_until_blocked(db)
    t.join(timeout=30)
    assert_verified(db)
    return outcome[0]


def test_a_rule_made_hard_while_a_reservation_waits_is_obeyed(pg_db: Database) -> None:
    """The reservation read the (soft) rule, then waited for the row lock held by
    the transaction making the rule hard: it must decide with the hard rule."""
    db = pg_db
    org = org_in(db)
    with db.unit_of_work() as s:
        setup.set_rule(s, org.office_line, mode="soft", actor="cfo")
    outcome = _reserve_while_a_rule_changes(
        db, org.office_line, "150", lambda s: setup.set_rule(s, org.office_line, mode="hard", actor="cfo"),
    )
    assert outcome == "over"
    assert available(db, org.office_line) == 100


def test_a_rule_made_soft_while_a_reservation_waits_is_obeyed(pg_db: Database) -> None:
    """The other way round: a refusal under the hard rule read before the wait would
    refuse what the rule in force when the reservation decides allows."""
    db = pg_db
    org = org_in(db)
    outcome = _reserve_while_a_rule_changes(
        db, org.office_line, "150", lambda s: setup.set_rule(s, org.office_line, mode="soft", actor="cfo"),
    )
    assert outcome == "ok"
    assert available(db, org.office_line) == -50


def test_a_new_rule_on_an_ancestor_while_a_child_reserves_is_obeyed(pg_db: Database) -> None:
    """A rule row that did not exist when the reservation started (on the parent,
    which decides here) counts once it is committed before the reservation decides."""
    db = pg_db
    org = org_in(db)  # parent 1000 (default: hard), child 600
    with db.unit_of_work() as s:
        setup.set_rule(s, org.child_line, mode="soft", actor="cfo")
    outcome = _reserve_while_a_rule_changes(
        db, org.child_line, "1100", lambda s: setup.set_rule(s, org.parent_line, mode="soft", actor="cfo"),
    )
    assert outcome == "ok"
    assert available(db, org.parent_line) == -100


def test_a_replay_waits_for_no_lock(pg_db: Database) -> None:
    """A reservation retried with the same key answers from what was written; it does
    not queue behind the writers of its line."""
    db = pg_db
    org = org_in(db)
    with db.unit_of_work() as s:
        first = Budgets(s).reserve("k", ("expense", "1"), [line_req(org.office_line, "10")], actor="amy")
    with db.unit_of_work() as s:
        s.execute(select(BudgetBalance).where(BudgetBalance.line_id == org.office_line).with_for_update())
        with db.unit_of_work() as s2:
            s2.execute(text("SET LOCAL lock_timeout = '2s'"))
            again = Budgets(s2).reserve("k", ("expense", "1"), [line_req(org.office_line, "10")], actor="amy")
    assert again.replayed and again.movement_id == first.movement_id


def test_cumulative_control_holds_when_january_and_february_reserve_at_once(cdb: Database) -> None:
    """February (hard, cumulative) counts January: requests on both, concurrently,
    never spend more than January's + February's budget, nor January more than its own."""
    org = org_in(cdb)  # office_line: January, budget 100
    with cdb.unit_of_work() as s:
        feb = setup.create_line(s, company_code="ACME", period_code="2026-02", cost_centre="RD", item="OFFICE")
        Budgets(s).adjust(None, feb.id, "50", actor="cfo", reason="feb")
        for line in (org.office_line, feb.id):
            setup.set_rule(s, line, mode="hard", actor="cfo", basis="cumulative")
        feb_id = feb.id
    on_feb = date(2026, 2, 5)
    calls = [
        (lambda b, i=i: b.reserve(f"k{i}", ("expense", str(i)),
                                  [line_req(org.office_line, "1.00") if i % 2 else line_req(feb_id, "1.00", on=on_feb)],
                                  actor="amy"))
        for i in range(200)
    ]
    outcome = hammer(cdb, calls)
    assert outcome == Counter(ok=150, over=50)
    assert available(cdb, org.office_line) >= 0
    assert available(cdb, org.office_line) + available(cdb, feb_id) == 0
    assert_verified(cdb)
