"""Workflow definitions: every shipped file is valid and sound; bad files say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from yinfin_flow.config import PROJECT_ROOT
from yinfin_flow.domain.workflow_check import check
from yinfin_flow.engine.definitions import DefinitionError, compile_expression, load_dir, parse

SHIPPED = sorted((PROJECT_ROOT / "workflows").glob("*.yaml"))

MINIMAL = """
name: tiny
version: 1
document_type: expense
states:
  draft: {}
  approval:
    steps:
      - id: boss
        approvers: [{type: user, user: boss}]
  done: {final: true}
  rejected: {final: true}
transitions:
  - {event: submit, from: draft, to: approval, budget: reserve}
  - {event: approve, from: approval, to: done, by: approver, budget: release}
  - {event: reject, from: approval, to: rejected, by: approver, budget: release}
"""


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_definition_passes_the_static_check(path: Path) -> None:
    d = parse(path.read_text(encoding="utf-8"), path.name)
    assert check(d, compile_expression) == []
    assert d.name == path.stem


def test_all_four_workflows_ship() -> None:
    assert {"procurement", "expense", "project", "budget_transfer"} <= set(load_dir(PROJECT_ROOT / "workflows"))


def test_minimal_definition_parses() -> None:
    d = parse(MINIMAL, "tiny.yaml")
    assert d.states["approval"].steps[0].approvers == ({"type": "user", "user": "boss"},)
    assert d.finals == {"done", "rejected"}


def _err(text: str) -> DefinitionError:
    with pytest.raises(DefinitionError) as err:
        parse(text, "bad.yaml")
    return err.value


def test_bad_field_names_file_path_and_problem() -> None:
    err = _err(MINIMAL.replace("mode: all", "").replace("- id: boss", "- id: boss\n        mode: most"))
    assert err.details["file"] == "bad.yaml"
    assert err.details["path"] == "states.approval.steps[0].mode"
    assert "Must be one of" in err.details["problem"]


def test_not_yaml_gives_line_and_column() -> None:
    err = _err("name: [unclosed\n")
    assert err.details["path"].startswith("line ")


def test_quorum_mode_needs_a_quorum() -> None:
    err = _err(MINIMAL.replace("- id: boss", "- id: boss\n        mode: quorum"))
    assert err.details["path"] == "states.approval.steps[0].quorum"


def test_leaked_budget_is_found_with_the_path_that_leaks() -> None:
    err = _err(MINIMAL.replace("to: done, by: approver, budget: release", "to: done, by: approver, budget: recheck"))
    assert err.details["path"] == "states.done"
    assert "leak" in err.details["problem"] and "submit → approve" in err.details["problem"]


def test_unreachable_state_is_found() -> None:
    err = _err(MINIMAL.replace("  rejected: {final: true}", "  rejected: {final: true}\n  limbo: {final: true}"))
    assert err.details["path"] == "states.limbo"
    assert "unreachable" in err.details["problem"]


def test_non_final_state_without_a_way_out_is_found() -> None:
    text = MINIMAL.replace("  done: {final: true}", "  done: {}")
    err = _err(text)
    assert err.details["path"] == "states.done"
    assert "no way out" in err.details["problem"]


def test_moving_budget_that_is_not_held_is_found() -> None:
    err = _err(MINIMAL.replace("to: approval, budget: reserve", "to: approval, budget: none").replace(
        "to: done, by: approver, budget: release", "to: done, by: approver, budget: encumber"))
    assert "nothing held" in err.details["problem"]


def test_actual_needs_a_posting() -> None:
    err = _err(MINIMAL.replace("to: done, by: approver, budget: release", "to: done, by: approver, budget: actual"))
    assert err.details["path"] == "transitions[1].posting"


def test_approval_state_needs_reject() -> None:
    err = _err(MINIMAL.replace("  - {event: reject, from: approval, to: rejected, by: approver, budget: release}\n", ""))
    assert err.details["path"] == "states.approval"
    assert "reject" in err.details["problem"]


def test_invalid_expression_is_reported_where_it_is() -> None:
    err = _err(MINIMAL.replace("- id: boss", "- id: boss\n        when: \"form.amount >\""))
    assert err.details["path"] == "states.approval.steps[0].when"
    assert "invalid expression" in err.details["problem"]


def test_unknown_state_in_a_transition() -> None:
    err = _err(MINIMAL.replace("to: rejected,", "to: nowhere,"))
    assert err.details["path"] == "transitions[2].to"


def test_one_shared_machine_per_version_holding_no_rows() -> None:
    from types import SimpleNamespace

    from yinfin_flow.engine.errors import InvalidAction
    from yinfin_flow.engine.machine import fire, machine_for

    d1 = parse(MINIMAL, "tiny.yaml")
    again = parse(MINIMAL, "tiny.yaml")
    v2 = parse(MINIMAL.replace("version: 1", "version: 2"), "tiny.yaml")
    m = machine_for(d1)
    assert machine_for(again) is m
    assert machine_for(v2) is not m
    assert m.models == []  # rows are never added to the machine
    row = SimpleNamespace(state="done")
    with pytest.raises(InvalidAction):
        fire(d1, row, "submit")  # not from a final state; nothing changes
    assert row.state == "done"
    assert m.models == []


def test_timeouts_are_whole_hours() -> None:
    err = _err(MINIMAL.replace("- id: boss", "- id: boss\n        timeout: {hours: 1.5, action: remind}"))
    assert err.details["path"] == "states.approval.steps[0].timeout.hours"
    ok = parse(MINIMAL.replace("- id: boss", "- id: boss\n        timeout: {hours: 24, action: remind}"), "ok.yaml")
    assert ok.states["approval"].steps[0].timeout.hours == 24
