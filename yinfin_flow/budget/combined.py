"""One statement for what control needs: lines, ancestors, balances, rules.

The general path (:meth:`.control.ControlContext.prepare`) reads the lines, the
rules, the balances and, on PostgreSQL, the rules again after locking: four or
five round trips, most of them while the balance rows are locked. When no rule
anywhere has a basis other than the period (the common case: then a line is
checked against its own path only), one statement does it all here:

- the lines asked for, every ancestor on their paths (from ``path``), each with its
  balance row and its control rule, in ``line_id`` order;
- ``FOR UPDATE OF`` the balance rows (the lock variant), in that order, so the global
  lock order is unchanged;
- ``rules_seen``, a fingerprint of the rules read (each rule's id and row version,
  ``xmin``, on these lines, plus every rule whose basis is not the period).

One statement has one snapshot (READ COMMITTED): a rule that a transaction holding
one of these balance rows committed while we waited for it is not among the rules
read. The writes (:mod:`.writes`) therefore compute the same fingerprint again, in
their own, later snapshot, and write nothing when it differs; the action then reads
afresh (it still holds the locks) and decides again. ``set_rule`` writes the rule
and then locks the balances, so a rule change either commits before our write
statement starts (and is seen) or waits for our commit.

When a rule with another basis exists, the lock variant returns no row and locks
nothing, and the caller takes the general path (which knows every line such rules
bring in before it locks, so the lock order holds there too).

SQLite runs the same reads (paths split as JSON) without locks or fingerprint: a
writer holds the whole database from ``BEGIN IMMEDIATE`` on. There a statement is
a function call, not a round trip, but each still costs SQLAlchemy's client CPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, TextClause, text
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetBalance, BudgetLine, ControlRuleRow
from yinfin_flow.db.raw import driver_sql, fetch, id_array
from yinfin_flow.domain.budget import Buckets

from .lookup import LINE_ROW_COLUMNS, LineRow

#: The fingerprint of the rules that decide for the lines ``{ids}`` (an SQL set):
#: id and row version of each rule on them, and of every rule with another basis.
#: Compared as text; '' when there is none.
RULES_SEEN_SQL = (
    "(SELECT coalesce(string_agg(c.id || ':' || c.xmin, ',' ORDER BY c.id), '')"
    " FROM control_rules c WHERE c.line_id IN ({ids}) OR c.basis <> 'period')"
)

#: The columns of every path read (a LineRow's first, then the balance and the rule);
#: shared with .document_read, whose statement reads the same rows.
PATH_COLUMNS = """
    l.id, l.code, l.path, l.currency, l.status, l.series_key, l.granularity,
    l.fiscal_year, l.period_start, l.period_end,
    b.budget, b.pre_encumbered, b.encumbered, b.actual,
    r.line_id AS rule_line_id, r.mode, r.tolerance_percent, r.tolerance_amount,
    r.thresholds, r.basis, r.subtree,
    EXISTS (SELECT 1 FROM control_rules c WHERE c.basis <> 'period') AS basis_rules"""

# The lines of ``want`` (a set of ids) with balances and rules; .document_read uses it.
FROM_WANT = """
FROM want
JOIN budget_balances b ON b.line_id = want.id
JOIN budget_lines l ON l.id = b.line_id
LEFT JOIN control_rules r ON r.line_id = b.line_id"""
# The same for the statements here (each ends in a WHERE clause the lock variant extends).
_FROM_PATHS = {
    # PostgreSQL: ``want`` is one array, and both tables are filtered by it, so the
    # planner reaches the rows through the primary keys (already in ``line_id`` order).
    # Joined to a set of ids instead, it hashed a sequential scan of the whole
    # budget_balances table, statistics or not (~90 µs of a 1,000-line table's
    # server time per reservation; EXPLAIN ANALYZE, bench/README.md "sixth pass").
    "postgresql": """
FROM budget_balances b
JOIN budget_lines l ON l.id = b.line_id
LEFT JOIN control_rules r ON r.line_id = b.line_id
WHERE b.line_id = ANY(CAST((SELECT ids FROM want) AS bigint[]))
  AND l.id = ANY(CAST((SELECT ids FROM want) AS bigint[]))""",
    "sqlite": FROM_WANT + "\nWHERE true",
}

# Every line on the paths of the lines (or the reservations' lines) asked for; each
# path lists the ids from the root to the line ("1/5/9"). SQLite splits it as JSON.
_WANT = {
    "postgresql": """
WITH want AS (
    SELECT ARRAY(SELECT DISTINCT CAST(p.id AS bigint)
                 FROM {source}, unnest(string_to_array(w.path, '/')) AS p(id)
                 WHERE {key} = ANY(CAST(:{param} AS bigint[])) AND p.id <> '') AS ids
)""",
    "sqlite": """
