"""Control rules (控制规则) with four eyes: propose a change for a line, the reviewers'
queue, and a change's page with the rule in force beside the proposed one and the
what-if simulation of the change (规则模拟) to read before deciding.

The views call :mod:`yinfin_flow.budget.rule_changes` with the API's schemas, and the
API's simulation of a pending change (:func:`yinfin_flow.api.budget.simulation.of_change`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, render_template, url_for

from yinfin_flow.api.budget import reads as api_reads
from yinfin_flow.api.budget.rule_change_schemas import (
    RuleChangeInSchema,
    RuleDecisionInSchema,
    RuleRejectInSchema,
)
from yinfin_flow.api.budget.simulation import of_change
from yinfin_flow.budget import overview, setup
from yinfin_flow.budget import rule_changes as rc
from yinfin_flow.db.models.rule_changes import STATUSES
from yinfin_flow.domain.errors import NotFound, ValidationError

from .. import i18n
from ..common import db, me, parse
from . import add_nav
from .shared import back, default_rule, flow, form_text, rule_form

CHANGE_ID = "<int(min=1, max=2147483647):change_id>"
DECISIONS = {"approve": (rc.approve, RuleDecisionInSchema()), "reject": (rc.reject, RuleRejectInSchema()),
             "withdraw": (rc.withdraw, RuleDecisionInSchema())}
MODES = ("hard", "soft", "track", "none")
BASES = ("period", "cumulative", "annual", "overall")


def rules_page() -> str:
    status = form_text("status") or "pending"
    if status != "all" and status not in STATUSES:
        raise ValidationError("status", f"must be one of all, {', '.join(STATUSES)}")
    with db().unit_of_work(readonly=True) as s:
        total, items = rc.list_changes(s, status=None if status == "all" else status, page=1, page_size=100)
    return render_template("yinfin/finance/rules.html", items=items, total=total, status=status,
                           statuses=STATUSES, line=form_text("line") or "", modes=MODES, bases=BASES)


def propose() -> Any:
    ident, st = me(), flow()
    with db().unit_of_work() as s:
        line = overview.line_by_code(s, form_text("line") or "", "line")
        body = parse(RuleChangeInSchema(), {"line_id": line.id, **rule_form()})
        rule = {k: body[k] for k in ("mode", "basis", "tolerance_percent", "tolerance_amount", "thresholds",
                                     "subtree")}
        if st.settings.rule_change_approval == rc.OFF:
            setup.set_rule(s, line.id, actor=ident.id, **rule)
            change_id = None
        else:
            change_id = rc.propose(s, line.id, actor=ident.id, reason=body["reason"], **rule).id
    if change_id is None:
        flash(i18n._("Rule applied."))
        return back(url_for("console.finance_line", line_id=line.id))
    flash(i18n._("Proposed: another finance user approves it."))
    return back(url_for("console.finance_rule", change_id=change_id))


def change_page(change_id: int) -> str:
    """The change and the rule in force from the primary (the page opens right after a
    proposal: a lagging replica must not miss it); its simulation on the read database."""
    with db().unit_of_work(readonly=True) as s:
        change = rc.get_change(s, change_id)
        in_force = api_reads.rule_of(s, change["line_id"], default_rule(s))
        in_force_from = None
        if in_force["inherited"] and in_force["defined_on_line_id"]:
            in_force_from = api_reads.require_line(s, in_force["defined_on_line_id"]).code
    with flow().reads.unit_of_work(readonly=True) as s:
        simulation = of_change(s, change, default_rule(s))
    mine = rc.person(me().id) == rc.person(change["proposed_by"])
    return render_template("yinfin/finance/rule.html", c=change, in_force=in_force, in_force_from=in_force_from,
                           sim=simulation, mine=mine)


def decide(change_id: int, action: str) -> Any:
    if action not in DECISIONS:
        raise NotFound(f"no action {action!r}", field="action")
    call, schema = DECISIONS[action]
    body = parse(schema, {"comment": form_text("comment")} if form_text("comment") else {})
    with db().unit_of_work() as s:
        call(s, change_id, actor=me().id, comment=body["comment"])
    flash(i18n._("Done: %(action)s on rule change %(id)s.", action=i18n.word(action), id=change_id))
    return back(url_for("console.finance_rule", change_id=change_id))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/finance/rules", "finance_rules", rules_page)
    bp.add_url_rule("/finance/rules", "finance_rule_propose", propose, methods=["POST"])
    bp.add_url_rule(f"/finance/rules/{CHANGE_ID}", "finance_rule", change_page)
    bp.add_url_rule(f"/finance/rules/{CHANGE_ID}/<action>", "finance_rule_decide", decide, methods=["POST"])
    add_nav("console.finance_rules", "Control rules", frozenset({"finance", "admin"}))
