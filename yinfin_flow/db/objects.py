"""ORM objects read straight through psycopg (:mod:`.raw`), for the hottest reads.

An ORM query costs its client ~120-170 µs more than the same statement sent through
:func:`~.raw.fetch` (measured on PostgreSQL: a request under its lock 183 µs
against 47 µs; the difference is SQLAlchemy's ORM execution, result metadata and
instance loading). Every task action makes two such reads: its request under lock,
then its round's tasks. :class:`Reader` runs the same ``select(Model, *extra)``
through :func:`~.raw.fetch_typed` and makes each row a persistent object of the
session with SQLAlchemy's public API:

- each value goes through its column type's result processor, as the ORM's would
  (``UTCDateTime`` and the like);
- a new object is made as the ORM's loading makes one (its values set in its
  ``__dict__``), marked as freshly loaded
  (:func:`~sqlalchemy.orm.make_transient_to_detached`: nothing pending, no history)
  and added to the session;
- an object the session already holds is refreshed in place, its loaded values
  overwritten (what ``populate_existing`` does), so there is never a second copy.

As the ORM query would, the read flushes the session first (autoflush) and runs in
the session's transaction, and a driver error is raised as SQLAlchemy raises it.
Unlike it, the session's ``do_orm_execute`` listeners are not called (a caller
that relies on one passes it as ``before``), and an object arrives through the
``detached_to_persistent`` event, not ``loaded_as_persistent``.
PostgreSQL only (:mod:`.raw`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Select, inspect
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from .raw import driver_statement, fetch_typed

#: How one column of a row is read: (attribute key or None for an extra column,
#: the type's result processor or None).
_Slot = tuple[str | None, Callable[[Any], Any] | None]


class Reader:
    """Objects of one mapped class (and any extra columns) from ``stmt``, built once:
    ``select(Model, *extra)``. :meth:`__call__` returns rows of (object, *extra);
    its parameters go to psycopg as they are (ints and strings, no bind processing)."""

    def __init__(self, stmt: Select[Any]) -> None:
        self.stmt = stmt
        self._options = stmt.get_execution_options()
        self.sql, self._fixed = driver_statement(stmt)
        entity = stmt.column_descriptions[0]["entity"]
        self.mapper: Mapper[Any] = inspect(entity)
        self.cls = entity
        by_column = {prop.columns[0]: prop.key for prop in self.mapper.column_attrs}
        self._columns = [(by_column.get(col), col.type) for col in stmt.selected_columns]
        pk = [by_column[c] for c in self.mapper.primary_key]
        if len(pk) != 1 or self._columns[0][0] != pk[0]:
            raise ValueError("Reader needs a single-column primary key selected first")
        self._pk = pk[0]
        self._slots: dict[tuple[int, ...], list[_Slot]] = {}

    def __call__(self, session: Session, params: Mapping[str, Any],
                 before: Callable[[Session, Mapping[str, Any]], None] | None = None) -> list[tuple[Any, ...]]:
        """The rows; ``before(session, the statement's execution options)`` runs after
        the autoflush, where the ORM calls the session's ``do_orm_execute`` listeners.
        Elsewhere than on PostgreSQL the statement simply runs through the ORM (and its
        listeners)."""
        if session.get_bind().dialect.name != "postgresql":
            return [tuple(row) for row in session.execute(self.stmt, params)]
        if session.autoflush:
            session.flush()
        if before is not None:
            before(session, self._options)
        rows, oids = fetch_typed(session, self.sql, {**self._fixed, **params} if self._fixed else params)
        if not rows:
            return []
        slots = self._slots.get(oids) or self._slots.setdefault(oids, self._slots_for(session, oids))
        identity_map = session.identity_map
        out = []
        for row in rows:
            values = {}
            extra = []
            for (key, process), value in zip(slots, row, strict=True):
                if process is not None and value is not None:
                    value = process(value)
                if key is None:
                    extra.append(value)
                else:
                    values[key] = value
            out.append((self._persistent(session, identity_map, values), *extra))
        return out

    def _persistent(self, session: Session, identity_map: Any, values: dict[str, Any]) -> Any:
        held = identity_map.get(self.mapper.identity_key_from_primary_key((values[self._pk],)))
        if held is not None:
            for key, value in values.items():
                set_committed_value(held, key, value)
            return held
        # As the ORM's loading makes one: the values go into the new object's __dict__
        # (not through its constructor, which would record each as a change).
        obj = self.mapper.class_manager.new_instance()
        obj.__dict__.update(values)
        make_transient_to_detached(obj)
        session.add(obj)
        return obj

    def _slots_for(self, session: Session, oids: tuple[int, ...]) -> list[_Slot]:
        dialect = session.get_bind().dialect
        if len(oids) != len(self._columns):
            raise RuntimeError(f"{self.cls.__name__}: the statement returned {len(oids)} columns, "
                               f"{len(self._columns)} were selected")
        return [(key, type_.dialect_impl(dialect).result_processor(dialect, oid))
                for (key, type_), oid in zip(self._columns, oids, strict=True)]
