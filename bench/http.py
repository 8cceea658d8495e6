"""HTTP approvals per second (issue 5, "Speed"): the whole API path under gunicorn.

Two servers in the same run, each ``gunicorn`` with 4 sync workers on PostgreSQL:

1. yinfin-flow (``yinfin_flow.app:create_app()``, production mode): each client
   approves its own pending tasks with ``POST /api/v1/tasks/<id>/approve`` and a
   bearer token: token lookup (one statement, no transaction), authorization, the
   engine's approve with its budget re-check and the audit row (one transaction);
2. a bare Flask endpoint doing one INSERT (:mod:`bench.bare_app`).

Target: approvals/s >= 0.4 x the bare endpoint's requests/s. Clients are processes
with keep-alive HTTP sessions; the requests they approve are submitted during set-up
(not timed), and each client makes :data:`WARM_UP_CALLS` untimed calls on either
server first; the database is analysed once every client has set up, before the clock
starts (:func:`bench.common.analyze`). Run it with ``python -m bench.http [--quick]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.engine import service
from yinfin_flow.security import tokens

from .bare_app import meta as bare_meta
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
from .engine import COMPANY, ON, build

DESCRIPTION = "approve actions/s over HTTP (gunicorn, 4 workers, PostgreSQL) vs a bare one-INSERT endpoint"
TARGET = 0.4
WORKERS = 4
#: Calls each client makes during set-up, not timed, on both servers: a gunicorn
#: worker's first approvals compile and cache the SQL, load the definition and fill
#: the pool (~0.1-0.3 s of CPU each, measured); in a 5 s run four cold workers were
#: about a tenth of the machine's CPU. 8 clients x 2 calls reach all 4 workers. The
#: engine benchmark warms up its clients the same way.
WARM_UP_CALLS = 2
ROOT = Path(__file__).resolve().parent.parent

WORKFLOW = """
name: bench_http
version: 1
document_type: expense
settings: {no_approver: fail}
states:
  draft: {}
  approval:
    steps:
      - {id: manager, approvers: [{type: form_field, field: manager}]}
  approved: {}
  closed: {final: true}
  rejected: {final: true}
