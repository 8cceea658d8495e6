"""Finance reads at a site's size (issue 15, "Speed"): the budget tree, a line, budget
vs actual for a year and a voucher, on PostgreSQL.

The demo organisation (company ACME, its accounts and periods) plus, in bulk:
:data:`LINES` year lines (cost centres of eight items each, the first item's line the
parent of the others), 1,000,000 budget entries on them (each request reserved,
encumbered and spent: 3 movements, 5 entries; ``--quick`` 100,000) with the balances
moved on to match, and 100,000 two-line vouchers (``--quick`` 10,000) across the
year's months. Then ``ANALYZE``.

Each read in :data:`READS` is timed with the Flask test client in process (server time),
signed in as fiona (finance) through the console's session; p95 of ``n`` after warm-up.
A console page in the list is measured once the app registers its URL; until then the
API read behind it stands in. Run it with ``python -m bench.finance [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from werkzeug.exceptions import MethodNotAllowed, NotFound

from yinfin_flow.app import create_app
from yinfin_flow.budget import setup
from yinfin_flow.config import Settings
from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.db.models import BudgetLine
from yinfin_flow.demo import loaders
from yinfin_flow.demo.budgets import COMPANY, ITEMS
from yinfin_flow.extension import state

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
from .console import p95, signed_in, timed_gets

DESCRIPTION = "finance reads: budget tree, a line, budget vs actual, a voucher (5,000 lines, 1M entries, 100k vouchers)"

LINES = 5000
ENTRIES = 1_000_000
VOUCHERS = 100_000

#: (what, URL, target ms). ``{year}``, ``{line}``, ``{company}`` and ``{document}`` are
#: filled in. A console page counts once its URL is in the app's url_map; the API read
#: behind it is measured beside it (and alone until then).
READS: list[tuple[str, str, float]] = [
    ("budget tree (page)", "/finance/budget?period={year}", 300),
    ("budget tree (API)", "/api/v1/budget/tree?company={company}&period={year}", 300),
    ("line page", "/finance/budget/lines/{line}", 150),
    ("line (API)", "/api/v1/budget/lines/{line}", 150),
    ("line entries (API)", "/api/v1/budget/lines/{line}/entries", 150),
    ("budget vs actual for a year (page)", "/finance/reports/budget-vs-actual?year={year}", 1000),
    ("budget vs actual for a year (API)", "/api/v1/reports/budget-vs-actual?company={company}&year={year}", 1000),
    ("voucher page", "/finance/vouchers/{voucher}", 100),
    ("voucher (API)", "/api/v1/journal/entries/{voucher}", 100),
]

# Each request on a line: reserve, encumber, spend (3 movements, 1 reservation, 5 entries).
_HISTORY_SQL = [
    """
    INSERT INTO budget_movements (id, kind, idempotency_key, document_type, document_id, actor, created_at)
    SELECT :m0 + 3 * (k - 1) + s.n, (ARRAY['reserve', 'to_encumbered', 'to_actual'])[s.n],
           'fin-' || k || '-' || s.n, 'expense', 'fin-' || k, 'bench',
           now() - make_interval(secs => (:k1 - k) * :gap)
    FROM generate_series(1, :k1 - 1) AS g(k) CROSS JOIN generate_series(1, 3) AS s(n)
    """,
    """
    INSERT INTO reservations (id, idempotency_key, document_type, document_id, document_line, line_id,
                              currency, source_amount, source_currency, rate, budget_date,
                              pre_encumbered, encumbered, actual, status, created_at, updated_at)
    SELECT :r0 + k, 'fin-' || k || :suffix, 'expense', 'fin-' || k, '1',
           (CAST(:lines AS bigint[]))[1 + k % :n], 'CNY', (k % 100) + 1, 'CNY', 1, :on,
           0, 0, (k % 100) + 1, 'open', now(), now()
    FROM generate_series(1, :k1 - 1) AS g(k)
    """,
    """
    INSERT INTO budget_entries (movement_id, line_id, reservation_id, bucket, amount, currency, created_at)
    SELECT :m0 + 3 * (k - 1) + e.n, (CAST(:lines AS bigint[]))[1 + k % :n], :r0 + k, e.bucket,
           e.sign * ((k % 100) + 1), 'CNY', now() - make_interval(secs => (:k1 - k) * :gap)
    FROM generate_series(1, :k1 - 1) AS g(k)
    CROSS JOIN (VALUES (1, 'pre_encumbered', 1), (2, 'pre_encumbered', -1), (2, 'encumbered', 1),
                       (3, 'encumbered', -1), (3, 'actual', 1)) AS e(n, bucket, sign)
    """,
    # the spending, on each line and rolled up to its parent, as the service keeps them
    """
    UPDATE budget_balances b SET actual = b.actual + t.total, updated_at = now()
    FROM (SELECT x.line_id, sum(x.total) AS total FROM (
            SELECT l.id AS line_id, s.total FROM budget_lines l JOIN (
                SELECT (CAST(:lines AS bigint[]))[1 + k % :n] AS line_id, sum((k % 100) + 1) AS total
                FROM generate_series(1, :k1 - 1) AS g(k) GROUP BY 1) s ON s.line_id = l.id
            UNION ALL
            SELECT l.parent_id, s.total FROM budget_lines l JOIN (
                SELECT (CAST(:lines AS bigint[]))[1 + k % :n] AS line_id, sum((k % 100) + 1) AS total
                FROM generate_series(1, :k1 - 1) AS g(k) GROUP BY 1) s ON s.line_id = l.id
            WHERE l.parent_id IS NOT NULL) x GROUP BY x.line_id) t
    WHERE b.line_id = t.line_id
    """,
]

# Two-line vouchers (expense debit, payable credit) spread over the year's months.
_VOUCHERS_SQL = [
    """
    INSERT INTO journal_entries (id, idempotency_key, company_id, period_id, voucher_word, voucher_number,
                                 posting_date, document_date, template, document_type, document_id, summary,
                                 currency, content_hash, posted_by, posted_at)
    SELECT :j0 + k, 'fin-voucher-' || k, :company_id, p.id, '记', 1000000 + k, p.start_date, p.start_date,
           'expense', 'expense', 'fin-' || k, '报销 expense ' || k, 'CNY', md5(k::text), 'bench', now()
    FROM generate_series(1, :v) AS g(k)
    JOIN accounting_periods p ON p.id = (CAST(:periods AS bigint[]))[1 + k % :np]
    """,
    """
    INSERT INTO journal_lines (entry_id, line_no, kind, account_id, debit, credit, currency, amount, rate,
                               cost_centre_id, memo)
    SELECT :j0 + k, s.n, 'normal', CASE s.n WHEN 1 THEN :debit ELSE :credit END,
           CASE s.n WHEN 1 THEN (k % 100) + 1 ELSE 0 END, CASE s.n WHEN 2 THEN (k % 100) + 1 ELSE 0 END,
           'CNY', CASE s.n WHEN 1 THEN (k % 100) + 1 ELSE -((k % 100) + 1) END, 1,
           (CAST(:centres AS bigint[]))[1 + k % :nc], 'taxi'
    FROM generate_series(1, :v) AS g(k) CROSS JOIN generate_series(1, 2) AS s(n)
    """,
]


def build(db: Database, entries: int, vouchers: int) -> dict[str, Any]:
    year = datetime.now(UTC).year
    with db.unit_of_work() as s:
        for _name, load in loaders():
            load(s)
    items = [code for code, *_ in ITEMS][:8]
    centres = LINES // len(items)
    for start in range(0, centres, 50):
        with db.unit_of_work() as s:
            for c in range(start, min(centres, start + 50)):
                cc = f"B{c:04d}"
                setup.create_cost_centre(s, COMPANY, cc, f"Bench centre {c}")
                parent = setup.create_line(s, company_code=COMPANY, period_code=str(year), cost_centre=cc,
                                           item=items[0])
                for item in items[1:]:
                    setup.create_line(s, company_code=COMPANY, period_code=str(year), cost_centre=cc,
                                      item=item, parent_id=parent.id)
    with db.unit_of_work() as s:
        lines = list(s.scalars(select(BudgetLine.id).where(BudgetLine.code.like(f"{COMPANY}/{year}/B%"))
                               .order_by(BudgetLine.id)))
        leaves = list(s.scalars(select(BudgetLine.id).where(BudgetLine.code.like(f"{COMPANY}/{year}/B%"),
                                                             BudgetLine.parent_id.is_not(None))))
        # every line's budget: one movement and one entry each, and the balance to match
        m0 = s.scalar(text("SELECT coalesce(max(id), 0) FROM budget_movements"))
        s.execute(text("""
            INSERT INTO budget_movements (id, kind, idempotency_key, document_type, document_id, actor, created_at)
            SELECT :m0 + k, 'adjust', 'fin-budget-' || k, NULL, NULL, 'bench', now() - interval '360 days'
            FROM generate_series(1, :n) AS g(k)"""), {"m0": m0, "n": len(lines)})
        s.execute(text("""
            INSERT INTO budget_entries (movement_id, line_id, bucket, amount, currency, created_at)
            SELECT :m0 + k, (CAST(:lines AS bigint[]))[k], 'budget', 100000, 'CNY', now() - interval '360 days'
            FROM generate_series(1, :n) AS g(k)"""), {"m0": m0, "n": len(lines), "lines": lines})
        s.execute(text("UPDATE budget_balances SET budget = budget + 100000 WHERE line_id = ANY(:lines)"),
                  {"lines": lines})
        m0 = s.scalar(text("SELECT coalesce(max(id), 0) FROM budget_movements"))
        r0 = s.scalar(text("SELECT coalesce(max(id), 0) FROM reservations"))
        params = {"m0": m0, "r0": r0, "k1": entries // 5 + 1, "lines": leaves, "n": len(leaves),
                  "gap": 330 * 86400 / (entries // 5), "on": datetime.now(UTC).date(), "suffix": ":1"}
        for sql in _HISTORY_SQL:
            s.execute(text(sql), params)
        company_id = s.scalar(text("SELECT id FROM companies WHERE code = :c"), {"c": COMPANY})
        periods = list(s.scalars(text("SELECT id FROM accounting_periods WHERE company_id = :c AND fiscal_year = :y"
                                      " ORDER BY start_date"), {"c": company_id, "y": year}))
        debit = s.scalar(text("SELECT id FROM accounts WHERE company_id = :c AND code = '6602.03'"),
                         {"c": company_id})
        credit = s.scalar(text("SELECT id FROM accounts WHERE company_id = :c AND type = 'liability' "
                               "ORDER BY code LIMIT 1"), {"c": company_id})
        centre_ids = list(s.scalars(text("SELECT id FROM cost_centres WHERE company_id = :c AND code LIKE 'B%'"),
                                    {"c": company_id}))
        j0 = s.scalar(text("SELECT coalesce(max(id), 0) FROM journal_entries"))
        vparams = {"j0": j0, "v": vouchers, "company_id": company_id, "periods": periods, "np": len(periods),
                   "debit": debit, "credit": credit, "centres": centre_ids, "nc": len(centre_ids)}
        for sql in _VOUCHERS_SQL:
            s.execute(text(sql), vparams)
        for table in ("budget_movements", "reservations", "journal_entries"):
            s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    return {"year": year, "line": lines[0], "company": COMPANY, "document": f"fin-{vouchers // 2}",
            "voucher": j0 + vouchers // 2, "lines": len(lines)}


def registered(app: Any, url: str) -> bool:
    """Whether the app serves ``url`` for GET (a page another change adds shows up here)."""
    path = url.split("?", 1)[0]
    try:
        app.url_map.bind("localhost").match(path, method="GET")
    except (NotFound, MethodNotAllowed):
        return False
    return True


def run(ctx: Context, entries: int | None = None, vouchers: int | None = None) -> Report:
    st = ctx.settings
    entries = entries or (ENTRIES // 10 if st.quick else ENTRIES)
    vouchers = vouchers or (VOUCHERS // 10 if st.quick else VOUCHERS)
    n = 20 if st.quick else 60
    report = Report("finance", f"finance reads on PostgreSQL ({LINES:,} year lines, {entries:,} budget entries, "
                               f"{vouchers:,} vouchers; Flask test client in process)")
    with scratch_database(st.pg_url, "yinfin_bench_finance") as url:
        progress("migrating a fresh database and loading the demo")
        upgrade(url)
        db = Database(url)
        progress(f"{LINES:,} lines, {entries:,} entries, {vouchers:,} vouchers")
        built = build(db, entries, vouchers)
        db.dispose()
        analyze(url)
        app = create_app(Settings(database_url=url, env="development", secret_key="bench"))
        client, _ = signed_in(app, "fiona")
        client.environ_base["HTTP_X_YINFIN_USER"] = "fiona"  # the API's development identity
        figures = report.section(f"server time, p95 of {n} (median in the detail)")
        for what, template, target in READS:
            path = template.format(**built)
            if not registered(app, path):
                report.notes.append(f"{what}: {path.split('?')[0]} is not served yet")
                continue
            progress(f"GET {path}")
            ms = timed_gets(client, path, n)
            figures.append(Figure(what, p95(ms), "ms", f"median {statistics.median(ms):.0f} ms; GET {path}"))
            report.targets.append(Target(f"{what}: p95 ms", p95(ms), target, "<="))
        state(app).db.dispose()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.finance", description=DESCRIPTION)
    add_common_arguments(parser)
    parser.add_argument("--entries", type=int, help="budget entries (default 1,000,000; --quick 100,000)")
    parser.add_argument("--vouchers", type=int, help="vouchers (default 100,000; --quick 10,000)")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    ctx = Context(settings)
    header = machine_header(settings)
    report = run(ctx, args.entries, args.vouchers)
    emit(settings, [report], header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
