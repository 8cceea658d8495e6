"""A budget file before it becomes a proposal: read from an upload, and its dry run as
finance reviews it, row by row (a new line, a line adjusted by how much, a line left
unchanged), or every problem with its row and column. Nothing is written: the import
runs in a rolled-back savepoint (:func:`.journal_proposals.rehearse`), exactly as the
proposal and its approval will run it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.limits import DEFAULT_LIMITS, Limits

from . import io
from .io_tables import Row, read_table
from .io_validate import validate
from .journal_proposals import rehearse

SUFFIXES = (".csv", ".xlsx")


def read_upload(filename: str, data: bytes, limits: Limits = DEFAULT_LIMITS,
                field: str = "content") -> tuple[list[str], list[Row]]:
    """The header and rows of an uploaded CSV or XLSX file (its name says which)."""
    name = Path(filename or "").name
    if Path(name).suffix.lower() not in SUFFIXES:
        raise ValidationError("filename", "must end in .csv or .xlsx")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return read_table(path, limits=limits)
        except ValidationError:
            raise
        except Exception as err:  # noqa: BLE001 - a file no reader understands is bad input
            raise ValidationError(field, f"cannot read {name}: {err.__class__.__name__}") from None


def dry_run(session: Session, header: list[str], rows: list[Row], *, source: str, actor: str,
            default_mode: str = "hard", reason: str | None = None) -> dict[str, Any]:
    """What importing the file would do, per row, with the plan a proposal would keep.

    ``{"ok": True, "plan": {...}, "rows": [{"row", "line", "action": "new" | "adjusted" |
    "unchanged", "delta", "amount", "currency"}]}``, or ``{"ok": False, "errors": [{"row",
    "column", "problem"}]}`` when any row is refused (the import would refuse them all)."""
    try:
        plan = rehearse(session, lambda: io.import_rows(session, header, rows, source=source, actor=actor,
                                                         default_mode=default_mode, reason=reason))
    except io.ImportFailed as err:
        return {"ok": False, "errors": [e.to_dict() for e in err.errors], "rows": []}
    planned, _errors = validate(session, rows)  # the rehearsal passed: no errors here
    created = set(plan.created)
    deltas = {code: delta for code, delta, _cur in plan.adjusted}
    out = []
    for p in planned:
        action = "new" if p.code in created else "adjusted" if p.code in deltas else "unchanged"
        out.append({"row": p.row, "line": p.code, "action": action, "amount": p.amount,
                    "delta": deltas.get(p.code), "currency": p.currency})
    return {"ok": True, "plan": plan.to_dict(), "rows": out, "errors": []}
