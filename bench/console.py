"""Console speed (issue 14, "Speed"): the inbox, a request page and batch approval.

One PostgreSQL database with the demo organisation (people, budgets, workflows), then:

- :data:`PENDING` expense requests by amy submitted through the engine (each reserves
  its budget), so their first approver has an inbox of that many pending tasks;
- one expense of :data:`REQUEST_LINES` lines, submitted the same way;
- ``history`` finished requests (100,000; ``--quick`` 10,000): the demo's finished
  requests copied in bulk with their tasks and history rows (``INSERT … SELECT``; the
  engine would take an hour to write them), so the tables the pages read hold a
  site's rows.

Timed with the Flask test client in process (so the time is the server's: routing,
the session, the reads, the template), signed in through the console's session:

- ``GET /inbox`` as the approver (first page, budget impact per row) — target: p95
  at most 150 ms;
- ``GET /requests/<id>`` of the 50-line request as amy — target: p95 at most 150 ms;
- one HTTP approval, ``POST /api/v1/tasks/<id>/approve`` (median of
  :data:`SINGLES`), and ``POST /inbox/batch`` of 100 tasks — target: the batch
  takes at most 100 x one approval.

Run it with ``python -m bench.console [--quick]``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from datetime import date
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Table, func, select, text

from yinfin_flow.app import create_app
from yinfin_flow.config import Settings
from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.db.models import BudgetLine
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestHistory
from yinfin_flow.demo import loaders
from yinfin_flow.demo.budgets import COMPANY, fiscal_year, line_code
from yinfin_flow.engine import service
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

DESCRIPTION = "console: inbox of 1,000 tasks, a 50-line request page, batch approval (100k requests of history)"

PENDING = 1000
REQUEST_LINES = 50
BATCH = 100
SINGLES = 20
TARGET_PAGE_MS = 150.0
TARGET_BATCH = 100.0  # x one HTTP approval
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _travel_line(s: Any) -> int:
    code = line_code(f"{fiscal_year()}-{date.today().month:02d}", "RD-APP", "TRAVEL")
    return int(s.scalar(select(BudgetLine.id).where(BudgetLine.code == code)))


def _expense(line_id: int, lines: int) -> dict[str, Any]:
    on = date.today().isoformat()
    return {"lines": [{"ref": str(n + 1), "line_id": line_id, "amount": "1.00", "currency": "CNY",
                       "budget_date": on, "memo": f"taxi {n + 1}"} for n in range(lines)]}


def _copy(s: Any, table: Table, template: int, base: int, count: int) -> None:
    """``count`` copies of ``template``'s rows of ``table`` for requests ``base + 1 …``."""
    quoted = {c.name: f'"{c.name}"' for c in table.columns}
    if table is ApprovalRequest.__table__:
        values = {**quoted, "id": ":base + g.k", "idempotency_key": "NULL"}
        where = "t.id = :template"
    else:
        values = {**quoted, "request_id": ":base + g.k"}
        values.pop("id")
        where = "t.request_id = :template"
    s.execute(text(
        f"INSERT INTO {table.name} ({', '.join(quoted[c] for c in values)}) "
        f"SELECT {', '.join(v if v.startswith((':', 'NULL')) else f't.{v}' for v in values.values())} "
        f"FROM {table.name} t CROSS JOIN generate_series(1, :count) AS g(k) WHERE {where}"),
        {"base": base, "template": template, "count": count})


