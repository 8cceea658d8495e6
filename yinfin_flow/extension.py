"""The ``YinFinFlow`` Flask extension: mount yinfin-flow's API in any Flask app.

::

    from flask import Flask
    from yinfin_flow import YinFinFlow

    app = Flask(__name__)
    app.config["YINFIN_DATABASE_URL"] = "postgresql+psycopg://…/finance"
    flow = YinFinFlow(app, url_prefix="/finance", identity_provider=my_sso_user)
    # → /finance/api/v1/budget/lines, /finance/api/v1/openapi.json, /finance/api/v1/docs

or, with an application factory, ``flow = YinFinFlow()`` then ``flow.init_app(app)``.

Configuration: every :class:`~yinfin_flow.config.Settings` value is read from the
app's config under its environment name (``YINFIN_DATABASE_URL``, ``YINFIN_ENV``…),
falling back to the environment, then to the safe defaults. Everything the
extension keeps for an app lives on ``app.extensions["yinfin_flow"]`` (a
:class:`FlowState`), so one extension object can serve several apps.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask_smorest import Api
from werkzeug.utils import ImportStringError, import_string

from yinfin_flow.api.errors import ErrorSchema, register_app_handlers
from yinfin_flow.api.identity import Identity, IdentityProvider, header_identity, no_identity
from yinfin_flow.config import ConfigError, Settings
from yinfin_flow.db.engine import Database

EXTENSION_KEY = "yinfin_flow"
API_PATH = "/api/v1"

#: A health check raises (anything) when its part is not usable.
HealthCheck = Callable[["FlowState"], None]


class FlowApi(Api):  # type: ignore[misc] # flask-smorest is untyped
    """flask-smorest's Api with yinfin-flow's error shape.

    flask-smorest would register a handler for every HTTP error of the whole app;
    ours only answers for the API's own paths (see :mod:`yinfin_flow.api.errors`), so
    a host app keeps its own error pages.
    """

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        pass


@dataclass
class FlowState:
    """What the extension keeps per app: ``app.extensions["yinfin_flow"]``."""

    settings: Settings
    db: Database
    identity_provider: IdentityProvider
    api: FlowApi
    url_prefix: str  # where the host mounted us ("" standalone)
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    read_db: Database | None = None  # YINFIN_DATABASE_READ_URL: a replica for reads that may lag

    @property
    def reads(self) -> Database:
        """Where reads that may leave the primary go (reports, the budget tree, line reads,
        exports, simulation): the read database when one is configured, else the primary."""
        return self.read_db if self.read_db is not None else self.db

    @property
    def api_prefix(self) -> str:
        return f"{self.url_prefix}{API_PATH}"

    def add_health_check(self, name: str, check: HealthCheck) -> None:
        """Report ``name`` on ``GET /health``; later areas add Redis, connectors…"""
        self.health_checks[name] = check


def state(app: Flask) -> FlowState:
    """The extension's state for ``app`` (raises if ``YinFinFlow`` was not initialised)."""
    try:
        st: FlowState = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("YinFinFlow is not initialised on this app") from None
    return st


