"""From engine actions to the outside world: an expense request's statuses and tasks go
to the OA in order, its voucher to the ERP; the in-process runner; master-data sync."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from yinfin_flow.app import create_app
from yinfin_flow.config import Settings
from yinfin_flow.db.models.ledger import Account
from yinfin_flow.db.models.outbox import SyncWatermark
from yinfin_flow.worker import dispatcher, jobs, leases, masterdata
from yinfin_flow.worker.config import DeliverySettings
from yinfin_flow.worker.runner import Runner

from ..connectors.stubs.erpnext import ERPNextStub
from ..integration.test_engine_core import act, submit
from ..integration.test_engine_support import pending, world
from .conftest import FakeERP
from .helpers import books, post, rows


def test_request_statuses_tasks_and_voucher_flow_out_in_order(db, monkeypatch, erp, lookup):
    monkeypatch.setenv("YINFIN_OA_CONNECTOR", "fake")
    monkeypatch.setenv("YINFIN_ERP_CONNECTOR", "fake")
    org = world(db)
    rid = submit(db, org)
    from yinfin_flow.db.models.security import OAInstance

    with db.unit_of_work() as s:  # as if the request had come in from that OA
        s.add(OAInstance(connector="fake", external_id="WF-9", request_id=rid))
    [(t1, _, _)] = pending(db, rid)
    act(db, t1, "wang")
    finance = pending(db, rid)
    act(db, finance[0][0], "fay")
    kinds = [(m.kind, m.document_key) for m in rows(db)]
    [voucher] = [d for k, d in kinds if k == "erp_voucher"]
    assert voucher.startswith("voucher:")
    assert {k for k, d in kinds if d == f"request:{rid}"} == {"oa_status", "oa_task"}
    settings = DeliverySettings(erp=("fake",), oa=("fake",))
    r = dispatcher.drain(db, settings, lookup=lookup)
    assert not r.dead and not r.retried and {m.status for m in rows(db)} == {"delivered"}
    assert len(erp.vouchers) == 1
    pushed = [(m.kind, m.task_id, m.status) for _, m in erp.statuses]
    # the OA heard of wang's task before it was closed, and of the finance tasks after
    assert pushed.index(("task", str(t1), "pending")) < pushed.index(("task", str(t1), "approved"))
    assert pushed.index(("task", str(t1), "approved")) < pushed.index(("task", str(finance[0][0]), "pending"))
    assert ("status", None, "approved") in pushed
    # once the OA's instance is known, our messages name it
    ext = [m.external_instance_id for _, m in erp.statuses]
    assert ext[0] is None and ext[-1] == "WF-9"
    # both finance approvers (或签) got their to-do
    assert ("task", str(finance[1][0]), "pending") in pushed
    # and the one nobody needed any more was closed in the OA too
    assert [st for k, t, st in pushed if t == str(finance[1][0])][-1] != "pending"
    # each closing message names the OA's own id for the to-do it closes: the id the OA
    # answered to that task's pending message (the fake answers OA-<n> for its n-th call)
    answered = {m.task_id: f"OA-{n}" for n, (_, m) in enumerate(erp.statuses, 1)
                if m.kind == "task" and m.status == "pending"}
    closing = [m for _, m in erp.statuses if m.kind == "task" and m.status != "pending"]
    assert len(closing) >= 2
    assert all(m.external_task_id == answered[m.task_id] for m in closing)
    assert all(m.external_task_id is None for _, m in erp.statuses if m.status == "pending")


def test_in_process_runner_delivers_after_commit(sqlite_db, erp_env, erp, lookup, settings):
    books(sqlite_db)
    runner = Runner(sqlite_db, settings, lookup=lookup, poll=30, periodic=False).start()
    try:
        time.sleep(0.2)  # the first (empty) pass is over: only the kick can wake it now
        post(sqlite_db, 2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(erp.vouchers) < 2:
            time.sleep(0.05)
    finally:
        runner.stop()
    assert len(erp.vouchers) == 2 and {m.status for m in rows(sqlite_db)} == {"delivered"}


def test_app_starts_the_runner_only_when_asked_and_without_redis(sqlite_db, monkeypatch):
    monkeypatch.delenv("YINFIN_INPROCESS_WORKER", raising=False)
    app = create_app(Settings(database_url=sqlite_db.url))
    assert "yinfin_flow.runner" not in app.extensions
    monkeypatch.setenv("YINFIN_INPROCESS_WORKER", "1")
    app = create_app(Settings(database_url=sqlite_db.url))
    runner = app.extensions["yinfin_flow.runner"]
    try:
        assert runner._thread.is_alive()  # noqa: SLF001
    finally:
        runner.stop()
    from yinfin_flow.worker import celery_app, outbox

    try:
        app = create_app(Settings(database_url=sqlite_db.url, redis_url="redis://127.0.0.1:6379/0"))
        assert "yinfin_flow.runner" not in app.extensions
        assert celery_app.kick in outbox._kickers  # noqa: SLF001 - commits wake Celery instead
    finally:
        outbox.forget_kickers()


def test_a_dead_broker_is_not_asked_again_at_every_commit(monkeypatch):
    from yinfin_flow.worker import celery_app

    calls = []

    def refuse(**kw):
        calls.append(kw)
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(celery_app.deliver, "apply_async", refuse)
    monkeypatch.setattr(celery_app, "_kicks_paused_until", 0.0)
    with pytest.raises(ConnectionRefusedError):
        celery_app.kick()
    celery_app.kick()  # paused: returns at once, the sweep will deliver
    assert len(calls) == 1


@pytest.fixture
def erpnext():
    stub = ERPNextStub().start()
    yield stub
    stub.stop()


def erpnext_lookup(stub):
    from connectors.erpnext import ERPNextConnector

    conn = ERPNextConnector(url=stub.url, api_key="k1", api_secret="s1", company="Yinfin Ltd")
    return lambda name: conn


def test_master_data_sync_is_incremental_and_deactivates(db, erpnext):
    books(db)
    find = erpnext_lookup(erpnext)
    done = masterdata.sync_connector(db, "erpnext", kinds=("accounts", "cost_centres"), lookup=find)
    assert done["accounts"]["created"] == 2 and done["cost_centres"]["created"] == 1
    with db.unit_of_work(readonly=True) as s:
        acc = s.scalar(select(Account).where(Account.code == "6602.01"))
        assert (acc.name, acc.type, acc.active) == ("Travel", "expense", True)
        wm = s.get(SyncWatermark, ("erpnext", "accounts"))
        assert wm.watermark and wm.records == 2
    # nothing changed upstream: nothing read
    again = masterdata.sync_connector(db, "erpnext", kinds=("accounts",), lookup=find)
    assert again["accounts"]["records"] == 0
    # the ERP disables an account: it becomes inactive here, still present
    erpnext.docs["Account"][0].update(disabled=1, modified="2026-11-20 10:00:00.000000")
    third = masterdata.sync_connector(db, "erpnext", kinds=("accounts",), lookup=find)
    assert third["accounts"] == {"records": 1, "created": 0, "updated": 1, "skipped": 0}
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(Account.active).where(Account.code == "6602.01")) is False


def test_sync_of_a_referenced_account_never_deletes_it(db):
    books(db)
    [entry] = post(db)
    fake = FakeERP()
    fake.master["accounts"] = [{"code": "6602", "name": "Office", "active": False, "modified": "2"},
                               {"code": "", "name": "no code", "modified": "1"},
                               {"code": "7001", "name": "no type", "modified": "3"}]
    done = masterdata.sync_connector(db, "fake", kinds=("accounts",), lookup=lambda n: fake)
    assert done["accounts"] == {"records": 3, "created": 0, "updated": 1, "skipped": 2}
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(Account.active).where(Account.code == "6602")) is False
    from yinfin_flow.ledger.exports import voucher_rows

    with db.unit_of_work(readonly=True) as s:
        assert {r.account_code for r in voucher_rows(s, "ACME", entry_id=entry)} == {"6602", "2202"}


def test_two_syncs_at_once_run_one(db, monkeypatch):
    books(db)
    monkeypatch.setenv("YINFIN_ERP_CONNECTOR", "fake")
    started, release = threading.Event(), threading.Event()

    class Slow(FakeERP):
        def changed_master_data(self, kind, watermark):
            started.set()
            release.wait(10)
            return [], watermark

    slow = Slow()
    out: list = []
    t = threading.Thread(target=lambda: out.append(jobs.sync(db, lookup=lambda n: slow)))
    t.start()
    assert started.wait(10)
    assert jobs.sync(db, lookup=lambda n: slow) == {"skipped": "another sync is running"}
    release.set()
    t.join(10)
    assert "fake" in out[0]
    assert leases.acquire(db, "masterdata-sync", 10, "after")  # released when done


def test_users_from_an_oa_directory(db, monkeypatch):
    from yinfin_flow.db.models.org import User

    books(db)
    oa = FakeERP()
    oa.master_data_kinds = ("users",)
    oa.master["users"] = [
        {"code": "zhang", "name": "张三", "department": "RD", "email": "z@example.com",
         "external_id": "ding-001", "active": True, "modified": "1"},
        {"code": "li", "name": "李四", "manager": "zhang", "external_id": "ding-002",
         "active": True, "modified": "2"},
        {"code": "", "name": "nobody", "modified": "3"}]
    monkeypatch.setenv("YINFIN_OA_CONNECTOR", "dingtalk")
    monkeypatch.delenv("YINFIN_ERP_CONNECTOR", raising=False)
    done = jobs.sync(db, lookup=lambda n: oa)
    assert done["dingtalk"]["users"] == {"records": 3, "created": 2, "updated": 0, "skipped": 1}
    with db.unit_of_work(readonly=True) as s:
        li = s.get(User, "li")
        assert (li.manager_id, li.dingtalk_userid, li.active) == ("zhang", "ding-002", True)
    oa.master["users"].append({"code": "li", "name": "李四", "external_id": "ding-002",
                               "active": False, "modified": "4"})
    again = jobs.sync(db, lookup=lambda n: oa)
    assert again["dingtalk"]["users"]["records"] == 1
    with db.unit_of_work(readonly=True) as s:
        assert s.get(User, "li").active is False  # left, never deleted


def test_the_in_process_runner_reads_an_oa_directory_without_an_erp(sqlite_db):
    from yinfin_flow.db.models.org import User

    books(sqlite_db)
    oa = FakeERP()
    oa.master_data_kinds = ("users",)
    oa.master["users"] = [{"code": "zhang", "name": "张三", "department": "RD",
                           "external_id": "ding-001", "active": True, "modified": "1"}]
    runner = Runner(sqlite_db, DeliverySettings(oa=("dingtalk",)), lookup=lambda name: oa, poll=0.05,
                    schedule={"timers": 3600.0, "purge": 3600.0, "sync": 3600.0}).start()
    try:
        deadline, found = time.monotonic() + 10, None
        while found is None and time.monotonic() < deadline:
            time.sleep(0.05)
            with sqlite_db.unit_of_work(readonly=True) as s:
                found = s.get(User, "zhang")
    finally:
        runner.stop()
    assert found is not None and found.dingtalk_userid == "ding-001"
