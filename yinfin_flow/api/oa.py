"""``POST /api/v1/oa/<connector>/events``: signed events from OA systems.

``GET`` on the same address answers the vendor's check of the URL (WeCom's
``echostr``); Feishu's ``url_verification`` and DingTalk's ``check_url`` come as POSTs.
Event types a connector does not read are answered as the vendor expects and counted
(:mod:`.oa_ignored`, ``oa_inbound`` in ``/api/v1/health``).

The connector (``connectors.registry``) checks the vendor's signature, refuses stale
timestamps (> 5 min) and replays, and parses the delivery; event ids are remembered
in the database (``inbound_seen``) in the same transaction that applies the events,
so a delivery that fails can be retried by the vendor and one that succeeded is
applied once. Then, per event:

``form_submitted``
    the form's mapping (:mod:`.oa_mapping`) gives workflow, title, form and lines; the
    OA user becomes ours through the directory's external ids; the request is
    submitted with key ``oa:<connector>:<instance id>`` (created once).
``task_acted``
    the OA user's pending task on that request takes the action (approve, reject,
    send_back, transfer, comment).
``instance_withdrawn``
    the requester withdraws the request.
``instance_status``
    informational (our state is the source of truth); nothing changes.

The answer is exactly what the vendor expects (the connector builds it). An authentic
re-delivery of an event already applied gets the same success answer, is counted
(:mod:`yinfin_flow.security.inbound`, ``oa_inbound`` in ``/health``) and applies
nothing. Bad signature or stale timestamp: 401 ``bad_signature``; unknown connector:
404; an authentic but malformed delivery: 422.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, current_app, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yinfin_flow.db.models.engine import ApprovalTask
from yinfin_flow.db.models.security import OAInstance
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import DomainError, NotFound, ValidationError
from yinfin_flow.domain.limits import check_value
from yinfin_flow.engine import directory, service
from yinfin_flow.security.inbound import SeenInTransaction, redeliveries

from ..extension import state
from . import oa_ignored, oa_mapping
from .blueprint import Blueprint
from .errors import error_response, register_blueprint_handlers

log = logging.getLogger("yinfin_flow.api")

blp = Blueprint("oa", __name__, url_prefix="/oa", description="Signed events from OA systems.")
register_blueprint_handlers(blp)


@blp.record_once
def _install(setup: Any) -> None:
    def oa_inbound(st: Any) -> dict[str, Any]:
        # What came in and was not applied: re-deliveries, and event types nobody reads.
        with st.db.unit_of_work(readonly=True) as s:
            return {**redeliveries(s), **oa_ignored.summary(s)}

    state(setup.app).add_health_check("oa_inbound", oa_inbound)

ACTIONS = {"approve": "approve", "agree": "approve", "reject": "reject", "refuse": "reject",
           "send_back": "send_back", "redirect": "send_back", "transfer": "transfer"}


class BadSignature(DomainError):
    code = "bad_signature"
    http_status = 401


def _user(session: Session, users: str, external: str | None) -> str:
    if not external:
        raise ValidationError("user_id", "the event names no OA user")
    if users == "same":
        return directory.get_user(session, external, "user_id").id
    found = directory.user_by_external_id(session, users, external)
    if found is None:
        raise NotFound(f"no user with {users} id {external!r} in the directory", field="user_id")
    return found.id


def _request_of(session: Session, connector: str, instance: str) -> int:
    rid = session.scalar(select(OAInstance.request_id).where(
        OAInstance.connector == connector, OAInstance.external_id == instance))
    if rid is None:
        raise NotFound(f"no request for {connector} instance {instance!r}", field="instance_id")
    return rid


def _apply(session: Session, connector: str, mapping: oa_mapping.ConnectorMapping, ev: Any) -> None:
    if ev.kind == "instance_status":
        return
    # The raw body's strings are not bounded (encrypted envelopes); the decrypted event's are.
    check_value({"form": dict(ev.form), "comment": ev.comment}, state(current_app).settings.limits)
    user = _user(session, mapping.users, ev.external_user_id)
    if ev.kind == "form_submitted":
        m = mapping.forms.get(ev.template or "")
        if m is None:
            raise ValidationError("template", f"no mapping for OA form {ev.template!r}")
        title, form = oa_mapping.to_request(m, dict(ev.form))
        req = service.submit(session, m.workflow, requester=user, company=m.company, title=title,
                             form=form, key=f"oa:{connector}:{ev.external_instance_id}",
                             directory=state(current_app).settings.workflows_dir,
                             limits=state(current_app).settings.limits)
        if session.scalar(select(OAInstance.id).where(OAInstance.connector == connector,
                                                      OAInstance.external_id == ev.external_instance_id)) is None:
            session.add(OAInstance(connector=connector, external_id=ev.external_instance_id,
                                   request_id=req.id))
        return
    rid = _request_of(session, connector, ev.external_instance_id)
    if ev.kind == "instance_withdrawn":
        service.withdraw(session, rid, user, comment=ev.comment)
        return
    if ev.action == "comment":
        service.comment(session, rid, user, ev.comment or "")
        return
    action = ACTIONS.get(ev.action or "")
    if action is None:
        raise ValidationError("action", f"unknown OA action {ev.action!r}")
    task_id = session.scalar(select(ApprovalTask.id).where(
        ApprovalTask.request_id == rid, ApprovalTask.assignee == user, ApprovalTask.status == "pending"))
    if task_id is None:
        raise NotFound(f"{user} has no pending task on request {rid}", field="task_id")
    to = _user(session, mapping.users, ev.raw.get("to")) if action == "transfer" else None
    service.act(session, task_id, user, action, comment=ev.comment, to=to)


def _oa_connector(connector: str) -> Any:
    """The configured OA connector named ``connector``, or the 404 answer saying why not."""
    from connectors import registry

    try:
        conn = registry.get(connector)
    except registry.ConnectorNotConfigured:
        return error_response(404, "unknown_connector", f"no configured OA connector {connector!r}",
                              {"field": "connector"})
    if registry.kind(connector) != "oa" or not hasattr(conn, "verify_and_parse"):
        return error_response(404, "unknown_connector", f"{connector!r} is not an OA connector",
                              {"field": "connector"})
    return conn


@blp.post("/<string(maxlength=64):connector>/events")
@blp.response(200, description="the vendor's expected answer (connector-specific body)")
@blp.alt_response(401, description="bad signature or stale timestamp")
def inbound_events(connector: str) -> Response:
    """Receive a signed OA delivery (see the connector's module for its headers)."""
    from connectors.base import ConnectorError, PermanentError, SignatureError

    st = state(current_app)
    conn = _oa_connector(connector)
    if isinstance(conn, Response):
        return conn
    body = request.get_data(cache=True)
    try:
        # A concurrent twin of a delivery being applied fails on the event id's key
        # once the first commits: the second pass finds it applied (a re-delivery).
        for attempt in (1, 2):
            try:
                with st.db.unit_of_work() as s:
                    seen = SeenInTransaction(s)
                    result = conn.verify_and_parse(dict(request.headers), request.args.to_dict(),
                                                   body, now=utcnow(), seen=seen)
                    if seen.duplicate is not None:
                        log.info("OA re-delivery of %s answered, nothing applied", seen.duplicate)
                    else:
                        if result.events:  # a URL check or an ignored type needs no mapping yet
                            mapping = oa_mapping.load(oa_mapping.mapping_dir(current_app), connector)
                        for ev in result.events:
                            _apply(s, connector, mapping, ev)
                        oa_ignored.record(s, connector, result.ignored)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
    except SignatureError as err:
        raise BadSignature(err.message, field="signature") from None
    except PermanentError as err:
        return error_response(422, "invalid_event", err.message, {"field": "body"})
    except ConnectorError as err:
        return error_response(503, "oa_unavailable", err.message, {"connector": connector})
    return Response(result.body, status=result.status, content_type=result.content_type)


@blp.get("/<string(maxlength=64):connector>/events")
@blp.response(200, description="the vendor's expected answer (WeCom: the decrypted echostr)")
@blp.alt_response(401, description="bad signature or stale timestamp")
def verify_url(connector: str) -> Response:
    """The vendor's check of the callback URL (WeCom: ``msg_signature``, ``timestamp``,
    ``nonce``, ``echostr`` in the query; the answer is the decrypted ``echostr``).
    Nothing is applied: a GET carries no events."""
    from connectors.base import SignatureError

    conn = _oa_connector(connector)
    if isinstance(conn, Response):
        return conn

    def never_seen(event_id: str) -> bool:
        raise SignatureError("a GET carries no events", connector=connector)

    try:
        result = conn.verify_and_parse(dict(request.headers), request.args.to_dict(), b"",
                                       now=utcnow(), seen=never_seen)
    except SignatureError as err:
        raise BadSignature(err.message, field="signature") from None
    if result.events:  # pragma: no cover - a connector's GET answer never carries events
        raise BadSignature("a GET carries no events", field="method")
    return Response(result.body, status=result.status, content_type=result.content_type)
