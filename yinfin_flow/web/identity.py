"""Who is signed in to the console.

Inside a host application (a host identity provider was given to ``YinFinFlow``) the
host decides, as it does for the API. Standalone, a person signs in once, with an API
token (``yinfin-flow token create``) or, in development only, by picking a person of
the directory; the console then keeps their id in Flask's signed session cookie
(HttpOnly, SameSite=Lax, Secure over HTTPS and in production, expiring). Roles are
read from the directory at every request, so a revoked role applies at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g, request, session

from yinfin_flow.api.identity import Identity, header_identity, no_identity, stored_roles
from yinfin_flow.extension import state

USER_KEY = "yinfin_user"
SINCE_KEY = "yinfin_signed_in_at"
VIA_KEY = "yinfin_signed_in_via"


def host_signs_in(app: Flask) -> bool:
    """True when a host application's identity provider decides who is signed in."""
    provider = state(app).identity_provider
    return provider not in (header_identity, no_identity)


def development(app: Flask) -> bool:
    return not state(app).settings.production


def console_identity() -> Identity | None:
    """The signed-in person for this request (resolved once, kept on ``g``)."""
    if "yinfin_console_identity" in g:
        found: Identity | None = g.yinfin_console_identity
        return found
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    ident: Identity | None
    if host_signs_in(app):
        ident = state(app).identity_provider(request._get_current_object())  # type: ignore[attr-defined]
    else:
        user = session.get(USER_KEY)
        ident = Identity(str(user), stored_roles(str(user))) if user else None
    if ident is not None and "employee" not in ident.roles:
        ident = Identity(ident.id, ident.roles | {"employee"})
    g.yinfin_console_identity = ident
    return ident


def sign_in(user_id: str, via: str) -> None:
    """Start a fresh session for ``user_id`` (``via``: ``token`` or ``development``)."""
    lang = session.get("yinfin_lang")
    session.clear()  # no state of an earlier session survives a sign-in
    session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME
    session[USER_KEY] = user_id
    session[SINCE_KEY] = datetime.now(UTC).isoformat()
    session[VIA_KEY] = via
    if lang:
        session["yinfin_lang"] = lang
    g.pop("yinfin_console_identity", None)


def sign_out() -> None:
    lang = session.get("yinfin_lang")
    session.clear()
    if lang:
        session["yinfin_lang"] = lang
    g.pop("yinfin_console_identity", None)


def session_info() -> dict[str, Any]:
    return {"since": session.get(SINCE_KEY), "via": session.get(VIA_KEY)}
