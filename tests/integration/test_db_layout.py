"""yinfin-flow lives beside a host application's tables (see ``yinfin_flow/db/layout.py``).

PostgreSQL: every object in its own schema, the history in ``yinfin_alembic_version``;
the host's ``public`` tables and its ``alembic_version`` are never touched, by an
upgrade or by ``downgrade base``. An installation made before this layout (tables in
``public``, history in ``alembic_version``) upgrades with every row kept: the
databases under ``tests/data/legacy/`` were made by the code of that time (``db
upgrade`` + ``demo load`` + a token, a delegation and outbox rows) and dumped.
SQLite: the history table is renamed, every row stays.
"""

from __future__ import annotations

import gzip
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, exc, func, inspect, select, text
from sqlalchemy.engine import make_url

from yinfin_flow.config import ConfigError, Settings, database_schema
from yinfin_flow.db import layout, raw
from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import downgrade, upgrade
from yinfin_flow.db.models import Base

from .test_migrations import empty_pg_url  # noqa: F401 - fixture

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _load_pg_dump(url: str, name: str) -> None:
    sql = gzip.decompress((LEGACY / name).read_bytes()).decode("utf-8")
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(sql.encode())  # several statements, no parameters: one simple query


def _pg_tables(url: str, schema: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names(schema=schema))
    finally:
        engine.dispose()


