"""The task page (form, lines, budget impact, route timeline) and every approver action.

An action runs exactly as the API's does: one engine action in one unit of work,
with the request version the approver saw (409 ``stale_request`` if it moved); a
refusal is shown as the API words it.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from yinfin_flow.api.engine_reads import impact, my_task, request_detail, visible_request
from yinfin_flow.api.engine_schemas import (
    ActInSchema,
    AddApproverInSchema,
    RejectInSchema,
    SendBackInSchema,
    TaskTransferInSchema,
    TextInSchema,
)
from yinfin_flow.attachments import service as service_attachments
from yinfin_flow.domain.errors import DomainError, NotFound, ValidationError
from yinfin_flow.engine import inbox as inbox_reads
from yinfin_flow.engine import queries, service

from . import i18n
from .common import db, htmx, me, parse
from .timeline import route_timeline

#: Form action (the URL's last part) -> (engine action, input schema).
ACTIONS: dict[str, tuple[str, Any]] = {
    "approve": ("approve", ActInSchema()),
    "reject": ("reject", RejectInSchema()),
    "send-back": ("send_back", SendBackInSchema()),
    "transfer": ("transfer", TaskTransferInSchema()),
    "add-approver": ("add_approver", AddApproverInSchema()),
}
_TEXT = TextInSchema()


def form_input(schema_fields: Any) -> dict[str, Any]:
    """The posted form as the API's JSON body would carry it (empty fields left out;
    ``users`` split on commas and spaces; ``version`` as a number)."""
    data: dict[str, Any] = {}
    for key in ("comment", "target", "to", "position", "text"):
        value = (request.form.get(key) or "").strip()
        if value and key in schema_fields:
            data[key] = value
    if "users" in schema_fields:
        data["users"] = [u for u in (request.form.get("users") or "").replace(",", " ").split() if u]
    version = request.form.get("version")
    if version and "version" in schema_fields:
        if not version.isdigit():
            raise ValidationError("version", "must be a whole number")
        data["version"] = int(version)
    return data


def act_on(user: str, task_id: int, action: str, body: dict[str, Any]) -> Any:
    """One approver action in its own transaction (the API's ``_act``, without its
    answer): approve, reject, send_back, transfer, add_approver."""
    kw: dict[str, Any] = {"comment": body.get("comment"), "expected_version": body.get("version")}
    if action == "send_back":
        kw["target"] = body.get("target") or "submitter"
    elif action == "transfer":
        kw["to"] = body["to"]
    elif action == "add_approver":
        kw.update(users=body["users"], position=body.get("position") or "after")
    with db().unit_of_work() as s:
        return service.act(s, task_id, user, action, **kw).id


def task_page(task_id: int) -> str:
    ident = me()
    with db().unit_of_work(readonly=True) as s:
        task = my_task(s, ident, task_id)
        req = visible_request(s, ident, task.request_id)
        detail = request_detail(s, req)
        step = inbox_reads.step_state(s, req, task.step_id)
        timeline = route_timeline(s, req, detail)
        files = service_attachments.list_for_request(s, req.id, ident)
    return render_template("yinfin/task.html", task=queries.task_dict(task), req=detail, step=step,
                           timeline=timeline, attachments=files, earlier=_earlier_steps(detail, task.step_id))


def _earlier_steps(detail: dict[str, Any], step_id: str) -> list[str]:
    route = detail["route"] or []
    return route[: route.index(step_id)] if step_id in route else []


def task_action(task_id: int, action: str) -> Response:
    ident = me()
    if action == "comment":
        body = parse(_TEXT, form_input({"text"}))
        with db().unit_of_work() as s:
            task = my_task(s, ident, task_id)
            service.comment(s, task.request_id, ident.id, body["text"])
        flash(i18n._("Comment added."))
        return _back(url_for("console.task", task_id=task_id))
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}", field="action")
    engine_action, schema = ACTIONS[action]
    body = parse(schema, form_input(schema.fields))
    try:
        request_id = act_on(ident.id, task_id, engine_action, body)
    except DomainError:
        with db().unit_of_work(readonly=True) as s:
            my_task(s, ident, task_id)  # 404 for strangers, as the API answers
        raise
    flash(i18n._("Done: %(action)s on request %(id)s.", action=i18n.word(engine_action), id=request_id))
    return _back(url_for("console.inbox"))


def _back(target: str) -> Response:
    if htmx():
        resp = make_response("", 204)
        resp.headers["HX-Redirect"] = target
        return resp
    return redirect(target)


def row_impact(s: Any, ident: Any, request_id: int) -> dict[str, Any]:
    """A request's budget impact as the API's task answer gives it."""
    return impact(s, visible_request(s, ident, request_id))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/tasks/<int(min=1, max=2147483647):task_id>", "task", task_page)
    bp.add_url_rule("/tasks/<int(min=1, max=2147483647):task_id>/<action>", "task_action",
                    task_action, methods=["POST"])
