"""The HTTP API: flask-smorest blueprints and marshmallow schemas only; thin.

Every resource module exposes a ``blp`` (or a list ``blps``) registered here under the
API prefix (``/api/v1`` or ``<mount>/api/v1``). Every endpoint also needs an entry in
:data:`yinfin_flow.security.policy.POLICY` (the gate in :mod:`.guard` refuses any
endpoint without one). Blueprints are made with :class:`.blueprint.Blueprint`: a query
parameter an endpoint does not declare is a 422 naming it, not silently ignored.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from yinfin_flow.extension import FlowState

#: Modules under ``yinfin_flow.api`` whose blueprints are part of the API.
RESOURCES = ["health", "budget", "requests", "tasks", "ledger", "workflows", "connectors", "oa",
             "tokens", "delivery", "attachments"]


def register_resources(app: Flask, st: FlowState) -> None:
    """Register every resource blueprint (and the docs assets) under ``st.api_prefix``,
    and the gate (authorization, idempotency, audit, CORS) in front of them."""
    from .docs import assets
    from .guard import install

    st.api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer",
                       "description": "an API token: yinfin-flow token create USER"})
    app.register_blueprint(assets, url_prefix=st.api_prefix)
    for name in RESOURCES:
        module = importlib.import_module(f"yinfin_flow.api.{name}")
        for blp in getattr(module, "blps", None) or [module.blp]:
            st.api.register_blueprint(blp, url_prefix=st.api_prefix + (blp.url_prefix or ""))
    _document_idempotency(st)
    install(app, st.api_prefix, st.settings.redis_url)


IDEMPOTENCY_HEADER = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "description": "retry-safe key (per user): a replay answers the first response and does "
                   "nothing again; the same key with another body is 422; kept at least 24 h",
    "schema": {"type": "string", "minLength": 1, "maxLength": 160, "pattern": "^[ -~]+$"},
}


def _document_idempotency(st: FlowState) -> None:
    """Every mutating operation accepts ``Idempotency-Key`` (the gate handles it)."""
    for ops in st.api.spec._paths.values():  # noqa: SLF001 - apispec keeps no public view
        for method, op in ops.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            params = op.setdefault("parameters", [])
            if not any(isinstance(p, dict) and p.get("name") == "Idempotency-Key" for p in params):
                params.append(dict(IDEMPOTENCY_HEADER))
