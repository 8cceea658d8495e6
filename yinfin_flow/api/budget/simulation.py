"""``POST /api/v1/budget/lines/{id}/simulate``: what a rule would have done (规则模拟).

Read-only (a POST only because a rule is a body): the history is replayed under the
rule in force and under the one given, with the same control code live reservations
run (:mod:`yinfin_flow.budget.simulation`). Rule change answers carry the simulation
of the change they propose (:func:`of_change`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yinfin_flow.budget import simulation as sim
from yinfin_flow.db.models.rule_changes import RuleChange
from yinfin_flow.domain.budget import ControlRule

from .simulation_schemas import SimulateInSchema, SimulationSchema
from .views import LINE_ID, _default_rule, _flow, blp

RULE_FIELDS = ("mode", "basis", "tolerance_percent", "tolerance_amount", "thresholds", "subtree")


@blp.post(f"/lines/{LINE_ID}/simulate")
@blp.arguments(SimulateInSchema)
@blp.response(200, SimulationSchema)
def simulate_rule(body: dict[str, Any], line_id: int) -> dict[str, Any]:
    """Replay the line's consumption (its subtree's) over a window, default the last 12
    months, under the rule in force and under this rule: requests that would have been
    refused or warned (and by which threshold), those that passed only under the rule in
    force, peak utilisation, the first day available went below zero, the money
    involved. Writes nothing."""
    st = _flow()
    with st.reads.unit_of_work(readonly=True) as s:
        return sim.simulate(s, line_id, {k: body[k] for k in RULE_FIELDS}, start=body["from_"], end=body["to"],
                            default_rule=_default_rule(st, s), every_request=body["every_request"])


def of_change(session: Session, change: dict[str, Any], default_rule: ControlRule) -> dict[str, Any] | None:
    """The simulation of a pending rule change (the last 12 months), for its reviewer."""
    if change["status"] != "pending":
        return None
    row = session.get(RuleChange, change["id"])
    assert row is not None
    rule = {"mode": row.mode, "basis": row.basis, "subtree": row.subtree, "thresholds": row.thresholds,
            "tolerance_percent": row.tolerance_percent, "tolerance_amount": row.tolerance_amount}
    return sim.simulate(session, row.line_id, rule, default_rule=default_rule)
