"""Hot-path statements on PostgreSQL straight through psycopg, under the session's transaction.

Through SQLAlchemy a statement costs its client ~60-80 µs more than through
psycopg alone, plus a few µs per result column (SQLAlchemy builds the result's
metadata and psycopg its ``description`` on every execution). The budget's
lock-and-read and its one-statement writes run while balance rows are locked, so
that time is time the row stays locked; they run here instead.

What stays the same: the statement runs on the session's own connection and in its
transaction (SQLAlchemy commits or rolls it back as before); the engine's
``before_cursor_execute`` / ``after_cursor_execute`` listeners still see it (tests and
``bench/profile_budget.py`` count statements with them); a driver error is raised as
SQLAlchemy raises it (``sqlalchemy.exc.DBAPIError`` subclasses), and a lost connection
invalidates the pool as it would through SQLAlchemy.

psycopg 3 sends the transaction's ``BEGIN`` as a round trip of its own, in pipeline
mode too (it syncs right after queueing it: checked with strace on psycopg 3.3), so
these statements are sent plainly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import ClauseElement, Connection
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.orm import Session

_DIALECT = pg_psycopg.dialect()


def driver_sql(stmt: ClauseElement) -> str:
    """``stmt`` (``:name`` parameters) as psycopg takes it (``%(name)s``), compiled once."""
    return str(stmt.compile(dialect=_DIALECT))


def fetch(session: Session | Connection, sql: str, params: Mapping[str, Any]) -> list[Any]:
    """Run ``sql`` (from :func:`driver_sql`) on the session's connection (or on ``session``,
    a Connection, e.g. one in autocommit); the rows as named tuples."""
    conn = session if isinstance(session, Connection) else session.connection()
    driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    cursor = driver.cursor(row_factory=namedtuple_row)
    dispatch = conn.dispatch
    try:
        if dispatch.before_cursor_execute:
            for fn in dispatch.before_cursor_execute:
                fn(conn, cursor, sql, params, None, False)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        if dispatch.after_cursor_execute:
            for fn in dispatch.after_cursor_execute:
                fn(conn, cursor, sql, params, None, False)
    except psycopg.Error as e:
        # As SQLAlchemy would: wrap the error, and invalidate the pool on a disconnect.
        conn._handle_dbapi_exception(e, sql, params, cursor, None)  # noqa: SLF001 - pinned < 2.2
        raise  # not reached: the call above raises
    finally:
        cursor.close()
    return rows
