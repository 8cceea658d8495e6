"""Approval engine speed (issue 3, "Speed"): full requests per second.

One request = submit (reserves budget) + three approvals (each re-checks budget), a
3-step expense approval, as four transactions through the engine's service functions,
by 8 client processes:

1. on PostgreSQL, beside pgbench TPC-B from the same run (target >= 0.15 x TPC-B);
2. on SQLite (one file, WAL, ``BEGIN IMMEDIATE``), reported only;
3. the same 3-step approval in SpiffWorkflow (BPMN engine, bench-only dependency)
   with its workflow JSON saved to a PostgreSQL row after each step (four
   transactions too, no budget work), and the ratio (target: ours >= 2 x Spiff's).

Each client has its own requester and approvers and draws on its own budget line
(so the figure is the engine's, not one hot budget line's). Run it with
``python -m bench.engine [--quick]``.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, select, update

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.engine import directory, service
from yinfin_flow.verify import verify

from . import baseline
from .common import (
    ClientTotals,
    Context,
    Figure,
    Report,
    Target,
    add_common_arguments,
    emit,
    machine_header,
    progress,
    run_clients,
    scratch_database,
    settings_from,
)

DESCRIPTION = "3-step expense approvals/s with budget (PostgreSQL, SQLite) vs pgbench and SpiffWorkflow"

#: Each client does one whole request before the clock starts (titled so, and not
#: counted), as pgbench's clients need none: a cold process spends ~3x a request's CPU
#: on its first one (SQL compilation caches, the definition, imports), which in a 5 s
#: run was most of what each client did. SpiffWorkflow's clients warm up the same way.
WARM_UP = "warm-up"
TARGET_TPCB = 0.15
TARGET_SPIFF = 2.0
COMPANY = "BENCH"
YEAR = 2026
ON = date(YEAR, 6, 15)

WORKFLOW = """
name: bench_expense
version: 1
document_type: expense
settings: {no_approver: fail, auto_approve_repeat: true}
states:
  draft: {}
  approval:
    steps:
      - {id: manager, approvers: [{type: form_field, field: manager}]}
      - {id: finance, approvers: [{type: form_field, field: finance}]}
      - {id: gm, approvers: [{type: form_field, field: gm}]}
  approved: {}
  closed: {final: true}
  rejected: {final: true}
transitions:
  - {event: submit, from: draft, to: approval, budget: reserve}
  - {event: approve, from: approval, to: approved, by: approver, budget: recheck}
  - {event: reject, from: approval, to: rejected, by: approver, budget: release}
  - {event: close, from: approved, to: closed, budget: release}
