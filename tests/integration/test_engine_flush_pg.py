"""An action's flush on PostgreSQL goes straight through psycopg (engine.pending): it must
send exactly what SQLAlchemy would send, statement and bound values alike."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from yinfin_flow.db.types import utcnow
from yinfin_flow.engine import pending as pending_writes
from yinfin_flow.engine import service

from .test_engine_support import one_pending_task


class _Undo(Exception):
    pass


def _flush_of_an_approval(db: Any, task_id: int, now: Any) -> list[tuple[str, dict[str, Any]]]:
    """The statements and values of the approval's flushes (in a transaction rolled back)."""
    sent: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().startswith("WITH w0 AS") and "UPDATE approval_requests" in statement:
            sent.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", grab)
    s = db.session()
    try:
        with s.begin():
            service.act(s, task_id, "pat", "approve", comment="fine \u5ba1\u6279", now=now)
            raise _Undo
    except _Undo:
        pass
    finally:
        s.close()
        event.remove(db.engine, "before_cursor_execute", grab)
    assert sent
    # psycopg's Json wrapper has no equality: compare what it wraps
    return [(statement, {k: (type(v).__name__, getattr(v, "obj", v)) for k, v in params.items()})
            for statement, params in sent]


@pytest.mark.postgres
def test_an_actions_flush_sends_what_sqlalchemy_would(pg_db: Any, tmp_path: Any, monkeypatch: Any) -> None:
    _, task_id = one_pending_task(pg_db, tmp_path)
    now = utcnow()
    direct = _flush_of_an_approval(pg_db, task_id, now)
    assert pending_writes._driver_form.cache_info().currsize > 0  # the direct path was taken
    monkeypatch.setattr(pending_writes, "_driver_form", lambda *_: None)
    through_sqlalchemy = _flush_of_an_approval(pg_db, task_id, now)
    assert direct == through_sqlalchemy
    values = [v for _, params in direct for v in params.values()]
    assert any(kind == "Json" for kind, _ in values)  # JSON columns were bound
    assert any(getattr(v, "tzinfo", None) is not None for _, v in values)  # UTC times
