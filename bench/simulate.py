"""What-if simulation speed on PostgreSQL (issue 15, "What-if simulation").

One subtree: a parent line with :data:`CHILDREN` children, each with a budget that the
history wears through (so thresholds are crossed and the two rules decide differently).
The history, written in bulk as :mod:`bench.budget` writes its own, is ``requests``
requests on the children (100,000; ``--quick`` 10,000) over the last eleven months,
each reserved, encumbered and spent (3 movements and 5 budget entries per request).

Timed: :func:`yinfin_flow.budget.simulation.simulate` of a proposed rule on the parent
(hard, with its subtree, warn at 80 %, block at 95 %) over the default window, in a
read-only transaction, as ``POST /api/v1/budget/lines/{id}/simulate`` runs it (minus
HTTP and JSON). Target: at most 5 s. Run it with ``python -m bench.simulate [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.budget.simulation import simulate
from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade

from .common import (
    Context,
    Figure,
    Report,
    Target,
    add_common_arguments,
    analyze,
    emit,
    machine_header,
    progress,
    scratch_database,
    settings_from,
)

DESCRIPTION = "what-if simulation of a rule on a subtree with 100,000 requests in its window (target <= 5 s)"

COMPANY = "BENCH"
CHILDREN = 20
TARGET_SECONDS = 5.0
RUNS = 3
PROPOSED: dict[str, Any] = {"mode": "hard", "subtree": True,
                            "thresholds": [{"percent": "80", "action": "warn"},
                                           {"percent": "95", "action": "block"}]}

# 3 movements, 1 reservation and 5 entries per request, spread over the children in
# turn, one request every ``gap`` seconds up to now (ids past the current maximum;
# sequences moved on afterwards). ``amount(k)`` = (k % 100) + 1, 50.5 on average.
_HISTORY_SQL = [
    """
    INSERT INTO budget_movements (id, kind, idempotency_key, document_type, document_id,
                                  actor, created_at)
    SELECT :m0 + 3 * (k - 1) + s.n,
           (ARRAY['reserve', 'to_encumbered', 'to_actual'])[s.n],
           'sim-' || k || '-' || s.n, 'expense', 'sim-' || k, 'bench',
           now() - make_interval(secs => (:k1 - k) * :gap) + make_interval(secs => s.n * 0.001)
    FROM generate_series(1, :k1 - 1) AS g(k) CROSS JOIN generate_series(1, 3) AS s(n)
    ORDER BY k, s.n
    """,
    """
    INSERT INTO reservations (id, idempotency_key, document_type, document_id, document_line,
                              line_id, currency, source_amount, source_currency, rate,
                              budget_date, pre_encumbered, encumbered, actual, status,
                              created_at, updated_at)
    SELECT :r0 + k, 'sim-' || k || :suffix, 'expense', 'sim-' || k, '1',
           (CAST(:lines AS bigint[]))[1 + k % :n], 'CNY', (k % 100) + 1, 'CNY', 1, :budget_date,
           0, 0, (k % 100) + 1, 'open', now(), now()
    FROM generate_series(1, :k1 - 1) AS g(k)
    """,
    """
    INSERT INTO budget_entries (movement_id, line_id, reservation_id, bucket, amount,
                                currency, created_at)
    SELECT :m0 + 3 * (k - 1) + e.n, (CAST(:lines AS bigint[]))[1 + k % :n], :r0 + k, e.bucket,
           e.sign * ((k % 100) + 1), 'CNY',
           now() - make_interval(secs => (:k1 - k) * :gap) + make_interval(secs => e.n * 0.001)
    FROM generate_series(1, :k1 - 1) AS g(k)
    CROSS JOIN (VALUES (1, 'pre_encumbered', 1), (2, 'pre_encumbered', -1),
                       (2, 'encumbered', 1), (3, 'encumbered', -1), (3, 'actual', 1))
               AS e(n, bucket, sign)
    ORDER BY k, e.n
    """,
    """
    UPDATE budget_balances b SET actual = b.actual + t.total, updated_at = now()
    FROM (SELECT (CAST(:lines AS bigint[]))[1 + k % :n] AS line_id, sum((k % 100) + 1) AS total
          FROM generate_series(1, :k1 - 1) AS g(k) GROUP BY 1) AS t
    WHERE b.line_id = t.line_id
    """,
]


def build(db: Database, requests: int) -> int:
    """The subtree and its history; returns the parent line's id."""
    year = datetime.now(UTC).year
    with db.unit_of_work() as s:
        setup.create_company(s, COMPANY, "Benchmark Ltd", "CNY")
        setup.create_periods(s, COMPANY, year, "year")
        setup.create_item(s, COMPANY, "TRAVEL", "Travel")
        setup.create_cost_centre(s, COMPANY, "HQ", "Head office")
        for c in range(CHILDREN):
            setup.create_cost_centre(s, COMPANY, f"D{c:02d}", f"Department {c}")
    with db.unit_of_work() as s:
        parent = setup.create_line(s, company_code=COMPANY, period_code=str(year), cost_centre="HQ",
                                   item="TRAVEL")
        # Each child's budget is worn through at about 90 % of the window: its last
        # tenth crosses the thresholds (both rules decide there, and differently).
        per_child = Decimal(int(requests * 50.5 / CHILDREN / 0.9))
        Budgets(s).adjust(None, parent.id, per_child * CHILDREN, actor="bench", reason="bench",
                          kind="original")
        children = []
        for c in range(CHILDREN):
            ln = setup.create_line(s, company_code=COMPANY, period_code=str(year), cost_centre=f"D{c:02d}",
                                   item="TRAVEL", parent_id=parent.id)
            Budgets(s).adjust(None, ln.id, per_child, actor="bench", reason="bench", kind="original")
            children.append(ln.id)
        parent_id = parent.id
    with db.unit_of_work() as s:
        m0 = s.scalar(text("SELECT coalesce(max(id), 0) FROM budget_movements"))
        r0 = s.scalar(text("SELECT coalesce(max(id), 0) FROM reservations"))
        params = {"m0": m0, "r0": r0, "k1": requests + 1, "lines": children, "n": len(children),
                  "gap": 330 * 86400 / requests, "budget_date": date(year, 6, 15), "suffix": ":1"}
        for sql in _HISTORY_SQL:
            s.execute(text(sql), params)
        for table in ("budget_movements", "reservations"):
            s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT max(id) FROM {table}))"))
    return parent_id


