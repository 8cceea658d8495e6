"""Four eyes on control rules over HTTP: propose (``PUT …/rule`` answers 202), approve by
another finance user, reject, withdraw, stale and over-budget refusals, the ``off``
setting, idempotency and the audit rows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import ControlRuleRow
from yinfin_flow.db.models.security import AuditLog
from yinfin_flow.extension import state

from ..factories import Org, line_req, org_in
from .conftest import FINANCE, make_app
from .test_api_budget import API, REVIEWER, assert_error

CHANGES = f"{API}/rule-changes"


def own_rule(app: Flask, line_id: int) -> ControlRuleRow | None:
    with state(app).db.unit_of_work(readonly=True) as s:
        row = s.scalar(select(ControlRuleRow).where(ControlRuleRow.line_id == line_id))
        if row is not None:
            s.expunge(row)
        return row


def propose(client: FlaskClient, line_id: int, **rule: object) -> dict:
    resp = client.put(f"{API}/lines/{line_id}/rule", headers=FINANCE,
                      json={"mode": "soft", "reason": "Q1 travel", **rule})
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()


def test_put_rule_proposes_and_another_finance_user_applies_it(app: Flask, client: FlaskClient, org: Org):
    change = propose(client, org.child_line, tolerance_percent="5", subtree=False)
    assert (change["status"], change["proposed_by"], change["reason"]) == ("pending", "cfo", "Q1 travel")
    assert change["rule"]["mode"] == "soft" and change["rule"]["subtree"] is False
    assert change["previous"] is None and change["line"] == "ACME/2026-01/RD-APP/TRAVEL"
    assert client.get(f"{API}/lines/{org.child_line}").get_json()["rule"]["inherited"] is True

    err = assert_error(client.post(f"{CHANGES}/{change['id']}/approve", json={}, headers=FINANCE),
                       403, "segregation_of_duties")
    assert err["details"]["proposed_by"] == "cfo"
    assert own_rule(app, org.child_line) is None

    resp = client.post(f"{CHANGES}/{change['id']}/approve", json={"comment": "fine"}, headers=REVIEWER)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["status"], body["decided_by"], body["comment"]) == ("approved", "frank", "fine")
    rule = client.get(f"{API}/lines/{org.child_line}").get_json()["rule"]
    assert (rule["mode"], rule["defined_on_line_id"], Decimal(rule["tolerance_percent"])) == (
        "soft", org.child_line, 5)
    row = own_rule(app, org.child_line)
    assert (row.updated_by, row.approved_by) == ("cfo", "frank")
    assert client.get(f"{CHANGES}/{change['id']}", headers=REVIEWER).get_json() == body

    with state(app).db.unit_of_work(readonly=True) as s:
        audit = [(a.actor, a.endpoint, a.status, a.detail) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert audit == [("cfo", "budget.put_rule", 202, None),
                     ("cfo", "budget.approve_rule_change", 403, "segregation_of_duties"),
                     ("frank", "budget.approve_rule_change", 200, None)]


def test_propose_through_the_collection_reject_and_withdraw(app: Flask, client: FlaskClient, org: Org):
    body = {"line_id": org.office_line, "mode": "track", "reason": "pilot"}
    resp = client.post(CHANGES, json=body, headers={**FINANCE, "Idempotency-Key": "rc-1"})
    assert resp.status_code == 201, resp.get_json()
    first = resp.get_json()
    again = client.post(CHANGES, json=body, headers={**FINANCE, "Idempotency-Key": "rc-1"})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json() == first
    err = assert_error(client.post(CHANGES, json=body, headers=FINANCE), 409, "rule_change_pending")
    assert err["details"]["change_id"] == first["id"]
    assert_error(client.post(CHANGES, json={"line_id": org.office_line, "mode": "track"}, headers=FINANCE),
                 422, "validation_error")  # a reason is required

    path = f"{CHANGES}/{first['id']}"
    assert_error(client.post(f"{path}/reject", json={}, headers=REVIEWER), 422, "validation_error")
    assert_error(client.post(f"{path}/reject", json={"comment": "no"}, headers=FINANCE), 403,
                 "segregation_of_duties")
    assert_error(client.post(f"{path}/withdraw", json={}, headers=REVIEWER), 403, "forbidden")
    resp = client.post(f"{path}/reject", json={"comment": "not this year"}, headers=REVIEWER)
    assert resp.status_code == 200 and resp.get_json()["status"] == "rejected"
    assert own_rule(app, org.office_line) is None
    assert_error(client.post(f"{path}/approve", json={}, headers=REVIEWER), 409, "rule_change_not_pending")

    second = client.post(CHANGES, json=body, headers=FINANCE).get_json()
    resp = client.post(f"{CHANGES}/{second['id']}/withdraw", json={"comment": "typo"}, headers=FINANCE)
    assert resp.status_code == 200 and resp.get_json()["status"] == "withdrawn"
    assert own_rule(app, org.office_line) is None

    listed = client.get(f"{CHANGES}?line_id={org.office_line}", headers=REVIEWER).get_json()
    assert [c["id"] for c in listed["items"]] == [second["id"], first["id"]]
    assert listed["pagination"]["total"] == 2
    assert client.get(f"{CHANGES}?status=pending", headers=REVIEWER).get_json()["items"] == []
    assert_error(client.get(f"{CHANGES}?status=maybe", headers=REVIEWER), 422, "validation_error")
    assert_error(client.get(f"{CHANGES}/999", headers=REVIEWER), 404, "not_found")
    assert_error(client.post(f"{CHANGES}/999/approve", json={}, headers=REVIEWER), 404, "not_found")
    assert_error(client.get(CHANGES), 403, "forbidden")  # employees do not see them


def test_a_stale_change_is_refused(app: Flask, client: FlaskClient, org: Org):
    change = propose(client, org.child_line)
    with state(app).db.unit_of_work() as s:  # the rule changes under the proposal
        setup.set_rule(s, org.child_line, mode="track", actor="zhou.cfo")
    err = assert_error(client.post(f"{CHANGES}/{change['id']}/approve", json={}, headers=REVIEWER),
                       409, "rule_change_stale")
    assert err["details"]["change_id"] == change["id"]
    assert own_rule(app, org.child_line).mode == "track"
    assert client.get(f"{CHANGES}/{change['id']}", headers=REVIEWER).get_json()["status"] == "stale"


def test_an_approval_that_would_break_hard_control_fails_cleanly(app: Flask, client: FlaskClient, org: Org):
    db = state(app).db
    with db.unit_of_work() as s:
        setup.set_rule(s, org.office_line, mode="soft", actor="cfo")
        Budgets(s).reserve("k", ("expense", "1"), [line_req(org.office_line, "150")], actor="amy")
    change = propose(client, org.office_line, mode="hard")
    err = assert_error(client.post(f"{CHANGES}/{change['id']}/approve", json={}, headers=REVIEWER),
                       409, "conflict")
    assert "over budget" in err["message"] and err["details"]["line"] == "ACME/2026-01/RD/OFFICE"
    assert own_rule(app, org.office_line).mode == "soft"
    assert client.get(f"{CHANGES}/{change['id']}", headers=REVIEWER).get_json()["status"] == "pending"


def test_off_applies_at_once(sqlite_db: Database):
    app = make_app(sqlite_db, rule_change_approval="off")
    org = org_in(sqlite_db)
    client = app.test_client()
    resp = client.put(f"{API}/lines/{org.child_line}/rule", headers=FINANCE, json={"mode": "track"})
    assert resp.status_code == 200 and resp.get_json()["mode"] == "track"
    row = own_rule(app, org.child_line)
    assert (row.mode, row.updated_by, row.approved_by) == ("track", "cfo", None)


@pytest.mark.usefixtures("org")
def test_the_openapi_document_describes_both_answers_of_put_rule(client: FlaskClient):
    spec = client.get("/api/v1/openapi.json").get_json()
    put = spec["paths"]["/api/v1/budget/lines/{line_id}/rule"]["put"]["responses"]
    assert {"200", "202"} <= set(put)
    assert "/api/v1/budget/rule-changes/{change_id}/approve" in spec["paths"]


def test_postgres_approval_and_refusals(pg_db: Database):
    app = make_app(pg_db)
    org = org_in(pg_db)
    client = app.test_client()
    change = propose(client, org.child_line, mode="hard", tolerance_amount="12.50")
    assert_error(client.post(f"{CHANGES}/{change['id']}/approve", json={}, headers=FINANCE), 403,
                 "segregation_of_duties")
    resp = client.post(f"{CHANGES}/{change['id']}/approve", json={}, headers=REVIEWER)
    assert resp.status_code == 200, resp.get_json()
    row = own_rule(app, org.child_line)
    assert (row.mode, row.tolerance_amount, row.approved_by, row.version) == (
        "hard", Decimal("12.5000"), "frank", 1)
