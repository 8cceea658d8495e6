"""The Celery app: ``celery -A yinfin_flow.worker.celery_app worker`` / ``beat``.

Broker: ``YINFIN_REDIS_URL``. Results are not kept. The database is the source of
truth: a task only says "look at the outbox now"; what to send is whatever rows are
due there. So a task lost from Redis (a Redis restart without persistence) loses
nothing: the beat ``sweep`` every few seconds finds the rows again.

Reliability settings: ``acks_late`` (a task is acknowledged only after it ran) and
``task_reject_on_worker_lost`` (a worker killed mid-task puts the task back), prefetch
of one; the rows a killed worker had claimed are retried once their lease runs out
(``YINFIN_OUTBOX_LEASE``), and the connector's idempotency key makes that safe.
Database or broker hiccups inside a task are retried by Celery with exponential
backoff and jitter; a connector's own failures are retried per message in the
outbox (backoff with jitter, ``YINFIN_OUTBOX_MAX_ATTEMPTS``), and the task re-queues
itself with a countdown for the earliest retry. A pass that delivered anything
re-queues itself at once: the document's next message becomes due only then.

Beat schedule (:data:`yinfin_flow.worker.jobs.SCHEDULE`, seconds; ``YINFIN_SWEEP_SECONDS``
overrides the sweep): ``sweep`` (outbox), ``timers`` (approval timeouts/reminders),
``sync`` (master data), ``reconcile``, ``purge`` (delivered outbox messages and seen OA
event ids past their retention). Every job is safe when two beats run.
Delivery settings are read when this module is imported, so a bad ``YINFIN_OUTBOX_*``
or retention value stops the worker and beat at start, naming the variable; so does a
``YINFIN_OUTBOX_LEASE`` shorter than one message to a configured connector can take.

A worker never sits on one slow pass: a pass starts no call after
``YINFIN_OUTBOX_PASS_SECONDS`` and gives the rest of its batch back, re-queueing
itself behind whatever else waits; at most one ``sweep`` waits in the queue
(:class:`OnePending`), so beat's sweeps cannot pile up behind a busy worker.
Queue name: ``YINFIN_CELERY_QUEUE`` (default ``yinfin``).
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from celery import Celery, signals
from sqlalchemy.exc import DBAPIError

from yinfin_flow import instance_env
from yinfin_flow.db.engine import Database

from . import dispatcher, jobs, logs, outbox
from .config import DeliverySettings, seconds

log = logging.getLogger("yinfin_flow.worker.celery")

instance_env.apply()  # instance/yinfin.env, for what the environment does not set
QUEUE = os.environ.get("YINFIN_CELERY_QUEUE", "yinfin")
#: at most this many drain tasks are queued by one sweep (each takes a batch)
FAN_OUT = 16

app = Celery("yinfin_flow")
app.conf.update(
    broker_url=os.environ.get("YINFIN_REDIS_URL") or "redis://127.0.0.1:6379/0",
    task_default_queue=QUEUE,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=3,
    # an unacked task comes back after this long if its worker vanished without a word
    broker_transport_options={"visibility_timeout": 600, "socket_connect_timeout": 3},
    worker_hijack_root_logger=False,
    timezone="UTC",
    beat_schedule={
        "outbox-sweep": {"task": "yinfin.sweep",
                         "schedule": seconds(os.environ, "YINFIN_SWEEP_SECONDS",
                                             timedelta(seconds=jobs.SCHEDULE["sweep"]),
                                             timedelta(milliseconds=1))},
        "engine-timers": {"task": "yinfin.timers", "schedule": jobs.SCHEDULE["timers"]},
        "masterdata-sync": {"task": "yinfin.sync", "schedule": jobs.SCHEDULE["sync"]},
        "reconcile": {"task": "yinfin.reconcile", "schedule": jobs.SCHEDULE["reconcile"]},
        "retention-purge": {"task": "yinfin.purge", "schedule": jobs.SCHEDULE["purge"]},
    },
)
DeliverySettings.from_env()  # a bad value is a start-up error naming its variable

_db: Database | None = None


def database() -> Database:
    """This process's Database (made on first use, so each forked child has its own)."""
    global _db
    if _db is None:
        from yinfin_flow.config import Settings

        settings = Settings.from_env()
        _db = Database(settings.database_url, schema=settings.database_schema)
    return _db


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    global _db
    _db = None  # never share a parent's connections with a forked child


@signals.setup_logging.connect
def _logging(**_: Any) -> None:
    logs.setup()


_kicks_paused_until = 0.0
#: after a failed kick (broker down) skip kicks this long: a web request must not wait
#: on a dead broker at every commit, and the beat sweep delivers the rows anyway
KICK_PAUSE = 30.0


