"""Budget journals with four eyes: propose an adjustment (追加/调减) or a transfer (调剂),
the reviewers' queue, a proposal's page, and its decision by a second finance user.

The views call the budget package's proposals (:mod:`yinfin_flow.budget.journal_proposals`)
with the API's input schemas, as the API does: the proposer never decides, stale
proposals are refused, and a refusal is shown as the API words it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, render_template, request, url_for

from yinfin_flow.api.budget.journal_schemas import JournalDecisionInSchema, JournalRejectInSchema
from yinfin_flow.api.budget.schemas import AdjustmentInSchema, TransferInSchema
from yinfin_flow.budget import journal_proposals as jp
from yinfin_flow.budget import overview
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models.journal_proposals import KINDS, STATUSES
from yinfin_flow.domain.errors import NotFound, ValidationError

from .. import i18n
from ..common import db, me, parse
from . import add_nav
from .shared import back, flow, form_text

PROPOSAL_ID = "<int(min=1, max=2147483647):proposal_id>"
DECISIONS = {"approve": (jp.approve, JournalDecisionInSchema()), "reject": (jp.reject, JournalRejectInSchema()),
             "withdraw": (jp.withdraw, JournalDecisionInSchema())}


def journals_page() -> str:
    status = form_text("status") or "pending"
    kind = form_text("kind")
    if status != "all" and status not in STATUSES:
        raise ValidationError("status", f"must be one of all, {', '.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise ValidationError("kind", f"must be one of {', '.join(KINDS)}")
    with db().unit_of_work(readonly=True) as s:
        total, items = jp.list_proposals(s, status=None if status == "all" else status, kind=kind, page=1,
                                         page_size=100)
    return render_template("yinfin/finance/journals.html", items=items, total=total, status=status, kind=kind,
                           statuses=STATUSES, line=form_text("line") or "")


def _lines(s: Any, *names: str) -> list[Any]:
    return [overview.line_by_code(s, request.form.get(n) or "", n) for n in names]


def propose(kind: str) -> Any:
    """Propose an adjustment or a transfer (booked at once where four eyes are off)."""
    ident, st = me(), flow()
    mode = st.settings.default_control_mode
    with db().unit_of_work() as s:
        if kind == "adjustment":
            (line,) = _lines(s, "line")
            body = parse(AdjustmentInSchema(), {"line_id": line.id, "currency": line.currency,
                                                "amount": form_text("amount"), "reason": form_text("reason"),
                                                "kind": form_text("journal_kind") or "adjustment"})
            if st.settings.budget_journal_approval == jp.REQUIRED:
                p = jp.propose_adjustment(s, line.id, body["amount"], actor=ident.id, reason=body["reason"],
                                          kind=body["kind"], default_mode=mode)
            else:
                jp.require_person(s, ident.id)
                Budgets(s, default_mode=mode).adjust(None, line.id, body["amount"], actor=ident.id,
                                                     reason=body["reason"], kind=body["kind"])
                p = None
        elif kind == "transfer":
            src, dst = _lines(s, "from_line", "to_line")
            body = parse(TransferInSchema(), {"from_line_id": src.id, "to_line_id": dst.id, "currency": src.currency,
                                              "amount": form_text("amount"), "reason": form_text("reason")})
            if st.settings.budget_journal_approval == jp.REQUIRED:
                p = jp.propose_transfer(s, src.id, dst.id, body["amount"], actor=ident.id, reason=body["reason"],
                                        default_mode=mode)
            else:
                jp.require_person(s, ident.id)
                Budgets(s, default_mode=mode).transfer(None, src.id, dst.id, body["amount"], actor=ident.id,
                                                       reason=body["reason"])
                p = None
        else:
            raise NotFound(f"no budget journal kind {kind!r}", field="kind")
        proposal_id = p.id if p is not None else None
    if proposal_id is None:
        flash(i18n._("Booked."))
        return back(url_for("console.finance_journals", status="all"))
    flash(i18n._("Proposed: another finance user approves it."))
    return back(url_for("console.finance_journal", proposal_id=proposal_id))


def proposal_page(proposal_id: int) -> str:
    with db().unit_of_work(readonly=True) as s:
        p = jp.get_proposal(s, proposal_id)
    mine = jp.person(me().id) == jp.person(p["proposed_by"])
    return render_template("yinfin/finance/journal.html", p=p, mine=mine)


def decide(proposal_id: int, action: str) -> Any:
    if action not in DECISIONS:
        raise NotFound(f"no action {action!r}", field="action")
    call, schema = DECISIONS[action]
    body = parse(schema, {"comment": form_text("comment")} if form_text("comment") else {})
    kw: dict[str, Any] = {"comment": body["comment"]}
    if action == "approve":
        kw["default_mode"] = flow().settings.default_control_mode
    with db().unit_of_work() as s:
        call(s, proposal_id, actor=me().id, **kw)
    flash(i18n._("Done: %(action)s on proposal %(id)s.", action=i18n.word(action), id=proposal_id))
    return back(url_for("console.finance_journal", proposal_id=proposal_id))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/finance/journals", "finance_journals", journals_page)
    bp.add_url_rule("/finance/journals/<kind>", "finance_journal_propose", propose, methods=["POST"])
    bp.add_url_rule(f"/finance/journals/{PROPOSAL_ID}", "finance_journal", proposal_page)
    bp.add_url_rule(f"/finance/journals/{PROPOSAL_ID}/<action>", "finance_journal_decide", decide,
                    methods=["POST"])
    add_nav("console.finance_journals", "Budget journals", frozenset({"finance", "admin"}))
