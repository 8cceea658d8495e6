"""The lease rule at start-up, malformed ERP answers in a dispatcher pass and in
reconciliation, and reconciliation's ERP-side findings (duplicates, strays) shown by
``reconcile`` (exit 3), ``outbox status`` and the health check."""

from __future__ import annotations

import copy
import logging

import pytest
from click.testing import CliRunner

from yinfin_flow.cli import main as cli
from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.worker import dispatcher, reconcile
from yinfin_flow.worker.config import DeliverySettings

from ..e2e.conftest import make_app
from .celery_harness import erp_stub
from .erp_faults import erp_keys, twice
from .helpers import books, post, rows

ERPNEXT = {"YINFIN_ERP_CONNECTOR": "erpnext", "YINFIN_ERPNEXT_API_KEY": "k1",
           "YINFIN_ERPNEXT_API_SECRET": "s1", "YINFIN_ERPNEXT_COMPANY": "Yinfin Ltd"}


@pytest.fixture
def stub():
    s = erp_stub().start()
    yield s
    s.stop()


@pytest.fixture
def erpnext(stub, monkeypatch):
    for k, v in {**ERPNEXT, "YINFIN_ERPNEXT_URL": stub.url,
                 "YINFIN_ERPNEXT_TIMEOUT": "1,1", "YINFIN_OUTBOX_LEASE": "30"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("YINFIN_OA_CONNECTOR", raising=False)
    return stub


def test_a_lease_shorter_than_one_message_is_refused_naming_the_connector() -> None:
    env = {**ERPNEXT, "YINFIN_ERPNEXT_URL": "http://127.0.0.1:9", "YINFIN_ERPNEXT_TIMEOUT": "1,2",
           "YINFIN_OUTBOX_LEASE": "10"}
    with pytest.raises(ValidationError) as err:
        DeliverySettings.from_env(env)
    assert err.value.details["field"] == "YINFIN_OUTBOX_LEASE"
    # 3 look-ups of 3 tries (3 s each) and 2 pauses (1 s), one insert (3 s) = 36 s
    assert "erpnext can take 36 s" in err.value.message and "at least 36" in err.value.message
    assert DeliverySettings.from_env({**env, "YINFIN_OUTBOX_LEASE": "36"}).lease.total_seconds() == 36


def test_the_default_lease_is_raised_to_what_one_message_needs_loudly(caplog) -> None:
    env = {**ERPNEXT, "YINFIN_ERPNEXT_URL": "http://127.0.0.1:9", "YINFIN_ERPNEXT_TIMEOUT": "5,100"}
    with caplog.at_level(logging.WARNING, logger="yinfin_flow.worker.config"):
        s = DeliverySettings.from_env(env)
    assert s.lease.total_seconds() == 2 * (3 * (3 * 105 + 2) + 105)  # twice one message
    assert "YINFIN_OUTBOX_LEASE raised from its default 300 s" in caplog.text
    # a connector that is not configured is not measured (its messages report that)
    assert DeliverySettings.from_env({"YINFIN_ERP_CONNECTOR": "kingdee"}).lease.total_seconds() == 300


@pytest.mark.parametrize(("answer", "status", "says"), [
    (("status", 200, "<html><h1>Service Unavailable</h1></html>"), "pending", "not JSON"),
    (("truncated", 200, '{"data": {"na'), "pending", "cut off"),
    (("status", 200, '[{"name": "ACC-JV-2026-00001"}]'), "dead", "expected a JSON object"),
    (("status", 200, '{"data": {"title": "no name"}}'), "dead", "has no name"),
])
def test_a_malformed_insert_answer_in_a_pass(pg_db, erpnext, answer, status, says) -> None:
    books(pg_db)
    post(pg_db, 1)
    erpnext.path_failures["/api/resource/Journal%20Entry"] = [None, answer]
    r = dispatcher.run_once(pg_db, DeliverySettings.from_env())
    [m] = rows(pg_db)
    assert m.status == status and says in m.last_error and r.attempted == 1
    if status == "pending":
        dispatcher.run_once(pg_db, DeliverySettings.from_env(), now=m.next_attempt_at)
        [m] = rows(pg_db)
        assert m.status == "delivered"
    assert twice(erpnext) == {}


def test_reconcile_reports_erp_duplicates_and_strays_and_remembers_them(
        sqlite_db, erpnext, monkeypatch) -> None:
    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    books(sqlite_db)
    ids = post(sqlite_db, 3)
    dispatcher.drain(sqlite_db, DeliverySettings.from_env())
    assert set(erp_keys(erpnext).values()) == {1}
    docs = erpnext.docs["Journal Entry"]
    # the ERP got the first voucher twice, and holds one of "ours" we never sent
    docs.append({**copy.deepcopy(docs[0]), "name": "ACC-JV-2026-00099"})
    stray = copy.deepcopy(docs[1])
    stray.update(name="ACC-JV-2026-00100",
                 user_remark=stray["user_remark"].replace(f"je{ids[1]}]", "je424242]"))
    docs.append(stray)
    # and reading the third back answers a list where the document belongs
    third = rows(sqlite_db)[2].external_id
    erpnext.path_failures[f"/api/resource/Journal%20Entry/{third}"] = [
        ("status", 200, '[{"name": "x"}]')]

    run = CliRunner().invoke
    out = run(cli, ["reconcile", "--period", "2026-01"])
    assert out.exit_code == 3, out.output
    assert "duplicate" in out.output and "erp_only" in out.output and "unreadable" in out.output
    report = reconcile.reconcile(sqlite_db, "2026-01", "erpnext")
    found = {d.problem: d for d in report.differences}
    assert found["duplicate"].entry_id == ids[0]
    assert "ACC-JV-2026-00001" in found["duplicate"].detail
    assert "ACC-JV-2026-00099" in found["duplicate"].detail
    assert found["erp_only"].erp_voucher_id == "ACC-JV-2026-00100"
    assert "je424242" in found["erp_only"].detail
    assert sorted(d.problem for d in report.differences) == ["duplicate", "erp_only"]  # read ok now

    out = run(cli, ["outbox", "status"])
    assert out.exit_code == 0
    assert "last reconcile with erpnext (2026-01" in out.output
    assert "findings: 1 duplicate, 1 erp_only" in out.output
    body = make_app(sqlite_db).test_client().get("/api/v1/health").get_json()
    last = body["checks"]["connector:erpnext"]["details"]["last_reconcile"]
    assert last["period"] == "2026-01" and last["findings"] == {"duplicate": 1, "erp_only": 1}
    assert last["checked"] == 3 and body["status"] == "ok"  # reported, not a failure
