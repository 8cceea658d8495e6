"""Four eyes on budget journals over HTTP: adjustments, transfers and imports answer 202
with a proposal; another finance user approves; the proposer cannot; stale proposals and
people outside the directory are refused; ``off`` books at once."""

from __future__ import annotations

import base64

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from yinfin_flow.db.models.security import AuditLog
from yinfin_flow.extension import state

from ..factories import Org
from .conftest import FINANCE
from .test_api_budget import API, REVIEWER, assert_error

PROPOSALS = f"{API}/journal-proposals"


def budget_of(client: FlaskClient, line_id: int) -> str:
    return client.get(f"{API}/lines/{line_id}").get_json()["buckets"]["budget"]


def test_an_adjustment_is_a_proposal_another_finance_user_approves(app: Flask, client: FlaskClient, org: Org):
    body = {"line_id": org.child_line, "amount": "150", "currency": "CNY", "reason": "offsite"}
    resp = client.post(f"{API}/adjustments", json=body, headers=FINANCE)
    assert resp.status_code == 202, resp.get_json()
    p = resp.get_json()
    assert (p["status"], p["kind"], p["proposed_by"], p["journal_kind"]) == ("pending", "adjustment", "cfo",
                                                                             "adjustment")
    assert p["changes"] == [{"line_id": org.child_line, "line": "ACME/2026-01/RD-APP/TRAVEL", "currency": "CNY",
                             "budget_before": "600.0000", "delta": "150.0000", "budget_after": "750.0000"}]
    assert budget_of(client, org.child_line) == "600.0000"

    queue = client.get(f"{PROPOSALS}?status=pending", headers=REVIEWER).get_json()
    assert [i["id"] for i in queue["items"]] == [p["id"]]
    err = assert_error(client.post(f"{PROPOSALS}/{p['id']}/approve", json={}, headers=FINANCE),
                       403, "segregation_of_duties")
    assert err["details"]["proposed_by"] == "cfo"
    stranger = {"X-Yinfin-User": "mallory", "X-Yinfin-Roles": "finance"}  # claims the role, not in the directory
    assert_error(client.post(f"{PROPOSALS}/{p['id']}/approve", json={}, headers=stranger), 403, "unknown_person")
    assert budget_of(client, org.child_line) == "600.0000"

    done = client.post(f"{PROPOSALS}/{p['id']}/approve", json={"comment": "fine"}, headers=REVIEWER)
    assert done.status_code == 200, done.get_json()
    assert (done.get_json()["status"], done.get_json()["decided_by"]) == ("approved", "frank")
    assert budget_of(client, org.child_line) == "750.0000"
    entry = client.get(f"{API}/lines/{org.child_line}/entries?page_size=1").get_json()["items"][0]
    assert (entry["actor"], entry["amount"]) == ("cfo", "150.0000")
    assert "approved by frank" in entry["reason"]
    assert_error(client.post(f"{PROPOSALS}/{p['id']}/approve", json={}, headers=REVIEWER), 409,
                 "budget_journal_not_pending")
    with state(app).db.unit_of_work(readonly=True) as s:
        audit = [(a.actor, a.endpoint, a.status, a.detail) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    approve = "budget.approve_journal_proposal"
    assert audit == [("cfo", "budget.post_adjustment", 202, None),
                     ("cfo", approve, 403, "segregation_of_duties"),
                     ("mallory", approve, 403, "unknown_person"),
                     ("frank", approve, 200, None),
                     ("frank", approve, 409, "budget_journal_not_pending")]


def test_transfer_reject_withdraw_and_stale(client: FlaskClient, org: Org):
    body = {"from_line_id": org.child_line, "to_line_id": org.sibling_line, "amount": "100",
            "currency": "CNY", "reason": "rebalance"}
    first = client.post(f"{API}/transfers", json=body, headers=FINANCE).get_json()
    assert [c["budget_after"] for c in first["changes"]] == ["500.0000", "700.0000"]
    assert_error(client.post(f"{PROPOSALS}/{first['id']}/reject", json={}, headers=REVIEWER), 422,
                 "validation_error")
    assert_error(client.post(f"{PROPOSALS}/{first['id']}/withdraw", json={}, headers=REVIEWER), 403,
                 "forbidden")
    rejected = client.post(f"{PROPOSALS}/{first['id']}/reject", json={"comment": "not now"}, headers=REVIEWER)
    assert rejected.get_json()["status"] == "rejected"

    a = client.post(f"{API}/transfers", json=body, headers=FINANCE).get_json()
    b = client.post(f"{API}/adjustments", headers=REVIEWER, json={
        "line_id": org.sibling_line, "amount": "-50", "currency": "CNY", "reason": "cut"}).get_json()
    assert client.post(f"{PROPOSALS}/{a['id']}/approve", json={}, headers=REVIEWER).status_code == 200
    assert client.get(f"{PROPOSALS}/{b['id']}", headers=FINANCE).get_json()["status"] == "stale"
    assert_error(client.post(f"{PROPOSALS}/{b['id']}/approve", json={}, headers=FINANCE), 409,
                 "budget_journal_stale")
    assert (budget_of(client, org.child_line), budget_of(client, org.sibling_line)) == ("500.0000", "700.0000")

    c = client.post(f"{API}/adjustments", headers=FINANCE, json={
        "line_id": org.office_line, "amount": "1", "currency": "CNY", "reason": "pens"}).get_json()
    assert client.post(f"{PROPOSALS}/{c['id']}/withdraw", json={}, headers=FINANCE).get_json()["status"] == "withdrawn"
    assert_error(client.post(f"{API}/transfers", json={**body, "amount": "10000"}, headers=FINANCE), 409,
                 "negative_budget")  # refused when proposed, as it would be when approved


def csv_body(text: str, **extra: object) -> dict:
    return {"filename": "budgets.csv", "content": base64.b64encode(text.encode()).decode(), **extra}


def test_an_import_is_one_proposal_with_its_plan(client: FlaskClient, org: Org):
    text = ("company,period,cost_centre,item,amount\n"
            "ACME,2026-01,RD-APP,TRAVEL,650\nACME,2026-01,RD,OFFICE,100\nACME,2026-02,RD,TRAVEL,900\n")
    dry = client.post(f"{API}/imports", json=csv_body(text, dry_run=True), headers=FINANCE)
    assert dry.status_code == 200, dry.get_json()
    plan = dry.get_json()["plan"]
    assert (plan["created"], plan["unchanged"]) == (["ACME/2026-02/RD/TRAVEL"], 1)
    assert plan["adjusted"] == [{"line": "ACME/2026-01/RD-APP/TRAVEL", "delta": "50.0000", "currency": "CNY"}]
    proposed = client.post(f"{API}/imports", json=csv_body(text, reason="Q1 plan"), headers=FINANCE)
    assert proposed.status_code == 202, proposed.get_json()
    p = proposed.get_json()
    assert (p["kind"], p["plan"], p["reason"], p["source"]) == ("import", plan, "Q1 plan", "budgets.csv")
    assert budget_of(client, org.child_line) == "600.0000"
    assert client.post(f"{PROPOSALS}/{p['id']}/approve", json={}, headers=REVIEWER).status_code == 200
    assert budget_of(client, org.child_line) == "650.0000"

    bad = client.post(f"{API}/imports", json=csv_body("company,period,cost_centre,item,amount\n"
                                                       "ACME,2026-01,NOPE,TRAVEL,-1\n"), headers=FINANCE)
    err = assert_error(bad, 422, "import_invalid")
    assert {(e["row"], e["column"]) for e in err["details"]["errors"]} >= {(2, "cost_centre")}
    assert_error(client.post(f"{API}/imports", json={**csv_body("x"), "filename": "b.txt"}, headers=FINANCE),
                 422, "validation_error")
    assert_error(client.post(f"{API}/imports", json={**csv_body("x"), "content": "!!"}, headers=FINANCE),
                 422, "validation_error")


def test_off_books_at_once_but_only_for_people_of_the_directory(sqlite_db):
    from ..factories import add_people, org_in
    from .conftest import make_app

    app = make_app(sqlite_db, budget_journal_approval="off")
    client = app.test_client()
    org = org_in(sqlite_db)
    with sqlite_db.unit_of_work() as s:
        add_people(s, "cfo")
    body = {"line_id": org.office_line, "amount": "5", "currency": "CNY", "reason": "pens"}
    resp = client.post(f"{API}/adjustments", json=body, headers=FINANCE)
    assert resp.status_code == 201 and resp.get_json()["lines"][0]["buckets"]["budget"] == "105.0000"
    assert_error(client.post(f"{API}/adjustments", json=body, headers=REVIEWER), 403, "unknown_person")
    text = "company,period,cost_centre,item,amount\nACME,2026-01,RD,OFFICE,120\n"
    booked = client.post(f"{API}/imports", json=csv_body(text), headers=FINANCE)
    assert booked.status_code == 201 and booked.get_json()["plan"]["adjusted"][0]["delta"] == "15.0000"
