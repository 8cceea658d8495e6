"""One statement that needs no transaction around it.

A single statement is atomic and sees one snapshot by itself. On PostgreSQL it runs
in autocommit: one round trip, where a transaction would add ``BEGIN`` and ``COMMIT``
(two more round trips; a write still commits, with its fsync, as the statement
ends). SQLite gets an ordinary unit of work (``BEGIN IMMEDIATE`` for writes: writers
queue there instead of failing; its round trips are in-process and cheap).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from yinfin_flow.db.engine import Database


@contextmanager
def one_statement(db: Database, readonly: bool = False) -> Iterator[Any]:
    """A Connection (PostgreSQL, autocommit) or a Session (SQLite) for ONE statement."""
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn
    else:
        with db.unit_of_work(readonly=readonly) as s:
            yield s
