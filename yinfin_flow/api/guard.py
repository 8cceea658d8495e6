"""The gate every API call passes: authorization, idempotency, audit, CORS.

Installed on the app for the API's own paths only (a host's other routes are left
alone), as ``before_request`` / ``after_request`` hooks:

before the view
    0. the body's limits (:mod:`yinfin_flow.domain.limits`): size (413), JSON nesting
       and string length (422 naming the field), before anything parses it;
    1. the endpoint's access from :data:`yinfin_flow.security.policy.POLICY`; an
       endpoint without an entry is refused (deny by default);
    2. the caller's identity (token, host provider, or the development header) and
       roles: 401 without one, 403 without a role the endpoint needs;
    3. ``Idempotency-Key`` on a mutating call: claim it, or replay the first answer
       (:mod:`yinfin_flow.security.idempotency`).
after the view
    4. store the answer under the claimed key;
    5. append a row to the hash-chained audit log for every mutating call, refused
       ones included (who, what, when, remote address, user agent, status);
    6. CORS headers, only for origins in ``YINFIN_CORS_ORIGINS`` (off by default).

The audit row of a call that succeeds is written *in the action's own transaction*
(a ``before_commit`` listener on the app's writing sessions appends it with the
endpoint's success status), so the change and its audit row commit together or not
at all, at the cost of one commit, not two. A call that fails (nothing committed)
gets its row committed on its own after the response is known (one statement on
PostgreSQL); a failed write there is logged, never turned into an error for the
caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from typing import Any

from flask import Flask, Request, Response, current_app, g, has_request_context, request
from sqlalchemy import event
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from yinfin_flow.db.engine import READONLY
from yinfin_flow.domain.errors import DomainError, ValidationError
from yinfin_flow.domain.limits import TooLarge, check_json_text, check_size
from yinfin_flow.security import audit, idempotency
from yinfin_flow.security.policy import access_for
from yinfin_flow.security.ratelimit import FailureLimiter

from .answers import documented_success
from .errors import error_response, handle_domain_error
from .identity import Unauthenticated, current_identity

log = logging.getLogger("yinfin_flow.api")

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: POSTs that change nothing (they compute an answer): not audited, no key needed.
READ_ONLY_POSTS = frozenset({"budget.preview", "budget.simulate_rule", "workflows.validate_workflow"})
_KEY = re.compile(r"^[\x20-\x7e]{1,160}$")
LIMITER_KEY = "yinfin_flow.limiter"


def _cors_origins(app: Flask) -> frozenset[str]:
    raw = app.config.get("YINFIN_CORS_ORIGINS") or os.environ.get("YINFIN_CORS_ORIGINS") or ""
    if isinstance(raw, (list, tuple, set, frozenset)):
        return frozenset(str(o).strip().rstrip("/") for o in raw if str(o).strip())
    return frozenset(o.strip().rstrip("/") for o in str(raw).split(",") if o.strip())


def install(app: Flask, api_prefix: str, redis_url: str | None) -> None:
    """Hook the gate into ``app`` for paths under ``api_prefix``."""
    prefix = api_prefix.rstrip("/")
    app.extensions[LIMITER_KEY] = FailureLimiter.from_url(redis_url)
    origins = _cors_origins(app)

    under = prefix + "/"

    def ours(req: Request) -> bool:
        return req.path == prefix or req.path.startswith(under)

    # ``request`` and ``g`` are context-local proxies (a lookup at each use): the hooks
    # below take the objects once.
    def before() -> Response | None:
        req = _current_request()
        if not ours(req) or req.endpoint is None or req.method == "OPTIONS":
            return None
        try:
            _check_body(req)
            return _authorize(req)
        except DomainError as err:
            g.yinfin_refused = err.code
            return handle_domain_error(err)

    def after(response: Response) -> Response:
        req = _current_request()
        if not ours(req):
            return response
        g.pop("yinfin_audit_status", None)  # no more in-transaction rows for this call
        if req.method in MUTATING and req.endpoint not in READ_ONLY_POSTS:
            _audit(response)
        _finish_idempotency(response)
        if origins:
            _cors(response, origins)
        return response

    app.before_request(before)
    app.after_request(after)


def _current_request() -> Request:
    """The request itself, not the context-local proxy (one lookup instead of one per use)."""
    return request._get_current_object()  # type: ignore[attr-defined, no-any-return]


def _event(status: int, detail: str | None = None) -> audit.AuditEvent:
    req = _current_request()
    headers = req.headers
    return audit.AuditEvent(
        method=req.method, path=req.path, status=status, actor=_actor(req),
        endpoint=req.endpoint, remote_addr=req.remote_addr,
        user_agent=headers.get("User-Agent"),
        idempotency_key=headers.get("Idempotency-Key"), detail=detail,
    )


def _ours(session: Session) -> bool:
    from yinfin_flow.extension import EXTENSION_KEY

    st = current_app.extensions.get(EXTENSION_KEY)
    bind = session.get_bind()
    return (st is not None and getattr(bind, "pool", None) is st.db.engine.pool
            and not bind.get_execution_options().get(READONLY))


@event.listens_for(Session, "before_commit")
def _audit_in_transaction(session: Session) -> None:
    if not has_request_context():
        return
    call = g._get_current_object()  # type: ignore[attr-defined]
    status = call.get("yinfin_audit_status")
    if status is None or call.get("yinfin_audit_tx") is not None or call.get("yinfin_audited"):
        return
    if not _ours(session):
        return
    # Flush the action's own changes first: the chain head the append takes is then
    # held only for its one statement and the commit (other calls take other heads).
    session.flush()
    audit.append(session, _event(status))
    call.yinfin_audit_tx = session


@event.listens_for(Session, "after_commit")
def _audit_committed(session: Session) -> None:
    if has_request_context():
        call = g._get_current_object()  # type: ignore[attr-defined]
        if call.get("yinfin_audit_tx") is session:
            call.yinfin_audited = True
            call.yinfin_audit_tx = None


@event.listens_for(Session, "after_rollback")
def _audit_rolled_back(session: Session) -> None:
    if has_request_context() and g.get("yinfin_audit_tx") is session:
        g.yinfin_audit_tx = None


#: Endpoints whose JSON strings are not bounded as such: an OA vendor wraps the whole
#: delivery in one encrypted string (the body's size still is; the decrypted forms are
#: checked when they become requests).
ENVELOPES = frozenset({"oa.inbound_events"})

#: Endpoints that take files: their body limit is the attachment limit, not the JSON one.
UPLOADS = frozenset({"attachments.add_attachment"})


def _check_body(req: Request) -> None:
    """Refuse a body past the size limit (413) or JSON nested or stretched past the
    limits (422 naming the field) before a parser sees it: Python's JSON decoder
    recurses, so a body nested a thousand deep would otherwise end in a 500."""
    from yinfin_flow.extension import state

    limits = state(current_app).settings.limits
    if req.mimetype == "multipart/form-data" and req.endpoint in UPLOADS:
        # An upload's body is bounded by its own limit (YINFIN_ATTACHMENT_MAX_BYTES, set on
        # the request before this hook); its parts are checked by the upload's schema.
        return
    check_size(req.content_length, limits.max_body_bytes)
    if req.content_length == 0 or req.method in ("GET", "HEAD"):
        return
    # A body without Content-Length (chunked) is read one byte past the limit at most:
    # that byte says it is too large.
    req.max_content_length = limits.max_body_bytes + 1
    try:
        data = req.get_data(cache=True)
    except RequestEntityTooLarge:
        data = None
    if data is None or len(data) > limits.max_body_bytes:
        raise TooLarge(f"body is over the limit of {limits.max_body_bytes} bytes", field="body",
                       limit=limits.max_body_bytes)
    if data:
        check_json_text(data, limits, strings=req.endpoint not in ENVELOPES)


def _authorize(req: Request) -> Response | None:
    endpoint = req.endpoint
    access = access_for(endpoint)
    if access is None:
        return error_response(403, "forbidden", "this endpoint has no access rule; refused",
                              {"endpoint": endpoint})
    if access.kind == "signed":
        g.yinfin_audit_status = documented_success(endpoint)[0]
        return None
    if access.kind == "public":
        return None
    ident = current_identity()
    if ident is None:
        raise Unauthenticated("this call needs an identified user",
                              hint="send Authorization: Bearer <token>")
    if not access.allows(ident.roles):
        g.yinfin_refused = "forbidden"
        return error_response(403, "forbidden",
                              f"needs the role {' or '.join(sorted(access.roles))}",
                              {"roles": sorted(access.roles)})
    if req.method in MUTATING and endpoint not in READ_ONLY_POSTS:
        replay = _claim(ident.id)
        if replay is None:  # from here on, the action's commit carries its audit row
            g.yinfin_audit_status = documented_success(endpoint)[0]
        return replay
    return None


def _claim(user: str) -> Response | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _KEY.match(key):
        raise ValidationError("Idempotency-Key", "1 to 160 printable ASCII characters")
    from yinfin_flow.extension import state

    st = state(current_app)
    got = idempotency.claim(st.db, user, key, request.method, request.path,
                            _fingerprinted_body(_current_request()))
    if isinstance(got, idempotency.Stored):
        g.yinfin_replayed = True
        resp = Response(got.body, status=got.status, content_type=got.content_type)
        resp.headers["Idempotent-Replayed"] = "true"
        return resp
    g.yinfin_idem = got
    return None


def _fingerprinted_body(req: Request) -> bytes:
    """The body a key is bound to. A multipart form's boundary is chosen anew at each
    send, so a retried upload is recognised by its parts (fields, file names and types,
    each file's SHA-256), not by its bytes."""
    if req.mimetype != "multipart/form-data":
        return req.get_data(cache=True)
    parts = [f"{name}={value}" for name, value in sorted(req.form.items(multi=True))]
    for name, upload in sorted(req.files.items(multi=True), key=lambda item: item[0]):
        digest = hashlib.sha256()
        upload.stream.seek(0)
        while chunk := upload.stream.read(65536):
            digest.update(chunk)
        upload.stream.seek(0)  # the view reads the file again
        parts.append(f"{name}={upload.filename}|{upload.mimetype}|{digest.hexdigest()}")
    return b"multipart/form-data\n" + "\n".join(parts).encode()


def _finish_idempotency(response: Response) -> None:
    record = g.pop("yinfin_idem", None)
    if record is None:
        return
    from yinfin_flow.extension import state

    try:
        idempotency.complete(state(current_app).db, record, response.status_code,
                             response.content_type or "application/json",
                             response.get_data(as_text=True))
    except Exception:  # noqa: BLE001 - the call happened; a lost record is logged, not raised
        log.exception("could not store the answer for idempotency record %s", record)


def _actor(req: Request) -> str | None:
    ident: Any = g.get("yinfin_identity")
    if ident is not None:
        return str(ident.id)
    if req.endpoint in ("oa.inbound_events", "oa.verify_url"):
        return f"oa:{(req.view_args or {}).get('connector', '?')}"
    return None


def _audit(response: Response) -> None:
    """The row for a call whose action did not commit one (refused, failed, replayed)."""
    from yinfin_flow.extension import state

    detail = None
    if g.get("yinfin_audited"):
        if response.status_code < 300:
            return  # committed with the action
        detail = "response failed after the action committed"
    elif g.get("yinfin_replayed"):
        detail = "replayed"
    elif response.status_code >= 400 and response.is_json:
        body = response.get_json(silent=True)
        detail = body.get("code") if isinstance(body, dict) else None
    try:
        audit.append_alone(state(current_app).db, _event(response.status_code, detail))
    except Exception:  # noqa: BLE001 - see the module docstring
        log.exception("audit append failed for %s %s", request.method, request.path)


def _cors(response: Response, origins: frozenset[str]) -> None:
    origin = (request.headers.get("Origin") or "").rstrip("/")
    if origin and origin in origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Idempotency-Key"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE"
        response.headers["Access-Control-Max-Age"] = "600"
