"""The HTTP API: flask-smorest blueprints and marshmallow schemas only; thin.

Every resource module exposes a ``blp`` (or a list ``blps``) registered here under the
API prefix (``/api/v1`` or ``<mount>/api/v1``). Every endpoint also needs an entry in
:data:`yinfin_flow.security.policy.POLICY` (the gate in :mod:`.guard` refuses any
endpoint without one).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from yinfin_flow.extension import FlowState

#: Modules under ``yinfin_flow.api`` whose blueprints are part of the API.
RESOURCES = ["health", "budget", "requests", "tasks", "ledger", "workflows", "connectors", "oa",
             "tokens", "delivery"]


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
    install(app, st.api_prefix, st.settings.redis_url)
