"""OA event types the connectors answered but do not read: counted, logged, in health.

A vendor re-sends an event it got no proper answer to, so a connector answers every
authentic delivery as the vendor expects, also of a type it does not read (a 2.0 event
where 1.0 is read, a contact change, a user's chat message). Those deliveries are not
dropped silently: each is logged with its type, and counted per connector and type in
``inbound_ignored`` in the transaction that accepts the delivery (so every web instance
adds to the same figures), which ``GET /api/v1/health`` shows as ``oa_inbound``'s
details. A figure that grows says an app subscribes to something nobody reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from yinfin_flow.db.models.security import InboundIgnored
from yinfin_flow.db.types import utcnow

log = logging.getLogger("yinfin_flow.api.oa")
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def record(session: Session, connector: str, event_types: Iterable[str]) -> None:
    """Count one delivery of each of ``event_types`` (and log it) for ``connector``."""
    at = utcnow()
    for event_type in event_types:
        event_type = event_type[:120]
        log.warning("OA %s: event type %r is not read; answered and counted as ignored",
                    connector, event_type)
        insert = _INSERT[session.get_bind().dialect.name](InboundIgnored)
        # one statement: two instances counting the same new type at once both count
        session.execute(insert.values(connector=connector, event_type=event_type, count=1,
                                      first_at=at, last_at=at)
                        .on_conflict_do_update(
                            index_elements=["connector", "event_type"],
                            set_={"count": InboundIgnored.count + 1, "last_at": at}))


def summary(session: Session) -> dict[str, Any]:
    """Health details: every ignored type with its count and first and last time."""
    rows = session.scalars(select(InboundIgnored).order_by(InboundIgnored.connector,
                                                           InboundIgnored.event_type)).all()
    ignored = [{"connector": r.connector, "event_type": r.event_type, "count": r.count,
                "first_at": r.first_at.isoformat(), "last_at": r.last_at.isoformat()}
               for r in rows]
    return {"ignored_events": sum(r["count"] for r in ignored), "ignored": ignored}
