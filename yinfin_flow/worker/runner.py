"""In-process delivery for installations without Redis (``make run``).

:class:`Runner` is a daemon thread: it wakes when a transaction that wrote outbox
rows commits (and every ``poll`` seconds regardless), runs dispatcher passes until
nothing is due, and runs the periodic jobs of :mod:`yinfin_flow.worker.jobs` on their
schedule (approval timers and the retention purge; with an ERP or an OA configured,
master-data and directory sync; with an ERP, reconciliation). It is the same
dispatcher the Celery tasks use, so the guarantees are the same; only the process
that runs it differs. Several web processes may each run one: claims and leases keep
them from doing anything twice.

Started by ``yinfin-flow serve``, or by any app created with
``YINFIN_INPROCESS_WORKER=1`` (e.g. gunicorn without Redis), never when
``YINFIN_REDIS_URL`` is set (Celery does the work then).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from yinfin_flow.db.engine import Database

from . import dispatcher, jobs, outbox
from .config import DeliverySettings

log = logging.getLogger("yinfin_flow.worker.runner")


class Runner:
    """A background delivery thread; ``start()`` / ``stop()``; :meth:`kick` wakes it."""

    def __init__(self, db: Database, settings: DeliverySettings | None = None, *,
                 lookup: dispatcher.ConnectorLookup = dispatcher.registry_lookup,
                 poll: float = 2.0, periodic: bool = True,
                 schedule: dict[str, float] | None = None) -> None:
        self.db, self.lookup, self.poll, self.periodic = db, lookup, poll, periodic
        self.settings = settings or DeliverySettings.from_env()
        self.schedule = dict(schedule or jobs.SCHEDULE)
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, float] = {}
        self.passes = 0

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> Runner:
        outbox.on_new_messages(self.kick)
        self._thread = threading.Thread(target=self._loop, name="yinfin-outbox", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        outbox.forget_kickers(self.kick)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                r = dispatcher.run_once(self.db, self.settings, lookup=self.lookup)
                self.passes += 1
                if r.attempted:
                    continue
                if self.periodic:
                    self._periodic()
            except Exception:  # noqa: BLE001 - keep the thread alive; the next pass retries
                log.exception("in-process delivery pass failed")
            self._wake.wait(self.poll)

    def _periodic(self) -> None:
        now = time.monotonic()
        work: dict[str, Callable[[], Any]] = {"timers": lambda: jobs.timers(self.db),
                                              "purge": lambda: jobs.purge(self.db, self.settings)}
        if self.settings.erp or self.settings.oa:  # an OA alone still has a directory to read
            work["sync"] = lambda: jobs.sync(self.db, self.settings, self.lookup)
        if self.settings.erp:
            work["reconcile"] = lambda: jobs.reconcile(self.db, self.settings)
        for name, fn in work.items():
            if now - self._last.get(name, -1e9) >= self.schedule.get(name, 60.0):
                self._last[name] = now
                try:
                    fn()
                except Exception:  # noqa: BLE001
                    log.exception("periodic job %s failed", name)


def start_for_app(app: Any) -> Runner | None:
    """Start one runner for a Flask app using yinfin-flow, unless Redis is configured
    (or one already runs for this app). Returns it (None when Celery is in charge)."""
    from yinfin_flow.extension import state

    st = state(app)
    if st.settings.redis_url:
        return None
    existing: Runner | None = app.extensions.get("yinfin_flow.runner")
    if existing is None:
        existing = Runner(st.db).start()
        app.extensions["yinfin_flow.runner"] = existing
        log.info("in-process delivery started (no YINFIN_REDIS_URL)")
    return existing


def wanted() -> bool:
    return os.environ.get("YINFIN_INPROCESS_WORKER", "").lower() in ("1", "true", "yes")