def run(ctx: Context, requests: int | None = None) -> Report:
    st = ctx.settings
    requests = requests or (10_000 if st.quick else 100_000)
    report = Report("simulate", f"what-if simulation on PostgreSQL ({requests:,} requests on a subtree "
                                f"of {CHILDREN} lines, best and median of {RUNS})")
    with scratch_database(st.pg_url, "yinfin_bench_simulate") as url:
        progress("migrating a fresh database")
        upgrade(url)
        db = Database(url)
        progress(f"loading {requests:,} requests of history")
        parent = build(db, requests)
        db.dispose()
        analyze(url)
        seconds: list[float] = []
        result: dict[str, Any] = {}
        for n in range(RUNS):
            progress(f"simulating ({n + 1} of {RUNS})")
            started = time.perf_counter()
            with db.unit_of_work(readonly=True) as s:
                result = simulate(s, parent, PROPOSED)
            seconds.append(time.perf_counter() - started)
        db.dispose()
    figures = report.section("POST …/simulate's work (in process, read-only transaction)")
    figures.append(Figure("simulation of a rule on the subtree's parent", statistics.median(seconds), "s",
                          f"best {min(seconds):.2f} s; {result['requests']:,} requests replayed, "
                          f"{result['refused']['count']:,} refused and {result['warned']['count']:,} "
                          f"warned under the proposed rule"))
    if result["requests"] != requests:
        report.notes.append(f"{requests:,} requests written but {result['requests']:,} replayed")
    report.targets.append(Target(f"seconds for {requests:,} requests (median)", statistics.median(seconds),
                                 TARGET_SECONDS, "<="))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=DESCRIPTION)
    add_common_arguments(parser)
    parser.add_argument("--requests", type=int, help="requests of history (default 100,000; --quick 10,000)")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    ctx = Context(settings)
    header = machine_header(settings)
    report = run(ctx, args.requests)
    emit(settings, [report], header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