def build(db: Database, history: int) -> dict[str, Any]:
    """The demo, the approver's pending tasks, the long request and the history."""
    with db.unit_of_work() as s:
        for _name, load in loaders():
            load(s)
    with db.unit_of_work() as s:
        line = _travel_line(s)
    for start in range(0, PENDING, 100):
        with db.unit_of_work() as s:
            for n in range(start, min(PENDING, start + 100)):
                service.submit(s, "expense", requester="amy", company=COMPANY, title=f"出租车 Taxi #{n}",
                               form=_expense(line, 1))
    with db.unit_of_work() as s:
        long = service.submit(s, "expense", requester="amy", company=COMPANY, title="50 lines",
                              form=_expense(line, REQUEST_LINES)).id
        approver = s.scalar(select(ApprovalTask.assignee).where(
            ApprovalTask.request_id == long, ApprovalTask.status == "pending"))
        templates = list(s.scalars(select(ApprovalRequest.id).where(
            ApprovalRequest.finished_at.is_not(None)).order_by(ApprovalRequest.id)))
    if not templates:
        raise RuntimeError("the demo has no finished request to copy")
    per = -(-history // len(templates))
    with db.unit_of_work() as s:
        base = int(s.scalar(select(func.max(ApprovalRequest.id))) or 0)
        for n, template in enumerate(templates):
            count = min(per, history - n * per)
            if count <= 0:
                break
            for table in (ApprovalRequest.__table__, ApprovalTask.__table__, RequestHistory.__table__):
                _copy(s, table, template, base, count)
            base += count
        s.execute(text("SELECT setval(pg_get_serial_sequence('approval_requests', 'id'), "
                       "(SELECT max(id) FROM approval_requests))"))
        pending = list(s.scalars(select(ApprovalTask.id).where(
            ApprovalTask.assignee == approver, ApprovalTask.status == "pending",
            ApprovalTask.request_id != long).order_by(ApprovalTask.id)))
        total = s.scalar(select(func.count()).select_from(ApprovalRequest))
    return {"approver": approver, "long": long, "pending": pending, "requests": total}


def signed_in(app: Any, user: str) -> tuple[FlaskClient, str]:
    """A test client signed in as ``user`` through the console ("sign in as", development)."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    token = _CSRF.search(client.get("/sign-in").get_data(as_text=True))
    assert token, "no CSRF token on /sign-in"
    resp = client.post("/sign-in/as", data={"user": user, "csrf_token": token.group(1)})
    if resp.status_code != 302:
        raise RuntimeError(f"signing in as {user} answered {resp.status_code}")
    token = _CSRF.search(client.get("/requests").get_data(as_text=True))  # a sign-in starts a session
    assert token, "no CSRF token on /requests"
    return client, token.group(1)


def timed_gets(client: FlaskClient, path: str, n: int, warm: int = 3) -> list[float]:
    out = []
    for i in range(n + warm):
        started = time.perf_counter()
        resp = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if resp.status_code != 200:
            raise RuntimeError(f"GET {path} answered {resp.status_code}")
        if i >= warm:
            out.append(elapsed)
    return out


def p95(ms: list[float]) -> float:
    return statistics.quantiles(ms, n=20, method="inclusive")[-1] if len(ms) > 1 else ms[0]


def run(ctx: Context, history: int | None = None) -> Report:
    st = ctx.settings
    history = history or (10_000 if st.quick else 100_000)
    gets = 20 if st.quick else 60
    report = Report("console", f"console pages on PostgreSQL (Flask test client in process, "
                               f"{history:,} requests of history)")
    with scratch_database(st.pg_url, "yinfin_bench_console") as url:
        progress("migrating a fresh database and loading the demo")
        upgrade(url)
        db = Database(url)
        progress(f"{PENDING} pending requests, one of {REQUEST_LINES} lines, {history:,} of history")
        built = build(db, history)
        db.dispose()
        analyze(url)
        app = create_app(Settings(database_url=url, env="development", secret_key="bench"))
        approver, pending = built["approver"], built["pending"]
        inbox_client, csrf = signed_in(app, approver)
        amy, _ = signed_in(app, "amy")

        pages = report.section(f"server time per page, p95 of {gets} (median in the detail)")
        progress(f"GET /inbox as {approver} ({len(pending)} pending)")
        for label, client, path in (
            (f"GET /inbox, {len(pending):,} pending tasks", inbox_client, "/inbox"),
            (f"GET /requests/<id>, {REQUEST_LINES} lines", amy, f"/requests/{built['long']}"),
        ):
            ms = timed_gets(client, path, gets)
            pages.append(Figure(label, p95(ms), "ms", f"median {statistics.median(ms):.0f} ms"))
            report.targets.append(Target(f"{label}: p95 ms", p95(ms), TARGET_PAGE_MS, "<="))

        approvals = report.section("approving (each task in its own transaction)")
        progress("single HTTP approvals")
        api = app.test_client()
        api.environ_base["HTTP_X_YINFIN_USER"] = approver
        singles = []
        for task in pending[:SINGLES + 2]:
            started = time.perf_counter()
            resp = api.post(f"/api/v1/tasks/{task}/approve", json={})
            singles.append((time.perf_counter() - started) * 1000)
            if resp.status_code != 200:
                raise RuntimeError(f"approve answered {resp.status_code}: {resp.get_data(as_text=True)[:300]}")
        one = statistics.median(singles[2:])
        approvals.append(Figure("POST /api/v1/tasks/<id>/approve", one, "ms", f"median of {SINGLES}"))
        progress(f"POST /inbox/batch of {BATCH}")
        chosen = pending[SINGLES + 2: SINGLES + 2 + BATCH]
        started = time.perf_counter()
        resp = inbox_client.post("/inbox/batch", data={"csrf_token": csrf, "action": "approve",
                                                       "task": [str(t) for t in chosen]})
        batch_ms = (time.perf_counter() - started) * 1000
        if resp.status_code != 200:
            raise RuntimeError(f"batch answered {resp.status_code}")
        with db.unit_of_work(readonly=True) as s:
            done = s.scalar(select(func.count()).select_from(ApprovalTask).where(
                ApprovalTask.id.in_(chosen), ApprovalTask.status == "approved"))
        db.dispose()
        approvals.append(Figure(f"POST /inbox/batch, {BATCH} tasks", batch_ms, "ms",
                                f"= {batch_ms / one:.0f} x one approval; {done} of {len(chosen)} approved"))
        if done != len(chosen):
            report.notes.append(f"the batch approved {done} of {len(chosen)} tasks")
        report.targets.append(Target(f"batch of {BATCH} / one HTTP approval", batch_ms / one, TARGET_BATCH, "<="))
        report.notes.append(f"{built['requests']:,} requests in the database")
        state(app).db.dispose()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=DESCRIPTION)
    add_common_arguments(parser)
    parser.add_argument("--history", type=int, help="requests of history (default 100,000; --quick 10,000)")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    ctx = Context(settings)
    header = machine_header(settings)
    report = run(ctx, args.history)
    emit(settings, [report], header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