def _pg_rows(url: str, schema: str, tables: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every row of each table (only the columns given), as sorted text: comparable as is."""
    out: dict[str, list[str]] = {}
    with psycopg.connect(_libpq(url)) as conn:
        for table, columns in tables.items():
            cols = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(f'SELECT {cols} FROM "{schema}"."{table}"').fetchall()
            out[table] = sorted(map(repr, rows))
    return out


def _columns(url: str, schema: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        return {t: [c["name"] for c in insp.get_columns(t, schema=schema)]
                for t in insp.get_table_names(schema=schema) if t != "alembic_version"}
    finally:
        engine.dispose()


def _head_of(url: str, schema: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(f'SELECT version_num FROM "{schema}".yinfin_alembic_version')).scalars())
    finally:
        engine.dispose()


def _script_head() -> str:
    from alembic.script import ScriptDirectory

    from yinfin_flow.db.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


@pytest.mark.postgres
def test_an_installation_of_the_old_layout_moves_into_the_schema_with_every_row(empty_pg_url: str) -> None:  # noqa: F811
    _load_pg_dump(empty_pg_url, "pg_0007.sql.gz")
    before_columns = _columns(empty_pg_url, "public")
    before = _pg_rows(empty_pg_url, "public", before_columns)
    assert sum(map(len, before.values())) > 1000, "the old database has data"
    assert len([t for t, rows in before.items() if rows]) >= 25

    upgrade(empty_pg_url)

    assert _pg_tables(empty_pg_url, "public") == set(), "nothing of yinfin-flow is left in public"
    assert _pg_tables(empty_pg_url, "yinfin") == {t.name for t in Base.metadata.sorted_tables} | {
        "yinfin_alembic_version"}
    assert _head_of(empty_pg_url, "yinfin") == [_script_head()]
    after = _pg_rows(empty_pg_url, "yinfin", before_columns)
    for table, rows in before.items():
        assert after[table] == rows, f"{table}: rows differ after the move"

    db = Database(empty_pg_url)
    try:
        with db.unit_of_work() as s:
            # the moved sequences go on where they were, the trigger function came along
            assert s.scalar(text("SELECT nextval(pg_get_serial_sequence('outbox_messages', 'id'))")) == 3
            with pytest.raises(exc.DBAPIError, match="append-only"), s.begin_nested():
                s.execute(text("UPDATE budget_entries SET amount = 0"))
            assert s.scalar(text("SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON "
                                 "n.oid = p.pronamespace WHERE p.proname = 'yinfin_append_only'")) == "yinfin"
        with db.unit_of_work(readonly=True) as s:
            assert s.scalar(select(func.count()).select_from(Base.metadata.tables["approval_requests"])) == len(before["approval_requests"])
    finally:
        db.dispose()


@pytest.mark.postgres
def test_an_old_layout_below_the_move_runs_its_remaining_migrations_then_moves(empty_pg_url: str) -> None:  # noqa: F811
    """Old layout at 0004: the history is taken over, 0005-0007 run beside the tables
    still in public (new tables are made in the schema, foreign keys reach public), then
    the move brings the rest; an old-layout downgrade drops public's tables (they are ours)."""
    _load_pg_dump(empty_pg_url, "pg_0007.sql.gz")
    downgrade(empty_pg_url, "0004")
    assert "users" not in _pg_tables(empty_pg_url, "public")
    assert {"companies", "budget_lines", "approval_requests"} <= _pg_tables(empty_pg_url, "public")
    assert _head_of(empty_pg_url, "yinfin") == ["0004"]
    kept_columns = _columns(empty_pg_url, "public")
    kept = _pg_rows(empty_pg_url, "public", kept_columns)

    upgrade(empty_pg_url)

    assert _pg_tables(empty_pg_url, "public") == set()
    after = _pg_rows(empty_pg_url, "yinfin", kept_columns)
    for table, rows in kept.items():
        assert after[table] == rows, table
    assert _pg_tables(empty_pg_url, "yinfin") >= {"users", "delegations", "rule_changes"}


@pytest.mark.postgres
def test_beside_a_host_in_one_database_only_yinfin_objects_are_touched(
        empty_pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The host has its own users table and its own Alembic history in public; yinfin-flow
    (here in a schema named by YINFIN_DATABASE_SCHEMA) migrates, works and leaves again."""
    monkeypatch.setenv("YINFIN_DATABASE_SCHEMA", "finance")
    host = create_engine(empty_pg_url)
    with host.begin() as conn:
        conn.execute(text("CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL)"))
        conn.execute(text("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO users (email) VALUES ('amy@host.example'), ('bob@host.example')"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('host_0001')"))

    def host_state() -> tuple[set[str], list[Any], list[Any]]:
        with host.connect() as conn:
            return (set(inspect(conn).get_table_names()),
                    conn.execute(text("SELECT * FROM users ORDER BY id")).all(),
                    conn.execute(text("SELECT * FROM alembic_version")).all())

    original = host_state()
    upgrade(empty_pg_url)
    assert host_state() == original
    assert "users" in _pg_tables(empty_pg_url, "finance")
    assert _pg_tables(empty_pg_url, "yinfin") == set()

    db = Database(empty_pg_url)
    try:
        with db.unit_of_work() as s:
            assert s.scalar(text("SHOW search_path")) == "finance"
            # the statements sent straight through psycopg work in the schema too
            sql = raw.driver_sql(select(func.count()).select_from(Base.metadata.tables["users"]))
            assert raw.fetch(s, sql, {})[0][0] == 0
            assert raw.fetch(s, "SELECT current_schema() AS s", {})[0].s == "finance"
    finally:
        db.dispose()

    downgrade(empty_pg_url, "base")
    assert host_state() == original
    with host.connect() as conn:
        schemas = set(conn.execute(text("SELECT nspname FROM pg_namespace")).scalars())
    assert "finance" not in schemas
    host.dispose()


def test_the_schema_setting_refuses_names_it_cannot_use() -> None:
    assert database_schema({}) == "yinfin"
    assert Settings.from_env({"YINFIN_DATABASE_SCHEMA": "fin_2"}).database_schema == "fin_2"
    for bad in ("Finance", "fin-ance", "pg_temp", "a;drop", "9x"):
        with pytest.raises(ConfigError, match="YINFIN_DATABASE_SCHEMA"):
            Settings.from_env({"YINFIN_DATABASE_SCHEMA": bad})


@pytest.mark.postgres
def test_connections_keep_options_the_url_gives(pg_url: str) -> None:
    db = Database(pg_url + "?options=-c%20statement_timeout%3D5000")
    try:
        with db.unit_of_work(readonly=True) as s:
            assert s.scalar(text("SHOW statement_timeout")) == "5s"
            assert s.scalar(text("SHOW search_path")) == "yinfin"
    finally:
        db.dispose()
    args = layout.connect_args("fin", "-c statement_timeout=5000", {"connect_timeout": 3})
    assert args == {"connect_timeout": 3, "options": "-c statement_timeout=5000 -c search_path=fin"}


@pytest.fixture
def legacy_sqlite(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(gzip.decompress((LEGACY / "sqlite_0007.sql.gz").read_bytes()).decode("utf-8"))
    yield path


def _sqlite_rows(path: Path, columns: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every row of each table (only the columns given), as sorted text."""
    with sqlite3.connect(path) as conn:
        return {n: sorted(map(repr, conn.execute(
            f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{n}"')))
            for n, cols in columns.items()}


def _sqlite_columns(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: [c[1] for c in conn.execute(f'PRAGMA table_info("{n}")')] for n in names}


def test_an_old_sqlite_database_keeps_every_row_and_renames_its_history(legacy_sqlite: Path) -> None:
    columns = _sqlite_columns(legacy_sqlite)
    before = _sqlite_rows(legacy_sqlite, columns)
    assert before.pop("alembic_version") == [repr(("0007",))]
    del columns["alembic_version"]
    assert sum(map(len, before.values())) > 1000

    upgrade(f"sqlite:///{legacy_sqlite}")

    now = _sqlite_columns(legacy_sqlite)
    assert "alembic_version" not in now
    assert _sqlite_rows(legacy_sqlite, {"yinfin_alembic_version": ["version_num"]}) == {
        "yinfin_alembic_version": [repr((_script_head(),))]}
    after = _sqlite_rows(legacy_sqlite, columns)
    for table, rows in before.items():
        assert after[table] == rows, f"{table}: rows differ after the upgrade"


def test_a_host_history_in_the_same_sqlite_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('host_0001')")
    upgrade(f"sqlite:///{path}")
    rows = _sqlite_rows(path, {t: ["version_num"] for t in ("alembic_version", "yinfin_alembic_version")})
    assert rows["alembic_version"] == [repr(("host_0001",))]
    assert rows["yinfin_alembic_version"] == [repr((_script_head(),))]


def test_a_host_reads_the_sqlite_file_attached_as_yinfin(sqlite_db: Database, tmp_path: Path) -> None:
    host = create_engine(f"sqlite:///{tmp_path / 'host.sqlite'}")
    yinfin_file = make_url(sqlite_db.url).database
    assert yinfin_file
    layout.attach_sqlite(host, yinfin_file)
    with host.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM yinfin.approval_requests")).scalar_one() == 0
        assert "approval_requests" in inspect(conn).get_table_names(schema="yinfin")
    host.dispose()


@pytest.mark.postgres
def test_a_user_without_create_on_the_database_migrates_into_a_schema_made_for_it(empty_pg_url: str) -> None:  # noqa: F811
    """A DBA makes the schema and hands it over; the application's role cannot create
    schemas, and does not need to."""
    role = f"yf_app_{uuid.uuid4().hex[:8]}"
    admin = create_engine(empty_pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'CREATE SCHEMA yinfin AUTHORIZATION "{role}"'))
    url = make_url(empty_pg_url).set(username=role).render_as_string(hide_password=False)
    try:
        with pytest.raises(exc.ProgrammingError, match="permission denied"), \
                create_engine(url).connect() as conn:
            conn.execute(text("CREATE SCHEMA other"))
        upgrade(url)
        assert "budget_lines" in _pg_tables(empty_pg_url, "yinfin")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()
