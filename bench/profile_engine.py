"""Load-independent figures for the engine's hot path: SQL and CPU per action.

Wall-clock rates on a shared machine mostly measure the other jobs. This script runs
the benchmark's request (submit + three approvals of ``bench/engine.py``'s 3-step
expense workflow) in ONE process, one client, and prints per action:

* SQL statements sent (a ``before_cursor_execute`` listener; BEGIN/COMMIT are not
  cursor executions, so add 2 round trips per transaction on PostgreSQL),
* the client's CPU time (``time.process_time()``), which does not depend on what else
  the machine is doing (the server's CPU is not in it),
* with ``--sql``, each statement's text once per action (what to cut next),
* with ``--profile FILE``, a cProfile of the whole run (``python -m pstats FILE``),
* the same figures for the benchmark's SpiffWorkflow client (3-step BPMN approval, its
  JSON state saved to a PostgreSQL row after each step), the comparison's yardstick.

It runs on a scratch PostgreSQL database and on a SQLite file. Usage::

    .venv/bin/python -m bench.profile_engine [--requests 60] [--sql] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.db.models.engine import ApprovalTask
from yinfin_flow.engine import service

from .common import DEFAULT_PG_URL, scratch_database
from .engine import COMPANY, ON, WORKFLOW, _meta, _spiff_client, build


class Counter_:
    """Counts statements per phase (the phase is set around each action)."""

    def __init__(self, db: Database) -> None:
        self.phase = "setup"
        self.count: Counter[str] = Counter()
        self.texts: dict[str, Counter[str]] = defaultdict(Counter)
        event.listen(db.engine, "before_cursor_execute", self._on)

    def _on(self, _conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        self.count[self.phase] += 1
        self.texts[self.phase][" ".join(statement.split())[:160]] += 1


def run(url: str, wf_dir: Path, requests: int, show_sql: bool, profiler: cProfile.Profile | None) -> dict[str, Any]:
    db = Database(url, pool_size=1, max_overflow=0)
    [line] = build(db, 1)
    counter = Counter_(db)
    form = {"manager": "mgr0", "finance": "fin0", "gm": "gm0",
            "lines": [{"ref": "1", "line_id": line, "amount": "12.34", "currency": "CNY",
                       "budget_date": str(ON)}]}
    cpu: dict[str, list[float]] = defaultdict(list)

    def one(warm: bool) -> None:
        def timed(phase: str, fn: Any) -> Any:
            counter.phase = phase if warm else "warmup"
            t0 = time.process_time()
            out = fn()
            if warm:
                cpu[phase].append(time.process_time() - t0)
            return out

        def sub() -> int:
            with db.unit_of_work() as s:
                return service.submit(s, "bench_expense", requester="req0", company=COMPANY,
                                      title="bench", form=form, directory=wf_dir).id

        rid = timed("submit", sub)
        for i, who in enumerate(("mgr0", "fin0", "gm0")):
            def appr(who: str = who) -> None:
                with db.unit_of_work() as s:  # the approver's inbox query, then approve
                    task = s.scalar(select(ApprovalTask.id).where(
                        ApprovalTask.assignee == who, ApprovalTask.status == "pending",
                        ApprovalTask.request_id == rid))
                    service.act(s, task, who, "approve")
            timed(f"approve{i + 1}", appr)

    for _ in range(3):
        one(False)
    counter.count.clear()
    if profiler:
        profiler.enable()
    for _ in range(requests):
        one(True)
    if profiler:
        profiler.disable()
    db.dispose()
    phases = ["submit", "approve1", "approve2", "approve3"]
    out = {p: (counter.count[p] / requests, statistics.mean(cpu[p]) * 1000) for p in phases}
    if show_sql:
        for p in phases:
            print(f"  -- {p}")
            for text_, n in counter.texts[p].items():
                print(f"    {n / (requests + 0):5.1f}x {text_}")
    return out


def run_spiff(url: str, requests: int) -> tuple[float, float]:
    """(statements, client CPU ms) per SpiffWorkflow request (4 transactions)."""
    setup_db = Database(url)
    _meta.create_all(setup_db.engine)
    setup_db.dispose()
    transaction = _spiff_client(0, {"url": url})
    count = [0]

    def on(*_: Any) -> None:
        count[0] += 1

    for n in range(3):
        transaction(n)
    event.listen(Engine, "before_cursor_execute", on)
    try:
        t0 = time.process_time()
        for n in range(requests):
            assert transaction(n) == "ok"
        cpu = time.process_time() - t0
    finally:
        event.remove(Engine, "before_cursor_execute", on)
    return count[0] / requests, cpu / requests * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_engine", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="timed requests per database (default 60)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--sql", action="store_true", help="print each statement per action")
    parser.add_argument("--profile", default=None, help="write a cProfile of the timed runs here")
    parser.add_argument("--only", choices=("postgresql", "sqlite"), default=None)
    args = parser.parse_args(argv)
    # CPU time, not wall time: waiting for the server is not what the profile is for.
    prof = cProfile.Profile(time.process_time) if args.profile else None
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        wf_dir = Path(tmp) / "workflows"
        wf_dir.mkdir()
        (wf_dir / "bench_expense.yaml").write_text(WORKFLOW, encoding="utf-8")
        if args.only in (None, "postgresql"):
            with scratch_database(args.pg_url, "yinfin_bench_prof") as url:
                upgrade(url)
                print("PostgreSQL")
                results["PostgreSQL"] = run(url, wf_dir, args.requests, args.sql, prof)
                spiff = run_spiff(url, args.requests)
        if args.only in (None, "sqlite"):
            url = f"sqlite:///{tmp}/prof.sqlite"
            upgrade(url)
            print("SQLite")
            results["SQLite"] = run(url, wf_dir, args.requests, args.sql, prof)
    print(f"\nper action, mean of {args.requests} requests, one process "
          "(statements = cursor executions; CPU = this client's process time)")
    print(f"{'database':<11} {'action':<9} {'statements':>10} {'client CPU ms':>14}")
    for dbname, res in results.items():
        tot_n = tot_c = 0.0
        for phase, (n, c) in res.items():
            print(f"{dbname:<11} {phase:<9} {n:>10.1f} {c:>14.2f}")
            tot_n += n
            tot_c += c
        print(f"{dbname:<11} {'request':<9} {tot_n:>10.1f} {tot_c:>14.2f}")
    if args.only in (None, "postgresql"):
        print(f"{'PostgreSQL':<11} {'Spiff req':<9} {spiff[0]:>10.1f} {spiff[1]:>14.2f}"
              "   (SpiffWorkflow 3-step, JSON state in a row; no budget)")
    if prof:
        prof.dump_stats(args.profile)
        print(f"\ncProfile written to {args.profile} (python -m pstats {args.profile})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
