"""Delivery to the OA and ERP: connector status, dead letters and replay, reconciliation.

==========================================  =================  ==========================
endpoint                                    who                what
==========================================  =================  ==========================
GET  /api/v1/connectors/status              admin              per connector: configured,
                                                               backlog, in flight, dead
                                                               letters, last success,
                                                               master-data sync state
GET  /api/v1/dead-letters                   finance, admin     messages given up on
POST /api/v1/dead-letters/<id>/replay       finance, admin     fresh tries for one (a
                                                               delivered one: no-op)
POST /api/v1/dead-letters/replay            finance, admin     fresh tries for all
GET  /api/v1/reconciliation?period=YYYY-MM  finance, admin     our vouchers vs the ERP's
                                                               (``format=csv`` for a file)
==========================================  =================  ==========================

Registering this blueprint also plugs the outbox into the connectors resource's
dead-letter seam (``/api/v1/connectors/dead-letters``), adds ``redis`` and one
``connector:<name>`` part per delivery target to ``GET /api/v1/health``, and starts
the in-process delivery thread when ``YINFIN_INPROCESS_WORKER=1`` and there is no Redis.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Response, current_app
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yinfin_flow.api.fields import MAX_ID
from yinfin_flow.worker import outbox
from yinfin_flow.worker.config import DeliverySettings
from yinfin_flow.worker.status import connector_status

from ..extension import FlowState, state
from .blueprint import Blueprint
from .errors import register_blueprint_handlers

blp = Blueprint("delivery", __name__, url_prefix="",
                description="Outbox delivery: connector status, dead letters, replay, reconciliation.")
register_blueprint_handlers(blp)
AUTH = {"security": [{"bearerAuth": []}, {"devUser": []}]}
MESSAGE_ID = "<int(min=1, max=9223372036854775807):message_id>"


class MessageSchema(Schema):
    id = fields.Integer(required=True)
    target = fields.String(required=True)
    kind = fields.String(required=True)
    document_key = fields.String(required=True)
    idempotency_key = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["pending", "in_flight", "delivered", "dead"]})
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(required=True)
    last_error = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)


class MessageListSchema(Schema):
    items = fields.List(fields.Nested(MessageSchema), required=True)
    next_after_id = fields.Integer(allow_none=True, metadata={"description": "pass as after_id for more"})


class DeadLetterQuery(Schema):
    target = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    after_id = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID))


class ReplayAllIn(Schema):
    class Meta:
        unknown = EXCLUDE

    target = fields.String(load_default=None, validate=validate.Length(min=1, max=64))


class ReplayAllSchema(Schema):
    replayed = fields.Integer(required=True)


class SyncStateSchema(Schema):
    kind = fields.String(required=True)
    synced_at = fields.DateTime(allow_none=True)
    records = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)


class ConnectorStatusSchema(Schema):
    name = fields.String(required=True)
    role = fields.String(required=True, metadata={"enum": ["erp", "oa", "none"],
                                                  "description": "what we deliver to it"})
    configured = fields.Boolean(required=True)
    backlog = fields.Integer(required=True, metadata={"description": "pending + in flight"})
    in_flight = fields.Integer(required=True)
    dead_letters = fields.Integer(required=True)
    delivered = fields.Integer(required=True)
    last_success = fields.DateTime(allow_none=True)
    oldest_pending = fields.DateTime(allow_none=True)
    sync = fields.List(fields.Nested(SyncStateSchema), required=True)


class ConnectorStatusListSchema(Schema):
    items = fields.List(fields.Nested(ConnectorStatusSchema), required=True)


class ReconcileQuery(Schema):
    period = fields.String(required=True, validate=[validate.Length(equal=7), validate.Regexp(r"^[0-9]{4}-[0-9]{2}$", error="must be YYYY-MM")])
    connector = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    company = fields.String(load_default=None, validate=validate.Length(min=1, max=32))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


class DifferenceSchema(Schema):
    entry_id = fields.Integer(required=True)
    voucher = fields.String(allow_none=True)
    problem = fields.String(required=True, metadata={"enum": [
        "not_queued", "pending", "dead", "missing", "amounts", "accounts", "unreadable"]})
    detail = fields.String(required=True)
    erp_voucher_id = fields.String(allow_none=True)
    ours_debit = fields.String(allow_none=True)
    erp_debit = fields.String(allow_none=True)


class ReconcileSchema(Schema):
    period = fields.String(required=True)
    target = fields.String(required=True)
    checked = fields.Integer(required=True)
    matched = fields.Integer(required=True)
    differences = fields.List(fields.Nested(DifferenceSchema), required=True)


def _st() -> FlowState:
    return state(current_app)


# -- connectors -------------------------------------------------------------------------


@blp.get("/connectors/status")
@blp.response(200, ConnectorStatusListSchema)
@blp.doc(**AUTH)
def connector_statuses() -> dict[str, Any]:
    """Per connector: backlog, dead letters, last successful delivery, master-data sync."""
    with _st().db.unit_of_work(readonly=True) as s:
        return {"items": connector_status(s)}


# -- dead letters --------------------------------------------------------------------------


@blp.get("/dead-letters")
@blp.arguments(DeadLetterQuery, location="query", as_kwargs=True)
@blp.response(200, MessageListSchema)
@blp.doc(**AUTH)
def list_dead_letters(target: str | None, limit: int, after_id: int) -> dict[str, Any]:
    """Messages given up on, oldest first, with the outside system's last error."""
    with _st().db.unit_of_work(readonly=True) as s:
        items = outbox.dead_letters(s, target=target, limit=limit, after_id=after_id)
    return {"items": [m.__dict__ for m in items],
            "next_after_id": items[-1].id if len(items) == limit else None}


