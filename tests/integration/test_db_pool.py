"""The PostgreSQL pool without ``pool_pre_ping``: what a dropped connection costs.

``make_engine`` no longer pings on every checkout (a round trip per transaction).
A connection the driver knows is closed is still replaced at no cost; one the
server dropped unnoticed fails a single transaction, cleanly, and the pool heals.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, exc, text

from yinfin_flow.db.engine import Database

pytestmark = pytest.mark.postgres


def _backend_pid(db: Database) -> int:
    with db.unit_of_work() as s:
        return int(s.scalar(text("SELECT pg_backend_pid()")))


def _terminate(pg_url: str, pid: int) -> None:
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()


def test_a_connection_closed_on_the_client_is_replaced_without_an_error(pg_url):
    db = Database(pg_url, pool_size=1, max_overflow=0)
    try:
        with db.unit_of_work() as s:
            first = s.scalar(text("SELECT pg_backend_pid()"))
            dbapi_connection = s.connection().connection.dbapi_connection
        dbapi_connection.close()  # while it waits in the pool (without the check: an error)
        assert _backend_pid(db) != first
    finally:
        db.dispose()


def test_a_connection_the_server_dropped_fails_once_then_the_pool_heals(pg_url):
    db = Database(pg_url, pool_size=1, max_overflow=0)
    try:
        first = _backend_pid(db)
        _terminate(pg_url, first)
        with pytest.raises(exc.OperationalError), db.unit_of_work() as s:
            s.execute(text("SELECT 1"))
        assert _backend_pid(db) != first
    finally:
        db.dispose()


def test_pre_ping_can_be_asked_for_and_hides_the_dropped_connection(pg_url):
    db = Database(pg_url, pool_size=1, max_overflow=0, pool_pre_ping=True)
    try:
        first = _backend_pid(db)
        _terminate(pg_url, first)
        assert _backend_pid(db) != first
    finally:
        db.dispose()
