"""One JSON error shape for every failure: ``{"code", "message", "details"}``.

- request validation (marshmallow via webargs) → 422, ``code: validation_error``,
  ``details.errors`` lists every bad field as ``{"field", "location", "problem"}``
  and ``details.field`` names the first one;
- a yinfin_flow :class:`~yinfin_flow.domain.errors.DomainError` → its ``http_status``
  and stable ``code`` with the error's own details (``OverBudget`` is 409 with
  ``line``, ``asked``, ``available`` and ``breakdown``);
- any other HTTP error (404, 405, 400 malformed JSON…) → its status, ``code`` the
  snake-cased reason (``not_found``, ``method_not_allowed``, ``bad_request``);
- anything else → 500 ``internal_error`` with a reference id that is in the server
  log; no traceback or exception text ever reaches the client.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from marshmallow import Schema, fields
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, default_exceptions

from yinfin_flow.domain.errors import DomainError
from yinfin_flow.domain.money import show

log = logging.getLogger("yinfin_flow.api")


class ErrorSchema(Schema):
    """The body of every error response."""

    code = fields.String(required=True, metadata={"description": "stable machine-readable code"})
    message = fields.String(required=True, metadata={"description": "for people"})
    details = fields.Dict(
        required=True,
        metadata={"description": "what went wrong where; ``field`` names the field at fault"},
    )


def error_response(status: int, code: str, message: str, details: Mapping[str, Any] | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    resp = jsonify({"code": code, "message": message, "details": dict(details or {})})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _field_path(parts: list[str | int]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int) or (isinstance(p, str) and p.isdigit()):
            out += f"[{p}]"
        elif p == "_schema":
            continue  # an error about the object itself: its own path
        else:
            out += f".{p}" if out else str(p)
    return out


def flatten_messages(messages: Any) -> list[dict[str, str]]:
    """Turn webargs' nested ``{location: {field: [problems]}}`` into one row per problem."""
    rows: list[dict[str, str]] = []

    def walk(node: Any, location: str, parts: list[str | int]) -> None:
        if isinstance(node, Mapping):
            for key, sub in node.items():
                walk(sub, location, [*parts, key])
        elif isinstance(node, (list, tuple)):
            for item in node:
                if isinstance(item, (Mapping, list, tuple)):
                    walk(item, location, parts)
                else:
                    rows.append({"field": _field_path(parts) or location, "location": location,
                                 "problem": str(item)})
        else:
            rows.append({"field": _field_path(parts) or location, "location": location,
                         "problem": str(node)})

    if isinstance(messages, Mapping):
        for location, node in messages.items():
            walk(node, str(location), [])
    else:
        walk(messages, "json", [])
    return rows


def _code_for(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def handle_http_exception(exc: HTTPException) -> Response:
    data = getattr(exc, "data", None) or {}
    status = exc.code or 500
    headers = dict(data.get("headers") or {})
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    messages = data.get("messages")
    if status == 422 and messages is not None:
        rows = flatten_messages(messages)
        first = rows[0]["field"] if rows else "body"
        summary = "; ".join(f"{r['field']}: {r['problem']}" for r in rows[:5])
        return error_response(422, "validation_error", f"the request is invalid: {summary}",
                              {"field": first, "errors": rows}, headers)
    if status == 400 and messages is not None:
        rows = flatten_messages(messages)
        return error_response(400, "malformed_request",
                              "the request body is not valid JSON" if any(
                                  r["location"] == "json" for r in rows) else "the request is malformed",
                              {"field": rows[0]["location"] if rows else "body", "errors": rows},
                              headers)
    if status >= 500:
        return _internal(exc, status)
    description = exc.description if isinstance(exc.description, str) else None
    return error_response(status, _code_for(exc), description or exc.name or "error",
                          {"path": request.path}, headers)


def handle_domain_error(exc: DomainError) -> Response:
    """The error shape; an error with a ``retry_after`` (seconds) also says it in
    ``Retry-After`` and ``details.retry_after``."""
    details = _jsonable(exc.details)
    if exc.http_status == 422 and "field" in details and "errors" not in details:
        details["errors"] = [{"field": details["field"], "location": "json",
                              "problem": str(details.get("problem", exc.message))}]
    retry_after = getattr(exc, "retry_after", None)
    headers = None
    if retry_after is not None:
        details["retry_after"] = retry_after
        headers = {"Retry-After": str(retry_after)}
    return error_response(exc.http_status, exc.code, exc.message, details, headers)


def _internal(exc: BaseException, status: int = 500) -> Response:
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled error %s on %s %s", ref, request.method, request.path, exc_info=exc)
    return error_response(status, "internal_error",
                          "something went wrong on our side; quote the reference to support",
                          {"reference": ref})


def handle_any(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    if isinstance(exc, DomainError):
        return handle_domain_error(exc)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        # The database dropped the connection (a restart, a failover): the transaction
        # rolled back whole and the pool has been refreshed, so a retry will work.
        log.warning("database connection lost on %s %s; the client may retry",
                    request.method, request.path)
        response = error_response(503, "database_unavailable",
                                  "the database connection was lost; nothing was saved, retry")
        response.headers["Retry-After"] = "1"
        return response
    return _internal(exc)


def _jsonable(value: Any) -> Any:
    """Details come from domain code: make sure they serialise (Decimals, dates → str)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Decimal):
        return show(value)  # amounts as every answer writes them, never "1E+2"
    return str(value)


def register_blueprint_handlers(bp: Blueprint) -> None:
    """Errors raised inside our views: registered per status code, so a host app's own
    ``@app.errorhandler(404)`` (which Flask would otherwise prefer) cannot turn our
    API errors into HTML pages."""
    for code in default_exceptions:
        bp.register_error_handler(code, handle_http_exception)
    bp.register_error_handler(DomainError, handle_domain_error)
    bp.register_error_handler(Exception, handle_any)


def register_app_handlers(app: Flask, api_prefix: str) -> None:
    """Errors with no view to blame (an unknown URL, a wrong method) under ``api_prefix``.

    Other paths of a host app are left exactly as the host handles them.
    """
    prefix = api_prefix.rstrip("/")

    def ours() -> bool:
        return request.path == prefix or request.path.startswith(prefix + "/")

    def routing_error() -> Response | None:
        # Flask raises routing errors (404, 405) after the before-request hooks, and a
        # host's own ``@app.errorhandler(404)`` would win over any handler of ours; answer
        # them here for our paths. Redirects (trailing slash) go through.
        exc = request.routing_exception
        if isinstance(exc, HTTPException) and (exc.code or 0) >= 400 and ours():
            return handle_http_exception(exc)
        return None

    app.before_request(routing_error)

    def on_http(exc: HTTPException) -> Response | HTTPException:
        return handle_http_exception(exc) if ours() else exc

    previous: Callable[..., Any] | None = app.error_handler_spec[None][None].get(HTTPException)

    def on_http_chained(exc: HTTPException) -> Any:
        if ours() or previous is None:
            return on_http(exc)
        return previous(exc)

    app.register_error_handler(HTTPException, on_http_chained)
