"""Answers built in their documented form, sent without dumping them a second time.

flask-smorest dumps whatever a view returns through the endpoint's ``@blp.response``
schema. Some answers are already built, field by field, in exactly that dumped form
(plain JSON values; money and times as the strings the schemas declare), and the
dump then only copies them: for a task action it was ~180 µs of the worker's
~2.4 ms per approval (measured, ``bench/README.md``). A view whose answer is built
that way returns :func:`as_dumped` (today the task actions and the request and task
details). The status and the schema stay on the endpoint (``@blp.response``), where
the OpenAPI document reads them, and :func:`as_dumped` takes both from there.

What keeps the two in step: outside production every such answer is dumped all the
same and must come back unchanged; a difference is a bug, raised as
:class:`AnswerDrift`. Every test that calls such an endpoint checks its answer against
its schema that way.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request
from marshmallow import Schema

from ..extension import state

#: Each view's documented success: (status, schema or None), read once from its apidoc.
_DOCUMENTED: dict[Any, tuple[int, Schema | None]] = {}


class AnswerDrift(AssertionError):
    """An answer built for :func:`as_dumped` is not its schema's dump of itself."""


def documented_success(endpoint: str | None) -> tuple[int, Schema | None]:
    """The lowest 2xx ``endpoint`` documents (``@blp.response``) and its schema; 200 and
    None when it documents none."""
    view = current_app.view_functions.get(endpoint or "")
    found = _DOCUMENTED.get(view)
    if found is None:
        responses = getattr(view, "_apidoc", {}).get("response", {}).get("responses", {})
        ok = sorted(int(k) for k in responses if 200 <= int(k) < 300)
        found = (ok[0], responses[ok[0]][0].get("schema")) if ok else (200, None)
        if view is not None:
            _DOCUMENTED[view] = found
    return found


def as_dumped(body: dict[str, Any]) -> Response:
    """``body`` as this endpoint's documented success answer (its status, and outside
    production checked against its schema)."""
    status, schema = documented_success(request.endpoint)
    if schema is not None and not state(current_app).settings.production:
        dumped = schema.dump(body)
        if dumped != body:
            raise AnswerDrift(f"the answer is not its own {type(schema).__name__} dump: "
                              f"{_difference(dumped, body)}")
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _difference(dumped: Any, body: Any, path: str = "") -> str:
    """Where ``dumped`` and ``body`` first differ, for the error."""
    if isinstance(dumped, dict) and isinstance(body, dict):
        for key in sorted(set(dumped) | set(body), key=str):
            if key not in body:
                return f"{path}{key}: missing from the answer"
            if key not in dumped:
                return f"{path}{key}: not in the schema"
            if dumped[key] != body[key]:
                return _difference(dumped[key], body[key], f"{path}{key}.")
    if isinstance(dumped, list) and isinstance(body, list) and len(dumped) == len(body):
        for i, (d, b) in enumerate(zip(dumped, body, strict=True)):
            if d != b:
                return _difference(d, b, f"{path}{i}.")
    return f"{path.rstrip('.') or 'answer'}: {body!r} dumps as {dumped!r}"
