"""The console's gate, error pages and what every template gets.

The gate runs before every console view: the endpoint's entry in
:data:`~yinfin_flow.security.policy.POLICY` (none: refused), the CSRF token on every
POST (Flask-WTF), then the signed-in person and their roles. Errors are the API's:
a :class:`~yinfin_flow.domain.errors.DomainError` keeps its code, status and message,
and the page shows them (an htmx request gets the fragment alone).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from werkzeug.exceptions import HTTPException

from yinfin_flow.api.errors import flatten_messages
from yinfin_flow.api.identity import Identity, Unauthenticated
from yinfin_flow.domain.errors import DomainError, ValidationError
from yinfin_flow.extension import state
from yinfin_flow.security.policy import access_for

from . import HTMX, finance, i18n
from .identity import console_identity, development, host_signs_in

log = logging.getLogger("yinfin_flow.web")


def htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def me() -> Identity:
    """The signed-in person (the gate made sure there is one)."""
    ident: Identity = g.yinfin_console_identity
    return ident


def db() -> Any:
    return state(current_app).db


def parse(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """Load form input with the API's own schema: the same rules, the same field names;
    the first problem is a :class:`ValidationError` naming its field."""
    try:
        loaded: dict[str, Any] = schema.load(data)
    except SchemaError as err:
        rows = flatten_messages({"form": err.messages})
        first = rows[0] if rows else {"field": "form", "problem": "is invalid"}
        raise ValidationError(first["field"], first["problem"], errors=rows) from None
    return loaded


def safe_next(target: str | None) -> str | None:
    """Only a path on this site (never another host) to go back to after signing in."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def gate() -> Response | None:
    access = access_for(request.endpoint)
    if access is None:
        return error_page(403, "forbidden", "this page has no access rule; refused")
    if request.method == "POST":
        current_app.extensions["csrf"].protect()  # CSRFError (400) without a valid token
    if access.kind == "public":
        return None
    ident = console_identity()
    if ident is None:
        if htmx():
            resp = make_response("", 401)
            resp.headers["HX-Redirect"] = url_for("console.sign_in")
            return resp
        return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
    if not access.allows(ident.roles):
        return error_page(403, "forbidden", f"needs the role {' or '.join(sorted(access.roles))}")
    return None


def error_page(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    """The error as the API words it, in a page (or the fragment, for htmx)."""
    error = {"code": code, "message": message, "details": details or {},
             "title": i18n.error_title(code)}
    template = "yinfin/_error.html" if htmx() else "yinfin/error.html"
    resp = make_response(render_template(template, error=error), status)
    if htmx():
        # htmx swaps only 2xx answers by default: say where the error goes.
        resp.headers["HX-Retarget"] = request.headers.get("HX-Target-Error") or "#flash"
        resp.headers["HX-Reswap"] = "innerHTML"
    return resp


def on_domain_error(err: DomainError) -> Response:
    return error_page(err.http_status, err.code, err.message, err.details)


def on_csrf(err: CSRFError) -> Response:
    return error_page(400, "csrf_failed", str(err.description))


def on_http(err: HTTPException) -> Response:
    code = (err.name or "error").lower().replace(" ", "_")
    return error_page(err.code or 500, code, str(err.description or err.name))


def globals_() -> dict[str, Any]:
    ident = g.get("yinfin_console_identity")
    return {
        "_": i18n._, "gettext": i18n._, "amount": i18n.amount, "when": i18n.when, "word": i18n.word,
        "is_negative": i18n.is_negative, "negated": i18n.negated, "editable": i18n.editable,
        "locale": i18n.locale_name(), "me": ident, "htmx_file": HTMX,
        "host_signs_in": host_signs_in(current_app), "development": development(current_app),
        "is_finance": bool(ident and "finance" in ident.roles),
        "finance_nav": finance.nav_for(ident.roles) if ident else [],
    }


def audit_post(response: Response) -> Response:
    """Every POST to the console (refused ones included) in the audit chain, as the
    API's calls are: who, what, when, from where, with what answer."""
    if request.method != "POST":
        return response
    from yinfin_flow.security import audit

    ident = g.get("yinfin_console_identity")
    detail = None
    if response.status_code >= 400:
        found = re.search(r'data-code="([a-z0-9_]+)"', response.get_data(as_text=True) or "")
        detail = found.group(1) if found else None
    try:
        audit.append_alone(db(), audit.AuditEvent(
            method="POST", path=request.path, status=response.status_code,
            actor=ident.id if ident is not None else None, endpoint=request.endpoint,
            remote_addr=request.remote_addr, user_agent=request.headers.get("User-Agent"),
            detail=detail))
    except Exception:  # noqa: BLE001 - the action happened; a lost row is logged, never raised
        log.exception("audit append failed for POST %s", request.path)
    return response


def register(bp: Blueprint) -> None:
    bp.before_request(gate)
    bp.after_request(audit_post)
    bp.context_processor(globals_)
    bp.register_error_handler(DomainError, on_domain_error)
    bp.register_error_handler(Unauthenticated, on_domain_error)
    bp.register_error_handler(CSRFError, on_csrf)
    bp.register_error_handler(HTTPException, on_http)
