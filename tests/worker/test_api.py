"""The delivery API, health, reconciliation and the CLI, with the file-drop ERP connector
(a real connector: vouchers are files in a folder, read back for reconciliation)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from yinfin_flow.cli import main as cli
from yinfin_flow.worker import dispatcher, reconcile

from ..e2e.conftest import make_app
from .helpers import books, post, rows

FINANCE = {"X-Yinfin-User": "cfo", "X-Yinfin-Roles": "finance"}
ADMIN = {"X-Yinfin-User": "it", "X-Yinfin-Roles": "admin"}


@pytest.fixture
def file_erp(monkeypatch, tmp_path):
    monkeypatch.setenv("YINFIN_ERP_CONNECTOR", "file")
    monkeypatch.setenv("YINFIN_FILE_DIR", str(tmp_path / "drop"))
    monkeypatch.setenv("YINFIN_FILE_FORMATS", "csv")
    monkeypatch.delenv("YINFIN_OA_CONNECTOR", raising=False)
    return tmp_path / "drop"


@pytest.fixture
def client(sqlite_db, file_erp):
    app = make_app(sqlite_db)
    return app.test_client()


def test_health_reports_redis_and_each_connector(client, sqlite_db):
    books(sqlite_db)
    post(sqlite_db, 2)
    dispatcher.run_once(sqlite_db, limit=1)
    body = client.get("/api/v1/health").get_json()
    assert body["status"] == "ok"
    assert body["checks"]["redis"]["details"] == {"configured": False, "delivery": "in-process"}
    part = body["checks"]["connector:file"]
    assert part["ok"] and part["details"]["backlog"] == 1 and part["details"]["dead_letters"] == 0
    assert part["details"]["last_success"] is not None


def test_dead_letters_and_replay_over_http(client, sqlite_db):
    books(sqlite_db)
    post(sqlite_db, 2)
    from yinfin_flow.db.models.outbox import OutboxMessage

    with sqlite_db.unit_of_work() as s:  # make both dead the way the dispatcher would
        for m in s.query(OutboxMessage):
            m.status, m.last_error = "dead", "disk full"
    assert client.get("/api/v1/dead-letters").status_code == 401
    assert client.get("/api/v1/dead-letters", headers={"X-Yinfin-User": "amy"}).status_code == 403
    got = client.get("/api/v1/dead-letters", headers=FINANCE).get_json()
    assert [m["last_error"] for m in got["items"]] == ["disk full", "disk full"]
    first = got["items"][0]["id"]
    r = client.post(f"/api/v1/dead-letters/{first}/replay", headers=FINANCE)
    assert r.status_code == 200 and r.get_json()["status"] == "pending"
    assert client.post("/api/v1/dead-letters/999999/replay", headers=FINANCE).status_code == 404
    # an id past what the column holds is a 422 naming the field, not a database error
    huge = client.get("/api/v1/dead-letters?after_id=5280901408555892998144", headers=FINANCE)
    assert huge.status_code == 422 and "after_id" in str(huge.get_json()["details"])
    r = client.post("/api/v1/dead-letters/replay", headers=FINANCE, json={"target": "file"})
    assert r.get_json() == {"replayed": 1}
    dispatcher.drain(sqlite_db)
    assert [m.status for m in rows(sqlite_db)] == ["delivered", "delivered"]
    # replaying a delivered message changes nothing
    r = client.post(f"/api/v1/dead-letters/{first}/replay", headers=FINANCE)
    assert r.get_json()["status"] == "delivered"
    # the connectors resource's dead-letter list is the outbox's too
    legacy = client.get("/api/v1/connectors/dead-letters", headers=ADMIN).get_json()
    assert legacy["replay_available"] is True and legacy["items"] == []
    status = client.get("/api/v1/connectors/status", headers=ADMIN).get_json()["items"]
    [f] = [c for c in status if c["name"] == "file"]
    assert (f["role"], f["configured"], f["delivered"], f["backlog"]) == ("erp", True, 2, 0)
    assert client.get("/api/v1/connectors/status", headers=FINANCE).status_code == 403


def test_reconciliation_finds_missing_and_changed_vouchers(client, sqlite_db, file_erp):
    books(sqlite_db)
    ids = post(sqlite_db, 3)
    dispatcher.drain(sqlite_db)
    report = reconcile.reconcile(sqlite_db, "2026-01", "file")
    assert (report.checked, report.matched, report.differences) == (3, 3, [])
    # the ERP loses one voucher and another is booked with a different amount
    msgs = rows(sqlite_db)
    (file_erp / f"{msgs[0].external_id}.csv").unlink()
    changed = file_erp / f"{msgs[1].external_id}.csv"
    text = changed.read_text(encoding="utf-8-sig")
    assert "500.00" in text
    changed.write_text(text.replace("500.00", "499.00"), encoding="utf-8-sig")
    r = client.get("/api/v1/reconciliation?period=2026-01", headers=FINANCE)
    body = r.get_json()
    assert r.status_code == 200 and body["matched"] == 1
    assert [(d["entry_id"], d["problem"]) for d in body["differences"]] == [
        (ids[0], "missing"), (ids[1], "amounts")]
    csv_text = client.get("/api/v1/reconciliation?period=2026-01&format=csv", headers=FINANCE).text
    assert csv_text.splitlines()[0].startswith("period,target,entry_id") and "missing" in csv_text
    bad = client.get("/api/v1/reconciliation?period=2026-13", headers=FINANCE)
    assert bad.status_code == 422 and bad.get_json()["details"]["field"] == "period"


def test_cli_lists_replays_delivers_and_reconciles(sqlite_db, file_erp, monkeypatch, tmp_path):
    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    books(sqlite_db)
    post(sqlite_db, 2)
    run = CliRunner().invoke
    out = run(cli, ["outbox", "list", "--format", "json"])
    assert out.exit_code == 0 and [m["status"] for m in json.loads(out.output)] == ["pending"] * 2
    out = run(cli, ["outbox", "deliver"])
    assert out.exit_code == 0 and "delivered 2" in out.output
    out = run(cli, ["outbox", "status"])
    assert "file" in out.output and out.exit_code == 0
    out = run(cli, ["outbox", "replay"])
    assert out.exit_code == 1 and "message_id" in out.output
    out = run(cli, ["outbox", "replay", "1"])
    assert out.exit_code == 0 and "already delivered" in out.output
    out = run(cli, ["reconcile", "--period", "2026-01", "--xlsx", str(tmp_path / "r.xlsx")])
    assert out.exit_code == 0 and "2 match, 0 difference" in out.output
    (file_erp / f"{rows(sqlite_db)[0].external_id}.csv").unlink()
    out = run(cli, ["reconcile", "--period", "2026-01", "--csv", str(tmp_path / "r.csv")])
    assert out.exit_code == 3 and "missing" in (tmp_path / "r.csv").read_text()


def test_reconciliation_names_an_unknown_connector_or_company(client, sqlite_db, file_erp, monkeypatch):
    from yinfin_flow.worker import jobs
    from yinfin_flow.worker.config import DeliverySettings

    books(sqlite_db)
    post(sqlite_db, 1)
    r = client.get("/api/v1/reconciliation?period=2026-01&connector=kingdee", headers=FINANCE)
    assert r.status_code == 422 and r.get_json()["details"]["field"] == "connector"
    assert "YINFIN_KINGDEE_URL" in r.get_json()["message"]  # what is missing
    r = client.get("/api/v1/reconciliation?period=2026-01&company=NOPE", headers=FINANCE)
    assert r.status_code == 404 and r.get_json()["details"]["field"] == "company"
    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    out = CliRunner().invoke(cli, ["reconcile", "--period", "2026-01", "--connector", "nope"])
    assert out.exit_code == 1 and "error validation_error: connector:" in out.output
    # the scheduled job reports a misconfigured ERP and still reconciles the others
    done = jobs.reconcile(sqlite_db, DeliverySettings(erp=("kingdee", "file")), period="2026-01")
    assert "YINFIN_KINGDEE" in done["kingdee"]["error"] and done["file"]["checked"] == 1
