"""A real Celery worker (with beat) against a slow ERPNext stub: a worker killed between
the ERP's insert and our outcome write, and a slow pass that must neither pile sweeps
up in Redis nor keep the worker from its queue. Inserts are counted per key at the stub.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
import redis as redis_lib

from .celery_harness import erp_stub, redis_up, wait_for, worker_env
from .erp_faults import FaultyERP, erp_keys, twice
from .helpers import books, post, rows
from .test_celery import delivered

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(180)]


@pytest.fixture
def erpnext():
    stub = erp_stub().start()
    yield stub
    stub.stop()


@pytest.fixture
def env(pg_db, pg_url, redis_url, erpnext, monkeypatch):
    monkeypatch.setenv("YINFIN_ERP_CONNECTOR", "erpnext")
    books(pg_db)
    e = worker_env(pg_url, redis_url, erpnext.url)
    yield e
    if redis_up():
        redis_lib.Redis.from_url(e["YINFIN_REDIS_URL"]).flushdb()


@pytest.fixture
def workers(env, tmp_path):
    from .celery_harness import WorkerProcess

    started: list[WorkerProcess] = []

    def make(name: str = "w") -> WorkerProcess:
        w = WorkerProcess(env, tmp_path, name)
        started.append(w)
        return w

    yield make
    for w in started:
        w.kill()


class StoreThenHang:
    """The ``n``-th insert is stored, then its answer hangs until released."""

    def __init__(self, stub, n: int) -> None:
        self.n, self.seen = n, 0
        self.entered, self.release = threading.Event(), threading.Event()
        self.insert = stub.routes[("POST", "/api/resource/*")]
        stub.routes[("POST", "/api/resource/*")] = self.on_insert

    def on_insert(self, req):
        out = self.insert(req)
        self.seen += 1
        if self.seen == self.n:
            self.entered.set()
            self.release.wait(30)
        return out


def test_kill_9_between_the_erp_insert_and_our_outcome_write(pg_db, erpnext, workers) -> None:
    FaultyERP(erpnext, insert_delay=0.05)
    hang = StoreThenHang(erpnext, 4)
    post(pg_db, 10)
    w = workers().start()
    assert hang.entered.wait(60), w.logs()
    w.kill()  # SIGKILL: the 4th voucher is in the ERP, we never heard back; no outcome written
    hang.release.set()
    before = {r.idempotency_key: r.status for r in rows(pg_db)}
    assert list(before.values()).count("in_flight") >= 7  # the rest of the batch is held
    w.start()
    wait_for(delivered(pg_db, 10), 90, "every voucher after the restart", w.logs)
    assert twice(erpnext) == {} and len(erp_keys(erpnext)) == 10
    by_key = {d["user_remark"].rsplit("[yinfin:", 1)[1].rstrip("]"): d["name"]
              for d in erpnext.docs["Journal Entry"]}
    assert all(by_key[r.idempotency_key] == r.external_id for r in rows(pg_db))


def _queued_sweeps(client, queue: str) -> int:
    n = 0
    for raw in client.lrange(queue, 0, -1):
        if json.loads(raw).get("headers", {}).get("task") == "yinfin.sweep":
            n += 1
    return n


def test_a_slow_pass_neither_piles_up_sweeps_nor_holds_the_worker(pg_db, env, erpnext,
                                                                   workers) -> None:
    # 0.3 s per insert, 40 vouchers in one batch: 12 s of posting. Beat sends a sweep
    # every 0.1 s. The worker (one process, solo pool) used to take nothing for the
    # whole pass while the sweeps piled up in Redis.
    FaultyERP(erpnext, insert_delay=0.3)
    env.update({"YINFIN_SWEEP_SECONDS": "0.1", "YINFIN_OUTBOX_PASS_SECONDS": "2"})
    post(pg_db, 40)
    client = redis_lib.Redis.from_url(env["YINFIN_REDIS_URL"])
    w = workers().start()
    wait_for(lambda: any(r.status == "delivered" for r in rows(pg_db)), 60, "a first delivery",
             w.logs)
    most = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not delivered(pg_db, 40)():
        most = max(most, _queued_sweeps(client, env["YINFIN_CELERY_QUEUE"]))
        time.sleep(0.1)
    assert delivered(pg_db, 40)(), w.logs()
    assert most <= 1, f"{most} sweeps waited in Redis at once"
    assert twice(erpnext) == {} and len(erp_keys(erpnext)) == 40
    # the 2 s pass limit cut the long batch short: each pass wrote its outcomes when
    # it ended, and none delivered more than ~2 s of inserts (not the batch of 40)
    passes = Counter(r.delivered_at for r in rows(pg_db))
    assert len(passes) >= 4 and max(passes.values()) <= 12, passes
