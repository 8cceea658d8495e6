"""OA deliveries seen before: re-deliveries are answered, counted, never applied twice.

OA platforms re-deliver an event they did not see acknowledged (Feishu for hours,
DingTalk and WeCom too), so an authentic re-delivery of an event we applied is not an
attack: the vendor must get its success answer or it keeps trying. Only a bad
signature or a stale timestamp is refused (the connectors check both before they ask
:class:`SeenInTransaction`).

An event id is recorded (``inbound_seen``) in the transaction that applies its
events, so a delivery that fails leaves no trace and the vendor's retry applies it;
a re-delivery finds the id, adds one to its ``duplicates`` and applies nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from yinfin_flow.db.models.security import InboundSeen
from yinfin_flow.db.types import utcnow


class SeenInTransaction:
    """The connectors' ``seen(event_id)`` callable for one delivery, in the session that
    applies it. It always answers "not seen", so the connector finishes and builds the
    vendor's success answer; :attr:`duplicate` tells the caller to apply nothing."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.duplicate: str | None = None

    def __call__(self, event_id: str) -> bool:
        key = event_id[:240]
        if self.session.get(InboundSeen, key) is not None:
            self.duplicate = key
            self.session.execute(update(InboundSeen).where(InboundSeen.id == key).values(
                duplicates=InboundSeen.duplicates + 1, last_duplicate_at=utcnow()))
            return False
        self.session.add(InboundSeen(id=key, created_at=utcnow()))
        self.session.flush()  # a concurrent twin blocks here, then fails on the key
        return False


def redeliveries(session: Session) -> dict[str, Any]:
    """Re-deliveries recognised among the event ids still kept (the seen retention):
    the total, per connector, and the latest one's time."""
    rows = session.execute(select(InboundSeen.id, InboundSeen.duplicates)
                           .where(InboundSeen.duplicates > 0)).all()
    per: dict[str, int] = {}
    for event_id, count in rows:
        connector = event_id.split(":", 1)[0]
        per[connector] = per.get(connector, 0) + int(count)
    last = session.scalar(select(func.max(InboundSeen.last_duplicate_at)))
    return {"redeliveries": sum(per.values()), "by_connector": per,
            "last_redelivery_at": last.isoformat() if last is not None else None}
