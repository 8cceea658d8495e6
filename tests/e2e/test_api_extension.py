"""The extension in a host app, configuration, identity, the error shape, docs and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from yinfin_flow import YinFinFlow, create_app
from yinfin_flow.api.identity import Identity, header_identity
from yinfin_flow.cli.serve import command as serve_command
from yinfin_flow.config import PROJECT_ROOT, ConfigError, Settings
from yinfin_flow.db.engine import Database
from yinfin_flow.extension import state

from ..factories import Org, add_people, org_in
from .conftest import FINANCE


def host_app(db: Database, **config: object) -> Flask:
    host = Flask("host")
    host.config.update(config)

    @host.get("/")
    def home() -> str:
        return "host home"

    @host.errorhandler(404)
    def host_404(_err: Exception) -> tuple[str, int]:
        return "host's own not-found page", 404

    return host


# -- mounting ----------------------------------------------------------------------------


def test_host_mounts_the_api_under_its_own_prefix(sqlite_db: Database):
    host = host_app(sqlite_db, YINFIN_DATABASE_URL=sqlite_db.url)
    YinFinFlow(host, url_prefix="/finance")
    org = org_in(state(host).db)
    client = host.test_client()
    client.environ_base["HTTP_X_YINFIN_USER"] = "viewer"

    body = client.get("/finance/api/v1/budget/lines").get_json()
    assert body["pagination"]["total"] == 4
    assert client.get(f"/finance/api/v1/budget/lines/{org.child_line}").status_code == 200
    assert client.get("/api/v1/budget/lines").data == b"host's own not-found page"
    spec = client.get("/finance/api/v1/openapi.json").get_json()
    assert "/finance/api/v1/budget/lines" in spec["paths"]
    assert client.get("/").data == b"host home"


def test_host_error_pages_stay_the_hosts_and_ours_stay_json(sqlite_db: Database):
    host = host_app(sqlite_db)
    YinFinFlow(host, settings=Settings(database_url=sqlite_db.url), url_prefix="finance/")
    client = host.test_client()
    assert client.get("/elsewhere").data == b"host's own not-found page"
    resp = client.get("/finance/api/v1/no-such-thing")
    assert resp.status_code == 404 and resp.get_json()["code"] == "not_found"
    resp = client.delete("/finance/api/v1/budget/lines")
    assert resp.status_code == 405 and resp.get_json()["code"] == "method_not_allowed"


def test_config_keys_come_from_app_config_then_environment(sqlite_db: Database, monkeypatch):
    monkeypatch.setenv("YINFIN_DEFAULT_CONTROL_MODE", "soft")
    host = host_app(sqlite_db, YINFIN_DATABASE_URL=sqlite_db.url, YINFIN_URL_PREFIX="/fin")
    ext = YinFinFlow()
    st = ext.init_app(host)
    assert st.settings.database_url == sqlite_db.url
    assert st.settings.default_control_mode == "soft"  # from the environment
    assert st.api_prefix == "/fin/api/v1"
    assert state(host) is st
    # One extension object, several apps, each with its own state.
    other = host_app(sqlite_db, YINFIN_DATABASE_URL=sqlite_db.url)
    assert ext.init_app(other) is not st
    with pytest.raises(RuntimeError, match="already initialised"):
        ext.init_app(host)


def test_settings_errors_are_refused_at_start(sqlite_db: Database):
    host = host_app(sqlite_db, YINFIN_DATABASE_URL=sqlite_db.url, YINFIN_DEFAULT_CONTROL_MODE="loose")
    with pytest.raises(ConfigError, match="YINFIN_DEFAULT_CONTROL_MODE"):
        YinFinFlow(host)


# -- identity ---------------------------------------------------------------------------


def test_production_ignores_the_development_identity_stand_in(sqlite_db: Database):
    prod = Settings(database_url=sqlite_db.url, env="production", secret_key="s3cret")
    app = create_app(prod)  # no host provider: API tokens only
    state(app).db = sqlite_db
    resp = app.test_client().get("/api/v1/budget/lines", headers=FINANCE)
    assert resp.status_code == 401
    with pytest.raises(ConfigError, match="development only"):
        YinFinFlow(identity_provider=header_identity).init_app(Flask("h"), settings=prod)
    with pytest.raises(ConfigError, match="YINFIN_SECRET_KEY"):
        YinFinFlow(identity_provider=lambda req: None).init_app(
            Flask("h"), settings=Settings(database_url=sqlite_db.url, env="production"))


def test_a_host_identity_provider_decides_who_acts(sqlite_db: Database):
    prod = Settings(database_url=sqlite_db.url, env="production", secret_key="s3cret",
                    budget_journal_approval="off")

    def sso(req):  # a host's login: here, a session cookie it trusts
        return Identity("sso:lee", frozenset({"finance"})) if req.cookies.get("sid") == "ok" else None

    app = create_app(prod, identity_provider=sso)
    state(app).db = sqlite_db
    org = org_in(sqlite_db)
    with sqlite_db.unit_of_work() as s:
        add_people(s, "sso:lee")  # the host's user is a person of the directory too
    client = app.test_client()
    body = {"line_id": org.office_line, "amount": "1", "currency": "CNY", "reason": "r"}
    # The development header means nothing in production.
    resp = client.post("/api/v1/budget/adjustments", json=body, headers=FINANCE)
    assert resp.status_code == 401
    client.set_cookie("sid", "ok")
    assert client.post("/api/v1/budget/adjustments", json=body).status_code == 201
    entries = client.get(f"/api/v1/budget/lines/{org.office_line}/entries").get_json()
    assert entries["items"][0]["actor"] == "sso:lee"


def always_lee(_req) -> Identity:
    return Identity("lee")


def test_the_provider_can_be_named_in_configuration(sqlite_db: Database):
    prod = Settings(database_url=sqlite_db.url, env="production", secret_key="s3cret")
    host = host_app(sqlite_db, YINFIN_IDENTITY_PROVIDER=f"{__name__}:always_lee")
    YinFinFlow(host, settings=prod)
    assert state(host).identity_provider is always_lee
    broken = host_app(sqlite_db, YINFIN_IDENTITY_PROVIDER="no.such.module:who")
    with pytest.raises(ConfigError, match="cannot be imported"):
        YinFinFlow(broken, settings=prod)


# -- the error shape ---------------------------------------------------------------------


def test_malformed_json_is_400_in_the_error_shape(client: FlaskClient, org: Org):
    resp = client.post("/api/v1/budget/preview", data=b'{"lines": [', content_type="application/json")
    assert resp.status_code == 400
    body = resp.get_json()
    assert set(body) == {"code", "message", "details"} and body["code"] == "malformed_request"


def test_wrong_method_is_405_with_allow(client: FlaskClient, org: Org):
    resp = client.put("/api/v1/budget/preview", json={})
    assert resp.status_code == 405
    assert "POST" in resp.headers["Allow"]
    assert resp.get_json()["code"] == "method_not_allowed"


def test_a_body_that_is_not_an_object_is_422(client: FlaskClient, org: Org):
    resp = client.post("/api/v1/budget/preview", json=["lines"])
    assert resp.status_code == 422
    assert resp.get_json()["details"]["errors"][0]["location"] == "json"


def test_unexpected_failures_are_500_without_a_traceback(sqlite_db: Database, caplog):
    # A database that refuses connections: an unexpected failure deep inside a view.
    app = create_app(Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    client = app.test_client()
    resp = client.get("/api/v1/budget/lines", headers={"X-Yinfin-User": "amy"})
    assert resp.status_code == 500
    body = resp.get_json()
    assert body["code"] == "internal_error" and len(body["details"]["reference"]) == 12
    assert "Traceback" not in resp.get_data(as_text=True)
    assert "127.0.0.1" not in resp.get_data(as_text=True)
    assert body["details"]["reference"] in caplog.text  # the log has what the client lacks
    health = client.get("/api/v1/health")
    assert health.status_code == 503
    assert health.get_json()["checks"]["database"] == {"ok": False, "problem": "OperationalError"}


# -- docs and CLI ------------------------------------------------------------------------


def test_openapi_document_and_docs_work_offline(client: FlaskClient):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/budget/lines", "/api/v1/budget/preview", "/api/v1/health"} <= set(spec["paths"])
    amount = spec["components"]["schemas"]["AdjustmentIn"]["properties"]["amount"]
    assert amount["type"] == "string"
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "docs/assets/swagger-ui-bundle.js" in page
    assert client.get("/api/v1/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_every_cli_command_is_on_the_flask_cli():
    from yinfin_flow.cli import main

    app = create_app(Settings(database_url="sqlite://"))
    assert set(main.commands) <= set(app.cli.commands)
    result = app.test_cli_runner().invoke(args=["db", "--help"])
    assert result.exit_code == 0 and "upgrade" in result.output


def test_flask_finds_the_app_factory(tmp_path: Path):
    env = {**os.environ, "YINFIN_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"}
    out = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "yinfin_flow", "routes"],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "/api/v1/budget/lines" in out.stdout


def test_serve_refuses_an_unsafe_production_config(monkeypatch):
    monkeypatch.setenv("YINFIN_ENV", "production")
    monkeypatch.delenv("YINFIN_SECRET_KEY", raising=False)
    result = CliRunner().invoke(serve_command, ["--port", "5999"])
    assert result.exit_code != 0
    assert "YINFIN_SECRET_KEY" in result.output


def test_the_apps_cookie_sessions_build_a_signer_only_for_a_cookie(monkeypatch):
    """The signer (itsdangerous) is built only for a request carrying a session cookie;
    sessions themselves work as Flask's do (signed, a forged cookie is an empty session)."""
    from flask import session
    from flask.sessions import SecureCookieSessionInterface

    app = create_app(Settings(database_url="sqlite://", secret_key="s3cret"))
    built: list[int] = []
    real = SecureCookieSessionInterface.get_signing_serializer

    def counting(self, app_):  # type: ignore[no-untyped-def]
        built.append(1)
        return real(self, app_)

    monkeypatch.setattr(SecureCookieSessionInterface, "get_signing_serializer", counting)

    @app.get("/_set")
    def _set() -> str:
        session["who"] = "amy"
        return "set"

    @app.get("/_get")
    def _get() -> str:
        return str(session.get("who"))

    http = app.test_client()
    assert http.get("/api/v1/health").status_code in (200, 503)
    assert built == []  # no cookie: no signer
    assert http.get("/_set").status_code == 200 and len(built) == 1  # signs the new cookie
    assert http.get("/_get").get_data(as_text=True) == "amy"
    http.set_cookie("session", "forged")
    assert http.get("/_get").get_data(as_text=True) == "None"
