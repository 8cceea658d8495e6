"""Housekeeping: delivered outbox messages and seen OA event ids do not pile up forever.

:func:`purge` deletes

* ``outbox_messages`` rows that were **delivered** longer ago than
  ``YINFIN_OUTBOX_RETENTION`` (30 days). Pending, in-flight and dead messages are
  never touched, whatever their age: they are still owed to someone. Deleting a
  delivered row changes nothing for the rest: the dispatcher holds a message back
  only while an *undelivered* earlier message of its target and document exists, and
  a delivered one is never sent again (a late worker whose row has gone records
  nothing). The newest delivered message of each target is kept, so the connector's
  "last success" still shows on ``/health`` and ``outbox status``. Reconciliation
  reads a purged voucher's ERP number from the ledger's sync state instead.
* ``inbound_seen`` rows older than ``YINFIN_INBOUND_SEEN_RETENTION`` (7 days, never
  under twice the 5-minute timestamp window): a replay of a forgotten event carries
  a timestamp the connector refuses as stale anyway.

Each batch of at most :data:`BATCH` rows is its own short transaction, so a purge
never holds many locks for long and never blocks the dispatcher's claims for more
than one batch. The periodic job runs it under a database lease
(:func:`yinfin_flow.worker.jobs.purge`), so two beats purge once.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.outbox import OutboxMessage
from yinfin_flow.db.models.security import InboundSeen
from yinfin_flow.db.types import utcnow

from .config import DeliverySettings

log = logging.getLogger("yinfin_flow.worker.retention")

#: rows deleted per transaction
BATCH = 500


@dataclass(frozen=True)
class Purged:
    """How many rows went (or, in a dry run, would go)."""

    outbox: int
    inbound_seen: int
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kept_per_target(db: Database) -> list[int]:
    """The newest delivered message of each target (its time is the last success)."""
    m = OutboxMessage
    with db.unit_of_work(readonly=True) as s:
        return [i for i in s.scalars(select(func.max(m.id)).where(m.status == "delivered")
                                     .group_by(m.target)) if i is not None]


def _outbox_due(cutoff: datetime, keep: list[int]) -> Any:
    m = OutboxMessage
    where = [m.status == "delivered", m.delivered_at < cutoff]
    if keep:
        where.append(m.id.not_in(keep))
    return where


def purge(db: Database, settings: DeliverySettings | None = None, *, now: datetime | None = None,
          dry_run: bool = False, batch: int = BATCH) -> Purged:
    """Delete delivered outbox messages and seen event ids past their retention.

    With ``dry_run`` nothing is deleted and the counts say what would be.
    """
    settings = settings or DeliverySettings.from_env()
    at = now or utcnow()
    outbox_cutoff = at - settings.outbox_retention
    seen_cutoff = at - settings.inbound_seen_retention
    keep = _kept_per_target(db)
    m, seen = OutboxMessage, InboundSeen
    if dry_run:
        with db.unit_of_work(readonly=True) as s:
            return Purged(
                int(s.scalar(select(func.count()).select_from(m)
                             .where(*_outbox_due(outbox_cutoff, keep))) or 0),
                int(s.scalar(select(func.count()).select_from(seen)
                             .where(seen.created_at < seen_cutoff)) or 0),
                dry_run=True)
    outbox_n = _in_batches(db, batch, lambda s: list(s.scalars(
        select(m.id).where(*_outbox_due(outbox_cutoff, keep)).order_by(m.id).limit(batch))),
        lambda ids: delete(m).where(m.id.in_(ids), *_outbox_due(outbox_cutoff, keep)))
    seen_n = _in_batches(db, batch, lambda s: list(s.scalars(
        select(seen.id).where(seen.created_at < seen_cutoff).order_by(seen.created_at).limit(batch))),
        lambda ids: delete(seen).where(seen.id.in_(ids), seen.created_at < seen_cutoff))
    if outbox_n or seen_n:
        log.info("purged %d delivered outbox message(s) and %d seen event id(s)", outbox_n, seen_n,
                 extra={"outbox_cutoff": outbox_cutoff.isoformat(),
                        "inbound_seen_cutoff": seen_cutoff.isoformat()})
    return Purged(outbox_n, seen_n)


def _in_batches(db: Database, batch: int, pick: Any, remove: Any) -> int:
    """``pick`` up to ``batch`` ids, ``remove`` them, one transaction each, until none are left.

    The delete repeats the condition, so a row that changed since it was picked stays.
    """
    total = 0
    while True:
        with db.unit_of_work() as s:
            ids = pick(s)
            if ids:
                done = s.execute(remove(ids), execution_options={"synchronize_session": False})
                total += int(getattr(done, "rowcount", 0) or 0)
        if len(ids) < batch:
            return total