@blp.post(f"/dead-letters/{MESSAGE_ID}/replay")
@blp.response(200, MessageSchema)
@blp.doc(**AUTH)
def replay_dead_letter(message_id: int) -> dict[str, Any]:
    """Fresh tries for one dead letter; a delivered message is returned unchanged."""
    with _st().db.unit_of_work() as s:
        return outbox.replay(s, message_id).__dict__


@blp.post("/dead-letters/replay")
@blp.arguments(ReplayAllIn, location="json", required=False, as_kwargs=True)
@blp.response(200, ReplayAllSchema)
@blp.doc(**AUTH)
def replay_all_dead_letters(target: str | None = None) -> dict[str, Any]:
    """Fresh tries for every dead letter (of ``target``)."""
    with _st().db.unit_of_work() as s:
        return {"replayed": outbox.replay_all(s, target=target)}


# -- reconciliation --------------------------------------------------------------------------


@blp.get("/reconciliation")
@blp.arguments(ReconcileQuery, location="query", as_kwargs=True)
@blp.response(200, ReconcileSchema)
@blp.doc(**AUTH)
def reconciliation(period: str, connector: str | None, company: str | None, format: str) -> Any:
    """Every voucher of ``period`` compared with the ERP's copy; ``format=csv`` for a file."""
    from yinfin_flow.domain.errors import ValidationError
    from yinfin_flow.worker import reconcile

    target = connector or next(iter(DeliverySettings.from_env().erp), None)
    if not target:
        raise ValidationError("connector", "no ERP is configured (YINFIN_ERP_CONNECTOR)")
    report = reconcile.reconcile(_st().db, period, target, company=company)
    if format == "csv":
        return Response(report.to_csv(), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="reconcile-{period}-{target}.csv"'})
    return report.to_dict()


# -- the seams: dead-letter source, health, in-process worker ---------------------------------


class OutboxDeadLetters:
    """The connectors resource's dead-letter source, backed by the outbox."""

    def list(self, session: Session, page: int, page_size: int) -> tuple[list[dict[str, Any]], int]:
        from yinfin_flow.db.models.outbox import OutboxMessage

        total = session.scalar(select(func.count()).select_from(OutboxMessage)
                               .where(OutboxMessage.status == "dead")) or 0
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "dead")
                               .order_by(OutboxMessage.id).offset((page - 1) * page_size).limit(page_size))
        return [{"id": r.id, "kind": r.kind, "target": r.target, "status": r.status,
                 "message": r.last_error, "updated_at": r.updated_at.isoformat()} for r in rows], total

    def replay(self, session: Session, letter_id: int, actor: str) -> dict[str, Any]:
        view = outbox.replay(session, letter_id)
        return {"id": view.id, "status": view.status}


