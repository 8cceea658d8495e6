"""The engine's writes that wait: history rows, and the changes of loaded requests and
tasks, sent together instead of one statement each.

* History rows (:func:`yinfin_flow.engine.history.history`) are plain Core rows. They
  are written before a flush and before commit (always), and before any statement the
  session runs, except inside :func:`deferred`: a block the engine declares not to read
  ``request_history`` (budget calls, directory look-ups, a task's insert). A statement
  marked with :data:`READS_HISTORY` writes them even there.
* At a flush, the changes of the session's loaded :class:`ApprovalRequest` and
  :class:`ApprovalTask` rows become Core UPDATEs sent with the history rows (the ORM's
  unit of work then finds nothing left to do for them). The request's UPDATE keeps the
  ORM's optimistic check: ``version`` goes up by one, and an UPDATE that matches no row
  (someone else changed it) raises ``StaleDataError`` as the ORM would.
* On PostgreSQL all of these go in ONE statement (data-modifying ``WITH``s, each run
  exactly once): at a flush, or inside the INSERT of a new task
  (:func:`insert_returning_id`), which carries the history rows and the task changes
  made so far. Elsewhere they are one statement each, as the ORM would send them.

Every read, in the action or after it in the same transaction, therefore sees them. A
transaction that ends without committing forgets them. Inside a savepoint nothing
waits and the ORM writes as usual (a savepoint rolled back must not take rows recorded
before it along): the engine records no history inside a savepoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Dialect, Table, bindparam, event, insert, select, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.orm.base import instance_state
from sqlalchemy.orm.exc import StaleDataError

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestHistory
from yinfin_flow.db.raw import fetch

_PENDING = "yinfin_engine_history"
_HOLD = "yinfin_engine_history_hold"
#: Execution option of a statement that reads ``request_history``: pending rows are
#: written before it even inside :func:`deferred`.
READS_HISTORY = "yinfin_reads_history"
_HISTORY = RequestHistory.__table__
_REQUESTS = ApprovalRequest.__table__
_TASKS = ApprovalTask.__table__
HISTORY_COLUMNS = ("request_id", "seq", "action", "actor", "on_behalf_of", "step_id", "task_id", "from_state",
                   "to_state", "comment", "budget", "data", "created_at")
_INSERT_HISTORY = insert(_HISTORY)

#: One row's changes: (table, id, {column: new value}, version or None).
Change = tuple[Table, int, dict[str, Any], int | None]


def record(session: Session, row: dict[str, Any]) -> None:
    """Add a history row to the pending ones (see the module)."""
    session.info.setdefault(_PENDING, []).append(row)


def write_history(session: Session) -> None:
    """Write the history rows recorded in ``session`` and not written yet."""
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.connection().execute(_INSERT_HISTORY, rows)


@contextmanager
def deferred(session: Session) -> Iterator[None]:
    """A block whose statements neither read ``request_history`` nor need the session's
    pending changes: no autoflush, and pending history rows wait for a later write."""
    info = session.info
    info[_HOLD] = info.get(_HOLD, 0) + 1
    try:
        with session.no_autoflush:
            yield
    finally:
        info[_HOLD] -= 1


def insert_returning_id(session: Session, table: Table, values: dict[str, Any]) -> int:
    """INSERT one row into ``table`` (every column given) and return its id.

    On PostgreSQL the pending history rows and the changes of loaded tasks go in the
    same statement; elsewhere they wait. Run it inside :func:`deferred`.
    """
    if not (_due(session) and _is_pg(session)):
        return int(session.connection().execute(_insert_one(table), values).scalar_one())
    rows = session.info.pop(_PENDING, None) or []
    changes = _take_changes(session)
    together, alone = _one_request_last(changes)
    _write_alone(session, alone)
    # Every value has a name of its own: execution keys that name a column would
    # otherwise be taken as SET values of the UPDATEs too.
    params = {f"i_{k}": v for k, v in values.items()}
    stmt = _combined(len(rows), _shape(together), (table, tuple(values)))
    _bind(params, rows, together)
    new_id = session.connection().execute(stmt, params).scalar()
    if new_id is None:  # the row is inserted FROM the request's UPDATE, which matched none
        _check_one(0)
    return int(new_id)


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _due(session: Session) -> bool:
    return not session.in_nested_transaction()


def _write_all(session: Session) -> None:
    """Everything pending, at a flush: one statement on PostgreSQL."""
    rows = session.info.pop(_PENDING, None) or []
    changes = _take_changes(session)
    if not rows and not changes:
        return
    if not _is_pg(session):
        if rows:
            session.connection().execute(_INSERT_HISTORY, rows)
        _write_alone(session, changes)
        return
    together, alone = _one_request_last(changes)
    _write_alone(session, alone)
    params: dict[str, Any] = {}
    _bind(params, rows, together)
    stmt = _combined(len(rows), _shape(together), None)
    if not (together and together[-1][3] is not None):
        session.connection().execute(stmt, params)
        return
    # The request's UPDATE reports the row it matched (RETURNING): an action's flush.
    form = _driver_form(stmt, session.get_bind().dialect)
    if form is None:
        matched = session.connection().execute(stmt, params).all()
    else:  # straight through psycopg, the values bound as SQLAlchemy binds them
        sql, processors = form
        for name, process in processors:
            params[name] = process(params[name])
        matched = fetch(session, sql, params)
    _check_one(len(matched))


@lru_cache(maxsize=256)  # per statement shape and engine (a dialect each): bounded
def _driver_form(stmt: Any, dialect: Dialect) -> tuple[str, tuple[tuple[str, Any], ...]] | None:
    """``stmt`` as psycopg takes it, and the bind processors of its parameters, as
    SQLAlchemy would compile and bind it on ``dialect`` (its own processors: the
    engine's JSON serializer, ``UTCDateTime``'s UTC check and conversion); None for a
    statement with parameters of other kinds (expanding, literal, escaped, with values).

    SQLAlchemy costs the client ~60-80 µs per statement over psycopg alone
    (:mod:`yinfin_flow.db.raw`); this is the write of every action's flush.
    """
    compiled = stmt.compile(dialect=dialect)
    if compiled.positional or compiled.escaped_bind_names:
        return None
    processors = []
    for bind, name in compiled.bind_names.items():
        if (name != bind.key or bind.value is not None or bind.callable is not None or bind.expanding
                or bind.literal_execute):
            return None
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((name, process))
    return str(compiled), tuple(processors)


def _one_request_last(changes: list[Change]) -> tuple[list[Change], list[Change]]:
    """What goes in one statement (the tasks, then one request, whose UPDATE reports
    the row it matched) and what goes alone (any other request)."""
    requests = [c for c in changes if c[3] is not None]
    return [c for c in changes if c[3] is None] + requests[-1:], requests[:-1]


def _write_alone(session: Session, changes: list[Change]) -> None:
    for change in changes:
        params: dict[str, Any] = {}
        _bind_change(params, 0, change)
        result = session.connection().execute(_update(change[0], tuple(change[2]), 0, change[3] is not None),
                                              params)
        if change[3] is not None:
            _check_one(result.rowcount)


def _check_one(matched: int) -> None:
    if matched != 1:
        raise StaleDataError(f"UPDATE statement on table 'approval_requests' expected to update 1 row(s); "
                             f"{matched} were matched.")


def _take_changes(session: Session) -> list[Change]:
    """The changes of loaded tasks and requests, marked as written in the session."""
    out: list[Change] = []
    for obj in list(session.dirty):
        is_task = isinstance(obj, ApprovalTask)
        if not (is_task or isinstance(obj, ApprovalRequest)):
            continue
        state = instance_state(obj)
        if state.key is None or state.expired_attributes:
            continue  # the ORM writes what is not a plain loaded row
        values = {k: state.dict[k] for k, old in state.committed_state.items()
                  if k in state.dict and state.dict[k] != old}
        version = None
        if values and not is_task:
            version = state.committed_state.get("version", state.dict["version"])
            values.pop("version", None)
            values["version"] = state.dict["version"] = version + 1
        # As after a flush: every attribute committed, the row no longer dirty (no net
        # change: the ORM would send nothing either).
        state._commit_all(state.dict, session.identity_map)
        if values:
            out.append((_TASKS if is_task else _REQUESTS, obj.id, values, version))
    # Requests last (the UPDATE that reports back), then a fixed order for the cache.
    out.sort(key=lambda c: (c[3] is not None, c[0].name, c[1]))
    return out


def _shape(changes: list[Change]) -> tuple[tuple[Table, tuple[str, ...], bool], ...]:
    return tuple((c[0], tuple(c[2]), c[3] is not None) for c in changes)


def _bind(params: dict[str, Any], rows: list[dict[str, Any]], changes: list[Change]) -> None:
    for i, row in enumerate(rows):
        for col in HISTORY_COLUMNS:
            params[f"h{i}_{col}"] = row[col]
    for i, change in enumerate(changes):
        _bind_change(params, i, change)


def _bind_change(params: dict[str, Any], i: int, change: Change) -> None:
    _, row_id, values, version = change
    params[f"u{i}_id"] = row_id
    for col, value in values.items():
        params[f"u{i}_{col}"] = value
    if version is not None:
        params[f"u{i}_old_version"] = version


@cache
def _insert_one(table: Table) -> Any:
    return insert(table).returning(table.c.id)


@cache
def _history_row(i: int) -> Any:
    return insert(_HISTORY).values({c: bindparam(f"h{i}_{c}", type_=_HISTORY.c[c].type) for c in HISTORY_COLUMNS})


@cache
def _update(table: Table, columns: tuple[str, ...], i: int, checked: bool) -> Any:
    stmt = (update(table).where(table.c.id == bindparam(f"u{i}_id"))
            .values({c: bindparam(f"u{i}_{c}", type_=table.c[c].type) for c in columns}))
    if checked:
        stmt = stmt.where(table.c.version == bindparam(f"u{i}_old_version"))
    return stmt


@cache
def _combined(n_rows: int, shape: tuple[tuple[Table, tuple[str, ...], bool], ...],
              insert_into: tuple[Table, tuple[str, ...]] | None) -> Any:
    """One statement: ``n_rows`` history rows, the updates ``shape`` describes, and the
    INSERT of ``insert_into`` (table, columns: RETURNING id) or the last update as the
    main statement. Built once per shape (one single-row CTE per row: a multi-row
    VALUES is not cached)."""
    parts = [_history_row(i) for i in range(n_rows)]
    parts += [_update(table, cols, i, checked) for i, (table, cols, checked) in enumerate(shape)]
    if insert_into is not None:
        table, columns = insert_into
        values = [bindparam(f"i_{c}", type_=table.c[c].type) for c in columns]
        if shape and shape[-1][2]:
            # Inserted FROM the request's UPDATE (RETURNING its id): no row when the
            # UPDATE matched none, which the caller reports as stale.
            checked = parts.pop().returning(_REQUESTS.c.id).cte(f"w{len(parts)}")
            main = insert(table).from_select(list(columns), select(*values).select_from(checked))
        else:
            main = insert(table).values(dict(zip(columns, values, strict=True)))
        main = main.returning(table.c.id)
    else:
        main = parts.pop()
        if shape and shape[-1][2]:  # the request's UPDATE: report the row it matched
            main = main.returning(_REQUESTS.c.id)
    for i, part in enumerate(parts):
        main = main.add_cte(part.cte(f"w{i}"))
    return main


def before_read(session: Session, execution_options: Mapping[str, Any]) -> None:
    """What every ORM statement gets (below), and a read that bypasses the ORM
    (:class:`yinfin_flow.db.objects.Reader`) too: pending history rows are written first,
    unless the read is inside :func:`deferred` and is not marked :data:`READS_HISTORY`."""
    if (_PENDING in session.info and _due(session)
            and (not session.info.get(_HOLD) or execution_options.get(READS_HISTORY))):
        write_history(session)


@event.listens_for(Session, "do_orm_execute")
def _before_execute(state: ORMExecuteState) -> None:
    before_read(state.session, state.execution_options)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, *_: Any) -> None:
    if _due(session):
        _write_all(session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if _due(session):
        _write_all(session)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction(session: Session, transaction: SessionTransaction) -> None:
    # The whole transaction ended (committed: nothing is left; rolled back or closed:
    # its rows must not reach the session's next transaction). Not a savepoint.
    if not transaction.nested and transaction.parent is None:
        session.info.pop(_PENDING, None)
