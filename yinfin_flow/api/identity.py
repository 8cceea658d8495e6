"""Who is calling: the identity seam the API's authorization builds on.

Who is acting is decided in this order:

1. ``Authorization: Bearer yf_…``: an API token (:mod:`yinfin_flow.security.tokens`);
   the user's roles come from the organisation directory. A bad, expired or revoked
   token is a 401 even if the host would otherwise know the caller, and failures are
   rate limited per remote address and per token prefix (429).
2. the *identity provider*, a callable ``(request) -> Identity | None``: a host
   application passes its own (its login session, its SSO) to
   :class:`~yinfin_flow.extension.YinFinFlow`. :func:`directory_roles` helps a host
   provider use the directory's roles.

Every identified user also holds ``employee``.

:func:`header_identity` is a DEVELOPMENT-ONLY stand-in: it believes whatever the
``X-Yinfin-User`` header says. It is refused when ``YINFIN_ENV=production``, where
the app will not start without a real provider.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Request, current_app, g, request

from yinfin_flow.domain.errors import DomainError

USER_HEADER = "X-Yinfin-User"
ROLES_HEADER = "X-Yinfin-Roles"
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Identity:
    """The acting user: ``id`` is what budget entries and audit rows record as the actor."""

    id: str
    roles: frozenset[str] = field(default_factory=frozenset)

    def has_role(self, role: str) -> bool:
        return role in self.roles


IdentityProvider = Callable[[Request], "Identity | None"]


class Unauthenticated(DomainError):
    code = "unauthenticated"
    http_status = 401


def header_identity(req: Request) -> Identity | None:
    """DEVELOPMENT ONLY: trust ``X-Yinfin-User`` (and ``X-Yinfin-Roles: a,b``).

    Anyone who can reach the API can claim to be anyone; never use it in production
    (the extension refuses it there). A malformed header is treated as no identity.
    """
    user = (req.headers.get(USER_HEADER) or "").strip()
    if not _NAME.match(user):
        return None
    roles = frozenset(
        r.strip() for r in (req.headers.get(ROLES_HEADER) or "").split(",") if _NAME.match(r.strip())
    )
    # The directory's roles too, as a token or the console's sign-in gives them: in
    # development ``X-Yinfin-User: fiona`` is finance because the directory says so.
    return Identity(user, roles | stored_roles(user))


def stored_roles(user_id: str) -> frozenset[str]:
    """The role names the directory grants ``user_id`` (one statement on the app's database)."""
    from yinfin_flow.extension import state
    from yinfin_flow.security.oneshot import one_statement

    with one_statement(state(current_app).db, readonly=True) as conn:
        return directory_roles(conn, user_id)


def no_identity(req: Request) -> Identity | None:
    """The provider when the host gives none in production: API tokens only."""
    return None


class RateLimited(DomainError):
    code = "too_many_failures"
    http_status = 429


def directory_roles(session: Any, user_id: str) -> frozenset[str]:
    """The role names ``user_id`` holds in the directory (scoped grants included)."""
    from yinfin_flow.engine.directory import roles_of

    return frozenset(g_.role for g_ in roles_of(session, user_id))


def _bearer(req: Request) -> str | None:
    auth = req.headers.get("Authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def _lookup(db: Any, token: str) -> tuple[str, frozenset[str]] | None:
    """The token's user and roles, read afresh for every request (never cached: a
    revocation applies to the next request). On PostgreSQL the one statement runs
    outside a transaction (autocommit): one round trip instead of BEGIN, the
    statement and COMMIT; a single statement sees one consistent snapshot anyway."""
    from yinfin_flow.security import tokens
    from yinfin_flow.security.oneshot import one_statement

    with one_statement(db, readonly=True) as conn:
        return tokens.identify(conn, token)


def token_identity(req: Request, token: str) -> Identity:
    """The identity a bearer token gives (rate limited like every failed sign-in):
    raises :class:`Unauthenticated` or :class:`RateLimited`."""
    from yinfin_flow.extension import state
    from yinfin_flow.security import tokens

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    st = state(app)
    limiter = app.extensions["yinfin_flow.limiter"]
    keys = [f"addr:{req.remote_addr or '-'}", f"token:{tokens.prefix_of(token)}"]
    over = limiter.blocked(keys)
    if over is not None:
        raise RateLimited("too many failed authentications; wait a minute", field="Authorization")
    found = _lookup(st.db, token)
    if found is not None:
        return Identity(found[0], found[1] | {"employee"})
    limiter.failed(keys)
    raise Unauthenticated("the API token is unknown, expired or revoked", field="Authorization")


def current_identity() -> Identity | None:
    """The identity for this request (resolved once, then cached on ``g``).

    Raises :class:`Unauthenticated` for a bad bearer token, :class:`RateLimited` when
    its address or token prefix failed too often.
    """
    call = g._get_current_object()  # type: ignore[attr-defined]
    if "yinfin_identity" not in call:
        from yinfin_flow.extension import state

        req: Request = request._get_current_object()  # type: ignore[attr-defined]
        token = _bearer(req)
        if token is not None:
            ident: Identity | None = token_identity(req, token)
        else:
            ident = state(current_app).identity_provider(req)
            if ident is not None and "employee" not in ident.roles:
                ident = Identity(ident.id, ident.roles | {"employee"})
        call.yinfin_identity = ident
    found: Identity | None = call.yinfin_identity
    return found


def require_actor() -> Identity:
    """The acting user, or a 401 ``unauthenticated`` error when nobody is identified."""
    ident = current_identity()
    if ident is None:
        raise Unauthenticated(
            "this action needs an identified user",
            hint=f"in development send the {USER_HEADER} header; in production configure "
            "an identity provider",
        )
    return ident