WITH want AS (
    SELECT DISTINCT CAST(p.value AS INTEGER) AS id
    FROM {source}, json_each('[' || replace(w.path, '/', ',') || ']') AS p
    WHERE {key} IN (SELECT value FROM json_each(:{param}))
)""",
}
# PostgreSQL, up to SCALAR_IDS lines (or reservations) asked for: the same with one
# scalar parameter per id. Its generic plan then costs what a custom plan does, so the
# server plans the statement once per connection. With an array parameter it assumes
# ten elements, can find the generic plan dearer than a custom plan for one or two
# and then plans every execution again (~0.3 ms of server CPU each time; on a fresh
# 1,000-line bench database pg_prepared_statements showed 0 generic, 295 custom plans).
SCALAR_IDS = 4


def _want_scalars(n: int) -> str:
    ids = ", ".join(f"CAST(:{{param}}_{i} AS bigint)" for i in range(n))
    return _WANT["postgresql"].replace("= ANY(CAST(:{param} AS bigint[]))", f"IN ({ids})")


_OF_LINES = {"source": "budget_lines w", "key": "w.id", "param": "line_ids"}
_OF_RESERVATIONS = {
    "source": "reservations x JOIN budget_lines w ON w.id = x.line_id", "key": "x.id", "param": "res_ids",
}
# The reservations (of those asked for) on each line.
_HELD = {
    "postgresql": "ARRAY(SELECT x.id FROM reservations x"
                  " WHERE x.line_id = l.id AND x.id = ANY(CAST(:res_ids AS bigint[])))",
    "sqlite": "(SELECT json_group_array(x.id) FROM reservations x"
              " WHERE x.line_id = l.id AND x.id IN (SELECT value FROM json_each(:res_ids)))",
}
# SQLite writers hold the database from BEGIN IMMEDIATE on: no row locks, and no
# rule can change under us, so no fingerprint either.
_LOCKING = {
    "postgresql": (RULES_SEEN_SQL.format(ids="SELECT unnest(ids) FROM want"), "FOR UPDATE OF b"),
    "sqlite": ("NULL", ""),
}


def _statements(dialect: str, want: str | None = None) -> dict[str, TextClause]:
    want = want or _WANT[dialect]
    rules_seen, lock = _LOCKING[dialect]
    from_ = _FROM_PATHS[dialect]
    stmts = {
        # Lock and read, for reservations and moves. Nothing is locked when a rule
        # with another basis exists, nor when a movement was made with the key
        # already (a replay needs no lock): the caller then takes the general path.
        "lock": f"""{want.format(**_OF_LINES)}
SELECT {PATH_COLUMNS}, {rules_seen} AS rules_seen
{from_}
  AND NOT EXISTS (SELECT 1 FROM control_rules c WHERE c.basis <> 'period')
  AND NOT EXISTS (SELECT 1 FROM budget_movements WHERE idempotency_key = :key)
ORDER BY b.line_id
{lock}""",
        # The same without locking, for preview.
        "read": f"""{want.format(**_OF_LINES)}
SELECT {PATH_COLUMNS}
{from_}
ORDER BY b.line_id""",
        # The same for the lines reservations hold, for the re-check at each step.
        "held": f"""{want.format(**_OF_RESERVATIONS)}
