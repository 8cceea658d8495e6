"""A host application with yinfin-flow inside it.

The host has its own models, its own Alembic history and its own login (Flask-Login).
yinfin-flow is mounted under ``/finance``; whoever is logged in to the host is the user
acting in yinfin-flow, with the roles yinfin-flow's directory gives them. Both share one
PostgreSQL database (``DATABASE_URL``): the host's tables in ``public``, yinfin-flow's in
the schema ``yinfin``.

    flask --app hostapp run
"""

from __future__ import annotations

import os

import click
from flask import Flask, Request, current_app, g, redirect, render_template_string, request, url_for
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from yinfin_flow import YinFinFlow
from yinfin_flow.api.identity import Identity, directory_roles
from yinfin_flow.extension import state

from .models import Project, User

login_manager = LoginManager()
login_manager.login_view = "login"
flow = YinFinFlow()


def create_app(config: dict[str, object] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/hostapp"),
        SECRET_KEY=os.environ.get("SECRET_KEY", "change-me"),
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.config.update(config or {})
    # One database for both: yinfin-flow keeps to its schema (YINFIN_DATABASE_SCHEMA).
    app.config.setdefault("YINFIN_DATABASE_URL", app.config["DATABASE_URL"])

    engine = create_engine(str(app.config["DATABASE_URL"]))
    app.extensions["host_sessions"] = sessionmaker(engine, expire_on_commit=False)
    login_manager.init_app(app)
    flow.init_app(app, url_prefix="/finance", identity_provider=logged_in_user)
    app.teardown_appcontext(_close_session)
    _routes(app)
    app.cli.add_command(add_user)
    return app


def db() -> Session:
    """The host's session for this request (its own engine, its own tables)."""
    if "host_db" not in g:
        g.host_db = current_app.extensions["host_sessions"]()
    return g.host_db  # type: ignore[no-any-return]


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("host_db", None)
    if session is not None:
        session.close()


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db().get(User, int(user_id))


def logged_in_user(_req: Request) -> Identity | None:
    """yinfin-flow's identity provider: the host's logged-in user, with the roles
    yinfin-flow's directory holds for the same username."""
    if not current_user.is_authenticated:
        return None
    with state(current_app).db.unit_of_work(readonly=True) as session:
        roles = directory_roles(session, current_user.username)
    return Identity(current_user.username, roles)


PAGE = """<!doctype html><title>Host</title>
{% if current_user.is_authenticated %}
<p>Hello {{ current_user.display_name }}. <a href="{{ url_for('logout') }}">Log out</a></p>
<p>Finance: <a href="/finance/api/v1/docs">API</a>, <a href="/finance/api/v1/tasks">my tasks</a></p>
<ul>{% for p in projects %}<li>{{ p.name }}</li>{% endfor %}</ul>
{% else %}
<form method="post" action="{{ url_for('login') }}">
  <input name="username" placeholder="username"> <input name="password" type="password">
  <button>Log in</button> {% if error %}<b>{{ error }}</b>{% endif %}
</form>
{% endif %}"""


def _routes(app: Flask) -> None:
    @app.get("/")
    def home() -> str:
        projects = db().scalars(select(Project).order_by(Project.id)).all() \
            if current_user.is_authenticated else []
        return render_template_string(PAGE, projects=projects, error=None)

    @app.route("/login", methods=["GET", "POST"])
    def login():  # type: ignore[no-untyped-def]
        if request.method == "GET":
            return render_template_string(PAGE, projects=[], error=None)
        user = db().scalar(select(User).where(User.username == request.form.get("username", "")))
        if user is None or not user.check_password(request.form.get("password", "")):
            return render_template_string(PAGE, projects=[], error="wrong username or password"), 401
        login_user(user)
        return redirect(request.args.get("next") or url_for("home"))

    @app.get("/logout")
    @login_required
    def logout():  # type: ignore[no-untyped-def]
        logout_user()
        return redirect(url_for("home"))


@click.command("add-user")
@click.argument("username")
@click.option("--name", "display_name", default=None)
@click.option("--password", prompt=True, hide_input=True)
@click.option("--project", "projects", multiple=True, help="A host project this user owns.")
def add_user(username: str, display_name: str | None, password: str, projects: tuple[str, ...]) -> None:
    """Create a host user (and the projects they own) in the host's tables."""
    with current_app.extensions["host_sessions"].begin() as session:
        user = User(username=username, display_name=display_name or username)
        user.set_password(password)
        session.add(user)
        session.flush()
        for name in projects:
            session.add(Project(name=name, owner_id=user.id))
    click.echo(f"host user {username} added")
