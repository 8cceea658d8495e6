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

Each pooled connection keeps one psycopg cursor for these statements (in the pool
record's ``info``) instead of a new one per statement: a new cursor builds its
adapters and looks up a loader per result column every time (~10 µs of client CPU
per statement, measured). Rows come as plain tuples and are made named tuples with
the row type of their statement, built once per statement text from the columns the
server described (the same type psycopg's ``namedtuple_row`` builds, without reading
the column names again on every execution).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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


def driver_statement(stmt: ClauseElement) -> tuple[str, dict[str, Any]]:
    """As :func:`driver_sql`, with the values the statement carries itself (its literals,
    e.g. an ``IN`` list), to send with the caller's."""
    compiled = stmt.compile(dialect=_DIALECT)
    return str(compiled), {name: value for name, value in compiled.params.items() if value is not None}


def fetch(session: Session | Connection, sql: str, params: Mapping[str, Any]) -> list[Any]:
    """Run ``sql`` (from :func:`driver_sql`) on the session's connection (or on ``session``,
    a Connection, e.g. one in autocommit); the rows as named tuples."""
    cursor, rows = _run(session, sql, params)
    make = _row_maker(cursor, sql)
    return [make(row) for row in rows]


def fetch_typed(session: Session | Connection, sql: str,
                params: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], tuple[int, ...]]:
    """As :func:`fetch`, the rows as plain tuples, with the type oid of each column."""
    cursor, rows = _run(session, sql, params)
    res = cursor.pgresult
    oids = tuple(map(res.ftype, range(res.nfields))) if res is not None else ()
    return rows, oids


def _run(session: Session | Connection, sql: str,
         params: Mapping[str, Any]) -> tuple[psycopg.Cursor[Any], list[Any]]:
    conn = session if isinstance(session, Connection) else session.connection()
    cursor = _cursor(conn)
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
    return cursor, rows


_CURSOR = "yinfin_raw_cursor"
# The row type of each statement text (bounded: the statements are the modules' constants).
_ROW_MAKERS: dict[str, Callable[[Sequence[Any]], Any]] = {}


def _cursor(conn: Connection) -> psycopg.Cursor[Any]:
    """The cursor kept for these statements on ``conn``'s DBAPI connection (made on first use)."""
    pooled = conn.connection
    driver: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
    kept = pooled.info.get(_CURSOR)
    if kept is not None and kept.connection is driver and not kept.closed:
        return kept  # type: ignore[no-any-return]
    cursor = driver.cursor()
    pooled.info[_CURSOR] = cursor
    return cursor


def _row_maker(cursor: psycopg.Cursor[Any], sql: str) -> Callable[[Sequence[Any]], Any]:
    """The named-tuple type of ``sql``'s rows, as psycopg's ``namedtuple_row`` makes it."""
    make = _ROW_MAKERS.get(sql)
    res = cursor.pgresult
    if make is None or res is None or res.nfields != len(make.__self__._fields):  # type: ignore[attr-defined]
        make = namedtuple_row(cursor)
        if len(_ROW_MAKERS) >= 256:
            _ROW_MAKERS.clear()
        _ROW_MAKERS[sql] = make
    return make


def id_array(ids: Iterable[int]) -> str:
    """Ids as a PostgreSQL array literal (``{1,5,9}``), for ``CAST(:x AS bigint[])``.

    psycopg dumps a list by inspecting its elements and building an array dumper
    every time (~4 µs of client CPU per list, measured); a string is dumped as it
    is. ``int.__repr__`` refuses anything but an int, so nothing else reaches the literal.
    """
    return "{" + ",".join(map(int.__repr__, ids)) + "}"
