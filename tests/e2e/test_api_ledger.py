"""The books, definitions and connectors over HTTP: vouchers (list, get, reverse),
periods, reports, workflow definitions (read, validate a draft), connector status
and the dead-letter seam."""

from __future__ import annotations

from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient

from yinfin_flow.extension import state

from ..factories import Org
from ..integration.test_engine_support import expense_form, world

API = "/api/v1"
FIN = {"X-Yinfin-User": "fay", "X-Yinfin-Roles": "finance"}
ADMIN = {"X-Yinfin-User": "admin", "X-Yinfin-Roles": "admin"}


@pytest.fixture
def org(app: Flask) -> Org:
    return world(state(app).db)


def approved_expense(client: FlaskClient, org: Org) -> int:
    rid = client.post(f"{API}/requests", headers={"X-Yinfin-User": "amy"}, json={
        "workflow": "expense", "title": "trip", "company": "ACME",
        "form": expense_form(org.child_line, "80.00")}).get_json()["id"]
    for who, roles in (("wang", ""), ("fay", "finance")):
        h = {"X-Yinfin-User": who, "X-Yinfin-Roles": roles}
        [task] = client.get(f"{API}/tasks", headers=h).get_json()["items"]
        assert client.post(f"{API}/tasks/{task['id']}/approve", json={}, headers=h).status_code == 200
    return rid


def test_vouchers_list_get_and_reverse_once(client: FlaskClient, org: Org):
    rid = approved_expense(client, org)
    page = client.get(f"{API}/journal/entries?company=ACME", headers=FIN).get_json()
    [entry] = [e for e in page["items"] if e["document"] == f"expense:{rid}"]
    assert entry["total"] == "80.0000"
    one = client.get(f"{API}/journal/entries/{entry['id']}", headers=FIN).get_json()
    assert sum(Decimal(ln["debit"]) for ln in one["lines"]) == Decimal("80")
    assert sum(Decimal(ln["credit"]) for ln in one["lines"]) == Decimal("80")
    rev = client.post(f"{API}/journal/entries/{entry['id']}/reverse", json={"reason": "duplicate"},
                      headers=FIN)
    assert rev.status_code == 201, rev.get_json()
    again = client.post(f"{API}/journal/entries/{entry['id']}/reverse", json={"reason": "again"},
                        headers=FIN)
    # One reversal per voucher: a second request answers with the first reversal.
    assert again.status_code == 201 and again.get_json()["entry_id"] == rev.get_json()["entry_id"]
    assert client.get(f"{API}/journal/entries/999999", headers=FIN).status_code == 404


def test_periods_and_reports(client: FlaskClient, org: Org):
    approved_expense(client, org)
    periods = client.get(f"{API}/periods?company=ACME", headers=FIN).get_json()["items"]
    assert periods[0]["code"] == "2026-01" and periods[0]["status"] == "open"
    early = client.post(f"{API}/periods/2026-02/close", json={"company": "ACME"}, headers=FIN)
    assert early.status_code == 409, early.get_json()
    assert early.get_json()["details"] == {"field": "period", "period": "2026-02", "blocking": "2026-01"}
    assert client.post(f"{API}/periods/2026-01/close", json={"company": "ACME"}, headers=FIN).status_code == 200
    closed = client.post(f"{API}/periods/2026-02/close", json={"company": "ACME"}, headers=FIN)
    assert closed.status_code == 200 and closed.get_json()["closed_by"] == "fay"
    under = client.post(f"{API}/periods/2026-01/open", json={"company": "ACME"}, headers=FIN)
    assert under.status_code == 409 and under.get_json()["details"]["blocking"] == "2026-02"
    reopened = client.post(f"{API}/periods/2026-02/open", json={"company": "ACME"}, headers=FIN)
    assert reopened.get_json()["status"] == "open"
    bad = client.post(f"{API}/periods/2026-13/open", json={"company": "ACME"}, headers=FIN)
    assert bad.status_code == 422
    tb = client.get(f"{API}/reports/trial-balance?company=ACME&period=2026-01", headers=FIN).get_json()
    assert tb["report"]
    bva = client.get(f"{API}/reports/budget-vs-actual?company=ACME&year=2026", headers=ADMIN)
    assert bva.status_code == 200 and bva.get_json()["report"]


