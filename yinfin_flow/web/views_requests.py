"""My requests (我的申请), the request page with the closed loop, its print layout,
new requests, and the requester's actions.

The request page reads what the API's ``GET /requests/<id>`` and ``/trail`` read
(visibility included: anyone else gets 404), and each action is the engine's, in one
unit of work, as the API runs it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, Response, current_app, flash, render_template, request, url_for

from yinfin_flow.api.engine_reads import list_requests, request_detail, visible_request
from yinfin_flow.api.engine_schemas import CommentInSchema, SubmitInSchema, TextInSchema
from yinfin_flow.budget.choices import chargeable
from yinfin_flow.budget.results import LineRequest
from yinfin_flow.budget.service import Budgets
from yinfin_flow.domain.errors import DomainError, NotFound, ValidationError
from yinfin_flow.engine import definitions, directory, service
from yinfin_flow.extension import state
from yinfin_flow.ledger import reports

from . import forms, i18n
from . import views_attachments as attachments
from .common import db, me, parse
from .timeline import route_timeline
from .views_tasks import _back

STATES = ("draft", "approval", "sent_back", "approved", "paid", "rejected", "withdrawn", "closed")
_COMMENT, _TEXT, _SUBMIT = CommentInSchema(), TextInSchema(), SubmitInSchema()


def my_requests() -> str:
    ident = me()
    chosen = request.args.get("state") or None
    if chosen is not None and chosen not in STATES:
        raise ValidationError("state", f"must be one of {', '.join(STATES)}")
    page = request.args.get("page") or "1"
    if not page.isdigit() or not 1 <= int(page) <= 100_000:
        raise ValidationError("page", "must be a whole number from 1")
    with db().unit_of_work(readonly=True) as s:
        got = list_requests(s, ident, page=int(page), page_size=20, state=chosen, workflow=None,
                            requester=ident.id, submitted_from=None, submitted_to=None)
    flows = forms.fileable(definitions.load_dir(state(current_app).settings.workflows_dir))
    return render_template("yinfin/requests.html", items=got["items"], pagination=got["pagination"],
                           states=STATES, chosen=chosen, workflows=flows)


def _page_data(request_id: int) -> dict[str, Any]:
    ident = me()
    with db().unit_of_work(readonly=True) as s:
        req = visible_request(s, ident, request_id)
        detail = request_detail(s, req)
        trail = reports.to_jsonable(reports.trail(s, req.document_type, str(req.id)))
        timeline = route_timeline(s, req, detail)
        d = definitions.stored(s, req.workflow, req.workflow_version, req.workflow_hash)
        origin = _origin(req.idempotency_key, detail)
        files = attachments.listed(s, request_id)
    events = [t.event for t in d.transitions_from(detail["state"])]
    return {"req": detail, "trail": trail, "timeline": timeline, "definition": d,
            "mine": detail["requester"] == ident.id, "events": events,
            "origin": origin, "attachments": files}


def _origin(key: str | None, detail: dict[str, Any]) -> dict[str, Any] | None:
    """Where the request came from: an OA form (its connector and instance id, as the
    OA webhook keys the requests it creates: ``oa:<connector>:<instance>``)."""
    if not key or not key.startswith("oa:") or key.count(":") < 2:
        return None
    _, connector, instance = key.split(":", 2)
    first = detail["history"][0] if detail["history"] else {}
    return {"connector": connector, "event_id": instance, "at": first.get("at")}


def request_page(request_id: int) -> str:
    return render_template("yinfin/request.html", **_page_data(request_id))


def request_print(request_id: int) -> str:
    return render_template("yinfin/request_print.html", **_page_data(request_id))


def request_action(request_id: int, action: str) -> Response:
    ident = me()
    with db().unit_of_work() as s:
        visible_request(s, ident, request_id)
        if action == "comment":
            body = parse(_TEXT, {"text": (request.form.get("text") or "").strip()})
            service.comment(s, request_id, ident.id, body["text"])
        elif action in ("withdraw", "cancel", "submit", "resubmit"):
            text = (request.form.get("comment") or "").strip()
            body = parse(_COMMENT, {"comment": text} if text else {})
            if action == "withdraw":
                service.withdraw(s, request_id, ident.id, comment=body["comment"])
            elif action == "cancel":
                service.perform(s, request_id, "cancel", ident.id, comment=body["comment"])
            elif action == "submit":
                service.submit_draft(s, request_id, ident.id)
            else:
                changes = _changes(s, request_id)
                service.resubmit(s, request_id, ident.id, changes=changes or None,
                                 comment=body["comment"])
        elif action == "urge":
            urged = service.urge(s, request_id, ident.id)
            flash(i18n._("Reminded %(n)s approver(s).", n=len(urged)))
        else:
            raise NotFound(f"no action {action!r}", field="action")
    if action != "urge":
        flash(i18n._("Done: %(action)s.", action=i18n.word(action)))
    return _back(url_for("console.request", request_id=request_id))


def _changes(s: Any, request_id: int) -> dict[str, Any]:
    """Amounts edited on the sent-back request (the lines otherwise as they were)."""
    amounts = request.form.getlist("amount")
    if not amounts:
        return {}
    req = visible_request(s, me(), request_id)
    lines = [dict(ln) for ln in req.form.get("lines", [])]
    if len(amounts) != len(lines):
        raise ValidationError("form.lines", "send one amount per line")
    changed = False
    for ln, new in zip(lines, amounts, strict=True):
        if new.strip() and new.strip() != str(ln.get("amount")):
            ln["amount"] = new.strip()
            changed = True
    return {"lines": lines} if changed else {}


def new_request(workflow: str) -> str | Response:
    ident = me()
    flows = {d.name: d for d in forms.fileable(definitions.load_dir(state(current_app).settings.workflows_dir))}
    d = flows.get(workflow)
    if d is None:
        raise NotFound(f"no workflow {workflow!r} to file here", field="workflow")
    if request.method == "GET":
        return render_template("yinfin/new_request.html", definition=d,
                               fields=forms.EXTRA_FIELDS[d.document_type], today=date.today().isoformat())
    with db().unit_of_work(readonly=True) as s:
        who = directory.user_context(s, ident.id)
    if not who.get("company"):
        raise ValidationError("company", f"{ident.id} is in no company of the directory")
    body = parse(_SUBMIT, {"workflow": d.name, "title": (request.form.get("title") or "").strip(),
                           "company": who["company"], "form": forms.posted_form(d.document_type),
                           "draft": request.form.get("draft") == "1"})
    upload = attachments.posted_file(required=False)
    with db().unit_of_work() as s:  # the request and its receipt: both or neither
        req = service.submit(s, body["workflow"], requester=ident.id, company=body["company"],
                             title=body["title"], form=body["form"], department=body["department"],
                             draft=body["draft"], directory=state(current_app).settings.workflows_dir)
        request_id = req.id
        if upload is not None:
            attachments.add(s, request_id, {**upload, "line_ref": upload["line_ref"] or "1"})
    flash(i18n._("Request %(id)s saved.", id=request_id) if body["draft"]
          else i18n._("Request %(id)s submitted.", id=request_id))
    return _back(url_for("console.request", request_id=request_id))


def line_search() -> str:
    """Budget lines the user may charge on the date, matching what they typed."""
    raw = request.args.get("on") or date.today().isoformat()
    try:
        on = date.fromisoformat(raw)
    except ValueError:
        raise ValidationError("on", "must be a date YYYY-MM-DD") from None
    q = (request.args.get("q") or "")[:100]
    with db().unit_of_work(readonly=True) as s:
        found = chargeable(s, me().id, on=on, query=q)
    return render_template("yinfin/_line_choices.html", lines=found, slot=request.args.get("slot", "0"))


def line_preview() -> str:
    """What reserving the form's lines would do, per line and controlling ancestor
    (the API's ``POST /budget/preview``); problems are named per line, not raised."""
    try:
        lines = forms.posted_lines()
    except ValidationError as err:
        return render_template("yinfin/_preview.html", checks=[], problem=err.message)
    wanted = []
    for ln in lines:
        if not ln["amount"]:
            continue
        try:
            wanted.append(LineRequest(ref=ln["ref"], amount=ln["amount"], currency=ln["currency"],
                                      budget_date=date.fromisoformat(ln["budget_date"]),
                                      line_id=ln["line_id"]))
        except ValueError:
            return render_template("yinfin/_preview.html", checks=[],
                                   problem=f"form.lines[{int(ln['ref']) - 1}].budget_date: must be YYYY-MM-DD")
    checks, problem = [], None
    if wanted:
        st = state(current_app)
        try:
            with db().unit_of_work(readonly=True) as s:
                checks = [c.to_dict() for c in Budgets(s, default_mode=st.settings.default_control_mode)
                          .preview(wanted)]
        except DomainError as err:
            problem = err.message
    return render_template("yinfin/_preview.html", checks=checks, problem=problem,
                           at=datetime.now(UTC).isoformat())


def register(bp: Blueprint) -> None:
    rid = "<int(min=1, max=2147483647):request_id>"
    bp.add_url_rule("/requests", "my_requests", my_requests)
    bp.add_url_rule(f"/requests/{rid}", "request", request_page)
    bp.add_url_rule(f"/requests/{rid}/print", "request_print", request_print)
    bp.add_url_rule(f"/requests/{rid}/<action>", "request_action", request_action, methods=["POST"])
    bp.add_url_rule("/new/<workflow>", "new_request", new_request, methods=["GET", "POST"])
    bp.add_url_rule("/budget-lines", "line_search", line_search)
    bp.add_url_rule("/budget-lines/preview", "line_preview", line_preview, methods=["POST"])
