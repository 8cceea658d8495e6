"""A database connection lost under a request is a 503 the client can retry, not a 500."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from yinfin_flow.db.engine import Database

from .conftest import FINANCE, make_app


def test_a_dropped_connection_answers_503_then_the_retry_works(pg_url):
    db = Database(pg_url, pool_size=1, max_overflow=0)
    try:
        client = make_app(db).test_client()
        assert client.get("/api/v1/budget/lines", headers=FINANCE).status_code == 200
        with db.unit_of_work() as s:
            pid = s.scalar(text("SELECT pg_backend_pid()"))
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:  # what a database restart does to pooled connections
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.dispose()

        lost = client.get("/api/v1/budget/lines", headers=FINANCE)
        assert lost.status_code == 503
        assert lost.get_json()["code"] == "database_unavailable"
        assert lost.headers["Retry-After"] == "1"
        assert client.get("/api/v1/budget/lines", headers=FINANCE).status_code == 200
    finally:
        db.dispose()
