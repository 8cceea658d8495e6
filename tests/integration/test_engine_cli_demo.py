"""``yinfin-flow workflows …`` and the demo requests loader."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from yinfin_flow.cli.workflows import command as workflows
from yinfin_flow.config import PROJECT_ROOT
from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.demo import loaders
from yinfin_flow.engine.definitions import load_dir
from yinfin_flow.verify import verify


def test_check_passes_on_the_shipped_files():
    result = CliRunner().invoke(workflows, ["check"])
    assert result.exit_code == 0, result.output
    assert "ok   expense.yaml: expense v1" in result.output


def test_check_fails_naming_file_path_and_problem(tmp_path):
    text = (PROJECT_ROOT / "workflows" / "expense.yaml").read_text(encoding="utf-8")
    (tmp_path / "expense.yaml").write_text(text.replace("to: rejected, by: approver, budget: release",
                                                        "to: rejected, by: approver, budget: none"))
    result = CliRunner().invoke(workflows, ["check", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "FAIL expense.yaml: expense.yaml: states.rejected: reached with budget still held" in result.output


def test_list_and_diagram(tmp_path):
    result = CliRunner().invoke(workflows, ["list"])
    assert result.exit_code == 0
    assert result.output.splitlines()[0].split()[:3] == ["file", "name", "version"]  # the header row
    listed = json.loads(CliRunner().invoke(workflows, ["list", "--format", "json"]).output)
    assert {w["name"] for w in listed} >= {"expense", "procurement", "project", "budget_transfer"}
    assert all(w["problem"] is None for w in listed)
    out = tmp_path / "p.mmd"
    result = CliRunner().invoke(workflows, ["diagram", "procurement", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("stateDiagram-v2")
    assert "ordered --> received : receive · [role:buyer]" in text
    assert "approval --> approved : approve · budget: recheck" in text
    dot = CliRunner().invoke(workflows, ["diagram", "expense", "--format", "dot"])
    assert 'approval -> approved [label="approve · budget: actual · post: expense.approved"]' in dot.output
    assert CliRunner().invoke(workflows, ["diagram", "nope"]).exit_code != 0


def test_demo_has_every_state_of_every_workflow_and_verifies(sqlite_db):
    with sqlite_db.unit_of_work() as s:
        for _name, load in loaders():
            load(s)
    with sqlite_db.unit_of_work(readonly=True) as s:
        have = {(w, st) for w, st in s.execute(select(ApprovalRequest.workflow, ApprovalRequest.state))}
        assert verify(s) == []
    want = {(name, state) for name, d in load_dir(PROJECT_ROOT / "workflows").items() for state in d.states}
    assert want <= have


def test_engine_invariants_hold_on_the_demo_and_catch_a_leak(sqlite_db):
    from sqlalchemy import update

    from yinfin_flow.db.models.engine import ApprovalTask
    from yinfin_flow.engine import verify as engine_verify

    with sqlite_db.unit_of_work() as s:
        for _name, load in loaders():
            load(s)
    with sqlite_db.unit_of_work(readonly=True) as s:
        assert engine_verify.verify(s) == []
    with sqlite_db.unit_of_work() as s:
        rejected = s.scalar(select(ApprovalRequest.id).where(ApprovalRequest.state == "rejected").limit(1))
        s.execute(update(ApprovalTask).where(ApprovalTask.request_id == rejected).values(status="pending"))
    with sqlite_db.unit_of_work(readonly=True) as s:
        [problem] = {p.check for p in engine_verify.verify(s)}
    assert problem == "ended_requests_have_no_open_tasks"


def test_check_warns_when_every_step_has_a_condition(tmp_path):
    from .test_engine_support import FLOW, write_workflow

    write_workflow(tmp_path, FLOW.format(
        steps="      - {id: big, when: 'form.amount > 10000', approvers: [{type: user, user: pat}]}\n",
        no_approver="admin", auto="true", resubmit="from_start", version=1))
    result = CliRunner().invoke(workflows, ["check", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output  # allowed, but said
    assert ("WARN flow.yaml: flow: states.approval.steps: every step has a condition: a request may match "
            "none (settings.empty_route: refuse applies)") in result.stderr


def test_check_fails_a_changed_file_whose_used_version_was_not_raised(sqlite_db, tmp_path):
    from yinfin_flow.engine import service

    from .test_engine_support import expense_form, flow, world

    org = world(sqlite_db)
    wf = flow(tmp_path, "      - {id: a, approvers: [{type: user, user: pat}]}\n")
    with sqlite_db.unit_of_work() as s:
        service.submit(s, "flow", requester="amy", company="ACME", title="t",
                       form=expense_form(org.child_line, "10.00"), directory=wf)
    env = {"YINFIN_DATABASE_URL": sqlite_db.url}
    assert CliRunner().invoke(workflows, ["check", "--dir", str(wf)], env=env).exit_code == 0
    flow(tmp_path, "      - {id: a, approvers: [{type: user, user: quinn}]}\n")  # edited, still version 1
    result = CliRunner().invoke(workflows, ["check", "--dir", str(wf)], env=env)
    assert result.exit_code == 1
    assert "the file changed but its version is still 1" in result.stderr
    flow(tmp_path, "      - {id: a, approvers: [{type: user, user: quinn}]}\n", version=2)
    assert CliRunner().invoke(workflows, ["check", "--dir", str(wf)], env=env).exit_code == 0


def _next_year_lines(s, year):
    """Every line of ``year`` again in ``year + 1`` (same dimensions and tree), no budget."""
    from yinfin_flow.budget import setup
    from yinfin_flow.db.models import BudgetItem, BudgetLine, BudgetPeriod, CostCentre, Project

    setup.create_periods(s, "ACME", year + 1, "month")
    setup.create_periods(s, "ACME", year + 1, "year")
    rows = s.execute(
        select(BudgetLine, BudgetPeriod.code, CostCentre.code, BudgetItem.code, Project.code)
        .join(BudgetPeriod, BudgetPeriod.id == BudgetLine.period_id)
        .join(CostCentre, CostCentre.id == BudgetLine.cost_centre_id)
        .join(BudgetItem, BudgetItem.id == BudgetLine.item_id)
        .outerjoin(Project, Project.id == BudgetLine.project_id)
        .where(BudgetLine.fiscal_year == year).order_by(BudgetLine.path)).all()
    new: dict[int, int] = {}
    for ln, period, cc, item, project in rows:
        made = setup.create_line(s, company_code="ACME", period_code=period.replace(str(year), str(year + 1), 1),
                                 cost_centre=cc, item=item, project=project,
                                 parent_id=new.get(ln.parent_id) if ln.parent_id else None)
        new[ln.id] = made.id


def test_demo_verifies_after_a_year_end_roll_with_budget_and_a_partial_invoice(sqlite_db):
    from datetime import UTC, datetime
    from decimal import Decimal

    from yinfin_flow.demo.budgets import fiscal_year
    from yinfin_flow.engine import service
    from yinfin_flow.ledger import periods
    from yinfin_flow.ledger.yearend import roll_forward

    year = fiscal_year()
    with sqlite_db.unit_of_work() as s:
        for _name, load in loaders():
            load(s)
        _next_year_lines(s, year)
        periods.open_year(s, "ACME", year + 1)
    with sqlite_db.unit_of_work() as s:  # the demo's commitments include a cumulative line's overrun
        rolled = roll_forward(s, "ACME", year, with_budget=True, actor="cfo").rolled
    assert rolled
    with sqlite_db.unit_of_work() as s:
        received = s.scalar(select(ApprovalRequest).where(ApprovalRequest.workflow == "procurement",
                                                          ApprovalRequest.state == "received"))
        part = str((Decimal(received.form["amount"]) / 3).quantize(Decimal("0.01")))
        service.perform(s, received.id, "match_invoice", "fiona", now=datetime(year + 1, 1, 20, tzinfo=UTC),
                        data={"invoice": "DEMO-1", "lines": [{"ref": "1", "amount": part}]})
    with sqlite_db.unit_of_work(readonly=True) as s:
        assert verify(s) == []