SELECT {PATH_COLUMNS}, {_HELD[dialect]} AS held
{from_}
ORDER BY b.line_id""",
    }
    if dialect == "postgresql":  # psycopg returns the right Python types as they are
        return {name: text(sql) for name, sql in stmts.items()}
    return {name: text(sql).columns(**SQLITE_TYPES) for name, sql in stmts.items()}


def _sqlite_types() -> dict[str, Any]:
    """What SQLAlchemy must convert on SQLite: scaled-integer amounts, dates, JSON, booleans."""
    lines, balances, rules = BudgetLine.__table__.c, BudgetBalance.__table__.c, ControlRuleRow.__table__.c
    types: dict[str, Any] = {name: lines[name].type for name in ("period_start", "period_end")}
    types.update({name: balances[name].type for name in ("budget", "pre_encumbered", "encumbered", "actual")})
    types.update({name: rules[name].type for name in ("tolerance_percent", "tolerance_amount", "thresholds",
                                                      "subtree")})
    types["basis_rules"] = Boolean()
    return types


#: The result types of those columns that SQLAlchemy converts on SQLite.
SQLITE_TYPES = _sqlite_types()
_STATEMENTS = {dialect: _statements(dialect) for dialect in _WANT}
# PostgreSQL runs them through psycopg directly (see yinfin_flow.db.raw).
_PG_SQL = {name: driver_sql(stmt) for name, stmt in _STATEMENTS["postgresql"].items()}
_PG_SQL_SCALARS = {
    n: {name: driver_sql(stmt) for name, stmt in _statements("postgresql", _want_scalars(n)).items()}
    for n in range(1, SCALAR_IDS + 1)
}
#: The first columns of every variant are a LineRow's, in its order.
_LINE_COLUMNS = len(LINE_ROW_COLUMNS)

# After a refusal on the fast path (PostgreSQL): a movement made with the key
# meanwhile, and the rules now (if they changed, the refusal may rest on rules that
# no longer hold).
_AFTER_REFUSAL = text(f"""
SELECT (SELECT id FROM budget_movements WHERE idempotency_key = :key) AS prior,
       {RULES_SEEN_SQL.format(ids="SELECT unnest(CAST(:rule_ids AS bigint[]))")} AS rules_now""")
_AFTER_REFUSAL_PG = driver_sql(_AFTER_REFUSAL)
_REPLAY = text("SELECT id FROM budget_movements WHERE idempotency_key = :key")


@dataclass(slots=True)
class PathRead:
    """What one combined statement returned: enough to check the lines asked for."""

    lines: dict[int, LineRow]
    balances: dict[int, Buckets]
    rule_rows: list[Any]  # the control_rules columns of each line that has a rule
    basis_rules: bool  # a rule with another basis than the period exists somewhere
    rules_seen: str | None = None  # the fingerprint (lock variant only)
    held: list[tuple[int, int]] | None = None  # (reservation id, line id), read variant for reservations


def path_read(rows: Sequence[Any], *, locked: bool = False, held: bool = False) -> PathRead | None:
    """The rows of a path read (:data:`PATH_COLUMNS` first) as a :class:`PathRead`; None
    for no rows."""
    if not rows:
        return None
    out = PathRead({}, {}, [], bool(rows[0].basis_rules))
    if locked:
        out.rules_seen = rows[0].rules_seen
    if held:
        out.held = []
    for row in rows:
        out.lines[row.id] = LineRow(*row[:_LINE_COLUMNS])
        out.balances[row.id] = Buckets(row.budget, row.pre_encumbered, row.encumbered, row.actual)
        if row.rule_line_id is not None:
            out.rule_rows.append(_RuleRow(row.rule_line_id, row.mode, row.tolerance_percent,
                                          row.tolerance_amount, row.thresholds, row.basis, row.subtree))
        if held and out.held is not None:
            ids = json.loads(row.held) if isinstance(row.held, str) else row.held  # SQLite: JSON text
            out.held.extend((rid, row.id) for rid in ids)
    if out.held is not None:
        out.held.sort()
    return out


@dataclass(frozen=True, slots=True)
class _RuleRow:
    """The ``control_rules`` columns :func:`.control.rule_from_row` reads."""

    line_id: int
    mode: str
    tolerance_percent: Any
    tolerance_amount: Any
    thresholds: Any
    basis: str
    subtree: bool


def _run(session: Session, name: str, ids_param: str, ids: Iterable[int], **params: Any) -> list[Any]:
    dialect = session.get_bind().dialect.name
    wanted: Any = sorted(set(ids))
    # On the session's connection: none of these reads depends on ORM changes waiting
    # for a flush (Session.execute would autoflush first), and it costs ~40 µs less.
    if dialect == "postgresql":
        params[ids_param] = id_array(wanted)  # the scalar variants bind it too ("held")
        if 0 < len(wanted) <= SCALAR_IDS:
            params.update((f"{ids_param}_{i}", id_) for i, id_ in enumerate(wanted))
            return fetch(session, _PG_SQL_SCALARS[len(wanted)][name], params)
        return fetch(session, _PG_SQL[name], params)
    return session.connection().execute(_STATEMENTS[dialect][name],
                                        {ids_param: json.dumps(wanted), **params}).all()


def lock_paths(session: Session, line_ids: Iterable[int], key: str | None) -> PathRead | None:
    """Lock and read the balances of ``line_ids`` and their ancestors, with lines and rules.

    ``None`` (nothing locked) when none of the lines exists, a rule with another
    basis than the period exists or a movement with ``key`` exists: the caller takes
    the general path. (On SQLite nothing is locked: the writer holds the database.)
    """
    return path_read(_run(session, "lock", "line_ids", line_ids, key=key), locked=True)


def after_refusal(session: Session, key: str | None, read: PathRead) -> tuple[int | None, bool]:
    """(the movement made with ``key`` meanwhile, whether the rules changed since ``read``)."""
    if read.rules_seen is None:  # SQLite: nothing can have changed under BEGIN IMMEDIATE
        return (session.scalar(_REPLAY, {"key": key}) if key is not None else None), False
    (row,) = fetch(session, _AFTER_REFUSAL_PG, {"key": key, "rule_ids": id_array(sorted(read.lines))})
    return row.prior, row.rules_now != read.rules_seen


def read_paths(session: Session, line_ids: Iterable[int]) -> PathRead | None:
    """:func:`lock_paths` without locking (and without the fingerprint)."""
    return path_read(_run(session, "read", "line_ids", line_ids))


def read_held_paths(session: Session, reservation_ids: Iterable[int]) -> PathRead | None:
    """:func:`read_paths` for the lines ``reservation_ids`` hold; ``held`` maps them."""
    return path_read(_run(session, "held", "res_ids", reservation_ids), held=True)
