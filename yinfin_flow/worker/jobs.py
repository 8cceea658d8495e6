"""The periodic jobs, one function each; Celery beat and the in-process runner call them.

Each is safe to run twice at once: the outbox sweep claims rows (a row is never
claimed twice), the engine's timers claim each timer exactly once, and sync,
reconciliation and the retention purge run under a database lease
(:mod:`yinfin_flow.worker.leases`).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from yinfin_flow.db.engine import Database
from yinfin_flow.domain.errors import DomainError

from . import dispatcher, leases
from .config import DeliverySettings

log = logging.getLogger("yinfin_flow.worker.jobs")

#: how often beat (and the in-process runner) runs each job, in seconds
SCHEDULE = {"sweep": 10.0, "timers": 60.0, "sync": 900.0, "reconcile": 3600.0, "purge": 3600.0}


def sweep(db: Database, settings: DeliverySettings | None = None) -> dict[str, int]:
    """Deliver everything due (the safety net behind the after-commit kick)."""
    r = dispatcher.drain(db, settings)
    return {"delivered": len(r.delivered), "retried": len(r.retried), "dead": len(r.dead)}


def timers(db: Database) -> int:
    """Fire due approval timeouts and reminders (each exactly once, by the engine)."""
    from yinfin_flow.engine.timers import fire_due_timers

    return len(fire_due_timers(db))


def sync(db: Database, settings: DeliverySettings | None = None,
         lookup: dispatcher.ConnectorLookup = dispatcher.registry_lookup) -> dict[str, Any]:
    """Master-data sync from every configured ERP, under the ``masterdata-sync`` lease."""
    from . import masterdata

    settings = settings or DeliverySettings.from_env()
    with leases.held(db, "masterdata-sync", ttl=1800) as mine:
        if not mine:
            return {"skipped": "another sync is running"}
        out: dict[str, Any] = {}
        for t in settings.erp:
            out[t] = masterdata.sync_connector(db, t, company=settings.sync_company, lookup=lookup)
        for t in settings.oa:  # an OA that offers its directory (departments, ``users``)
            kinds = tuple(k for k in getattr(lookup(t), "master_data_kinds", ())
                          if k in ("cost_centres", "users"))
            if "users" in kinds:
                out[t] = masterdata.sync_connector(db, t, company=settings.sync_company,
                                                   kinds=kinds, lookup=lookup)
        return out


def reconcile(db: Database, settings: DeliverySettings | None = None,
              period: str | None = None) -> dict[str, Any]:
    """Reconcile the current period (default) with every configured ERP, under a lease;
    logs each difference (the API and CLI show them on demand)."""
    from . import reconcile as rec

    settings = settings or DeliverySettings.from_env()
    code = period or date.today().strftime("%Y-%m")
    with leases.held(db, f"reconcile-{code}", ttl=3600) as mine:
        if not mine:
            return {"skipped": "another reconciliation is running"}
        out: dict[str, Any] = {}
        for target in settings.erp:
            try:
                report = rec.reconcile(db, code, target)
            except DomainError as err:  # e.g. the connector's settings are missing: the others still run
                log.warning("reconciliation with %s refused: %s", target, err.message)
                out[target] = {"error": err.message}
                continue
            for d in report.differences:
                log.warning("reconciliation difference: %s", d.problem,
                            extra={"document": f"voucher:{d.entry_id}", "target": target,
                                   "period": code})
            out[target] = {"checked": report.checked, "differences": len(report.differences)}
        return out


def purge(db: Database, settings: DeliverySettings | None = None) -> dict[str, Any]:
    """Delete delivered outbox messages and seen OA event ids past their retention
    (:mod:`yinfin_flow.worker.retention`), under the ``retention-purge`` lease."""
    from . import retention

    with leases.held(db, "retention-purge", ttl=1800) as mine:
        if not mine:
            return {"skipped": "another purge is running"}
        return retention.purge(db, settings).to_dict()
