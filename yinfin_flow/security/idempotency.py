"""Idempotency for every mutating API call: the first answer, kept and replayed.

A call with ``Idempotency-Key`` first *claims* the key (user, key) by inserting a row
with no status, committed on its own; the unique constraint means only one of two
concurrent duplicates can claim it. Then:

- the key is new: the call runs, and its answer (status, body) is stored;
- the key was answered: the stored answer is replayed; nothing runs again;
- the key is claimed but unanswered (a duplicate racing the first): 409
  ``idempotency_in_progress`` with ``Retry-After``: retry the same call then;
- the same key with another method, path or body: 422 ``idempotency_key_reused``.

Server errors (5xx) are not kept: the claim is dropped so a retry runs again (the
action rolled back). A claim left by a process that died between committing its
action and storing the answer is taken over after :data:`STALE_CLAIM`; the engine's
and the budget service's own keys (the same ``Idempotency-Key`` is passed on) make
that retry a replay too. Records are kept :data:`RETENTION` (≥ 24 h), then purged
(by every :data:`PURGE_EVERY`-th claim, or by calling :func:`purge`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.security import IdempotencyRecord
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import Conflict, ValidationError

from .oneshot import one_statement

RETENTION = timedelta(hours=48)
STALE_CLAIM = timedelta(minutes=5)
#: Every this-many-th new key also purges records past :data:`RETENTION`.
PURGE_EVERY = 500


class KeyReused(ValidationError):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("Idempotency-Key", "was already used for a different request "
                         "(method, path or body); use a new key")


class InProgress(Conflict):
    """The key's first call is still running. The answer carries ``Retry-After``
    (``retry_after`` seconds): retry the same call with the same key then, and you
    get the first call's answer once it is stored (Stripe's ``idempotency_key_in_use``)."""

    code = "idempotency_in_progress"
    retry_after = 1


@dataclass(frozen=True)
class Stored:
    status: int
    content_type: str
    body: str


def body_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def _insert(dialect: str) -> Any:
    mod = postgresql if dialect == "postgresql" else sqlite
    return (mod.insert(IdempotencyRecord)
            .on_conflict_do_nothing(index_elements=["user_id", "key"])
            .returning(IdempotencyRecord.id))


def claim(db: Database, user: str, key: str, method: str, path: str, body: bytes,
          now: datetime | None = None) -> int | Stored:
    """Claim ``key`` for this call (returns the record id) or return the stored answer.

    Raises :class:`KeyReused` or :class:`InProgress`. The claim is one
    ``INSERT … ON CONFLICT DO NOTHING`` committed by itself (on PostgreSQL in one
    round trip, see :mod:`.oneshot`); a key already there is then read (one more).
    """
    now = now or utcnow()
    digest = body_hash(method, path, body)
    method_path = f"{method} {path}"[:520]
    row = {"user_id": user, "key": key, "method_path": method_path, "body_hash": digest,
           "created_at": now}
    for _ in range(3):
        with one_statement(db) as conn:
            claimed = conn.scalar(_insert(db.dialect).values(**row))
        if claimed is not None:
            if claimed % PURGE_EVERY == 0:
                # Housekeeping rides on every PURGE_EVERY-th claim: no scheduler
                # needed, and the delete is indexed by created_at.
                with db.unit_of_work() as s:
                    purge(s, now)
            return int(claimed)
        with one_statement(db, readonly=True) as conn:
            found = conn.execute(_FIND, {"user_id": user, "key": key}).first()
        if found is None:
            continue  # purged or dropped between the two statements: claim again
        if found.body_hash != digest:
            raise KeyReused()
        if found.status is not None:
            return Stored(found.status, found.content_type or "application/json", found.response or "")
        if now - found.created_at < STALE_CLAIM:
            raise InProgress("a request with this Idempotency-Key is still running; retry shortly",
                             field="Idempotency-Key")
        # A claim whose process died: take it over (the row stays ours).
        with one_statement(db) as conn:
            taken = conn.execute(update(IdempotencyRecord)
                                 .where(IdempotencyRecord.id == found.id,
                                        IdempotencyRecord.created_at == found.created_at,
                                        IdempotencyRecord.status.is_(None))
                                 .values(created_at=now))
        if taken.rowcount == 1:
            return int(found.id)
    raise InProgress("this Idempotency-Key is contended; retry shortly", field="Idempotency-Key")


_FIND = select(IdempotencyRecord.id, IdempotencyRecord.body_hash, IdempotencyRecord.status,
               IdempotencyRecord.content_type, IdempotencyRecord.response,
               IdempotencyRecord.created_at).where(
    IdempotencyRecord.user_id == bindparam("user_id"), IdempotencyRecord.key == bindparam("key"))


def complete(db: Database, record_id: int, status: int, content_type: str, body: str,
             now: datetime | None = None) -> None:
    """Store the answer (or drop the claim for a 5xx, so a retry runs again): one
    statement committed by itself."""
    with one_statement(db) as conn:
        if status >= 500:
            conn.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
            return
        conn.execute(update(IdempotencyRecord).where(IdempotencyRecord.id == record_id).values(
            status=status, content_type=content_type[:100], response=body,
            completed_at=now or utcnow()))


def purge(session: Session, now: datetime | None = None, retention: timedelta = RETENTION) -> int:
    """Delete records older than ``retention`` (never less than 24 h); returns how many."""
    retention = max(retention, timedelta(hours=24))
    cutoff = (now or utcnow()) - retention
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
