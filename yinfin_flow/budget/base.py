"""What every budget action shares: the session, the default rule, replays, plain line rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models import BudgetLine, BudgetMovement
from yinfin_flow.domain.budget import DEFAULT_RULE, Mode
from yinfin_flow.domain.errors import Conflict

from .lookup import LINE_ROW_COLUMNS, LineRow
from .writes import insert_movement

_movements = BudgetMovement.__table__
_lines = BudgetLine.__table__
SELECT_REPLAY = select(_movements.c.id).where(_movements.c.idempotency_key == bindparam("key"))
SELECT_LINE = select(*(_lines.c[name] for name in LINE_ROW_COLUMNS)).where(
    _lines.c.id == bindparam("line_id")
)
_SELECT_LINES = select(*(_lines.c[name] for name in LINE_ROW_COLUMNS)).where(
    _lines.c.id.in_(bindparam("ids", expanding=True))
)


class BudgetsBase:
    """The budget service for one transaction (``session``); see :class:`~.service.Budgets`."""

    def __init__(self, session: Session, *, default_mode: str = "hard") -> None:
        self.session = session
        self.default_rule = DEFAULT_RULE if default_mode == "hard" else DEFAULT_RULE.__class__(
            mode=Mode(default_mode)
        )

    def _replay(self, key: str | None) -> int | None:
        """The id of the movement already made with ``key``, if any."""
        if key is None:
            return None
        return self.session.scalar(SELECT_REPLAY, {"key": key})

    def _new_movement(self, kind: str, key: str | None, actor: str, **kw: Any) -> int:
        """:func:`insert_movement` where a replay was ruled out under the same locks."""
        movement_id = insert_movement(self.session, kind, key, actor, **kw)
        if movement_id is None:  # only a different action reusing the key can get here
            raise Conflict(f"idempotency key {key!r} is in use by another action", field="idempotency_key")
        return movement_id

    def _line_row(self, line_id: int) -> LineRow | None:
        row = self.session.execute(SELECT_LINE, {"line_id": line_id}).first()
        return None if row is None else LineRow.from_row(row)

    def _line_rows(self, line_ids: set[int]) -> dict[int, LineRow]:
        rows = self.session.execute(_SELECT_LINES, {"ids": sorted(line_ids)})
        return {row.id: LineRow.from_row(row) for row in rows}
