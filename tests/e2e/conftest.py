"""HTTP fixtures: the standalone app on a fresh SQLite copy (or the run's PostgreSQL),
driven through Flask's test client (WSGI, no server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from yinfin_flow.app import create_app
from yinfin_flow.config import Settings
from yinfin_flow.db.engine import Database
from yinfin_flow.extension import state

from ..factories import Org, add_people, org_in

FINANCE = {"X-Yinfin-User": "cfo", "X-Yinfin-Roles": "finance"}


def make_app(db: Database, **settings: object) -> Flask:
    app = create_app(Settings(database_url=db.url, **settings))  # type: ignore[arg-type]
    app.testing = True
    state(app).db.dispose()
    # Share the fixture's engine so the test and the app see one database.
    state(app).db = db
    return app


@pytest.fixture
def app(sqlite_db: Database) -> Iterator[Flask]:
    yield make_app(sqlite_db)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A client identified as an employee (``X-Yinfin-User: viewer``) unless a test's
    own headers say otherwise: every API call needs an identified user."""
    c = app.test_client()
    c.environ_base["HTTP_X_YINFIN_USER"] = "viewer"
    return c


@pytest.fixture
def anonymous(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def org(app: Flask) -> Org:
    """ACME's department tree with January 2026 travel and office budgets, and the finance
    people who act on it by name (``cfo``, ``frank``, ``fiona``: directory entries, no roles)."""
    found = org_in(state(app).db)
    with state(app).db.unit_of_work() as s:
        add_people(s)
    return found
