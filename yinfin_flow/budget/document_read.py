"""One statement for a document's budget: its reservations, and what re-checks the open ones.

An approval's re-check used to be two statements: the document's reservations
(``Budgets.reservations_for``, every one, closed too, for the answer) and then
:func:`.combined.read_held_paths` of the open ones' ids. Here one statement finds the
document's reservations by ``(document_type, document_id)`` and, beside them, the rows
the held variant of :mod:`.combined` returns for the open ones: their lines, every
ancestor on the paths, each with its balance row and control rule, and ``held`` (the
open reservations on each line). Both parts come from one snapshot (the two statements
had two, READ COMMITTED), and the re-check decides from them exactly as from
``read_held_paths`` (:meth:`~.queries.BudgetQueries.read_document`).

The rows are a ``UNION ALL``: a line row carries the held variant's columns (the
``r_*`` columns NULL), a reservation row its ``r_*`` columns (the others NULL).

The document's reservations are found through ``ix_reservations_document``; unlike the
held variant, nothing is looked up by line, so a line with thousands of reservations
costs nothing extra. Nothing is locked (a re-check writes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from yinfin_flow.db.models import Reservation
from yinfin_flow.db.raw import driver_sql, fetch

from .combined import FROM_WANT, PATH_COLUMNS, SQLITE_TYPES, PathRead, path_read
from .results import ReservationView

# The document's reservations, with their lines' codes and paths.
_DOC = """
doc AS (
    SELECT x.id, x.line_id, w.code, w.path, x.document_line, x.currency, x.source_amount,
           x.source_currency, x.rate, x.pre_encumbered, x.encumbered, x.actual, x.status
    FROM reservations x JOIN budget_lines w ON w.id = x.line_id
    WHERE x.document_type = :document_type AND x.document_id = :document_id
)"""
# Every line on the paths of the lines the open reservations hold (as .combined._WANT).
_WANT = {
    "postgresql": """
want AS (
    SELECT DISTINCT CAST(p.id AS bigint) AS id
    FROM doc w, unnest(string_to_array(w.path, '/')) AS p(id)
    WHERE w.status = 'open' AND p.id <> ''
)""",
    "sqlite": """
want AS (
    SELECT DISTINCT CAST(p.value AS INTEGER) AS id
    FROM doc w, json_each('[' || replace(w.path, '/', ',') || ']') AS p
    WHERE w.status = 'open'
)""",
}
# The open reservations of the document on each line (.combined._HELD for their ids).
_HELD = {
    "postgresql": "ARRAY(SELECT d.id FROM doc d WHERE d.line_id = l.id AND d.status = 'open')",
    "sqlite": "(SELECT json_group_array(d.id) FROM doc d WHERE d.line_id = l.id AND d.status = 'open')",
}
# A reservation row's columns: (name in doc, name in the result).
_RESERVATION = (
    ("id", "r_id"), ("line_id", "r_line_id"), ("code", "r_line_code"), ("document_line", "r_document_line"),
    ("currency", "r_currency"), ("source_amount", "r_source_amount"), ("source_currency", "r_source_currency"),
    ("rate", "r_rate"), ("pre_encumbered", "r_pre_encumbered"), ("encumbered", "r_encumbered"),
    ("actual", "r_actual"), ("status", "r_status"),
)
# .combined.PATH_COLUMNS is a comma-separated list (no comma inside any of its expressions);
# a wrong count fails every statement of this module, so any test here catches it.
_LINE_COLUMN_COUNT = len(PATH_COLUMNS.split(","))


def _statement(dialect: str) -> TextClause:
    nulls = ", ".join(["NULL"] * (_LINE_COLUMN_COUNT + 1))  # the line columns and ``held``
    sql = f"""
WITH {_DOC},
{_WANT[dialect]}
SELECT {PATH_COLUMNS}, {_HELD[dialect]} AS held,
       {", ".join(f"NULL AS {name}" for _, name in _RESERVATION)}
{FROM_WANT}
UNION ALL
SELECT {nulls}, {", ".join(f"d.{col}" for col, _ in _RESERVATION)}
FROM doc d
ORDER BY r_id, id"""
    if dialect == "postgresql":  # psycopg returns the right Python types as they are
        return text(sql)
    res = Reservation.__table__.c
    types = dict(SQLITE_TYPES)
    types.update({f"r_{name}": res[name].type
                  for name in ("source_amount", "rate", "pre_encumbered", "encumbered", "actual")})
    return text(sql).columns(**types)


_STATEMENTS = {dialect: _statement(dialect) for dialect in _WANT}
_PG_SQL = driver_sql(_STATEMENTS["postgresql"])


@dataclass(slots=True)
class DocumentPaths:
    """What :func:`read_document_paths` returned."""

    reservations: list[ReservationView]  # every one of the document, in id order
    read: PathRead | None  # the held variant's read for the open ones (None: none open)


def read_document_paths(session: Session, document_type: str, document_id: str) -> DocumentPaths:
    """The document's reservations and, for the open ones, what :func:`.combined.read_held_paths`
    of their ids returns, in one statement."""
    params = {"document_type": document_type, "document_id": document_id}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        rows: list[Any] = fetch(session, _PG_SQL, params)
    else:  # on the session's connection, as .combined does: nothing here needs a flush
        rows = list(session.connection().execute(_STATEMENTS[dialect], params).all())
    views = [_view(r) for r in rows if r.r_id is not None]
    line_rows = [r for r in rows if r.r_id is None]
    return DocumentPaths(views, path_read(line_rows, held=True))


def _view(r: Any) -> ReservationView:
    """As :func:`.results.view_of` builds it from the ORM row."""
    return ReservationView(
        id=r.r_id, line_id=r.r_line_id, line_code=r.r_line_code, document_line=r.r_document_line,
        currency=r.r_currency,
        amount=r.r_pre_encumbered + r.r_encumbered + r.r_actual,
        source_amount=r.r_source_amount, source_currency=r.r_source_currency, rate=r.r_rate,
        pre_encumbered=r.r_pre_encumbered, encumbered=r.r_encumbered, actual=r.r_actual,
        status=r.r_status,
    )


__all__ = ["DocumentPaths", "read_document_paths"]