def _check_redis(st: FlowState) -> dict[str, Any]:
    if not st.settings.redis_url:
        return {"configured": False, "delivery": "in-process"}
    import redis

    redis.Redis.from_url(st.settings.redis_url, socket_connect_timeout=2, socket_timeout=2).ping()
    return {"configured": True, "delivery": "celery"}


def _connector_check(name: str) -> Any:
    def check(st: FlowState) -> dict[str, Any]:
        from yinfin_flow.worker.reconcile import last_runs

        with st.db.unit_of_work(readonly=True) as s:
            [t] = [x for x in outbox.target_status(s, [name]) if x.target == name]
            reconciled = last_runs(s, [name]).get(name)
        # dead letters, a backlog and reconciliation findings are reported, not failed:
        # the instance still serves, and a load balancer must not take it out because an
        # ERP is down or holds a duplicate
        return {"last_success": t.last_success.isoformat() if t.last_success else None,
                "backlog": t.backlog, "dead_letters": t.dead_letters,
                "oldest_pending": t.oldest_pending.isoformat() if t.oldest_pending else None,
                "last_reconcile": reconciled}
    return check


def _request_ids(app: Any) -> None:
    """Every log line written while serving a request carries its ``request_id`` (the
    caller's ``X-Request-Id`` if it is sane, else a new one), echoed in the response."""
    import re
    import uuid

    from flask import g, request

    from yinfin_flow.worker import logs

    sane = re.compile(r"[A-Za-z0-9._-]{1,64}").fullmatch

    def begin() -> None:
        given = request.headers.get("X-Request-Id", "")
        rid = given if sane(given) else uuid.uuid4().hex
        call = g._get_current_object()  # type: ignore[attr-defined]
        call.yinfin_request_id, call.yinfin_log_token = rid, logs.bind(request_id=rid)

    def echo(response: Response) -> Response:
        rid = g.get("yinfin_request_id")
        if rid:
            response.headers.setdefault("X-Request-Id", rid)
        return response

    def end(_: BaseException | None) -> None:
        token = g.pop("yinfin_log_token", None)
        if token is not None:
            logs.reset(token)

    app.before_request(begin)
    app.after_request(echo)
    app.teardown_request(end)
    if os.environ.get("YINFIN_LOG_FORMAT") or os.environ.get("YINFIN_INPROCESS_WORKER"):
        logs.setup()


@blp.record_once
def _install(setup: Any) -> None:
    from yinfin_flow.extension import EXTENSION_KEY

    app = setup.app
    st: FlowState = app.extensions[EXTENSION_KEY]
    try:
        from . import connectors as connectors_resource

        connectors_resource.set_dead_letter_source(app, OutboxDeadLetters())
    except (ImportError, AttributeError):
        pass
    st.add_health_check("redis", _check_redis)
    _request_ids(app)
    for name in DeliverySettings.from_env().targets:
        st.add_health_check(f"connector:{name}", _connector_check(name))
    if st.settings.redis_url:
        from yinfin_flow.worker import celery_app

        outbox.on_new_messages(celery_app.kick)
    else:
        from yinfin_flow.worker.runner import start_for_app, wanted

        if wanted() or app.config.get("YINFIN_INPROCESS_WORKER"):
            start_for_app(app)
