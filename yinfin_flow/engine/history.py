"""A request's history rows: numbered per request, written with the action's other rows.

History rows are plain Core inserts, not ORM objects: the ORM sends one INSERT …
RETURNING per object, while a list of rows goes as one statement. An action records
its rows as it goes (:func:`history`); they are *pending* until written:

* before a flush and before commit (always), and before any statement the session
  runs, except inside :func:`deferred`: a block the engine declares not to read
  ``request_history`` (budget calls, directory look-ups, a task's insert), so the
  rows of one action go out together instead of one INSERT per read in between.
  A statement marked with :data:`READS_HISTORY` writes them even there.
* on PostgreSQL, along with the INSERT of a new task (:func:`insert_returning_id`,
  a data-modifying ``WITH``): no statement of their own at all.

Every read of ``request_history``, in the action or after it in the same transaction,
therefore sees them. A transaction that ends without committing forgets them.
Inside a savepoint they wait (a savepoint rolled back must not take rows recorded
before it along): the engine records no history inside a savepoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Insert, Table, bindparam, event, func, insert, select
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask, RequestHistory

if TYPE_CHECKING:
    from .runtime import ActionContext

_PENDING = "yinfin_engine_history"
_HOLD = "yinfin_engine_history_hold"
#: Execution option of a statement that reads ``request_history``: pending rows are
#: written before it even inside :func:`deferred`.
READS_HISTORY = "yinfin_reads_history"
_TABLE = RequestHistory.__table__
_COLUMNS = ("request_id", "seq", "action", "actor", "on_behalf_of", "step_id", "task_id", "from_state",
            "to_state", "comment", "budget", "data", "created_at")
_INSERT_HISTORY = insert(_TABLE)
_READ_LAST_SEQ = (select(RequestHistory.seq).where(RequestHistory.request_id == bindparam("request_id"))
                  .order_by(RequestHistory.seq.desc()).limit(1)
                  .execution_options(**{READS_HISTORY: True}))

#: The request's last history seq, as a column to add to a statement about the request
#: (mark the statement with :data:`READS_HISTORY`).
#: Never put it in the locking statement itself: on PostgreSQL a statement that waited
#: for the row lock still reads other tables as they were when it started, so rows
#: written by the transaction it waited for would be missed. Read it after the lock.
LAST_SEQ = (select(func.max(RequestHistory.seq)).where(RequestHistory.request_id == bindparam("request_id"))
            .scalar_subquery())


def start_history(ctx: ActionContext, req: ApprovalRequest, last_seq: int | None) -> None:
    """Tell :func:`history` the request's last seq (None: no row yet), read by this action
    after taking the request's lock, before recording any history row itself."""
    ctx.cache.setdefault("history_seq", {})[req.id] = last_seq or 0


def history(ctx: ActionContext, req: ApprovalRequest, action: str, *,
            from_state: str | None = None, to_state: str | None = None,
            step_id: str | None = None, task: ApprovalTask | None = None,
            actor: str | None = None, data: dict[str, Any] | None = None,
            budget: dict[str, Any] | None = None) -> None:
    """Record one history row (written with the action's other rows; see the module)."""
    # The request row is locked, so the last seq read once stays the last; count on.
    seqs = ctx.cache.setdefault("history_seq", {})
    if req.id not in seqs:
        # Pending rows (READS_HISTORY) are written before this read, so it sees them;
        # the action's other changes need not be flushed for it.
        with ctx.session.no_autoflush:
            seqs[req.id] = ctx.session.scalar(_READ_LAST_SEQ, {"request_id": req.id}) or 0
    seqs[req.id] += 1
    ctx.session.info.setdefault(_PENDING, []).append({
        "request_id": req.id, "seq": seqs[req.id], "action": action, "actor": actor or ctx.actor,
        "on_behalf_of": ctx.on_behalf_of if actor is None else None,
        "step_id": step_id or (task.step_id if task else None), "task_id": task.id if task else None,
        "from_state": from_state, "to_state": to_state, "comment": ctx.comment if actor is None else None,
        "budget": budget, "data": data, "created_at": ctx.now,
    })


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

    On PostgreSQL the pending history rows go in the same statement (a data-modifying
    ``WITH``, executed exactly once whether or not the INSERT refers to it); elsewhere
    they wait. Run it inside :func:`deferred`.
    """
    rows = session.info.pop(_PENDING, None) if _due(session) and _is_pg(session) else None
    if not rows:
        return int(session.execute(_insert_one(table), values).scalar_one())
    params = dict(values)
    for i, row in enumerate(rows):
        for col in _COLUMNS:
            params[f"h{i}_{col}"] = row[col]
    return int(session.execute(_insert_with_history(table, len(rows)), params).scalar_one())


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@cache
def _insert_one(table: Table) -> Insert:
    return insert(table).returning(table.c.id)


@cache
def _insert_with_history(table: Table, n: int) -> Insert:
    """Built once per table and number of history rows (values bound at execution)."""
    # One single-row INSERT per history row: a multi-row VALUES is not cacheable.
    stmt = insert(table).returning(table.c.id)
    for i in range(n):
        row = {col: bindparam(f"h{i}_{col}", type_=_TABLE.c[col].type) for col in _COLUMNS}
        stmt = stmt.add_cte(insert(_TABLE).values(row).cte(f"history_{i}"))
    return stmt


def _due(session: Session) -> bool:
    return _PENDING in session.info and not session.in_nested_transaction()


@event.listens_for(Session, "do_orm_execute")
def _before_execute(state: ORMExecuteState) -> None:
    session = state.session
    if _due(session) and (not session.info.get(_HOLD) or state.execution_options.get(READS_HISTORY)):
        write_history(session)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, *_: Any) -> None:
    if _due(session):
        write_history(session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if _due(session):
        write_history(session)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction(session: Session, transaction: SessionTransaction) -> None:
    # The whole transaction ended (committed: nothing is left; rolled back or closed:
    # its rows must not reach the session's next transaction). Not a savepoint.
    if not transaction.nested and transaction.parent is None:
        session.info.pop(_PENDING, None)
