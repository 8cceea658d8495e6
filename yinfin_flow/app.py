"""The standalone service: ``create_app()``.

Development: ``yinfin-flow serve`` (or ``flask --app yinfin_flow run``).
Production: ``gunicorn 'yinfin_flow.app:create_app()'`` behind the company's proxy,
with ``YINFIN_ENV=production``, ``YINFIN_SECRET_KEY`` and a PostgreSQL
``YINFIN_DATABASE_URL``; run as many instances as needed, no state lives in a process.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from yinfin_flow import instance_env
from yinfin_flow.api.identity import IdentityProvider
from yinfin_flow.config import Settings
from yinfin_flow.extension import YinFinFlow


def create_app(
    settings: Settings | None = None, *, identity_provider: IdentityProvider | None = None
) -> Flask:
    """A Flask app serving the API at ``/api/v1`` with every ``yinfin-flow`` command on
    ``app.cli``.

    ``settings`` defaults to :meth:`Settings.from_env`. Raises
    :class:`~yinfin_flow.config.ConfigError` for unsafe production configurations.
    """
    instance_env.apply()  # instance/yinfin.env, for what the environment does not set
    app = Flask("yinfin_flow", static_folder=None)
    app.session_interface = _CookieSessions()
    # The console's sign-in cookie: signed, HttpOnly, SameSite=Lax, Secure over HTTPS
    # (and always in production), and it expires.
    app.config.update(SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=timedelta(hours=8))
    app.json.sort_keys = False  # keep fields in schema order: easier to read
    app.json.ensure_ascii = False  # names are often Chinese: send them as they are (UTF-8)
    YinFinFlow(app, settings=settings or Settings.from_env(),
               identity_provider=identity_provider)
    _attach_cli(app)
    return app


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, whose signer is built only for a request that
    carries a session cookie.

    Flask builds the signer (itsdangerous) at every request once a secret key is set,
    ~20 µs, and the API's requests carry no cookie: a bearer token. The answer is the
    same as Flask's: an empty session without a cookie, the signed one with it.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure whenever the request came over HTTPS (behind a proxy that says so
        with ``X-Forwarded-Proto`` and ProxyFix) and always in production."""
        from yinfin_flow.extension import EXTENSION_KEY

        st = app.extensions.get(EXTENSION_KEY)
        return bool(super().get_cookie_secure(app) or request.is_secure
                    or (st is not None and st.settings.production))


def _attach_cli(app: Flask) -> None:
    # `flask --app yinfin_flow budget show` etc.: the same commands as `yinfin-flow …`.
    from yinfin_flow.cli import main

    for name, command in main.commands.items():
        if name not in app.cli.commands:
            app.cli.add_command(command, name)
