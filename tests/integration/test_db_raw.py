"""Hot-path statements straight through psycopg (``yinfin_flow.db.raw``), PostgreSQL.

They must behave as statements through SQLAlchemy do (same transaction, listeners
see them, errors are SQLAlchemy's, a dropped connection heals the pool), and a
reservation stays four round trips.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine, event, exc, func, select, text

from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetMovement
from yinfin_flow.db.raw import fetch

from ..factories import line_req, org_in

pytestmark = pytest.mark.postgres


@contextmanager
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count psycopg's exchanges with the server (as ``bench/profile_budget.py`` does).

    Every exchange (a statement's, BEGIN's, COMMIT's) is one call of
    ``generators.execute``.
    """
    import psycopg._cursor_base as cursor_base
    import psycopg.generators as generators

    count = [0]
    execute = generators.execute

    def counted_execute(pgconn: Any) -> Any:
        count[0] += 1
        return (yield from execute(pgconn))

    with monkeypatch.context() as m:
        m.setattr(generators, "execute", counted_execute)
        m.setattr(cursor_base, "execute", counted_execute)
        yield count


def test_a_reservation_is_four_round_trips(pg_db: Database, monkeypatch):
    org = org_in(pg_db)
    with pg_db.unit_of_work() as s:  # warm the connection
        Budgets(s).reserve("warm", ("t", "0"), [line_req(org.child_line, "1")], actor="amy")
    with round_trips(monkeypatch) as trips, pg_db.unit_of_work() as s:
        Budgets(s).reserve("k", ("t", "1"), [line_req(org.child_line, "10")], actor="amy")
    # BEGIN, the lock-and-read, the write, COMMIT: no other read, no flush.
    assert trips[0] == 4


