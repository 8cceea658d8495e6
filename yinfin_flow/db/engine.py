"""Engines and the unit of work.

SQLite (the embedded default) runs in WAL mode with a busy timeout, and every
writing transaction starts with ``BEGIN IMMEDIATE`` so writers queue up instead of
failing half-way with "database is locked". PostgreSQL writers take row locks in a
fixed order (see :mod:`yinfin_flow.budget.control`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from yinfin_flow.config import database_schema
from yinfin_flow.db import layout

READONLY = "yinfin_readonly"


def make_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the settings yinfin-flow relies on.

    On PostgreSQL every connection works in yinfin-flow's own schema (``schema``, else
    ``YINFIN_DATABASE_SCHEMA``, default ``yinfin``): see :mod:`yinfin_flow.db.layout`.
    """
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {})
        kwargs["connect_args"].setdefault("timeout", 30)
        kwargs["connect_args"].setdefault("check_same_thread", False)
        engine = create_engine(u, **kwargs)
        _setup_sqlite(engine)
        return engine
    if u.get_backend_name() == "postgresql" and u.get_driver_name() in ("", "psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "postgresql":
        kwargs["connect_args"] = layout.connect_args(
            schema or database_schema(), u.query.get("options"), kwargs.get("connect_args"))
    # No ``pool_pre_ping`` by default: its ``SELECT 1`` is a round trip on every
    # checkout, a seventh of a reservation (bench/README.md). Instead, connections
    # are replaced after half an hour (before servers and proxies drop idle ones),
    # a connection the driver already knows is broken is replaced on checkout at no
    # cost, and a connection the server dropped unnoticed fails its first
    # transaction, which rolls back cleanly and makes SQLAlchemy replace every
    # pooled connection. Pass ``pool_pre_ping=True`` to trade the round trip for
    # never seeing that one error.
    kwargs.setdefault("pool_recycle", 1800)
    engine = create_engine(u, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        event.listen(engine, "checkout", _refuse_broken)
    return engine


def _refuse_broken(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Replace a pooled connection the driver knows is closed or broken (no round trip)."""
    if getattr(dbapi_conn, "closed", False) or getattr(dbapi_conn, "broken", False):
        raise exc.DisconnectionError("connection closed or broken")


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine plus the session factories built on it."""

    def __init__(self, url: str, *, schema: str | None = None, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, schema=schema, **engine_kwargs)
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(
            self.engine.execution_options(**{READONLY: True}), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self, readonly: bool = False) -> Session:
        return (self._reader if readonly else self._writer)()

    @contextmanager
    def unit_of_work(self, readonly: bool = False) -> Iterator[Session]:
        """One transaction: commits when the block ends normally, rolls back on error.

        Everything an action changes (state, budget entries, audit, outbox) goes in
        through the session it yields, so it all commits or none of it does.
        """
        session = self.session(readonly)
        try:
            with session.begin():
                yield session
        except BaseException:
            session.close()
            raise
        # Committed: the connection went back to the pool with the commit. Closing
        # detaches what the session loaded; when it loaded nothing (the budget's
        # hot path loads no objects) the session is already as close() leaves it,
        # and close() would only cost its client CPU (~3 µs).
        if session.identity_map or session.in_transaction():
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
