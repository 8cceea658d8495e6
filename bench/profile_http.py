"""Load-independent cost of ONE HTTP approval, beside the bare one-INSERT endpoint.

``bench.http`` measures approvals/s under gunicorn, which on a shared 2-core machine
mostly measures the other jobs. This script drives the same two WSGI apps in ONE
process through Flask's test client (no server, no sockets: what is left is the
app's own work) and prints per request:

- ``cpu ms``: client CPU (``time.process_time``): Flask, marshmallow, SQLAlchemy,
  the driver;
- ``stmts``: SQL statements (``before_cursor_execute``);
- ``trips``: round trips to PostgreSQL: statements plus ``BEGIN`` (psycopg sends it
  on its own), ``COMMIT`` and ``ROLLBACK`` (none of the three on a connection in
  autocommit); ``--exact-trips`` also counts what libpq really sends (run with
  ``PSYCOPG_IMPL=python``: psycopg's pure-Python binding, patched; its CPU figures
  are then not comparable);
- ``tx``: transactions (each writing one is an fsync at COMMIT);
- ``locked``: round trips made while the audit chain's head row is locked (from the
  ``audit_head`` ``FOR UPDATE`` to the COMMIT): every approval of every worker waits
  behind these;
- ``wall ms``: elapsed, for reference only (load-dependent);
- with ``--profile``, Python function calls per request (load-independent, unlike CPU).

The approval is ``bench.http``'s: a one-step workflow whose approve re-checks the
budget, a bearer token, production settings. Usage::

    .venv/bin/python -m bench.profile_http [--n 200] [--sql] [--profile FILE] [--idempotency-key]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, select

from yinfin_flow.config import Settings
from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.db.models.engine import ApprovalTask
from yinfin_flow.engine import service
from yinfin_flow.security import tokens

from .common import DEFAULT_PG_URL, scratch_database
from .engine import COMPANY, ON, build
from .http import WORKFLOW


@dataclass
class Counter:
    statements: int = 0
    trips: int = 0
    tx: int = 0
    locked: int = 0
    in_lock: bool = False
    exact: int = 0
    texts: Tally[str] = field(default_factory=Tally)

    def reset(self) -> None:
        self.statements = self.trips = self.tx = self.locked = self.exact = 0
        self.in_lock = False
        self.texts.clear()


def count_libpq_trips(c: Counter) -> None:
    """Count every command libpq sends (psycopg's Python binding): the real round trips."""
    import psycopg

    if psycopg.pq.__impl__ != "python":
        raise SystemExit("--exact-trips needs PSYCOPG_IMPL=python in the environment")
    from psycopg.pq import pq_ctypes

    def counted(fn: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kw: Any) -> Any:
            c.exact += 1
            return fn(self, *args, **kw)
        return wrapper

    for name in ("exec_", "exec_params", "exec_prepared", "prepare", "send_query", "send_query_params",
                 "send_prepare", "send_query_prepared", "send_describe_prepared", "send_describe_portal",
                 "send_close_prepared", "send_close_portal"):
        setattr(pq_ctypes.PGconn, name, counted(getattr(pq_ctypes.PGconn, name)))


def instrument() -> Counter:
    """Count on every engine of this process (the app's and the bare app's)."""
    c = Counter()

    def stmt(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        c.statements += 1
        c.trips += 1
        c.locked += c.in_lock
        if "audit_head" in statement and "FOR UPDATE" in statement:
            c.in_lock = True
            c.locked += 1
        c.texts[" ".join(statement.split())[:150]] += 1

    def autocommit(conn: Any) -> bool:
        return bool(getattr(conn.connection.dbapi_connection, "autocommit", False))

    def begin(conn: Any) -> None:
        if not autocommit(conn):
            c.trips += 1
            c.tx += 1

    def end(conn: Any) -> None:
        if not autocommit(conn):
            c.trips += 1
        c.locked += c.in_lock
        c.in_lock = False

    event.listen(Engine, "before_cursor_execute", stmt)
    event.listen(Engine, "begin", begin)
    event.listen(Engine, "commit", end)
    event.listen(Engine, "rollback", end)
    return c


@dataclass
class Row:
    name: str
    cpu_ms: float
    wall_ms: float
    statements: float
    trips: float
    tx: float
    locked: float
    exact: float


def measure(name: str, n: int, action: Callable[[int], None], c: Counter, show_sql: bool,
            profile: str | None) -> Row:
    for i in range(20):  # warm caches (SQL compilation, definitions, imports)
        action(-1 - i)
    c.reset()
    prof = cProfile.Profile(time.process_time) if profile else None  # CPU time, not wall

    def timed() -> None:
        for i in range(n):
            action(i)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    prof.runcall(timed) if prof else timed()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if show_sql:
        print(f"-- {name}: statements per request")
        for text_, k in c.texts.most_common():
            print(f"  {k / n:5.2f}x {text_}")
    if prof and profile:
        prof.dump_stats(f"{profile}.{name}")
        stats = pstats.Stats(prof)
        stats.sort_stats("cumulative").print_stats(40)
        # Python function calls per request: a load-independent proxy for CPU work
        # (the CPU column moves by +-30 % with what else runs on this VM).
        print(f"-- {name}: {stats.total_calls / n:,.0f} Python function calls per request")  # type: ignore[attr-defined]
    return Row(name, cpu / n * 1000, wall / n * 1000, c.statements / n, c.trips / n, c.tx / n,
               c.locked / n, c.exact / n)


def approvals(url: str, wf_dir: Path, count: int, keyed: bool = False) -> tuple[Callable[[int], None], Any]:
    """Set up ``count`` pending tasks for ``mgr0`` and return the approving action."""
    from yinfin_flow.app import create_app

    db = Database(url)
    [line] = build(db, 1)
    form = {"manager": "mgr0", "lines": [{"ref": "1", "line_id": line, "amount": "1.00",
                                          "currency": "CNY", "budget_date": str(ON)}]}
    for _ in range(count):
        with db.unit_of_work() as s:
            service.submit(s, "bench_http", requester="req0", company=COMPANY, title="bench",
                           form=form, directory=wf_dir)
    with db.unit_of_work() as s:
        token = tokens.create_token(s, "mgr0", name="bench", created_by="bench").token
        task_ids = list(s.scalars(select(ApprovalTask.id).where(ApprovalTask.assignee == "mgr0")
                                  .order_by(ApprovalTask.id)))
    db.dispose()
    app = create_app(Settings(database_url=url, env="production", secret_key="bench",
                              workflows_dir=wf_dir))
    http = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    it = iter(task_ids)

    def approve(_n: int) -> None:
        task = next(it)
        key = {"Idempotency-Key": f"approve-{task}"} if keyed else {}
        r = http.post(f"/api/v1/tasks/{task}/approve", json={}, headers={**headers, **key})
        assert r.status_code == 200, r.get_data(as_text=True)

    return approve, app


def bare(url: str) -> Callable[[int], None]:
    from .bare_app import create, meta

    db = Database(url)
    meta.create_all(db.engine)
    db.dispose()
    os.environ["YINFIN_DATABASE_URL"] = url
    http = create().test_client()

    def insert(n: int) -> None:
        r = http.post("/insert", data=f"row {n}")
        assert r.status_code == 201

    return insert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_http",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="timed requests each (default 200)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--sql", action="store_true", help="print the statements per request")
    parser.add_argument("--profile", default=None,
                        help="cProfile (CPU time) of each timed run, dumped to FILE.<name>")
    parser.add_argument("--idempotency-key", action="store_true",
                        help="send a fresh Idempotency-Key with each approval (claim and answer kept)")
    parser.add_argument("--exact-trips", action="store_true",
                        help="count what libpq sends (slower binding: ignore the CPU column)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.pg_url, "yinfin_prof_http") as url:
        wf_dir = Path(tmp)
        (wf_dir / "bench_http.yaml").write_text(WORKFLOW, encoding="utf-8")
        upgrade(url)
        c = instrument()
        if args.exact_trips:
            count_libpq_trips(c)
        rows.append(measure("bare", args.n, bare(url), c, args.sql, args.profile))
        approve, _app = approvals(url, wf_dir, args.n + 20, args.idempotency_key)
        rows.append(measure("approve", args.n, approve, c, args.sql, args.profile))
    print(f"\nper request, mean of {args.n}, one process, Flask test client, PostgreSQL")
    exact = f" {'libpq':>6}" if args.exact_trips else ""
    print(f"{'request':<8} {'cpu ms':>7} {'stmts':>6} {'trips':>6}{exact} {'tx':>4} {'locked':>7} {'wall ms':>8}")
    for r in rows:
        exact = f" {r.exact:>6.1f}" if args.exact_trips else ""
        print(f"{r.name:<8} {r.cpu_ms:>7.2f} {r.statements:>6.1f} {r.trips:>6.1f}{exact} {r.tx:>4.1f} "
              f"{r.locked:>7.1f} {r.wall_ms:>8.2f}")
    b, a = rows
    print(f"approve / bare: cpu {a.cpu_ms / b.cpu_ms:.1f}x, trips {a.trips / b.trips:.1f}x; "
          f"est. cost incl. ~90 us/trip: {(a.cpu_ms + 0.09 * a.trips) / (b.cpu_ms + 0.09 * b.trips):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
