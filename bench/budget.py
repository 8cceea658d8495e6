"""Budget control speed on PostgreSQL (issue 2, "Speed").

Three figures, each on a fresh database migrated to head:

1. reservations per second, 8 client processes, each transaction one
   ``Budgets.reserve`` of one request line in its own unit of work,
   (a) spread over 1,000 lines, (b) all on one hot line;
   shown beside pgbench TPC-B and simple-update from the same run, as ratios
   (targets: (a) >= 0.5 of TPC-B, (b) >= 0.3);
2. a check of availability (``Budgets.preview``) on a line with 10,000 budget
   entries in its history and on one with 1,000,000 (target: within 1.5x),
   timed alternately so that load from elsewhere on the machine hits both alike;
3. ``verify`` over everything the run wrote, which must come back clean.

The history of (2) is loaded first and the database analysed before anything is
timed, so the reservations run against tables that hold rows, as a site's do.

Run it with ``python -m bench.budget [--quick]``; ``--help`` lists the sizes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets, LineRequest
from yinfin_flow.budget.verify import verify
from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.db.models import BudgetEntry, Reservation
from yinfin_flow.domain.budget import OverBudget

from . import baseline
from .common import (
    ClientTotals,
    Context,
    Figure,
    Report,
    Target,
    add_common_arguments,
    analyze,
    emit,
    machine_header,
    progress,
    run_clients,
    scratch_database,
    settings_from,
)
from .pgstats import seq_reads

DESCRIPTION = "budget reservations/s (spread, hot line) vs pgbench; availability check vs history"

COMPANY = "BENCH"
YEAR = 2026
BUDGET_DATE = date(YEAR, 6, 15)
ITEMS_PER_CENTRE = 10
#: Every line gets this much budget: enough that no reservation is ever refused.
LINE_BUDGET = Decimal("1000000000")
AMOUNT = "1.00"

TARGET_SPREAD = 0.5
TARGET_HOT = 0.3
TARGET_HISTORY = 1.5


@dataclass(frozen=True)
class Sizes:
    lines: int
    history_small: int
    history_large: int
    checks: int

    @classmethod
    def for_run(cls, quick: bool, args: argparse.Namespace | None = None) -> Sizes:
        base = (cls(1000, 10_000, 100_000, 100) if quick
                else cls(1000, 10_000, 1_000_000, 300))
        if args is None:
            return base
        return cls(
            lines=args.lines or base.lines,
            history_small=args.history_small or base.history_small,
            history_large=args.history_large or base.history_large,
            checks=args.checks or base.checks,
        )


# -- set-up (through the real setup and service code) ---------------------------------


@dataclass
class Org:
    spread: list[int]
    hot: int
    small: int  # gets the small history
    large: int  # gets the large history


def build_org(db: Database, n_lines: int) -> Org:
    """``n_lines`` year lines (cost centre x item), one hot line, two history lines.

    Lines are flat (no parent): the spread case should measure independent lines,
    not contention on a shared parent. Each line gets :data:`LINE_BUDGET` through
    an ``original`` budget journal, and the shipped default control (hard, warn at
    90 %, block at 100 %) applies.
    """
    centres = max(1, -(-n_lines // ITEMS_PER_CENTRE))
    with db.unit_of_work() as s:
        setup.create_company(s, COMPANY, "Benchmark Ltd", "CNY")
        setup.create_periods(s, COMPANY, YEAR, "year")
        for i in range(ITEMS_PER_CENTRE):
            setup.create_item(s, COMPANY, f"I{i:02d}", f"Item {i}")
        for c in ("HOT", "HIST", *(f"CC{c:04d}" for c in range(centres))):
            setup.create_cost_centre(s, COMPANY, c, f"Centre {c}")

    def line(s: Any, centre: str, item: str) -> int:
        ln = setup.create_line(s, company_code=COMPANY, period_code=str(YEAR),
                               cost_centre=centre, item=item)
        Budgets(s).adjust(None, ln.id, LINE_BUDGET, actor="bench", reason="benchmark budget",
                          kind="original")
        return ln.id

    spread: list[int] = []
    # Several transactions: a long single one would hold its memory to the end.
    for start in range(0, n_lines, 250):
        with db.unit_of_work() as s:
            for n in range(start, min(n_lines, start + 250)):
                spread.append(line(s, f"CC{n // ITEMS_PER_CENTRE:04d}", f"I{n % ITEMS_PER_CENTRE:02d}"))
    with db.unit_of_work() as s:
        return Org(spread, line(s, "HOT", "I00"), line(s, "HIST", "I00"), line(s, "HIST", "I01"))


# -- reservation throughput ---------------------------------------------------------


def _reserving_client(index: int, payload: dict[str, Any]) -> Callable[[int], str]:
    """In a client process: one reservation of one line per transaction."""
    db = Database(payload["url"], pool_size=1, max_overflow=0)
    lines: list[int] = payload["lines"]
    rng = random.Random(index)
    phase = payload["phase"]
    # Open the connection and warm SQLAlchemy's statement caches outside the clock.
    with db.unit_of_work(readonly=True) as s:
        Budgets(s).preview([LineRequest("1", AMOUNT, "CNY", BUDGET_DATE, line_id=lines[0])])

    def transaction(n: int) -> str:
        key = f"{phase}-{index}-{n}"
        req = LineRequest("1", AMOUNT, "CNY", BUDGET_DATE, line_id=rng.choice(lines))
        try:
            with db.unit_of_work() as s:
                Budgets(s).reserve(key, ("bench", key), [req], actor=f"client{index}")
        except OverBudget:
            return "refused"
        return "ok"

    return transaction


def reserve_rate(url: str, phase: str, lines: list[int], clients: int, duration: float) -> ClientTotals:
    return run_clients(_reserving_client, {"url": url, "lines": lines, "phase": phase},
                       clients, duration)


def _count_check(db: Database, phase: str, totals: ClientTotals) -> str | None:
    """The benchmark counts what it wrote: the database must agree."""
    with db.unit_of_work(readonly=True) as s:
        written = s.scalar(
            select(func.count()).select_from(Reservation).where(
                Reservation.idempotency_key.like(f"{phase}-%")
            )
        )
    # Clients count every transaction they finish, even one ending past the clock.
    committed = totals.outcomes["ok"]
    if written != committed:
        return f"{phase}: clients counted {committed} reservations but {written} were written"
    return None


# -- availability check against history ---------------------------------------------

# A realistic, verifiable history for one line, written in bulk: each reservation
# is reserved, then encumbered, then fully spent, as the service would have done
# (3 movements, 5 entries). Ids are allocated past the current maximum and the
# sequences moved on, so the service keeps working afterwards. Only UPDATE and
# DELETE are refused on the entries; INSERT is how every entry is written.
_HISTORY_SQL = [
    """
    INSERT INTO budget_movements (id, kind, idempotency_key, document_type, document_id,
                                  actor, created_at)
    SELECT :m0 + 3 * (k - 1) + s.n,
           (ARRAY['reserve', 'to_encumbered', 'to_actual'])[s.n],
           'hist-' || :line || '-' || k || '-' || s.n,
           'bench-history', :line || '-' || k, 'bench',
           now() - make_interval(secs => (:k1 - k))
    FROM generate_series(:k0, :k1 - 1) AS g(k) CROSS JOIN generate_series(1, 3) AS s(n)
    ORDER BY k, s.n
    """,
    """
    INSERT INTO reservations (id, idempotency_key, document_type, document_id, document_line,
                              line_id, currency, source_amount, source_currency, rate,
                              budget_date, pre_encumbered, encumbered, actual, status,
                              created_at, updated_at)
    SELECT :r0 + k, 'hist-' || :line || '-' || k || :ref_suffix, 'bench-history', :line || '-' || k,
           '1', :line, 'CNY', (k % 100) + 1, 'CNY', 1, :budget_date, 0, 0, (k % 100) + 1,
           'open', now(), now()
    FROM generate_series(:k0, :k1 - 1) AS g(k)
    """,
    """
    INSERT INTO budget_entries (movement_id, line_id, reservation_id, bucket, amount,
                                currency, created_at)
    SELECT :m0 + 3 * (k - 1) + e.n, :line, :r0 + k, e.bucket, e.sign * ((k % 100) + 1),
           'CNY', now() - make_interval(secs => (:k1 - k))
    FROM generate_series(:k0, :k1 - 1) AS g(k)
    CROSS JOIN (VALUES (1, 'pre_encumbered', 1), (2, 'pre_encumbered', -1),
                       (2, 'encumbered', 1), (3, 'encumbered', -1), (3, 'actual', 1))
               AS e(n, bucket, sign)
    ORDER BY k, e.n
    """,
    # Keep the maintained balance equal to its entries (verify checks it).
    """
    UPDATE budget_balances
    SET actual = actual + (SELECT coalesce(sum((k % 100) + 1), 0)
                           FROM generate_series(:k0, :k1 - 1) AS g(k)),
        updated_at = now()
    WHERE line_id = :line
    """,
]


def add_history(db: Database, line_id: int, entries: int) -> None:
    """Append about ``entries`` budget entries (5 per request) to ``line_id``, in bulk."""
    count = max(1, entries // 5)
    with db.unit_of_work() as s:
        m0 = s.scalar(text("SELECT coalesce(max(id), 0) FROM budget_movements"))
        r0 = s.scalar(text("SELECT coalesce(max(id), 0) FROM reservations"))
        params = {"line": line_id, "k0": 1, "k1": count + 1, "m0": m0, "r0": r0,
                  "budget_date": BUDGET_DATE, "ref_suffix": ":1"}
        for sql in _HISTORY_SQL:
            s.execute(text(sql), params)
        for table in ("budget_movements", "reservations"):
            s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT max(id) FROM {table}))"))


#: The tables every reservation writes. The trap reported beside the rates (found
#: 2026-11-26): ``ANALYZE`` of a still-empty ``reservations`` table records zero rows,
#: and each backend then caches the foreign-key check of
#: ``budget_entries.reservation_id`` as a sequential scan until the table is analysed
#: again; every reservation read every one before it, and over a 20 s run the spread
#: case fell from ~2,000 to ~1,000 tps. The run therefore loads its history (as a site
#: has it) before it analyses, and reports these tables' sequential reads.
GROWING = ("reservations", "budget_entries", "budget_movements")


def entries_on(db: Database, line_id: int) -> int:
    with db.unit_of_work(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(BudgetEntry)
                            .where(BudgetEntry.line_id == line_id)) or 0)


def time_checks(db: Database, line_ids: list[int], n: int) -> dict[int, list[float]]:
    """Milliseconds per availability check (a preview in its own read-only transaction).

    The lines take turns, in alternating order, so a burst of load from elsewhere
    on the machine lands on all of them alike instead of on one size only.
    """
    out: dict[int, list[float]] = {i: [] for i in line_ids}
    for round_ in range(n + 10):
        for line_id in line_ids if round_ % 2 else line_ids[::-1]:
            req = [LineRequest("1", AMOUNT, "CNY", BUDGET_DATE, line_id=line_id)]
            start = time.perf_counter()
            with db.unit_of_work(readonly=True) as s:
                checks = Budgets(s).preview(req)
            elapsed = (time.perf_counter() - start) * 1000
            if not checks or checks[0].blocked:
                raise RuntimeError(f"unexpected check result on line {line_id}: {checks}")
            if round_ >= 10:  # the first rounds warm the connection and caches
                out[line_id].append(elapsed)
    return out


# -- the benchmark ------------------------------------------------------------------


def run(ctx: Context, sizes: Sizes | None = None) -> Report:
    st = ctx.settings
    sizes = sizes or Sizes.for_run(st.quick)
    base = ctx.baseline()
    report = Report("budget", f"budget control on PostgreSQL ({st.clients} client processes, "
                              f"{st.duration:g} s per run)")
    problems: list[str] = []
    with scratch_database(st.pg_url, "yinfin_bench_budget") as url:
        progress("migrating a fresh database")
        upgrade(url)
        db = Database(url)
        progress(f"creating {sizes.lines} budget lines")
        org = build_org(db, sizes.lines)
        # History first, as a site has it, then ANALYZE as pgbench -i does: statistics
        # of empty tables would plan the timed runs for tables that stay empty.
        for line_id, size in ((org.small, sizes.history_small), (org.large, sizes.history_large)):
            progress(f"loading history: {size:,} entries on one line")
            add_history(db, line_id, size)
        analyze(url)

        rates = report.section(
            f"reservations/s (1 line per request; pgbench TPC-B {base.tpcb:,.0f}, "
            f"simple-update {base.simple_update:,.0f} tps)"
        )
        for phase, label, lines, target in (
            ("spread", f"(a) spread over {len(org.spread):,} lines", org.spread, TARGET_SPREAD),
            ("hot", "(b) one hot line", [org.hot], TARGET_HOT),
        ):
            progress(f"reserving: {label}")
            scanned = seq_reads(db, GROWING)
            totals = reserve_rate(url, phase, lines, st.clients, st.duration)
            tps = totals.rate("ok")
            scanned = (seq_reads(db, GROWING) - scanned) / max(1, totals.outcomes["ok"])
            rates.append(Figure(
                label, tps, "tps",
                f"= {tps / base.tpcb:.2f} x TPC-B, {tps / base.simple_update:.2f} x simple-update; "
                f"p50 {totals.latency(50):.1f} ms, p99 {totals.latency(99):.1f} ms; "
                f"refused {totals.outcomes['refused']}, errors "
                f"{sum(v for k, v in totals.outcomes.items() if k.startswith('error'))}; "
                f"{scanned:.1f} rows scanned sequentially per reservation",
            ))
            report.targets.append(Target(f"{label} / TPC-B", tps / base.tpcb, target, ">="))
            problems += [e.splitlines()[-1] for e in totals.errors[:3]]
            if scanned > 1:
                problems.append(f"{phase}: {scanned:.0f} rows of {', '.join(GROWING)} read "
                                f"sequentially per reservation (a plan made for an empty table?)")
            bad = _count_check(db, phase, totals)
            if bad:
                problems.append(bad)
        db.dispose()

        history = report.section(
            f"availability check (preview of one line), median of {sizes.checks} each"
        )
        medians: list[float] = []
        timings = time_checks(db, [org.small, org.large], sizes.checks)
        for line_id in (org.small, org.large):
            ms = timings[line_id]
            medians.append(statistics.median(ms))
            history.append(Figure(f"{entries_on(db, line_id):,} entries on the line", medians[-1],
                                  "ms", f"p95 {statistics.quantiles(ms, n=20)[-1]:.2f} ms"))
        ratio = medians[1] / medians[0]
        history.append(Figure("ratio (large / small)", ratio, "x"))
        report.targets.append(Target(
            f"check at {sizes.history_large:,} / at {sizes.history_small:,} entries",
            ratio, TARGET_HISTORY, "<="))

        progress("verify")
        started = time.perf_counter()
        with db.unit_of_work(readonly=True) as s:
            found = verify(s)
        report.section("verify over everything this run wrote").append(
            Figure("problems found", len(found), "",
                   f"in {time.perf_counter() - started:.1f} s" + (f": {found[0]}" if found else ""))
        )
        problems += [str(p) for p in found[:5]]
        db.dispose()
    report.notes += problems
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.budget", description=DESCRIPTION)
    add_common_arguments(parser)
    parser.add_argument("--lines", type=int, help="lines for the spread case (default 1000)")
    parser.add_argument("--history-small", type=int,
                        help="entries on the small-history line (default 10,000)")
    parser.add_argument("--history-large", type=int,
                        help="entries on the large-history line (default 1,000,000; --quick 100,000)")
    parser.add_argument("--checks", type=int, help="timed checks at each size (default 300)")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    sizes = Sizes.for_run(settings.quick, args)
    if sizes.lines < 1 or sizes.checks < 2 or not 5 <= sizes.history_small < sizes.history_large:
        parser.error("need --lines >= 1, --checks >= 2 and 5 <= --history-small < --history-large")
    ctx = Context(settings)
    header = machine_header(settings)
    report = run(ctx, sizes)
    emit(settings, [baseline.run(ctx), report], header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
