"""The audit log: every state-changing API call, append-only and hash-chained.

Each row's ``hash`` is ``sha256(prev_hash + canonical JSON of its content)``, the first
``prev_hash`` of a chain being 64 zeros. The table refuses UPDATE and DELETE in the
database (triggers); editing a row some other way, deleting one, or slipping one in
breaks its chain, and :func:`check_chain` (run by ``yinfin-flow verify``) names the
first row where it breaks.

Several chains, so appends do not queue behind one another. One chain means one head
row that every append locks until its transaction commits: every state-changing call
of every web process would wait its turn there, commits included (no group commit).
So the log is :data:`CHAINS` independent chains. Chain ``c`` owns the ids
``(c - 1) * SPAN + 1 …`` (contiguous within the chain) and its head is
``audit_head`` row ``c`` (last id and hash). On PostgreSQL an append takes whichever
head no other transaction holds (``FOR UPDATE SKIP LOCKED``, its process's own chain
first) and computes the link, inserts the row and moves the head in ONE statement;
it waits only when every head is taken. SQLite serialises writers anyway
(``BEGIN IMMEDIATE``) and appends to chain 1.

The trade-off: each chain is as tamper-evident as the single chain was (an edited,
removed or inserted row breaks its chain, a removed last row no longer matches its
head), but the order *between* chains is not hash-linked, only given by ``at`` (and
a dropped whole chain is noticed only through its head row). Chain 1 is the chain
that existed before there were several; its rows are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.orm import Session

from yinfin_flow.budget.verify import Problem
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.security import AuditHead, AuditLog
from yinfin_flow.db.raw import driver_sql, fetch
from yinfin_flow.db.types import UTCDateTime, utcnow

from .oneshot import one_statement

GENESIS = "0" * 64
#: The columns the hash covers, in this order.
FIELDS = ("id", "at", "actor", "method", "path", "endpoint", "status", "remote_addr",
          "user_agent", "idempotency_key", "detail")
#: How many chains appends spread over (more than web processes × threads is plenty).
CHAINS = 16
#: Ids per chain: chain c holds ids (c - 1) * SPAN + 1 … c * SPAN.
SPAN = 2**40


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


def split_canonical(at: datetime, values: dict[str, Any]) -> tuple[bytes, bytes]:
    """``(before, after)`` with ``before + str(id) + after`` == the canonical JSON of the
    row's content, so the id can be filled in where it is assigned (by the database)."""
    whole = _canonical(_content(0, at, values))
    # One json.dumps, split where the id goes: ``"id":0`` occurs once, as that key
    # (a quote inside a string value is escaped, ``\\"``, and no other key is ``id``).
    cut = whole.index(b'"id":0') + len(b'"id":')
    return whole[:cut], whole[cut + 1:]


def chain_of(row_id: int) -> int:
    return (row_id - 1) // SPAN + 1


def _clip(value: str | None, n: int) -> str | None:
    return None if value is None else value[:n]


def _values(event: AuditEvent) -> dict[str, Any]:
    return {
        "actor": _clip(event.actor, 64), "method": event.method[:8], "path": event.path[:500],
        "endpoint": _clip(event.endpoint, 100), "status": int(event.status),
        "remote_addr": _clip(event.remote_addr, 64), "user_agent": _clip(event.user_agent, 300),
        "idempotency_key": _clip(event.idempotency_key, 160), "detail": _clip(event.detail, 2000),
    }


_COLUMNS = ", ".join(FIELDS[2:])
_SQL_TYPES = {"status": "INTEGER", "detail": "TEXT"}
#: PostgreSQL: take a free head, link, insert and move the head in one statement.
_APPEND = text(f"""
WITH head AS (
    SELECT id, last_id, last_hash FROM audit_head
    WHERE id BETWEEN 1 AND :chains
    ORDER BY id = :preferred DESC, id
    LIMIT 1 FOR UPDATE SKIP LOCKED
), link AS (
    SELECT id AS chain, last_id + 1 AS row_id, last_hash AS prev_hash,
           encode(sha256(convert_to(last_hash, 'UTF8') || :before
                         || convert_to((last_id + 1)::text, 'UTF8') || :after), 'hex') AS hash
    FROM head
), moved AS (
    UPDATE audit_head SET last_id = link.row_id, last_hash = link.hash
    FROM link WHERE audit_head.id = link.chain
)
INSERT INTO audit_log (id, at, {_COLUMNS}, prev_hash, hash)
SELECT row_id, CAST(:at AS TIMESTAMPTZ), {", ".join(f"CAST(:{c} AS {_SQL_TYPES.get(c, 'VARCHAR')})"
                                                 for c in FIELDS[2:])}, prev_hash, hash FROM link
RETURNING id
""").bindparams(bindparam("at", type_=UTCDateTime))
_APPEND_PG = driver_sql(_APPEND)
_AT = UTCDateTime()
_PG = pg_psycopg.dialect()
_MISSING_HEADS = text("""
INSERT INTO audit_head (id, last_id, last_hash)
SELECT c, (c - 1) * CAST(:span AS BIGINT), :genesis FROM generate_series(1, :chains) AS c
WHERE NOT EXISTS (SELECT 1 FROM audit_head h WHERE h.id = c)
ON CONFLICT (id) DO NOTHING
""")


