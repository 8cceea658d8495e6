"""Console fixtures: the demo organisation (people, budgets, requests in every state) in
a SQLite file made once per run; each test gets its own copy and a standalone app."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from yinfin_flow.app import create_app
from yinfin_flow.config import Settings
from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.demo import loaders
from yinfin_flow.extension import state

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    upgrade(f"sqlite:///{path}")
    db = Database(f"sqlite:///{path}")
    with db.unit_of_work() as s:
        for _name, load in loaders():
            load(s)
    db.dispose()
    return path


@pytest.fixture
def demo_db(demo_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "demo.sqlite"
    shutil.copy(demo_template, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


def console_app(db: Database, **settings: object) -> Flask:
    app = create_app(Settings(database_url=db.url, **settings))  # type: ignore[arg-type]
    app.testing = True
    state(app).db.dispose()
    state(app).db = db
    return app


@pytest.fixture
def app(demo_db: Database) -> Flask:
    return console_app(demo_db)


def english(app: Flask) -> FlaskClient:
    """A client whose browser asks for English (the console's default is Chinese)."""
    c = app.test_client()
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en-US,en;q=0.9"
    return c


def csrf_of(client: FlaskClient, path: str = "/sign-in") -> str:
    found = TOKEN.search(client.get(path).get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


class Person:
    """A browser-less person: a signed-in client and the CSRF token of their session."""

    def __init__(self, app: Flask, user: str) -> None:
        self.client = english(app)
        self.user = user
        token = csrf_of(self.client)
        resp = self.client.post("/sign-in/as", data={"user": user, "csrf_token": token})
        assert resp.status_code == 302, resp.get_data(as_text=True)
        self.csrf = csrf_of(self.client, "/requests")  # a sign-in starts a new session

    def get(self, path: str, **kw: object):  # noqa: ANN201
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, object] | None = None, **kw: object):  # noqa: ANN201
        return self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kw)


@pytest.fixture
def person(app: Flask):  # noqa: ANN201
    return lambda user: Person(app, user)


def text(resp) -> str:  # noqa: ANN001
    """A page's visible text, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)))