def test_close_through_a_month_in_one_call(app: Flask, client: FlaskClient, org: Org):
    rid = approved_expense(client, org)
    [entry] = [e for e in client.get(f"{API}/journal/entries?company=ACME", headers=FIN).get_json()["items"]
               if e["document"] == f"expense:{rid}"]
    from yinfin_flow.ledger import sync

    with state(app).db.unit_of_work() as s:
        sync.mark(s, entry["id"], "pending")  # queued for the ERP, not there yet
    through = entry["period"]  # the voucher's month (posted today)
    blocked = client.post(f"{API}/periods/close", json={"company": "ACME", "through": through}, headers=FIN)
    assert blocked.status_code == 409, blocked.get_json()
    body = blocked.get_json()
    assert body["code"] == "period_close_blocked"
    assert body["details"]["blocking"] == [{"period": entry["period"], "unsynced": [
        {"entry_id": entry["id"], "voucher": entry["voucher"], "status": "pending"}]}]
    with state(app).db.unit_of_work() as s:
        sync.mark(s, entry["id"], "synced", erp_voucher_id="K3-1")
    done = client.post(f"{API}/periods/close", json={"company": "ACME", "through": through}, headers=FIN)
    assert done.status_code == 200, done.get_json()
    out = done.get_json()
    months = [p["code"] for p in out["items"]]
    assert [p["code"] for p in out["closed"]] == [m for m in months if m <= through] and through in months
    assert all(p["closed_by"] == "fay" for p in out["closed"])
    assert {p["code"]: p["status"] for p in out["items"]} == {m: "closed" if m <= through else "open" for m in months}
    bad = client.post(f"{API}/periods/close", json={"company": "ACME", "through": "2026-3"}, headers=FIN)
    assert bad.status_code == 422 and bad.get_json()["details"]["errors"][0]["field"] == "through"


def test_workflow_definitions_are_read_and_drafts_validated(client: FlaskClient):
    names = [w["name"] for w in client.get(f"{API}/workflows").get_json()["items"]]
    assert "expense" in names
    expense = client.get(f"{API}/workflows/expense").get_json()
    assert expense["problems"] == [] and "manager" in [s["id"] for st in expense["states"] for s in st["steps"]]
    assert client.get(f"{API}/workflows/nope").status_code == 404
    ok = client.post(f"{API}/workflows/validate", json={"yaml": expense["source"]}, headers=ADMIN)
    assert ok.get_json()["valid"] is True
    broken = client.post(f"{API}/workflows/validate", json={"yaml": "name: x\nstates: 3\n"}, headers=ADMIN)
    body = broken.get_json()
    assert broken.status_code == 200 and body["valid"] is False and body["errors"][0]["problem"]


def test_connectors_status_and_the_dead_letter_seam(app: Flask, client: FlaskClient,
                                                    monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("YINFIN_WEAVER_SECRET", "x")
    items = {c["name"]: c for c in client.get(f"{API}/connectors", headers=ADMIN).get_json()["items"]}
    assert items["weaver"] == {"name": "weaver", "kind": "oa", "configured": True}
    assert items["kingdee"]["configured"] is False
    # The outbox plugs itself in; without it the seam says so instead of pretending.
    letters = client.get(f"{API}/connectors/dead-letters", headers=ADMIN).get_json()
    assert letters["replay_available"] is True and letters["items"] == []
    monkeypatch.delitem(app.extensions, "yinfin_flow.dead_letters")
    letters = client.get(f"{API}/connectors/dead-letters", headers=ADMIN).get_json()
    assert letters["replay_available"] is False
    replay = client.post(f"{API}/connectors/dead-letters/1/replay", headers=ADMIN)
    assert (replay.status_code, replay.get_json()["code"]) == (501, "outbox_not_available")