def append(session: Session, event: AuditEvent, now: datetime | None = None) -> int:
    """Append one row in the caller's transaction; returns its id.

    Ids are assigned from the chain's locked head (not by a sequence), so the id that
    is hashed is the id that is stored, with no second write.
    """
    at = now or utcnow()
    values = _values(event)
    before, after = split_canonical(at, values)
    if session.get_bind().dialect.name == "postgresql":
        row_id = _append_free(session, at, values, before, after)
        if row_id is not None:
            return row_id
        chain = _preferred()
    else:
        chain = 1
    return _append_waiting(session, chain, at, values, before, after)


def append_alone(db: Database, event: AuditEvent, now: datetime | None = None) -> int:
    """Append one row committed by itself (a call whose action committed nothing).

    On PostgreSQL the one statement runs in autocommit (one round trip); only when
    every head is busy does it wait in a transaction of its own, like :func:`append`.
    """
    if db.dialect == "postgresql":
        at = now or utcnow()
        values = _values(event)
        before, after = split_canonical(at, values)
        with one_statement(db) as conn:
            row_id = _append_free(conn, at, values, before, after)
        if row_id is not None:
            return row_id
    with db.unit_of_work() as s:
        return append(s, event, now)


def _preferred() -> int:
    return os.getpid() % CHAINS + 1


def _append_free(conn: Session | Connection, at: datetime, values: dict[str, Any], before: bytes,
                 after: bytes) -> int | None:
    """PostgreSQL: append to a head no one holds, in one statement; None if all are busy.

    The statement goes straight through psycopg (:mod:`yinfin_flow.db.raw`: ~60 µs of
    CPU less than through the session) with ``at`` converted as its ``UTCDateTime``
    binding would. It reads and writes the audit tables only, so the session's
    autoflush it skips has nothing to do with it (the gate flushes before it anyway).
    """
    params = {**values, "at": _AT.process_bind_param(at, _PG), "before": before, "after": after,
              "chains": CHAINS, "preferred": _preferred()}
    rows = fetch(conn, _APPEND_PG, params)
    if not rows:  # every head is taken, or some are not made yet
        # (heads that exist are skipped by NOT EXISTS: no wait on a busy one here)
        conn.execute(_MISSING_HEADS, {"span": SPAN, "genesis": GENESIS, "chains": CHAINS})
        rows = fetch(conn, _APPEND_PG, params)
    return int(rows[0][0]) if rows else None


def _append_waiting(session: Session, chain: int, at: datetime, values: dict[str, Any],
                    before: bytes, after: bytes) -> int:
    """Append to ``chain``, waiting for its head (SQLite, or PostgreSQL with every head busy)."""
    head = _head(session, chain)
    row_id = head.last_id + 1
    digest = hashlib.sha256(head.last_hash.encode() + before + str(row_id).encode() + after).hexdigest()
    session.execute(insert(AuditLog).values(id=row_id, at=at, prev_hash=head.last_hash, hash=digest,
                                            **values))
    head.last_id, head.last_hash = row_id, digest
    session.flush()
    return row_id


def _head(session: Session, chain: int) -> AuditHead:
    stmt = select(AuditHead).where(AuditHead.id == chain).with_for_update()
    head = session.scalar(stmt)
    if head is None:
        # The migration creates head 1, appends the others; only a truncated database
        # lacks one here. Two processes may find it missing at once: insert-if-absent,
        # then lock it.
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(dialect.insert(AuditHead)
                        .values(id=chain, last_id=(chain - 1) * SPAN, last_hash=GENESIS)
                        .on_conflict_do_nothing(index_elements=["id"]))
        head = session.scalar(stmt)
        assert head is not None
    return head


def check_chain(session: Session) -> list[Problem]:
    """Recompute every chain from its first row; report where each breaks (empty: intact)."""
    problems: list[Problem] = []
    tips: dict[int, tuple[int, str]] = {}  # chain -> (last id, last hash) in the log
    broken: set[int] = set()
    for row in session.execute(select(AuditLog).order_by(AuditLog.id)).scalars():
        chain = chain_of(row.id)
        if chain in broken:
            continue  # everything after a break is unverifiable anyway
        last_id, prev = tips.get(chain, ((chain - 1) * SPAN, GENESIS))
        values = {k: getattr(row, k) for k in FIELDS[2:]}
        expected = row_hash(prev, _content(row.id, row.at, values))
        if chain < 1 or row.prev_hash != prev or row.hash != expected or row.id != last_id + 1:
            problems.append(Problem("audit_chain", f"audit row {row.id}",
                                    "does not follow from the row before it (edited, removed or inserted)"))
            broken.add(chain)
            continue
        tips[chain] = (row.id, row.hash)
    heads = {h.id: h for h in session.scalars(select(AuditHead))}
    for chain in sorted(set(heads) | set(tips)):
        if chain in broken:
            continue
        last_id, last_hash = tips.get(chain, ((chain - 1) * SPAN, GENESIS))
        head = heads.get(chain)
        if head is None and chain not in tips:
            continue
        if head is None or head.last_id != last_id or head.last_hash != last_hash:
            problems.append(Problem("audit_chain", f"audit head {chain}",
                                    f"names row {head.last_id if head else None}, "
                                    f"the chain ends at {last_id}"))
    return problems


CHECKS = [check_chain]