def test_listeners_see_the_statements_and_they_run_in_the_session_transaction(pg_db: Database):
    org = org_in(pg_db)
    seen: list[str] = []

    def on(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(pg_db.engine, "before_cursor_execute", on)
    try:
        with pytest.raises(RuntimeError), pg_db.unit_of_work() as s:
            Budgets(s).reserve("k", ("t", "1"), [line_req(org.child_line, "10")], actor="amy")
            raise RuntimeError("the caller fails after the reservation")
    finally:
        event.remove(pg_db.engine, "before_cursor_execute", on)
    assert any("FOR UPDATE OF b" in sql for sql in seen)
    assert any("INSERT INTO reservations" in sql for sql in seen)
    with pg_db.unit_of_work(readonly=True) as s:  # rolled back with the session's transaction
        assert s.scalar(select(func.count()).select_from(BudgetMovement).where(
            BudgetMovement.idempotency_key == "k")) == 0


def test_a_driver_error_is_raised_as_sqlalchemy_raises_it(pg_db: Database):
    with pytest.raises(exc.DataError), pg_db.unit_of_work() as s:
        fetch(s, "SELECT 1 / %(zero)s AS x", {"zero": 0})
    with pg_db.unit_of_work() as s:  # the connection is usable again
        assert fetch(s, "SELECT %(one)s::int AS x", {"one": 1})[0].x == 1


def test_a_connection_the_server_dropped_fails_once_then_the_pool_heals(pg_db: Database, pg_url: str):
    org = org_in(pg_db)
    db = Database(pg_db.url, pool_size=1, max_overflow=0)
    try:
        with db.unit_of_work() as s:
            first = s.scalar(text("SELECT pg_backend_pid()"))
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        admin.dispose()
        with pytest.raises(exc.OperationalError), db.unit_of_work() as s:
            Budgets(s).reserve("k", ("t", "1"), [line_req(org.child_line, "10")], actor="amy")
        with db.unit_of_work() as s:
            assert s.scalar(text("SELECT pg_backend_pid()")) != first
            Budgets(s).reserve("k", ("t", "1"), [line_req(org.child_line, "10")], actor="amy")
    finally:
        db.dispose()


_MORE_LINES = ["""
INSERT INTO budget_lines (code, name, company_id, period_id, cost_centre_id, item_id, project_id,
                          series_key, dims_key, fiscal_year, granularity, period_start, period_end,
                          parent_id, path, currency, status, owner, created_at)
SELECT code || '-' || g, name, company_id, period_id, cost_centre_id, item_id, project_id,
       series_key || '-' || g, dims_key || '-' || g, fiscal_year, granularity, period_start, period_end,
       NULL, 'x', currency, status, owner, created_at
FROM budget_lines, generate_series(1, 2000) AS g WHERE id = :line""",
    "UPDATE budget_lines SET path = CAST(id AS text) WHERE path = 'x'", """
INSERT INTO budget_balances (line_id, budget, pre_encumbered, encumbered, actual, updated_at)
SELECT id, 0, 0, 0, 0, now() FROM budget_lines WHERE id NOT IN (SELECT line_id FROM budget_balances)"""]


@pytest.mark.parametrize("lines", [1, 3])
def test_a_reservation_of_a_few_lines_is_planned_once_per_connection(pg_db: Database, lines: int):
    """The lock-and-read for a few lines binds one scalar per id: the server keeps its generic plan.

    With the ids as an array the server assumes ten of them, finds the generic plan
    dearer than a custom one for one to three ids and plans every execution again.
    """
    org = org_in(pg_db)
    with pg_db.unit_of_work() as s:  # 2,000 more lines: with the ids as an array, the
        # generic plan then looks dearer than a custom one for one id
        for sql in _MORE_LINES:
            s.execute(text(sql), {"line": org.office_line})
    db = Database(pg_db.url, pool_size=1, max_overflow=0)
    try:
        for i in range(12):  # psycopg prepares on the 5th, the server tries 5 custom plans
            with db.unit_of_work() as s:
                wanted = (org.child_line, org.sibling_line, org.office_line)[:lines]
                Budgets(s).reserve(f"k{i}", ("t", str(i)), [line_req(x, "1", ref=str(x)) for x in wanted],
                                   actor="amy")
        with db.unit_of_work() as s:
            plans = s.execute(text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE '%FOR UPDATE OF b%'")).all()
    finally:
        db.dispose()
    assert len(plans) == 1
    generic, custom = plans[0]
    assert custom <= 5 and generic >= 2


def test_the_lock_and_read_reaches_the_balances_by_their_key(pg_db: Database):
    """On an analysed table of 2,000 lines the lock-and-read scans no whole table.

    Joined to the wanted ids as a set, the planner hashed a sequential scan of every
    balance row (about 90 µs of a 1,000-line table per reservation); with the ids as
    one array it reaches balances and lines through their primary keys.
    """
    from yinfin_flow.budget.combined import _PG_SQL_SCALARS

    org = org_in(pg_db)
    with pg_db.unit_of_work() as s:
        for sql in _MORE_LINES:
            s.execute(text(sql), {"line": org.office_line})
    with pg_db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    with pg_db.unit_of_work() as s:
        rows = fetch(s, "EXPLAIN " + _PG_SQL_SCALARS[1]["lock"], {
            "line_ids": [org.child_line], "line_ids_0": org.child_line, "key": "k"})
    plan = "\n".join(row[0] for row in rows)
    assert "Seq Scan on budget_balances" not in plan, plan
    assert "Seq Scan on budget_lines" not in plan, plan
    assert "pk_budget_balances" in plan, plan


def test_each_connection_keeps_one_cursor_and_rows_keep_their_names(pg_db: Database):
    db = Database(pg_db.url, pool_size=1, max_overflow=0)
    cursors: list[Any] = []

    def on(conn: Any, cursor: Any, *args: Any) -> None:
        cursors.append(cursor)

    event.listen(db.engine, "before_cursor_execute", on)
    try:
        for n in range(3):
            with db.unit_of_work() as s:
                (a,) = fetch(s, "SELECT %(n)s::int AS n, 'x' AS tag", {"n": n})
                b = fetch(s, "SELECT g AS value, g * 2 AS \"twice it\" FROM generate_series(1, %(n)s) g", {"n": n})
            assert (a.n, a.tag, a[0]) == (n, "x", n)
            assert [(r.value, r.twice_it) for r in b] == [(g, 2 * g) for g in range(1, n + 1)]
        assert len({id(c) for c in cursors}) == 1  # one cursor for six statements on one connection
        with db.engine.connect() as conn:
            conn.invalidate()  # a new DBAPI connection gets its own cursor
        with db.unit_of_work() as s:
            assert fetch(s, "SELECT %(n)s::int AS n, 'x' AS tag", {"n": 9})[0].n == 9
        assert cursors[-1] is not cursors[0] and not cursors[-1].closed
    finally:
        event.remove(db.engine, "before_cursor_execute", on)
        db.dispose()