def kick() -> None:
    """Ask a worker to look at the outbox (after a commit that wrote rows)."""
    global _kicks_paused_until
    import time

    if time.monotonic() < _kicks_paused_until:
        return
    try:
        deliver.apply_async(retry=False)
    except Exception:
        _kicks_paused_until = time.monotonic() + KICK_PAUSE
        raise


RETRY = {"autoretry_for": (DBAPIError,), "retry_backoff": True, "retry_backoff_max": 300,
         "retry_jitter": True, "max_retries": 10}


@app.task(name="yinfin.deliver", bind=True, acks_late=True, reject_on_worker_lost=True, **RETRY)
def deliver(self: Any, ids: list[int] | None = None) -> dict[str, int]:
    """One dispatcher pass; re-queues itself while there is more to do."""
    settings = DeliverySettings.from_env()
    db = database()
    r = dispatcher.run_once(db, settings, ids=ids)
    if r.delivered or r.attempted >= settings.batch or r.given_back:
        # a full batch: probably more waiting. Any delivery: the next message of each of
        # those documents was blocked behind it (a pass claims one per document) and is
        # due only now that this pass recorded, so no other task may have seen it yet;
        # stopping here would leave it for the sweep (or forever, without a beat). The
        # chain ends with the first pass that delivers nothing.
        deliver.apply_async()
    if r.retried:
        due = dispatcher.next_due(db)
        if due is not None:
            from yinfin_flow.db.types import utcnow

            deliver.apply_async(countdown=max((due - utcnow()).total_seconds(), 0.05))
    return {"delivered": len(r.delivered), "retried": len(r.retried), "dead": len(r.dead)}


#: the Redis key holding the id of the one sweep waiting in the queue
SWEEP_PENDING = f"yinfin:sweep-pending:{QUEUE}"
#: how long that mark lives at most (a sweep lost with its queue is then sent again)
SWEEP_PENDING_TTL = 300


def _redis() -> Any:
    import redis

    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(app.conf.broker_url, socket_connect_timeout=3,
                                             socket_timeout=3)
    return _redis_client


_redis_client: Any = None


class OnePending(app.Task):  # type: ignore[name-defined,misc]
    """A task of which at most one waits in the queue: sending it while one waits
    returns the waiting one instead of queueing another (``SET … NX`` in Redis), so
    beat's sweeps cannot pile up behind a busy worker. The mark is removed when the
    task starts, so the next sweep may be queued while one runs."""

    def apply_async(self, args: Any = None, kwargs: Any = None, task_id: str | None = None,
                    **options: Any) -> Any:
        import uuid

        import redis

        task_id = task_id or uuid.uuid4().hex
        try:
            r = _redis()
            for _ in range(3):  # the waiting one may start (and drop its mark) in between
                if r.set(SWEEP_PENDING, task_id, nx=True, ex=SWEEP_PENDING_TTL):
                    break
                waiting = r.get(SWEEP_PENDING)
                if waiting:
                    return self.AsyncResult(waiting.decode())
        except redis.RedisError:  # the broker is down: sending fails the same way below
            pass
        return super().apply_async(args, kwargs, task_id=task_id, **options)

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        import redis

        try:
            r = _redis()
            if (r.get(SWEEP_PENDING) or b"").decode() == task_id:
                r.delete(SWEEP_PENDING)
        except redis.RedisError:
            pass  # the mark expires on its own


@app.task(name="yinfin.sweep", base=OnePending, **RETRY)
def sweep() -> int:
    """Queue drain tasks for whatever is due (the safety net: lost tasks, crashed workers).

    At most one sweep waits in the queue (:class:`OnePending`)."""
    from sqlalchemy import func, select

    from yinfin_flow.db.models.outbox import OutboxMessage
    from yinfin_flow.db.types import utcnow

    settings = DeliverySettings.from_env()
    with database().unit_of_work(readonly=True) as s:
        due = s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status.in_(("pending", "in_flight")),
            OutboxMessage.next_attempt_at <= utcnow())) or 0
    n = min(FAN_OUT, -(-int(due) // settings.batch))
    for _ in range(n):
        deliver.apply_async()
    return n


@app.task(name="yinfin.timers", **RETRY)
def timers() -> int:
    return jobs.timers(database())


@app.task(name="yinfin.sync", **RETRY)
def sync() -> dict[str, Any]:
    return jobs.sync(database())


@app.task(name="yinfin.reconcile", **RETRY)
def reconcile(period: str | None = None) -> dict[str, Any]:
    return jobs.reconcile(database(), period=period)


@app.task(name="yinfin.purge", **RETRY)
def purge() -> dict[str, Any]:
    return jobs.purge(database())


@signals.worker_init.connect
def _kick_from_worker(**_: Any) -> None:
    # rows written by the worker itself (a timer that escalates a task) are kicked too
    outbox.on_new_messages(kick)
