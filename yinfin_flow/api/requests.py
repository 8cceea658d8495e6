"""``/api/v1/requests``: submit, list, read (history and budget impact), withdraw,
resubmit, cancel, document events, comments and reminders.

Thin: each view parses with a schema, runs one engine action in one unit of work
and answers the request as it now is. The engine decides who may do what to a
request (only the requester withdraws or resubmits; ``role:…`` events need the
role); visibility (who may read it) is :mod:`.engine_reads`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Response, current_app, request

from yinfin_flow.engine import service

from ..extension import state
from .answers import as_dumped
from .blueprint import Blueprint
from .engine_reads import list_requests as _list
from .engine_reads import request_detail, visible_request
from .engine_schemas import (
    CommentInSchema,
    EventInSchema,
    RequestDetailSchema,
    RequestPageSchema,
    RequestQuery,
    ResubmitInSchema,
    SubmitInSchema,
    TextInSchema,
    TrailSchema,
    UrgeSchema,
)
from .errors import register_blueprint_handlers
from .identity import require_actor

blp = Blueprint("requests", __name__, url_prefix="/requests",
                description="Approval requests: submit, follow, withdraw, resubmit.")
register_blueprint_handlers(blp)

RID = "<int(min=1, max=2147483647):request_id>"
AUTH = {"security": [{"bearerAuth": []}, {"devUser": []}]}


def _engine_key(user: str, key: str) -> str:
    """The engine's own creation key for ``Idempotency-Key``: per user, fixed length
    (the column holds 200 characters; a user id plus a 160-character key would not fit)."""
    return "api:" + hashlib.sha256(f"{user}\x1f{key}".encode()).hexdigest()


def _detail(s: Any, request_id: int) -> Response:
    """The request with its history and budget impact, built in RequestDetailSchema's
    dumped form and sent as it is (api/answers)."""
    s.flush()
    return as_dumped(request_detail(s, visible_request(s, require_actor(), request_id)))


@blp.get("")
@blp.arguments(RequestQuery, location="query", as_kwargs=True)
@blp.response(200, RequestPageSchema)
@blp.doc(**AUTH)
def list_requests(**query: Any) -> dict[str, Any]:
    """Requests you may see (your own; those you have tasks on; all for finance and
    admins), newest first, filtered by state, workflow, requester and submit date."""
    ident = require_actor()
    with state(current_app).db.unit_of_work(readonly=True) as s:
        return _list(s, ident, **query)


@blp.post("")
@blp.arguments(SubmitInSchema)
@blp.response(201, RequestDetailSchema)
@blp.doc(**AUTH)
def submit_request(body: dict[str, Any]) -> Response:
    """Create a request as the caller and submit it (or keep it as a draft).

    Budget is reserved for every line or none: over a hard budget is 409
    ``over_budget`` naming the line, the amount asked and the amount available.
    With ``Idempotency-Key`` the request is created once, whatever is retried.
    """
    ident = require_actor()
    st = state(current_app)
    key = request.headers.get("Idempotency-Key")
    with st.db.unit_of_work() as s:
        req = service.submit(
            s, body["workflow"], requester=ident.id, company=body["company"], title=body["title"],
            form=body["form"], department=body["department"], draft=body["draft"],
            override_reason=body["override_reason"], directory=st.settings.workflows_dir,
            key=_engine_key(ident.id, key) if key else None, limits=st.settings.limits,
        )
        return _detail(s, req.id)


@blp.get(f"/{RID}")
@blp.response(200, RequestDetailSchema)
@blp.doc(**AUTH)
def get_request(request_id: int) -> Response:
    """The request with its form, route, tasks, history and budget impact per line."""
    with state(current_app).db.unit_of_work(readonly=True) as s:
        return _detail(s, request_id)


@blp.post(f"/{RID}/withdraw")
@blp.arguments(CommentInSchema)
@blp.response(200, RequestDetailSchema)
@blp.doc(**AUTH)
def withdraw_request(body: dict[str, Any], request_id: int) -> Response:
    """The requester takes the request back; what it holds is released."""
    ident = require_actor()
    with state(current_app).db.unit_of_work() as s:
        visible_request(s, ident, request_id)
        service.withdraw(s, request_id, ident.id, comment=body["comment"])
        return _detail(s, request_id)


@blp.post(f"/{RID}/resubmit")
@blp.arguments(ResubmitInSchema)
@blp.response(200, RequestDetailSchema)
@blp.doc(**AUTH)
def resubmit_request(body: dict[str, Any], request_id: int) -> Response:
    """Send a sent-back request on again, optionally with form changes."""
    ident = require_actor()
    st = state(current_app)
    with st.db.unit_of_work() as s:
        visible_request(s, ident, request_id)
        service.resubmit(s, request_id, ident.id, changes=body["changes"] or None,
                         comment=body["comment"], override_reason=body["override_reason"],
                         limits=st.settings.limits)
        return _detail(s, request_id)


@blp.post(f"/{RID}/cancel")
@blp.arguments(CommentInSchema)
@blp.response(200, RequestDetailSchema)
@blp.doc(**AUTH)
def cancel_request(body: dict[str, Any], request_id: int) -> Response:
    """Cancel, where the workflow has a ``cancel`` event (e.g. an approved purchase,
    by the buyer); what it holds is released. 409 ``invalid_action`` otherwise."""
    ident = require_actor()
    with state(current_app).db.unit_of_work() as s:
        visible_request(s, ident, request_id)
        service.perform(s, request_id, "cancel", ident.id, comment=body["comment"])
        return _detail(s, request_id)


@blp.post(f"/{RID}/events")
@blp.arguments(EventInSchema)
@blp.response(200, RequestDetailSchema)
@blp.doc(**AUTH)
def perform_event(body: dict[str, Any], request_id: int) -> Response:
    """Fire a document event the workflow gives to a role or the requester
    (``issue_po``, ``receive``, ``pay``, ``close``…)."""
    ident = require_actor()
    with state(current_app).db.unit_of_work() as s:
        visible_request(s, ident, request_id)
        data = {k: body[k] for k in ("invoice", "partner") if body.get(k)}
        if body.get("lines"):
            data["lines"] = [{k: (None if v is None else str(v)) for k, v in ln.items()} for ln in body["lines"]]
        service.perform(s, request_id, body["event"], ident.id, comment=body["comment"], data=data or None)
        return _detail(s, request_id)


@blp.post(f"/{RID}/comments")
@blp.arguments(TextInSchema)
@blp.response(201, RequestDetailSchema)
@blp.doc(**AUTH)
def comment_request(body: dict[str, Any], request_id: int) -> Response:
    """Add a comment to the request's history (anyone who may see it)."""
    ident = require_actor()
    with state(current_app).db.unit_of_work() as s:
        visible_request(s, ident, request_id)
        service.comment(s, request_id, ident.id, body["text"])
        return _detail(s, request_id)


@blp.post(f"/{RID}/urge")
@blp.response(200, UrgeSchema)
@blp.doc(**AUTH)
def urge_request(request_id: int) -> dict[str, Any]:
    """The requester reminds (催办) whoever is waiting to act."""
    ident = require_actor()
    with state(current_app).db.unit_of_work() as s:
        visible_request(s, ident, request_id)
        return {"urged_tasks": service.urge(s, request_id, ident.id)}


@blp.get(f"/{RID}/trail")
@blp.response(200, TrailSchema)
@blp.doc(**AUTH)
def request_trail(request_id: int) -> dict[str, Any]:
    """The request's accounting trail: its budget entries and the vouchers posted for it."""
    from yinfin_flow.ledger import reports

    with state(current_app).reads.unit_of_work(readonly=True) as s:
        req = visible_request(s, require_actor(), request_id)
        return {"trail": reports.to_jsonable(reports.trail(s, req.document_type, str(req.id)))}
