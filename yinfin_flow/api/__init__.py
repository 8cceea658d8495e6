"""The HTTP API: flask-smorest blueprints and marshmallow schemas only; thin.

Every resource module exposes a ``blp`` registered here under the API prefix
(``/api/v1`` or ``<mount>/api/v1``). Later areas add their resources to
:data:`RESOURCES` (requests, tasks, journal, connectors…).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from yinfin_flow.extension import FlowState

#: Modules under ``yinfin_flow.api`` whose ``blp`` is part of the API.
RESOURCES = ["health", "budget"]


def register_resources(app: Flask, st: FlowState) -> None:
    """Register every resource blueprint (and the docs assets) under ``st.api_prefix``."""
    from .docs import assets

    app.register_blueprint(assets, url_prefix=st.api_prefix)
    for name in RESOURCES:
        module = importlib.import_module(f"yinfin_flow.api.{name}")
        blp = module.blp
        st.api.register_blueprint(blp, url_prefix=st.api_prefix + (blp.url_prefix or ""))
