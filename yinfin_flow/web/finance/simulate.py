"""What-if simulation (规则模拟): any rule on a line (and, with ``subtree``, the lines below
it) replayed against the line's history over a window (default: the last 12 months),
beside what the rule in force did. Read-only, on the read database, through
:func:`yinfin_flow.budget.simulation.simulate` with the API's input schema.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from yinfin_flow.api.budget.simulation import RULE_FIELDS
from yinfin_flow.api.budget.simulation_schemas import SimulateInSchema
from yinfin_flow.budget import overview
from yinfin_flow.budget import simulation as sim

from ..common import parse
from . import add_nav
from .rules import BASES, MODES
from .shared import default_rule, flow, form_text, rule_form


def simulate_page() -> str:
    line_code = form_text("line") or ""
    result: dict[str, Any] | None = None
    if line_code and form_text("mode"):
        form = rule_form()
        form.pop("reason", None)
        for key in ("from", "to"):
            if form_text(key):
                form[key] = form_text(key)
        body = parse(SimulateInSchema(), form)
        with flow().reads.unit_of_work(readonly=True) as s:
            line = overview.line_by_code(s, line_code, "line")
            result = sim.simulate(s, line.id, {k: body[k] for k in RULE_FIELDS}, start=body["from_"],
                                  end=body["to"], default_rule=default_rule(s))
    return render_template("yinfin/finance/simulate.html", sim=result, line=line_code, q=request.args,
                           modes=MODES, bases=BASES)


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/finance/simulate", "finance_simulate", simulate_page)
    add_nav("console.finance_simulate", "Rule simulation", frozenset({"finance", "admin"}))
