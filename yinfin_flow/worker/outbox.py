"""The transactional outbox: write messages with the change, read and replay them.

:func:`enqueue` is called by event handlers inside the publisher's transaction, so a
message exists exactly when the change that caused it committed. Nothing is sent
here; the dispatcher (:mod:`yinfin_flow.worker.dispatcher`) does that after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, event, func, select
from sqlalchemy.orm import Session

from yinfin_flow.db.models.outbox import OUTBOX_STATUSES, OutboxMessage
from yinfin_flow.db.types import utcnow
from yinfin_flow.domain.errors import NotFound, ValidationError

#: Called after a transaction that wrote outbox rows commits (the in-process runner
#: wakes up, the Celery app sends a drain task). Failures there never undo a commit.
_kickers: list[Callable[[], None]] = []
KICK = "yinfin_outbox_kick"


def on_new_messages(kicker: Callable[[], None]) -> None:
    """Call ``kicker()`` after every commit that wrote outbox rows."""
    if kicker not in _kickers:
        _kickers.append(kicker)


def forget_kickers(kicker: Callable[[], None] | None = None) -> None:
    """Stop calling ``kicker`` (or every kicker)."""
    if kicker is None:
        _kickers.clear()
    elif kicker in _kickers:
        _kickers.remove(kicker)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(KICK, False):
        for kick in list(_kickers):
            try:
                kick()
            except Exception:  # noqa: BLE001 - the sweep delivers it anyway
                import logging

                logging.getLogger("yinfin_flow.worker").warning("outbox kick failed", exc_info=True)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(KICK, None)


def enqueue(
    session: Session, *, target: str, kind: str, document_key: str, payload: dict[str, Any],
    idempotency_key: str, now: datetime | None = None,
) -> OutboxMessage:
    """Queue one message in ``session``'s transaction; the same ``(target, key)`` twice
    returns the first row (so a handler that runs again writes nothing new)."""
    existing = session.scalar(select(OutboxMessage).where(
        OutboxMessage.target == target, OutboxMessage.idempotency_key == idempotency_key))
    if existing is not None:
        return existing
    at = now or utcnow()
    row = OutboxMessage(target=target, kind=kind, document_key=document_key[:128],
                        payload=payload, idempotency_key=idempotency_key[:200], status="pending",
                        attempts=0, next_attempt_at=at, created_at=at, updated_at=at)
    session.add(row)
    session.info[KICK] = True
    return row


@dataclass(frozen=True)
class MessageView:
    """A message as the API and CLI show it."""

    id: int
    target: str
    kind: str
    document_key: str
    idempotency_key: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    external_id: str | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, m: OutboxMessage) -> MessageView:
        return cls(m.id, m.target, m.kind, m.document_key, m.idempotency_key, m.status,
                   m.attempts, m.next_attempt_at, m.last_error, m.external_id, m.delivered_at,
                   m.created_at)


def messages(
    session: Session, *, status: str | None = None, target: str | None = None,
    limit: int = 100, after_id: int = 0,
) -> list[MessageView]:
    """Messages in id order (oldest first), optionally of one status / target."""
    if status is not None and status not in OUTBOX_STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(OUTBOX_STATUSES)}")
    if not 1 <= limit <= 1000:
        raise ValidationError("limit", "must be between 1 and 1000")
    stmt = select(OutboxMessage).where(OutboxMessage.id > after_id)
    if status:
        stmt = stmt.where(OutboxMessage.status == status)
    if target:
        stmt = stmt.where(OutboxMessage.target == target)
    return [MessageView.of(m) for m in session.scalars(stmt.order_by(OutboxMessage.id).limit(limit))]


def dead_letters(session: Session, *, target: str | None = None, limit: int = 100,
                 after_id: int = 0) -> list[MessageView]:
    return messages(session, status="dead", target=target, limit=limit, after_id=after_id)


def replay(session: Session, message_id: int, *, now: datetime | None = None) -> MessageView:
    """Give a dead letter a fresh set of tries (attempts back to 0, due now).

    A delivered message is left as it is (replaying it is a no-op, never a second
    delivery); a pending or in-flight one is also left alone. Raises NotFound.
    """
    row = session.get(OutboxMessage, message_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no outbox message {message_id} (delivered messages are purged after "
                       "YINFIN_OUTBOX_RETENTION)", field="id")
    if row.status == "dead":
        _revive(session, row, now or utcnow())
    return MessageView.of(row)


def replay_all(session: Session, *, target: str | None = None, now: datetime | None = None) -> int:
    """Replay every dead letter (of one target); returns how many were revived."""
    stmt = select(OutboxMessage).where(OutboxMessage.status == "dead")
    if target:
        stmt = stmt.where(OutboxMessage.target == target)
    rows = list(session.scalars(stmt.order_by(OutboxMessage.id).with_for_update()))
    at = now or utcnow()
    for row in rows:
        _revive(session, row, at)
    return len(rows)


def _revive(session: Session, row: OutboxMessage, at: datetime) -> None:
    row.status, row.attempts, row.next_attempt_at, row.updated_at = "pending", 0, at, at
    row.claim_token = None
    if row.kind == "erp_voucher" and row.payload.get("entry_id"):
        from yinfin_flow.ledger import sync

        sync.mark(session, int(row.payload["entry_id"]), "pending", target=row.target,
                  message=f"replayed: {row.last_error or ''}"[:1000])
    session.info[KICK] = True


@dataclass(frozen=True)
class TargetStatus:
    """Per connector: what the health check and ``GET /connectors`` report."""

    target: str
    backlog: int
    in_flight: int
    dead_letters: int
    delivered: int
    last_success: datetime | None
    oldest_pending: datetime | None


def target_status(session: Session, targets: tuple[str, ...] | list[str] = ()) -> list[TargetStatus]:
    """Counts per target (every target with messages, plus ``targets`` even if empty)."""
    m = OutboxMessage
    rows = session.execute(
        select(m.target,
               func.sum(case((m.status == "pending", 1), else_=0)),
               func.sum(case((m.status == "in_flight", 1), else_=0)),
               func.sum(case((m.status == "dead", 1), else_=0)),
               func.sum(case((m.status == "delivered", 1), else_=0)),
               func.max(m.delivered_at),
               func.min(case((m.status.in_(("pending", "in_flight")), m.created_at), else_=None)))
        .group_by(m.target)
    ).all()
    out = {r[0]: TargetStatus(r[0], int(r[1] or 0) + int(r[2] or 0), int(r[2] or 0),
                              int(r[3] or 0), int(r[4] or 0), _aware(r[5]), _aware(r[6]))
           for r in rows}
    for t in targets:
        out.setdefault(t, TargetStatus(t, 0, 0, 0, 0, None, None))
    return [out[k] for k in sorted(out)]


def _aware(value: Any) -> datetime | None:
    # aggregates bypass the column type, so SQLite hands back naive text/datetimes
    if value is None:
        return None
    from datetime import UTC

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
