"""``GET /api/v1/health``: is this instance able to serve?

Each part (the database here; Redis and connectors as their areas add checks with
:meth:`FlowState.add_health_check`) reports ``ok`` or its problem. 200 when every
part is ok, 503 otherwise, so a load balancer can act on the status alone.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from marshmallow import Schema, fields

from ..extension import state
from .blueprint import Blueprint
from .errors import register_blueprint_handlers

log = logging.getLogger("yinfin_flow.api")

blp = Blueprint("health", __name__, description="Liveness and readiness.")
register_blueprint_handlers(blp)


class PartSchema(Schema):
    ok = fields.Boolean(required=True)
    problem = fields.String(required=True, allow_none=True)
    details = fields.Dict(metadata={"description": "what a check chose to report (e.g. a "
                                                   "connector's backlog and last success)"})


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "unavailable"]})
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(PartSchema), required=True)


@blp.get("/health")
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="a part is not usable")
def health() -> tuple[dict[str, Any], int]:
    """Every registered part's state; 503 if any is not usable."""
    checks = run_checks(state(current_app))
    ok = all(c["ok"] for c in checks.values())
    return {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503


def run_checks(st: Any, only: str | None = None) -> dict[str, dict[str, Any]]:
    """Each registered part (those whose name starts with ``only``, if given): ``ok``, the
    problem's class name when not usable, and the figures a check chose to report."""
    checks: dict[str, dict[str, Any]] = {}
    for name, check in st.health_checks.items():
        if only is not None and not name.startswith(only):
            continue
        try:
            found = check(st)
            checks[name] = {"ok": True, "problem": None}
            if isinstance(found, dict):  # a check may also report figures
                checks[name]["details"] = found
        except Exception as err:  # noqa: BLE001 - any failure means "not usable"
            log.warning("health check %s failed: %s", name, err)
            # The class name only: connection strings and hosts stay in the server log.
            checks[name] = {"ok": False, "problem": type(err).__name__}
    return checks
