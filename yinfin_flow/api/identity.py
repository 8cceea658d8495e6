"""Who is calling: the identity seam the API's authorization builds on.

The extension asks an *identity provider*, a callable ``(request) -> Identity | None``,
who is acting on each request. A host application passes its own provider (its
login session, its SSO) to :class:`~yinfin_flow.extension.YinFinFlow`; API tokens and
roles (issue 5) plug in here as another provider.

:func:`header_identity` is a DEVELOPMENT-ONLY stand-in: it believes whatever the
``X-Yinfin-User`` header says. It is refused when ``YINFIN_ENV=production``, where
the app will not start without a real provider.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

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
    return Identity(user, roles)


def current_identity() -> Identity | None:
    """The identity for this request (asked of the provider once, then cached on ``g``)."""
    if "yinfin_identity" not in g:
        from yinfin_flow.extension import state

        g.yinfin_identity = state(current_app).identity_provider(request)
    ident: Identity | None = g.yinfin_identity
    return ident


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
