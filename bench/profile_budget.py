"""Load-independent cost of one budget action: client CPU, statements, round trips, lock span.

Wall-clock throughput on a shared machine mostly measures the other jobs. These
figures do not: one process runs N actions in a row and reports, per action,

- ``cpu ms``: client CPU (``time.process_time``), the Python and driver work;
- ``stmts``: SQL statements sent through SQLAlchemy (``before_cursor_execute``);
- ``trips``: round trips to the server: statements, plus ``BEGIN`` (psycopg sends
  it on its own), ``COMMIT`` and connection pings (``pool_pre_ping``);
- ``locked``: round trips made while the balance rows are locked, from the
  ``FOR UPDATE`` on (PostgreSQL) or from ``BEGIN IMMEDIATE`` on (SQLite, where
  the whole writing transaction holds the database lock), up to and including
  ``COMMIT``. This bounds a hot line: its rate is at most 1 / (locked trips);
- ``wall ms``: elapsed time, shown for reference only (load-dependent).

Run: ``python -m bench.profile_budget [--n 300] [--repeat 3] [--pg-url URL] [--profile reserve]``.
``--profile OP`` also prints the top of a cProfile of that action.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event

from yinfin_flow.budget.service import Budgets, LineRequest
from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade

from .budget import AMOUNT, BUDGET_DATE, build_org
from .common import DEFAULT_PG_URL, scratch_database


@dataclass
class Counter:
    """Counts what one engine sends; ``locked`` counts trips made under the row locks."""

    statements: int = 0
    trips: int = 0
    locked: int = 0
    _in_lock: bool = False

    def reset(self) -> None:
        self.statements = self.trips = self.locked = 0
        self._in_lock = False


def instrument(db: Database) -> Counter:
    """Count statements (engine events) and round trips.

    On PostgreSQL a round trip is one blocking exchange with the server, counted where
    psycopg makes it (``generators.execute``): a statement, ``BEGIN`` (psycopg sends
    it alone), ``COMMIT``, a ping. On SQLite every statement counts.
    """
    c = Counter()
    sqlite = db.dialect == "sqlite"

    @event.listens_for(db.engine, "before_cursor_execute")
    def _stmt(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        c.statements += 1
        if not sqlite:
            return
        c.trips += 1
        if c._in_lock:
            c.locked += 1
        if statement.startswith("BEGIN IMMEDIATE"):
            c._in_lock = True
            c.locked += 1

    @event.listens_for(db.engine, "after_cursor_execute")
    def _locked(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # A FOR UPDATE that returned no row locked nothing (the combined read of
        # budget/combined.py declines that way, e.g. for a replay). The trip that
        # carried it was counted already: it counts as locked too.
        if not c._in_lock and "FOR UPDATE" in statement and cursor.rowcount:
            c._in_lock = True
            c.locked += 1

    if sqlite:
        @event.listens_for(db.engine, "commit")
        def _commit(conn: Any) -> None:
            c.trips += 1
            if c._in_lock:
                c.locked += 1
            c._in_lock = False

        @event.listens_for(db.engine, "rollback")
        def _rollback(conn: Any) -> None:
            c.trips += 1
            c._in_lock = False
        return c

    def trip() -> None:
        c.trips += 1
        if c._in_lock:
            c.locked += 1

    # psycopg talks to the server through ``generators.execute`` (send what is queued,
    # then wait for every answer: one exchange; a statement's, BEGIN's, COMMIT's).
    # The unpatched functions are kept in case an earlier run (``--repeat``) patched them.
    import psycopg._cursor_base as cursor_base
    import psycopg.generators as generators

    execute = getattr(generators, "_uncounted_execute", generators.execute)
    generators._uncounted_execute = execute  # type: ignore[attr-defined]

    def counted_execute(pgconn: Any) -> Any:
        trip()
        return (yield from execute(pgconn))

    generators.execute = cursor_base.execute = counted_execute  # type: ignore[assignment]
    dialect = db.engine.dialect

    def unlocking(end: Callable[[Any], None]) -> Callable[[Any], None]:
        def ended(dbapi_connection: Any) -> None:
            end(dbapi_connection)
            c._in_lock = False  # the lock is gone once COMMIT / ROLLBACK has returned
        return ended

    dialect.do_commit = unlocking(dialect.do_commit)  # type: ignore[method-assign]
    dialect.do_rollback = unlocking(dialect.do_rollback)  # type: ignore[method-assign]
    return c


@dataclass
class Row:
    op: str
    cpu_ms: float
    wall_ms: float
    statements: float
    trips: float
    locked: float


def measure(op: str, n: int, action: Callable[[int], None], counter: Counter,
            profile: bool = False) -> Row:
    for i in range(min(20, n)):  # warm SQLAlchemy's caches and the connection
        action(-1 - i)
    counter.reset()
    prof = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    for i in range(n):
        action(i)
    if prof:
        prof.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(45)
    return Row(op, cpu / n * 1000, wall / n * 1000, counter.statements / n,
               counter.trips / n, counter.locked / n)


def run_on(url: str, n: int, lines: int, profile_op: str | None) -> list[Row]:
    db = Database(url)
    org = build_org(db, lines)
    counter = instrument(db)
    spread = org.spread
    rows: list[Row] = []
    reserved: dict[int, int] = {}

    def reserve(i: int) -> None:
        key = f"p-{i}"
        with db.unit_of_work() as s:
            res = Budgets(s).reserve(
                key, ("prof", key),
                [LineRequest("1", AMOUNT, "CNY", BUDGET_DATE, line_id=spread[i % len(spread)])],
                actor="profiler",
            )
        reserved[i] = res.reservations[0].id

    def reserve_hot(i: int) -> None:
        key = f"h-{i}"
        with db.unit_of_work() as s:
            Budgets(s).reserve(key, ("prof", key),
                               [LineRequest("1", AMOUNT, "CNY", BUDGET_DATE, line_id=org.hot)],
                               actor="profiler")

    def replay(i: int) -> None:
        key = f"p-{i % n}"
        with db.unit_of_work() as s:
            Budgets(s).reserve(
                key, ("prof", key),
                [LineRequest("1", AMOUNT, "CNY", BUDGET_DATE, line_id=spread[(i % n) % len(spread)])],
                actor="profiler",
            )

    def preview(i: int) -> None:
        with db.unit_of_work(readonly=True) as s:
            Budgets(s).preview([LineRequest("1", AMOUNT, "CNY", BUDGET_DATE,
                                            line_id=spread[i % len(spread)])])

    def recheck(i: int) -> None:  # what each approval step does: the request's two lines
        with db.unit_of_work(readonly=True) as s:
            Budgets(s).recheck([reserved[i % n], reserved[(i + 1) % n]])

    def advance(i: int) -> None:
        with db.unit_of_work() as s:
            Budgets(s).advance(f"a-{i}", reserved[i], "actual", actor="profiler")

    def release(i: int) -> None:
        key = f"p-{i}"
        with db.unit_of_work() as s:
            Budgets(s).release_document(f"r-{i}", ("prof", key), actor="profiler")

    for op, fn in (("reserve", reserve), ("reserve hot", reserve_hot), ("replay", replay),
                   ("preview", preview), ("recheck", recheck)):
        rows.append(measure(op, n, fn, counter, profile_op == op))
    # Advance the first half of those reservations to actual, release the rest; the
    # warm-up rounds (negative i) reuse the warm-up reservations.
    half = n // 2
    rows.append(measure("advance", half, advance, counter, profile_op == "advance"))
    rows.append(measure("release", n - half, lambda i: release(i if i < 0 else half + i),
                        counter, profile_op == "release"))
    db.dispose()
    return rows


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'profile.sqlite'}"
        upgrade(url)
        yield url


def _print(backend: str, rows: list[Row]) -> None:
    print(f"\n{backend}")
    print(f"  {'action':<12} {'cpu ms':>7} {'stmts':>6} {'trips':>6} {'locked':>7} {'wall ms':>8}")
    for r in rows:
        print(f"  {r.op:<12} {r.cpu_ms:7.2f} {r.statements:6.1f} {r.trips:6.1f} "
              f"{r.locked:7.1f} {r.wall_ms:8.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_budget", description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="actions of each kind (default 300)")
    parser.add_argument("--lines", type=int, default=50, help="lines to spread over (default 50)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--repeat", type=int, default=1,
                        help="whole runs, each on a fresh database; the least CPU and wall "
                             "time of each action is shown (default 1)")
    parser.add_argument("--only", choices=("postgresql", "sqlite"), default=None)
    parser.add_argument("--profile", default=None,
                        help="print a cProfile of one action: reserve, reserve hot, replay, "
                             "preview, recheck, advance, release")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error("--n must be at least 2")
    for backend in ("postgresql", "sqlite"):
        if args.only not in (None, backend):
            continue
        runs = []
        for _ in range(max(1, args.repeat)):
            with (scratch_database(args.pg_url, "yinfin_bench_profile") if backend == "postgresql"
                  else sqlite_url()) as url:
                if backend == "postgresql":
                    upgrade(url)
                runs.append(run_on(url, args.n, args.lines, args.profile))
        _print("PostgreSQL" if backend == "postgresql" else "SQLite", _least(runs))
    return 0


def _least(runs: list[list[Row]]) -> list[Row]:
    """Per action, the least CPU and wall time over the runs (the counts never vary)."""
    return [
        Row(rows[0].op, min(r.cpu_ms for r in rows), min(r.wall_ms for r in rows),
            rows[0].statements, rows[0].trips, rows[0].locked)
        for rows in zip(*runs, strict=True)
    ]


if __name__ == "__main__":
    raise SystemExit(main())
