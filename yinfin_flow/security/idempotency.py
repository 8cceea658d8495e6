"""Idempotency for every mutating API call: the first answer, kept and replayed.

A call with ``Idempotency-Key`` first *claims* the key (user, key) by inserting a row
with no status, in its own committed transaction; the unique constraint means only
one of two concurrent duplicates can claim it. Then:

- the key is new: the call runs, and its answer (status, body) is stored;
- the key was answered: the stored answer is replayed; nothing runs again;
- the key is claimed but unanswered (a duplicate racing the first): 409
  ``idempotency_in_progress``; retry shortly;
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

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.security import IdempotencyRecord
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import Conflict, ValidationError

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
    code = "idempotency_in_progress"


@dataclass(frozen=True)
class Stored:
    status: int
    content_type: str
    body: str


def body_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def claim(db: Database, user: str, key: str, method: str, path: str, body: bytes,
          now: datetime | None = None) -> int | Stored:
    """Claim ``key`` for this call (returns the record id) or return the stored answer.

    Raises :class:`KeyReused` or :class:`InProgress`.
    """
    now = now or utcnow()
    digest = body_hash(method, path, body)
    method_path = f"{method} {path}"[:520]
    for _ in range(3):
        try:
            with db.unit_of_work() as s:
                row = IdempotencyRecord(user_id=user, key=key, method_path=method_path,
                                        body_hash=digest, created_at=now)
                s.add(row)
                s.flush()
                if row.id % PURGE_EVERY == 0:
                    # Housekeeping rides on every PURGE_EVERY-th claim: no scheduler
                    # needed, and the delete is indexed by created_at.
                    purge(s, now)
                return row.id
        except IntegrityError:
            pass
        with db.unit_of_work() as s:
            found = s.scalar(select(IdempotencyRecord).where(IdempotencyRecord.user_id == user,
                                                             IdempotencyRecord.key == key))
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
            taken = s.execute(update(IdempotencyRecord)
                              .where(IdempotencyRecord.id == found.id,
                                     IdempotencyRecord.created_at == found.created_at,
                                     IdempotencyRecord.status.is_(None))
                              .values(created_at=now))
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return found.id
    raise InProgress("this Idempotency-Key is contended; retry shortly", field="Idempotency-Key")


def complete(db: Database, record_id: int, status: int, content_type: str, body: str,
             now: datetime | None = None) -> None:
    """Store the answer (or drop the claim for a 5xx, so a retry runs again)."""
    with db.unit_of_work() as s:
        if status >= 500:
            s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
            return
        s.execute(update(IdempotencyRecord).where(IdempotencyRecord.id == record_id).values(
            status=status, content_type=content_type[:100], response=body,
            completed_at=now or utcnow()))


def purge(session: Session, now: datetime | None = None, retention: timedelta = RETENTION) -> int:
    """Delete records older than ``retention`` (never less than 24 h); returns how many."""
    retention = max(retention, timedelta(hours=24))
    cutoff = (now or utcnow()) - retention
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
