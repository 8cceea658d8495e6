"""The web console: server-rendered pages (Jinja2 + htmx) for employees and approvers.

Mounted by the same :class:`~yinfin_flow.YinFinFlow` extension as the API: at ``/``
standalone, under the host's prefix inside a host application (beside ``/api/v1``).
Views are as thin as the API's: the same engine, budget and ledger functions, the
same authorization table (:data:`yinfin_flow.security.policy.POLICY`, endpoints
``console.*``), the same error codes. No Node toolchain: htmx is vendored, pinned,
with its licence, in ``static/``.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from flask import Blueprint, Flask

if TYPE_CHECKING:
    from yinfin_flow.extension import FlowState

NAME = "console"
HTMX = "htmx-2.0.11.min.js"


def make_blueprint(url_prefix: str) -> Blueprint:
    bp = Blueprint(NAME, __name__, url_prefix=url_prefix or None, template_folder="templates",
                   static_folder="static", static_url_path="/static/console")
    from . import (
        common,
        finance,
        views_attachments,
        views_auth,
        views_inbox,
        views_requests,
        views_tasks,
    )

    for module in (common, views_auth, views_inbox, views_tasks, views_requests, views_attachments,
                   finance):
        module.register(bp)
    return bp


def mount(app: Flask, st: FlowState) -> None:
    """Register the console on ``app`` under ``st.url_prefix``: Flask-Babel (unless the
    host has it), CSRF protection for the console's forms, and the blueprint."""
    from flask_wtf.csrf import CSRFProtect

    from . import i18n

    if not app.secret_key and not st.settings.production:
        # Development without YINFIN_SECRET_KEY: sessions last as long as the process.
        app.secret_key = secrets.token_hex(32)
    i18n.install(app)
    csrf = app.extensions.get("csrf")
    if csrf is None:
        # Checked by the console's own gate (common.gate), not for every view of a
        # host application: the API authenticates by token, not by cookie.
        app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
        app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # as long as the session
        csrf = CSRFProtect(app)
    app.register_blueprint(make_blueprint(st.url_prefix))
