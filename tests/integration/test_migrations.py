"""Migrations are the only way the schema is made: they must give exactly the models.

On a brand-new database (PostgreSQL: a uniquely named one created here and dropped
after; SQLite: a new file), ``upgrade head`` must leave no difference from
``Base.metadata`` that Alembic's autogenerate can see, and ``downgrade base`` must
remove every table again. A model change without its migration fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from yinfin_flow.db.engine import make_engine
from yinfin_flow.db.layout import VERSION_TABLE
from yinfin_flow.db.migrate import downgrade, upgrade
from yinfin_flow.db.models import Base

from ..conftest import PG_ADMIN_URL, START_PG, _missing


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:  # noqa: BLE001 - any failure to connect means "absent"
        _missing("PostgreSQL", START_PG, err)
    name = f"yinfin_migr_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'migrations.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("empty_sqlite_url" if request.param == "sqlite" else "empty_pg_url")
    return url


def schema_diff(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False,
                                                         "version_table": VERSION_TABLE})
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_head_gives_exactly_the_models_and_downgrade_removes_them(empty_url: str) -> None:
    assert tables(empty_url) == set()
    upgrade(empty_url)
    diff = schema_diff(empty_url)
    assert diff == [], "the migrations and the models differ:\n" + "\n".join(map(repr, diff))
    assert tables(empty_url) == {t.name for t in Base.metadata.sorted_tables} | {"yinfin_alembic_version"}
    downgrade(empty_url, "base")
    assert tables(empty_url) == set()
    # ... and the way back up works again from there
    upgrade(empty_url)
    assert schema_diff(empty_url) == []


def test_the_drift_check_can_fail(empty_sqlite_url: str) -> None:
    """A table the migrations never made shows up as a difference."""
    upgrade(empty_sqlite_url)
    engine = make_engine(empty_sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE budget_alerts"))
    engine.dispose()
    diff = schema_diff(empty_sqlite_url)
    assert any(d[0] == "add_table" and d[1].name == "budget_alerts" for d in diff)
