"""The what-if simulation over HTTP: ``POST …/lines/{id}/simulate`` and the simulation a
reviewer sees on a proposed rule change."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models import BudgetEntry
from yinfin_flow.db.models.security import AuditLog
from yinfin_flow.extension import state

from ..factories import Org, line_req
from .conftest import FINANCE
from .test_api_budget import API, assert_error

HARD_80 = {"mode": "hard", "thresholds": [{"percent": "80", "action": "warn"}, {"percent": "100", "action": "block"}]}


def history(app: Flask, org: Org) -> None:
    """Three requests on RD-APP (600): 300, 200 (83 %), 150 (108 %: only soft lets it pass)."""
    with state(app).db.unit_of_work() as s:
        from yinfin_flow.budget import setup
        setup.set_rule(s, org.child_line, mode="soft", actor="cfo")
    for key, amount in (("a", "300"), ("b", "200"), ("c", "150")):
        with state(app).db.unit_of_work() as s:
            Budgets(s).reserve(key, ("expense", key), [line_req(org.child_line, amount)], actor="amy")


def count(app: Flask, model: type) -> int:
    with state(app).db.unit_of_work(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_simulate_a_hypothetical_rule(app: Flask, client: FlaskClient, org: Org):
    history(app, org)
    entries = count(app, BudgetEntry)
    resp = client.post(f"{API}/lines/{org.child_line}/simulate", json={**HARD_80, "every_request": True},
                       headers=FINANCE)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["line"], body["requests"], body["currency"]) == ("ACME/2026-01/RD-APP/TRAVEL", 3, "CNY")
    assert (body["current"]["rule"]["mode"], body["proposed"]["rule"]["mode"]) == ("soft", "hard")
    assert [r["document"] for r in body["passed_only_under_current"]["items"]] == ["expense:c"]
    assert body["refused"]["count"] == 1 and body["proposed"]["refused_amount"] == "150.0000"
    [warned] = body["warned"]["items"]
    assert (warned["document"], warned["proposed"]["level"], warned["proposed"]["threshold"]) == ("expense:b", "warn", "80")
    assert (body["current"]["peak_usage_percent"], body["proposed"]["peak_usage_percent"]) == ("108.33", "83.33")
    assert body["current"]["first_negative_on"] is not None and body["proposed"]["first_negative_on"] is None
    assert [r["document"] for r in body["every_request"]] == ["expense:a", "expense:b", "expense:c"]
    # read-only: nothing written, not even an audit row
    assert (count(app, BudgetEntry), count(app, AuditLog)) == (entries, 0)

    window = client.post(f"{API}/lines/{org.child_line}/simulate",
                         json={**HARD_80, "from": "2020-01-01", "to": "2020-12-31"}, headers=FINANCE).get_json()
    assert (window["from"], window["to"], window["requests"]) == ("2020-01-01", "2020-12-31", 0)
    assert "every_request" not in window


def test_simulate_errors(client: FlaskClient, org: Org):
    err = assert_error(client.post(f"{API}/lines/{org.child_line}/simulate", json={"mode": "strict"},
                                   headers=FINANCE), 422, "validation_error")
    assert err["details"]["errors"][0]["field"] == "mode"
    assert_error(client.post(f"{API}/lines/999/simulate", json={"mode": "hard"}, headers=FINANCE), 404, "not_found")
    assert_error(client.post(f"{API}/lines/{org.child_line}/simulate",
                             json={"mode": "hard", "from": "2026-02-01", "to": "2026-01-01"}, headers=FINANCE),
                 422, "validation_error")
    assert_error(client.post(f"{API}/lines/{org.child_line}/simulate", json={"mode": "hard"},
                             headers={"X-Yinfin-User": "amy"}), 403, "forbidden")


def test_a_proposed_rule_change_carries_its_simulation(app: Flask, client: FlaskClient, org: Org):
    history(app, org)
    resp = client.put(f"{API}/lines/{org.child_line}/rule", json={**HARD_80, "reason": "tighten"}, headers=FINANCE)
    assert resp.status_code == 202, resp.get_json()
    sim = resp.get_json()["simulation"]
    assert (sim["requests"], sim["refused"]["count"], sim["proposed"]["rule"]["mode"]) == (3, 1, "hard")
    change_id = resp.get_json()["id"]
    seen = client.get(f"{API}/rule-changes/{change_id}", headers=FINANCE).get_json()
    assert seen["simulation"] == sim  # what the reviewer sees before deciding
    listed = client.get(f"{API}/rule-changes?status=pending", headers=FINANCE).get_json()["items"]
    assert "simulation" not in listed[0]