def settings_for(app: Flask) -> Settings:
    """Settings from ``app.config`` ``YINFIN_*`` keys, then the environment, then defaults."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in app.config.items()
                if k.startswith("YINFIN_") and isinstance(v, (str, int, os.PathLike))})
    return Settings.from_env(env)


def _configured_provider(app: Flask) -> IdentityProvider | None:
    """``YINFIN_IDENTITY_PROVIDER = "package.module:callable"`` (app config or environment):
    how the standalone service (``gunicorn 'yinfin_flow.app:create_app()'``) gets a real
    provider without code."""
    name = app.config.get("YINFIN_IDENTITY_PROVIDER") or os.environ.get("YINFIN_IDENTITY_PROVIDER")
    if not name:
        return None
    if callable(name):
        return name  # type: ignore[no-any-return]
    try:
        provider = import_string(str(name))
    except ImportStringError as err:
        raise ConfigError(f"YINFIN_IDENTITY_PROVIDER {name!r} cannot be imported: {err}") from None
    if not callable(provider):
        raise ConfigError(f"YINFIN_IDENTITY_PROVIDER {name!r} is not callable")
    return provider  # type: ignore[no-any-return]


def _check_database(st: FlowState) -> None:
    from sqlalchemy import text

    with st.db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


class YinFinFlow:
    """The Flask extension. ``YinFinFlow(app)`` or ``YinFinFlow()`` + ``init_app(app)``.

    :param settings: use these instead of reading config/environment.
    :param database: share an existing :class:`Database` (else one is made from settings).
    :param identity_provider: ``(request) -> Identity | None``: who is acting (else
        ``YINFIN_IDENTITY_PROVIDER = "module:callable"`` in config or environment). The
        default, :func:`~yinfin_flow.api.identity.header_identity`, is for development
        only and is refused when ``YINFIN_ENV=production``.
    :param url_prefix: where to mount, e.g. ``"/finance"`` → ``/finance/api/v1/…``
        (also ``YINFIN_URL_PREFIX`` in app config).
    :param console: also mount the web console (:mod:`yinfin_flow.web`) at the prefix
        (``/finance/``, ``/finance/inbox``…); ``False`` serves the API alone.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        settings: Settings | None = None,
        database: Database | None = None,
        identity_provider: IdentityProvider | None = None,
        url_prefix: str | None = None,
        console: bool = True,
    ) -> None:
        self._defaults: dict[str, Any] = {
            "settings": settings,
            "database": database,
            "identity_provider": identity_provider,
            "url_prefix": url_prefix,
            "console": console,
        }
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Flask,
        *,
        settings: Settings | None = None,
        database: Database | None = None,
        identity_provider: IdentityProvider | None = None,
        url_prefix: str | None = None,
        console: bool | None = None,
    ) -> FlowState:
        """Mount the API on ``app`` and return its :class:`FlowState`.

        Raises :class:`~yinfin_flow.config.ConfigError` when the configuration is unsafe
        (production without a secret key, or with the development identity provider).
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("YinFinFlow is already initialised on this app")
        settings = settings or self._defaults["settings"] or settings_for(app)
        settings.check()
        provider = identity_provider or self._defaults["identity_provider"] or _configured_provider(app)
        if provider is None:
            # Production without a host provider: API tokens only (the X-Yinfin-User
            # stand-in lets anyone act as anyone, so it is development-only).
            provider = no_identity if settings.production else header_identity
        if provider is header_identity and settings.production:
            raise ConfigError("header_identity is for development only; refused in production")
        if console is None:
            console = self._defaults.get("console", True)
        prefix = url_prefix if url_prefix is not None else self._defaults["url_prefix"]
        if prefix is None:
            prefix = str(app.config.get("YINFIN_URL_PREFIX", ""))
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        database = database or self._defaults["database"] or Database(settings.database_url, schema=settings.database_schema)
        if settings.secret_key and not app.config.get("SECRET_KEY"):
            app.config["SECRET_KEY"] = settings.secret_key

        api = self._make_api(app, prefix)
        st = FlowState(settings, database, provider, api, prefix)
        if settings.database_read_url:
            st.read_db = Database(settings.database_read_url, schema=settings.database_schema)
        st.add_health_check("database", _check_database)
        app.extensions[EXTENSION_KEY] = st
        register_app_handlers(app, st.api_prefix)

        from yinfin_flow.api import register_resources

        register_resources(app, st)
        if console:
            from yinfin_flow.web import mount

            mount(app, st)
        return st

    @staticmethod
    def _make_api(app: Flask, prefix: str) -> FlowApi:
        from yinfin_flow.api.docs import swagger_ui_url

        api_prefix = f"{prefix}{API_PATH}"
        # flask-smorest reads these under our own config prefix, so a host that runs
        # its own flask-smorest Api keeps its settings and its docs.
        app.config.setdefault("YINFIN_OPENAPI_URL_PREFIX", api_prefix)
        app.config.setdefault("YINFIN_OPENAPI_JSON_PATH", "openapi.json")
        app.config.setdefault("YINFIN_OPENAPI_SWAGGER_UI_PATH", "docs")
        app.config.setdefault("YINFIN_OPENAPI_SWAGGER_UI_URL", swagger_ui_url())
        return FlowApi(
            app,
            config_prefix="YINFIN",
            spec_kwargs={
                "title": "yinfin-flow",
                "version": "v1",
                # 3.0.x: what the bundled Swagger UI renders.
                "openapi_version": "3.0.3",
                "info": {
                    "description": (
                        "Budget-linked approvals (业财融合). Money is always a string with a "
                        "currency, never a JSON number. Errors share one shape: "
                        '{"code", "message", "details"}. Mutating calls need an acting '
                        "user: in development the X-Yinfin-User header (a stand-in that "
                        "production refuses)."
                    )
                },
                "components": {
                    "securitySchemes": {
                        "devUser": {"type": "apiKey", "in": "header", "name": "X-Yinfin-User",
                                    "description": "development only"}
                    }
                },
            },
        )


__all__ = ["FlowState", "Identity", "YinFinFlow", "settings_for", "state"]
