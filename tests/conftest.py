"""Fixtures: fresh databases per run (SQLite file per test, one PostgreSQL database per run).

PostgreSQL and Redis are real. Without them, tests that need them skip with a
reason that says how to start them; with ``YINFIN_REQUIRE_SERVICES=1`` (CI) a
missing service fails the run instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from yinfin_flow.db.engine import Database
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.db.models import Base

PG_ADMIN_URL = os.environ.get(
    "YINFIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("YINFIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE = os.environ.get("YINFIN_REQUIRE_SERVICES") == "1"
# Never the checkout's instance/ (its yinfin.env, written by the demo, names connectors):
# set before any test module is imported, as the worker reads it at import.
os.environ["YINFIN_INSTANCE_DIR"] = tempfile.mkdtemp(prefix="yinfin-test-instance-")

START_PG = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''"


def _missing(what: str, how: str, err: Exception) -> None:
    message = f"{what} is not reachable ({err.__class__.__name__}: {err}); {how}"
    if REQUIRE:
        pytest.fail(message + " [YINFIN_REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def attachments_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Attachment files of the whole run go to a temporary directory, never ``instance/``."""
    path = tmp_path_factory.mktemp("attachments")
    before = os.environ.get("YINFIN_ATTACHMENTS_DIR")
    os.environ["YINFIN_ATTACHMENTS_DIR"] = str(path)
    yield path
    if before is None:
        os.environ.pop("YINFIN_ATTACHMENTS_DIR", None)
    else:
        os.environ["YINFIN_ATTACHMENTS_DIR"] = before


@pytest.fixture(autouse=True)
def _yinfin_environment() -> Iterator[None]:
    """What a test (or ``demo load`` or ``instance/yinfin.env`` read by a command it runs)
    puts into the process environment does not outlive the test."""
    before = {k: v for k, v in os.environ.items() if k.startswith("YINFIN_")}
    yield
    (Path(os.environ["YINFIN_INSTANCE_DIR"]) / "yinfin.env").unlink(missing_ok=True)
    for k in [k for k in os.environ if k.startswith("YINFIN_") and k not in before]:
        del os.environ[k]
    os.environ.update(before)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, migrated to head, dropped afterwards."""
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:  # noqa: BLE001 - any failure to connect means "absent"
        _missing("PostgreSQL", START_PG, err)
    name = f"yinfin_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


def _truncate_all(db: Database) -> None:
    names = ", ".join(f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables))
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "yinfin.sqlite"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url, pool_size=20, max_overflow=220)
    _truncate_all(db)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> Database:
    """Both backends: the same test runs on SQLite and on PostgreSQL."""
    name = "sqlite_db" if request.param == "sqlite" else "pg_db"
    database: Database = request.getfixturevalue(name)
    return database


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
    except Exception as err:  # noqa: BLE001
        _missing("Redis", START_REDIS, err)
    return REDIS_URL