"""

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="expense" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="manager"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="finance"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="gm"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="manager"/>
    <bpmn:sequenceFlow id="f1" sourceRef="manager" targetRef="finance"/>
    <bpmn:sequenceFlow id="f2" sourceRef="finance" targetRef="gm"/>
    <bpmn:sequenceFlow id="f3" sourceRef="gm" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def build(db: Database, clients: int) -> list[int]:
    """Company, one year line per client with ample budget, requesters and approvers."""
    with db.unit_of_work() as s:
        setup.create_company(s, COMPANY, "Benchmark Ltd", "CNY")
        setup.create_periods(s, COMPANY, YEAR, "year")
        setup.create_item(s, COMPANY, "TRAVEL", "Travel")
        lines = []
        for i in range(clients):
            setup.create_cost_centre(s, COMPANY, f"CC{i}", f"Centre {i}")
            ln = setup.create_line(s, company_code=COMPANY, period_code=str(YEAR),
                                   cost_centre=f"CC{i}", item="TRAVEL")
            Budgets(s).adjust(None, ln.id, Decimal("1000000000"), actor="bench", reason="bench",
                              kind="original")
            lines.append(ln.id)
            for role in ("req", "mgr", "fin", "gm"):
                directory.upsert_user(s, directory.UserSpec(id=f"{role}{i}", name=f"{role}{i}",
                                                            company=COMPANY, department=f"CC{i}"),
                                      actor="bench")
    return lines


def _engine_client(index: int, payload: dict[str, Any]) -> Callable[[int], str]:
    db = Database(payload["url"], pool_size=1, max_overflow=0)
    wf_dir = Path(payload["dir"])
    form = {"manager": f"mgr{index}", "finance": f"fin{index}", "gm": f"gm{index}",
            "lines": [{"ref": "1", "line_id": payload["lines"][index], "amount": "12.34",
                       "currency": "CNY", "budget_date": str(ON)}]}

    def transaction(n: int, title: str = "bench") -> str:
        with db.unit_of_work() as s:
            rid = service.submit(s, "bench_expense", requester=f"req{index}", company=COMPANY,
                                 title=title, form=form, directory=wf_dir).id
        for who in (f"mgr{index}", f"fin{index}", f"gm{index}"):
            with db.unit_of_work() as s:  # the approver opens their inbox, then approves
                task = s.scalar(select(ApprovalTask.id).where(
                    ApprovalTask.assignee == who, ApprovalTask.status == "pending",
                    ApprovalTask.request_id == rid))
                service.act(s, task, who, "approve")
        return "ok"

    transaction(-1, WARM_UP)
    return transaction


def engine_rate(url: str, lines: list[int], wf_dir: str, clients: int, duration: float) -> ClientTotals:
    # No ANALYZE before the clock starts (unlike bench.http, common.analyze): here the
    # tables hold 8 lines and 8 warm-up requests then, and the run writes every row it
    # reads. Statistics of near-empty tables make the generic plans sequential scans
    # that the run outgrows (measured, 5 s run: 260,000 approval_requests and 108,000
    # reservations rows read by sequential scans with ANALYZE, none without); the
    # never-analysed tables are planned as bigger than they are, with their indexes.
    return run_clients(_engine_client, {"url": url, "lines": lines, "dir": wf_dir}, clients, duration)


_meta = MetaData()
spiff_state = Table("spiff_state", _meta, Column("id", Integer, primary_key=True),
                    Column("state", Text, nullable=False))


def _spiff_client(index: int, payload: dict[str, Any]) -> Callable[[int], str]:
    from lxml import etree
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.util.task import TaskState

    db = Database(payload["url"], pool_size=1, max_overflow=0)
    parser = BpmnParser()
    parser.add_bpmn_xml(etree.fromstring(BPMN.encode()), filename="expense.bpmn")
    spec = parser.get_spec("expense")
    ser = BpmnWorkflowSerializer()

    def transaction(n: int) -> str:
        with db.unit_of_work() as s:
            wf = BpmnWorkflow(spec)
            wf.data["amount"] = "12.34"
            wf.do_engine_steps()
            row_id = s.execute(insert(spiff_state).values(state=ser.serialize_json(wf))
                               .returning(spiff_state.c.id)).scalar_one()
        for who in ("manager", "finance", "gm"):
            with db.unit_of_work() as s:
                text_ = s.execute(select(spiff_state.c.state).where(spiff_state.c.id == row_id)
                                  .with_for_update()).scalar_one()
                wf = ser.deserialize_json(text_)
                [task] = wf.get_tasks(state=TaskState.READY, manual=True)
                task.data["approved_by"] = f"{who}{index}"
                task.run()
                wf.do_engine_steps()
                s.execute(update(spiff_state).where(spiff_state.c.id == row_id)
                          .values(state=ser.serialize_json(wf)))
        return "ok" if wf.is_completed() else "incomplete"

    transaction(-1)  # warm-up, as the engine's clients do (see WARM_UP)
    return transaction


def _figure(label: str, totals: ClientTotals, detail: str = "") -> Figure:
    errors = sum(v for k, v in totals.outcomes.items() if k.startswith("error"))
    return Figure(label, totals.rate("ok"), "req/s",
                  f"{detail}p50 {totals.latency(50):.0f} ms per request, errors {errors}".strip())


def _completed(db: Database) -> int:
    with db.unit_of_work(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(ApprovalRequest)
                            .where(ApprovalRequest.state == "approved", ApprovalRequest.title != WARM_UP)) or 0)


def run(ctx: Context) -> Report:
    st = ctx.settings
    base = ctx.baseline()
    report = Report("engine", f"approval engine: 3-step expense approvals with budget "
                              f"({st.clients} client processes, {st.duration:g} s per run)")
    figures = report.section(f"full requests/s (submit + 3 approvals = 4 transactions; "
                             f"pgbench TPC-B {base.tpcb:,.0f} tps)")
    with tempfile.TemporaryDirectory() as tmp:
        wf_dir = Path(tmp) / "workflows"
        wf_dir.mkdir()
        (wf_dir / "bench_expense.yaml").write_text(WORKFLOW, encoding="utf-8")
        with scratch_database(st.pg_url, "yinfin_bench_engine") as url:
            progress("engine on PostgreSQL: set-up")
            upgrade(url)
            db = Database(url)
            lines = build(db, st.clients)
            db.dispose()
            progress("engine on PostgreSQL: running")
            pg = engine_rate(url, lines, str(wf_dir), st.clients, st.duration)
            figures.append(_figure("yinfin-flow on PostgreSQL", pg,
                                   f"= {pg.rate() / base.tpcb:.2f} x TPC-B; "))
            report.targets.append(Target("PostgreSQL requests/s / TPC-B tps", pg.rate() / base.tpcb,
                                         TARGET_TPCB, ">="))
            with db.unit_of_work(readonly=True) as s:
                problems = verify(s)
            if _completed(db) != pg.outcomes["ok"]:
                report.notes.append(f"clients counted {pg.outcomes['ok']} requests, "
                                    f"{_completed(db)} are approved in the database")
            report.notes += [str(p) for p in problems[:3]]
            report.notes += [e.splitlines()[-1] for e in pg.errors[:2]]
            db.dispose()

            progress("SpiffWorkflow with JSON state in PostgreSQL: running")
            _meta.create_all(Database(url).engine)
            spiff = run_clients(_spiff_client, {"url": url}, st.clients, st.duration)
            figures.append(_figure("SpiffWorkflow 3-step, JSON in a PostgreSQL row", spiff))
            report.notes += [e.splitlines()[-1] for e in spiff.errors[:2]]
            ratio = pg.rate() / spiff.rate() if spiff.rate() else float("nan")
            figures.append(Figure("ratio yinfin-flow / SpiffWorkflow", ratio, "x",
                                  "(yinfin-flow also reserves and re-checks budget)"))
            report.targets.append(Target("yinfin-flow / SpiffWorkflow requests/s", ratio, TARGET_SPIFF, ">="))

        sqlite_url = f"sqlite:///{tmp}/bench.sqlite"
        progress("engine on SQLite: set-up")
        upgrade(sqlite_url)
        db = Database(sqlite_url)
        lines = build(db, st.clients)
        db.dispose()
        progress("engine on SQLite: running")
        lite = engine_rate(sqlite_url, lines, str(wf_dir), st.clients, st.duration)
        figures.append(_figure("yinfin-flow on SQLite (one file)", lite))
        report.notes += [e.splitlines()[-1] for e in lite.errors[:2]]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=DESCRIPTION)
    add_common_arguments(parser)
    settings = settings_from(parser.parse_args(argv))
    ctx = Context(settings)
    header = machine_header(settings)
    report = run(ctx)
    emit(settings, [baseline.run(ctx), report], header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
