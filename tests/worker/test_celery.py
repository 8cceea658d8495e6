"""Delivery through a real Celery worker process on a real Redis, to a local ERPNext stub.

The database is the source of truth: whatever happens to the ERP (errors, a lost
answer), the worker (SIGKILL mid-call) or Redis (restarted, queue lost), every
voucher ends up in the ERP exactly once.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
import redis as redis_lib
from celery import Celery

from connectors.base import Voucher, VoucherLine
from yinfin_flow.db.models.ledger import JournalSync
from yinfin_flow.db.models.outbox import OutboxMessage
from yinfin_flow.db.types import utcnow
from yinfin_flow.worker.messages import voucher_to_json

from .celery_harness import (
    WorkerProcess,
    erp_stub,
    redis_up,
    start_redis,
    stop_redis,
    wait_for,
    worker_env,
)
from .helpers import books, post, rows

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(120)]


@pytest.fixture
def erpnext(start_stub_server):
    return start_stub_server(erp_stub())


@pytest.fixture
def start_stub_server():
    started = []

    def start(stub):
        started.append(stub.start())
        return stub

    yield start
    for stub in started:
        stub.stop()


@pytest.fixture
def env(pg_db, pg_url, redis_url, erpnext, monkeypatch):
    monkeypatch.setenv("YINFIN_ERP_CONNECTOR", "erpnext")  # this process queues, the worker sends
    books(pg_db)
    e = worker_env(pg_url, redis_url, erpnext.url)
    yield e
    if redis_up():
        redis_lib.Redis.from_url(e["YINFIN_REDIS_URL"]).flushdb()


@pytest.fixture
def workers(env, tmp_path):
    started: list[WorkerProcess] = []

    def make(name: str = "w") -> WorkerProcess:
        w = WorkerProcess(env, tmp_path, name)
        started.append(w)
        return w

    yield make
    for w in started:
        w.kill()


def delivered(db, n):
    def check():
        rs = rows(db)
        return len(rs) == n and all(r.status == "delivered" for r in rs)
    return check


def erp_keys(stub):
    return Counter(d["user_remark"].rsplit("[yinfin:", 1)[1].rstrip("]")
                   for d in stub.docs["Journal Entry"])


def test_erp_errors_then_recovery_every_voucher_exactly_once(pg_db, erpnext, workers):
    ids = post(pg_db, 6)
    # a run of 5xx answers, a slow 500, and one voucher created whose answer is lost
    erpnext.fail_next(500, 502, 503, ("sleep", 0.5), 500, ("status", 503, "Service Unavailable"))
    erpnext.drop_answer_once = True
    w = workers().start()
    wait_for(delivered(pg_db, 6), 60, "every voucher delivered", w.logs)
    keys = erp_keys(erpnext)
    assert sorted(keys) == sorted(r.idempotency_key for r in rows(pg_db))
    assert set(keys.values()) == {1}  # exactly once each
    assert sum(r.attempts for r in rows(pg_db)) > 6  # the failures were real retries
    names = {d["name"] for d in erpnext.docs["Journal Entry"]}
    with pg_db.unit_of_work(readonly=True) as s:
        syncs = [s.get(JournalSync, i) for i in ids]
    assert all(x.status == "synced" for x in syncs) and {x.erp_voucher_id for x in syncs} == names


class HangingStub:
    """Wraps the stub's insert: the first voucher is created, then the answer hangs."""

    def __init__(self, stub):
        self.stub, self.entered, self.release = stub, threading.Event(), threading.Event()
        self.insert = stub.insert
        stub.routes[("POST", "/api/resource/*")] = self.hang_once

    def hang_once(self, req):
        out = self.insert(req)
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(30)
        return out


def test_worker_killed_mid_delivery_is_delivered_after_restart_once(pg_db, erpnext, workers):
    hang = HangingStub(erpnext)
    post(pg_db, 1)
    w = workers().start()
    assert hang.entered.wait(30), w.logs()
    w.kill()  # SIGKILL while the ERP holds the answer: the voucher exists there, we never heard
    hang.release.set()
    [row] = rows(pg_db)
    assert row.status == "in_flight" and row.attempts == 1
    w.start()
    wait_for(delivered(pg_db, 1), 30, "delivery after restart", w.logs)
    [row] = rows(pg_db)
    assert row.attempts == 2  # the lease ran out and the message was claimed again
    assert len(erpnext.docs["Journal Entry"]) == 1
    assert row.external_id == erpnext.docs["Journal Entry"][0]["name"]


def test_redis_restart_loses_nothing(pg_db, erpnext, workers):
    w = workers().start()
    post(pg_db, 3)
    wait_for(delivered(pg_db, 3), 30, "first vouchers", w.logs)
    try:
        stop_redis()
        post(pg_db, 3, start=10)  # written while the broker is down
        start_redis()  # empty: anything that was queued is gone
    finally:
        start_redis()
    wait_for(delivered(pg_db, 6), 60, "vouchers written while Redis was down", w.logs)
    assert set(erp_keys(erpnext).values()) == {1} and len(erpnext.docs["Journal Entry"]) == 6


def test_one_deliver_task_drains_a_whole_document_without_the_sweep(pg_db, env, workers, tmp_path):
    # A pass claims one message per document (the next waits until the earlier one is
    # delivered), so after each pass the document's next message is newly due: the task
    # must go on. It used to stop after any pass short of a full batch, stranding the
    # rest until a sweep; the benchmark (no beat) ended with 7 of 10,000 never sent.
    drop = tmp_path / "drop"
    env.update({"YINFIN_ERP_CONNECTOR": "file", "YINFIN_FILE_DIR": str(drop),
                "YINFIN_FILE_FORMATS": "csv", "YINFIN_SWEEP_SECONDS": "3600"})
    a, now = Decimal("12.50"), utcnow()
    with pg_db.unit_of_work() as s:
        for i in range(5):
            v = Voucher(company="ACME", date=date(2026, 1, 15), memo=f"part {i}", lines=(
                VoucherLine(account="6602", debit=a, credit=Decimal(0), currency="CNY", amount=a),
                VoucherLine(account="2202", debit=Decimal(0), credit=a, currency="CNY", amount=a)))
            s.add(OutboxMessage(target="file", kind="erp_voucher", document_key="voucher:one",
                                payload={"voucher": voucher_to_json(v)}, idempotency_key=f"one-{i}",
                                status="pending", attempts=0, next_attempt_at=now,
                                created_at=now, updated_at=now))
    w = workers().start()
    sender = Celery("test", broker=env["YINFIN_REDIS_URL"])
    try:
        sender.send_task("yinfin.deliver", queue=env["YINFIN_CELERY_QUEUE"])
    finally:
        sender.close()
    wait_for(lambda: any(r.status == "delivered" for r in rows(pg_db)), 60, "the first delivery",
             w.logs)
    wait_for(delivered(pg_db, 5), 10, "the rest of the document from the same task", w.logs)
    rs = rows(pg_db)
    assert [r.attempts for r in rs] == [1] * 5
    assert len({r.external_id for r in rs}) == 5
    assert len(list(drop.glob("[!.]*.csv"))) == 5  # one file per voucher, no temp files left
