"""Where delivery stands per connector: what ``GET /api/v1/connectors/status``, ``outbox
status`` and the console's operations page show."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import outbox
from .config import DeliverySettings


def connector_status(session: Session) -> list[dict[str, Any]]:
    """Every connector that is configured, a delivery target, or has messages."""
    from connectors import registry
    from yinfin_flow.db.models.outbox import SyncWatermark

    ds = DeliverySettings.from_env()
    configured = set(registry.configured())
    counts = {t.target: t for t in outbox.target_status(session, ds.targets)}
    syncs: dict[str, list[dict[str, Any]]] = {}
    for w in session.scalars(select(SyncWatermark).order_by(SyncWatermark.kind)):
        syncs.setdefault(w.connector, []).append(
            {"kind": w.kind, "synced_at": w.synced_at, "records": w.records, "last_error": w.last_error})
    out = []
    for name in sorted(configured | set(counts) | set(syncs)):
        t = counts.get(name) or outbox.TargetStatus(name, 0, 0, 0, 0, None, None)
        role = "erp" if name in ds.erp else "oa" if name in ds.oa else "none"
        out.append({"name": name, "role": role, "configured": name in configured,
                    "backlog": t.backlog, "in_flight": t.in_flight, "dead_letters": t.dead_letters,
                    "delivered": t.delivered, "last_success": t.last_success,
                    "oldest_pending": t.oldest_pending, "sync": syncs.get(name, [])})
    return out
