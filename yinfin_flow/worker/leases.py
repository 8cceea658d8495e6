"""Named job leases in the database: at most one holder of an unexpired lease.

Periodic jobs (master-data sync, reconciliation) take a lease before they start, so
two beats, or a beat and an operator's manual run, never run the same job at once.
A holder that dies simply lets the lease expire. The database is used rather than a
Redis lock so the same guard works with and without Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.outbox import JobLease
from yinfin_flow.db.types import utcnow


def acquire(db: Database, name: str, ttl: float, holder: str, now: datetime | None = None) -> bool:
    """Take (or renew) lease ``name`` for ``ttl`` seconds; False if someone else holds it."""
    at = now or utcnow()
    try:
        with db.unit_of_work() as s:
            row = s.get(JobLease, name, with_for_update=True)
            if row is None:
                s.add(JobLease(name=name, holder=holder, expires_at=at + timedelta(seconds=ttl)))
                return True
            if row.holder != holder and row.expires_at > at:
                return False
            row.holder, row.expires_at = holder, at + timedelta(seconds=ttl)
            return True
    except IntegrityError:  # two first-ever acquirers raced on the insert: the other won
        return False


def release(db: Database, name: str, holder: str) -> None:
    with db.unit_of_work() as s:
        row = s.get(JobLease, name, with_for_update=True)
        if row is not None and row.holder == holder:
            s.delete(row)


@contextmanager
def held(db: Database, name: str, ttl: float) -> Iterator[bool]:
    """``with held(db, "sync", 600) as mine: if mine: …`` — released at the end."""
    holder = uuid.uuid4().hex
    mine = acquire(db, name, ttl, holder)
    try:
        yield mine
    finally:
        if mine:
            release(db, name, holder)
