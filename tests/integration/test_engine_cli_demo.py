"""``yinfin-flow workflows …`` and the demo requests loader."""

from __future__ import annotations

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
    assert {ln.split("\t")[0] for ln in result.output.splitlines()} >= {"expense", "procurement", "project", "budget_transfer"}
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