transitions:
  - {event: submit, from: draft, to: approval, budget: reserve}
  - {event: approve, from: approval, to: approved, by: approver, budget: recheck}
  - {event: reject, from: approval, to: rejected, by: approver, budget: release}
  - {event: close, from: approved, to: closed, budget: release}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(app: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", app],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"gunicorn {app} did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _approver(index: int, payload: dict[str, Any]) -> Callable[[int], str]:
    """Set-up: submit this client's requests and issue its approver a token (untimed)."""
    import requests

    db = Database(payload["url"], pool_size=1, max_overflow=0)
    form = {"manager": f"mgr{index}",
            "lines": [{"ref": "1", "line_id": payload["lines"][index], "amount": "1.00",
                       "currency": "CNY", "budget_date": str(ON)}]}
    for _ in range(payload["per_client"] + WARM_UP_CALLS):
        with db.unit_of_work() as s:
            service.submit(s, "bench_http", requester=f"req{index}", company=COMPANY, title="bench",
                           form=form, directory=payload["dir"])
    with db.unit_of_work() as s:
        token = tokens.create_token(s, f"mgr{index}", name="bench", created_by="bench").token
        task_ids = list(s.scalars(select(ApprovalTask.id).where(
            ApprovalTask.assignee == f"mgr{index}", ApprovalTask.status == "pending")
            .order_by(ApprovalTask.id)))
    db.dispose()
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    for task in task_ids[:WARM_UP_CALLS]:  # untimed: see WARM_UP_CALLS
        r = http.post(f"{payload['base']}/api/v1/tasks/{task}/approve", json={})
        if r.status_code != 200:
            raise RuntimeError(f"warm-up approval answered {r.status_code}: {r.text[:300]}")
    task_ids = task_ids[WARM_UP_CALLS:]

    def transaction(n: int) -> str:
        if n >= len(task_ids):
            time.sleep(0.05)
            return "exhausted"
        r = http.post(f"{payload['base']}/api/v1/tasks/{task_ids[n]}/approve", json={})
        return "ok" if r.status_code == 200 else f"http_{r.status_code}"

    return transaction


def _bare(index: int, payload: dict[str, Any]) -> Callable[[int], str]:
    import requests

    http = requests.Session()
    for n in range(WARM_UP_CALLS):  # untimed, as for the approvals
        http.post(f"{payload['base']}/insert", data=f"client {index} warm-up {n}").raise_for_status()

    def transaction(n: int) -> str:
        r = http.post(f"{payload['base']}/insert", data=f"client {index} row {n}")
        return "ok" if r.status_code == 201 else f"http_{r.status_code}"

    return transaction


def _figure(label: str, t: ClientTotals, unit: str) -> Figure:
    bad = sum(v for k, v in t.outcomes.items() if k != "ok")
    return Figure(label, t.rate("ok"), unit,
                  f"p50 {t.latency(50):.0f} ms, p95 {t.latency(95):.0f} ms, other outcomes {bad}")


def run(ctx: Context) -> Report:
    st = ctx.settings
    report = Report("http", f"HTTP approvals (gunicorn {WORKERS} workers, {st.clients} client "
                            f"processes, {st.duration:g} s per run)")
    figures = report.section("requests/s over HTTP on PostgreSQL")
    # Enough pending tasks that no client runs dry: a generous guess per second (a
    # client that runs dry is counted as "exhausted" and the rate is then only a
    # lower bound; 8 clients ran dry at 25/s each once appends stopped queueing, and
    # again at 60/s each on 2026-11-26, at 479 approvals/s).
    per_client = int(st.duration * 100)
    with tempfile.TemporaryDirectory() as tmp, scratch_database(st.pg_url, "yinfin_bench_http") as url:
        wf_dir = Path(tmp)
        (wf_dir / "bench_http.yaml").write_text(WORKFLOW, encoding="utf-8")
        upgrade(url)
        db = Database(url)
        lines = build(db, st.clients)
        bare_meta.create_all(db.engine)
        db.dispose()
        env = {"YINFIN_DATABASE_URL": url, "YINFIN_ENV": "production", "YINFIN_SECRET_KEY": "bench",
               "YINFIN_WORKFLOWS_DIR": str(wf_dir)}

        progress("bare Flask INSERT endpoint: running")
        proc, base = _serve("bench.bare_app:create()", env)
        try:
            bare = run_clients(_bare, {"base": base}, st.clients, st.duration)
        finally:
            _stop(proc)
        figures.append(_figure("bare Flask endpoint, one INSERT", bare, "req/s"))

        progress(f"yinfin-flow approvals: set-up ({per_client} requests per client) and run")
        proc, base = _serve("yinfin_flow.app:create_app()", env)
        try:
            # ANALYZE once every client has submitted its requests, before the clock
            # starts: the approvals' statements are planned with statistics, as on a
            # site (see common.analyze).
            flow = run_clients(_approver, {"base": base, "url": url, "lines": lines, "dir": str(wf_dir),
                                           "per_client": per_client}, st.clients, st.duration,
                               before_start=functools.partial(analyze, url))
        finally:
            _stop(proc)
        figures.append(_figure("POST /api/v1/tasks/<id>/approve (token, audit, budget re-check)",
                               flow, "approvals/s"))
        ratio = flow.rate() / bare.rate() if bare.rate() else float("nan")
        figures.append(Figure("ratio approvals / bare INSERTs", ratio, "x"))
        report.targets.append(Target("HTTP approvals/s / bare INSERT req/s", ratio, TARGET, ">="))
        if flow.outcomes["exhausted"]:
            report.notes.append("some clients ran out of pending tasks: the rate is a lower bound")
        db = Database(url)
        with db.unit_of_work(readonly=True) as s:
            approved = s.scalar(select(func.count()).select_from(ApprovalRequest)
                                .where(ApprovalRequest.state == "approved")) or 0
        db.dispose()
        if approved != flow.outcomes["ok"] + st.clients * WARM_UP_CALLS:
            report.notes.append(f"clients counted {flow.outcomes['ok']} approvals (+ "
                                f"{st.clients * WARM_UP_CALLS} warm-up), {approved} are approved")
        report.notes += [e.splitlines()[-1] for e in (bare.errors + flow.errors)[:2]]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=DESCRIPTION)
    add_common_arguments(parser)
    settings = settings_from(parser.parse_args(argv))
    ctx = Context(settings)
    header = machine_header(settings)
    report = run(ctx)
    emit(settings, [report], header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


