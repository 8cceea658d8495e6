"""The audit log: every state-changing API call, append-only and hash-chained.

Each row's ``hash`` is ``sha256(prev_hash + canonical JSON of its content)``, the first
``prev_hash`` being 64 zeros; ``audit_head`` holds the last id and hash. The table
refuses UPDATE and DELETE in the database (triggers); editing a row some other way,
deleting one, or slipping one in breaks the chain, and :func:`check_chain` (run by
``yinfin-flow verify``) names the first row where it breaks.

Appends serialise on the head row (``SELECT … FOR UPDATE``; SQLite's ``BEGIN
IMMEDIATE`` already serialises writers), so two web processes never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from yinfin_flow.budget.verify import Problem
from yinfin_flow.db.models.security import AuditHead, AuditLog
from yinfin_flow.db.types import utcnow

GENESIS = "0" * 64
#: The columns the hash covers, in this order.
FIELDS = ("id", "at", "actor", "method", "path", "endpoint", "status", "remote_addr",
          "user_agent", "idempotency_key", "detail")


@dataclass(frozen=True)
class AuditEvent:
    """What one call did, as the HTTP layer saw it."""

    method: str
    path: str
    status: int
    actor: str | None = None
    endpoint: str | None = None
    remote_addr: str | None = None
    user_agent: str | None = None
    idempotency_key: str | None = None
    detail: str | None = None


def _canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(at: datetime) -> str:
    # Microseconds kept; SQLite and PostgreSQL both round-trip them exactly.
    return at.isoformat(timespec="microseconds")


def row_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + _canonical(content)).hexdigest()


def _content(row_id: int, at: datetime, e: dict[str, Any]) -> dict[str, Any]:
    out = {"id": row_id, "at": _iso(at)}
    out.update({k: e.get(k) for k in FIELDS[2:]})
    return out


def _clip(value: str | None, n: int) -> str | None:
    return None if value is None else value[:n]


def _head(session: Session) -> AuditHead:
    stmt = select(AuditHead).where(AuditHead.id == 1).with_for_update()
    head = session.scalar(stmt)
    if head is None:
        # The migration creates the row; only a truncated database lacks it. Two
        # processes may find it missing at once: insert-if-absent, then lock it.
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(dialect.insert(AuditHead).values(id=1, last_id=0, last_hash=GENESIS)
                        .on_conflict_do_nothing(index_elements=["id"]))
        head = session.scalar(stmt)
        assert head is not None
    return head


def append(session: Session, event: AuditEvent, now: datetime | None = None) -> int:
    """Append one row in the caller's transaction; returns its id.

    Ids are assigned here from the locked head (not by the database), so the id that
    is hashed is the id that is stored, with no second write.
    """
    at = now or utcnow()
    head = _head(session)
    row_id = head.last_id + 1
    values = {
        "actor": _clip(event.actor, 64), "method": event.method[:8], "path": event.path[:500],
        "endpoint": _clip(event.endpoint, 100), "status": int(event.status),
        "remote_addr": _clip(event.remote_addr, 64), "user_agent": _clip(event.user_agent, 300),
        "idempotency_key": _clip(event.idempotency_key, 160), "detail": _clip(event.detail, 2000),
    }
    digest = row_hash(head.last_hash, _content(row_id, at, values))
    session.execute(insert(AuditLog).values(id=row_id, at=at, prev_hash=head.last_hash, hash=digest,
                                            **values))
    head.last_id, head.last_hash = row_id, digest
    session.flush()
    return row_id


def check_chain(session: Session) -> list[Problem]:
    """Recompute the chain from the first row; report where it breaks (empty: intact)."""
    problems: list[Problem] = []
    prev, last_id = GENESIS, 0
    rows = session.execute(select(AuditLog).order_by(AuditLog.id)).scalars()
    for row in rows:
        values = {k: getattr(row, k) for k in FIELDS[2:]}
        expected = row_hash(prev, _content(row.id, row.at, values))
        if row.prev_hash != prev or row.hash != expected or row.id != last_id + 1:
            problems.append(Problem("audit_chain", f"audit row {row.id}",
                                    "does not follow from the row before it (edited, removed or inserted)"))
            return problems  # everything after a break is unverifiable anyway
        prev, last_id = row.hash, row.id
    head = session.get(AuditHead, 1)
    if last_id and (head is None or head.last_id != last_id or head.last_hash != prev):
        problems.append(Problem("audit_chain", "audit head",
                                f"names row {head.last_id if head else None}, the log ends at {last_id}"))
    return problems


CHECKS = [check_chain]
