"""Requests and tasks over HTTP: submit, inbox, budget impact, approve, send back,
resubmit, withdraw; who sees and acts on what; segregation of duties."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from yinfin_flow.extension import state

from ..factories import Org
from ..integration.test_engine_support import expense_form, world

API = "/api/v1"


def as_(user: str, *roles: str) -> dict[str, str]:
    return {"X-Yinfin-User": user, "X-Yinfin-Roles": ",".join(roles)}


@pytest.fixture
def org(app: Flask) -> Org:
    return world(state(app).db)


def submit(client: FlaskClient, org: Org, amount: str = "250.00", who: str = "amy", **headers: str):
    return client.post(f"{API}/requests", headers={**as_(who), **headers}, json={
        "workflow": "expense", "title": "Beijing trip", "company": "ACME",
        "form": expense_form(org.child_line, amount)})


def pending_task(client: FlaskClient, user: str, *roles: str) -> dict:
    [item] = client.get(f"{API}/tasks", headers=as_(user, *roles)).get_json()["items"]
    return item


def test_submit_shows_the_budget_held_and_what_approval_leaves(client: FlaskClient, org: Org):
    resp = submit(client, org)
    assert resp.status_code == 201, resp.get_json()
    req = resp.get_json()
    assert (req["requester"], req["state"], req["current_step"]) == ("amy", "approval", "manager")
    impact = req["budget_impact"]
    assert impact["holds_budget"] is True
    assert [r["pre_encumbered"] for r in impact["reservations"]] == ["250.0000"]
    by_line = {ln["line_id"]: ln for ln in impact["lines"]}
    # The line asked for and its controlling parent both show what is left.
    assert by_line[org.child_line]["held"] == "250.0000"
    assert by_line[org.child_line]["available"] == "350.0000"
    assert by_line[org.child_line]["available_if_approved"] == "350.0000"
    assert by_line[org.parent_line]["available"] == "750.0000"

    task = pending_task(client, "wang")
    detail = client.get(f"{API}/tasks/{task['id']}", headers=as_("wang")).get_json()
    assert detail["request"]["budget_impact"]["lines"] == impact["lines"]


def test_approve_moves_on_and_the_requester_never_approves(client: FlaskClient, org: Org):
    rid = submit(client, org).get_json()["id"]
    task = pending_task(client, "wang")
    # Not amy's task, so amy cannot even see it; nor can bob.
    assert client.post(f"{API}/tasks/{task['id']}/approve", json={}, headers=as_("amy")).status_code == 404
    assert client.get(f"{API}/tasks/{task['id']}", headers=as_("bob")).status_code == 404
    resp = client.post(f"{API}/tasks/{task['id']}/approve", json={"comment": "ok"}, headers=as_("wang"))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["status"] == "approved"
    again = client.post(f"{API}/tasks/{task['id']}/approve", json={}, headers=as_("wang"))
    assert again.status_code == 409 and again.get_json()["code"] == "task_closed"
    fin = pending_task(client, "fay", "finance")
    assert fin["request"]["id"] == rid
    resp = client.post(f"{API}/tasks/{fin['id']}/approve", json={}, headers=as_("fay", "finance"))
    assert resp.get_json()["request"]["state"] == "approved"


def test_strangers_learn_nothing_from_a_task_action(client: FlaskClient, org: Org):
    # The engine answers task_closed or stale_request before it checks who acts; the
    # API must still answer 404 to anyone who is not the assignee or their delegate.
    submit(client, org)
    task = pending_task(client, "wang")
    url = f"{API}/tasks/{task['id']}"
    for body in ({}, {"version": 99}):
        for action, extra in (("approve", {}), ("reject", {"comment": "no"}), ("send-back", {}),
                              ("transfer", {"to": "bob"}), ("add-approver", {"users": ["bob"]})):
            resp = client.post(f"{url}/{action}", json={**body, **extra}, headers=as_("bob"))
            assert (resp.status_code, resp.get_json()["code"]) == (404, "not_found"), (action, body)
    stale = client.post(f"{url}/approve", json={"version": 99}, headers=as_("wang"))
    assert (stale.status_code, stale.get_json()["code"]) == (409, "stale_request")
    assert client.post(f"{url}/approve", json={}, headers=as_("wang")).status_code == 200
    closed = client.post(f"{url}/approve", json={}, headers=as_("bob"))
    assert (closed.status_code, closed.get_json()["code"]) == (404, "not_found")
    missing = client.post(f"{API}/tasks/999999/approve", json={}, headers=as_("wang"))
    assert (missing.status_code, missing.get_json()["code"]) == (404, "not_found")


def test_nobody_approves_their_own_request(client: FlaskClient, org: Org):
    # wang asks; his own manager step goes to lee; transfer it to wang: refused.
    resp = submit(client, org, who="wang")
    task = pending_task(client, "lee")
    refused = client.post(f"{API}/tasks/{task['id']}/transfer", json={"to": "wang"}, headers=as_("lee"))
    assert refused.status_code == 422 and refused.get_json()["details"]["field"] == "to"
    assert resp.status_code == 201


def test_employees_see_only_their_own_requests(client: FlaskClient, org: Org):
    rid = submit(client, org).get_json()["id"]
    submit(client, org, amount="10.00", who="bob")
    assert client.get(f"{API}/requests/{rid}", headers=as_("bob")).status_code == 404
    mine = client.get(f"{API}/requests", headers=as_("bob")).get_json()
    assert [r["requester"] for r in mine["items"]] == ["bob"]
    # wang has a task on amy's request, so he sees it; finance sees everything.
    assert client.get(f"{API}/requests/{rid}", headers=as_("wang")).status_code == 200
    everyone = client.get(f"{API}/requests?state=approval", headers=as_("fay", "finance")).get_json()
    assert everyone["pagination"]["total"] == 2
    only_amy = client.get(f"{API}/requests?requester=amy&page_size=1", headers=as_("fay", "finance"))
    assert [r["id"] for r in only_amy.get_json()["items"]] == [rid]
    assert client.get(f"{API}/requests?submitted_from=2999-01-01",
                      headers=as_("fay", "finance")).get_json()["items"] == []


def test_send_back_resubmit_and_withdraw_release_budget(client: FlaskClient, org: Org):
    rid = submit(client, org).get_json()["id"]
    task = pending_task(client, "wang")
    back = client.post(f"{API}/tasks/{task['id']}/send-back", json={"comment": "receipts?"},
                       headers=as_("wang"))
    assert back.get_json()["request"]["state"] == "sent_back"
    changes = {"lines": expense_form(org.child_line, "100.00")["lines"]}
    again = client.post(f"{API}/requests/{rid}/resubmit", json={"changes": changes}, headers=as_("amy"))
    assert again.status_code == 200, again.get_json()
    held = {ln["line_id"]: ln["held"] for ln in again.get_json()["budget_impact"]["lines"]}
    assert held[org.child_line] == "100.0000"
    assert client.post(f"{API}/requests/{rid}/withdraw", json={}, headers=as_("bob")).status_code == 404
    gone = client.post(f"{API}/requests/{rid}/withdraw", json={"comment": "not needed"}, headers=as_("amy"))
    assert gone.get_json()["state"] == "withdrawn"
    assert gone.get_json()["budget_impact"]["holds_budget"] is False


def test_over_budget_is_409_naming_the_line_and_writes_nothing(client: FlaskClient, org: Org):
    resp = submit(client, org, amount="600.01")
    assert resp.status_code == 409
    body = resp.get_json()
    assert body["code"].endswith("over_budget") and {"line", "asked", "available"} <= set(body["details"])
    assert client.get(f"{API}/requests", headers=as_("amy")).get_json()["items"] == []


def test_a_retried_submit_creates_one_request(client: FlaskClient, org: Org):
    first = submit(client, org, **{"Idempotency-Key": "trip-1"})
    again = submit(client, org, **{"Idempotency-Key": "trip-1"})
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (again.status_code, again.get_json()) == (first.status_code, first.get_json())
    other = submit(client, org, amount="1.00", **{"Idempotency-Key": "trip-1"})
    assert other.status_code == 422 and other.get_json()["code"] == "idempotency_key_reused"
    assert client.get(f"{API}/requests", headers=as_("amy")).get_json()["pagination"]["total"] == 1


def test_comments_and_urge(client: FlaskClient, org: Org):
    rid = submit(client, org).get_json()["id"]
    task = pending_task(client, "wang")
    resp = client.post(f"{API}/tasks/{task['id']}/comment", json={"text": "checking"}, headers=as_("wang"))
    assert resp.status_code == 201
    assert resp.get_json()["request"]["history"][-1]["action"] == "comment"
    urged = client.post(f"{API}/tasks/{task['id']}/urge", headers=as_("amy")).get_json()
    assert urged == {"urged_tasks": [task["id"]]}
    assert client.post(f"{API}/requests/{rid}/urge", headers=as_("bob")).status_code == 404
    trail = client.get(f"{API}/requests/{rid}/trail", headers=as_("amy")).get_json()["trail"]
    assert trail["budget_movements"][0]["entries"][0]["amount"] == "250.00"


def test_a_deputy_sees_and_acts_on_delegated_tasks(client: FlaskClient, app: Flask, org: Org):
    from datetime import timedelta

    from yinfin_flow.db.types import utcnow
    from yinfin_flow.engine import directory

    rid = submit(client, org).get_json()["id"]
    task = pending_task(client, "wang")
    assert client.get(f"{API}/tasks/{task['id']}", headers=as_("pat")).status_code == 404
    today = utcnow().date()  # wang goes on leave after the task reached him
    with state(app).db.unit_of_work() as s:
        directory.delegate(s, "wang", "pat", today - timedelta(days=1), today + timedelta(days=1),
                           actor="wang")
    assert client.get(f"{API}/requests/{rid}", headers=as_("pat")).status_code == 200
    assert client.get(f"{API}/tasks/{task['id']}", headers=as_("pat")).status_code == 200
    assert client.get(f"{API}/tasks/{task['id']}", headers=as_("quinn")).status_code == 404
    done = client.post(f"{API}/tasks/{task['id']}/approve", json={}, headers=as_("pat"))
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "approved"
    history = client.get(f"{API}/requests/{rid}", headers=as_("amy")).get_json()["history"]
    assert [(h["actor"], h["on_behalf_of"]) for h in history if h["action"] == "approve"] == [("pat", "wang")]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_actions_answer_shows_the_same_impact_as_reading_it_again(request: pytest.FixtureRequest,
                                                                     backend: str):
    # The manager's approval answers from what its re-check read (no budget write
    # followed); the finance approval moves the reservation to actual, so its answer
    # reads again. Either way the answer equals what a fresh GET shows, and another
    # request on the same line in between shows in both.
    from .conftest import make_app

    db = request.getfixturevalue("sqlite_db" if backend == "sqlite" else "pg_db")
    client = make_app(db).test_client()
    org = world(db)
    rid = submit(client, org).get_json()["id"]
    submit(client, org, amount="100.00", who="bob")
    for who, roles in (("wang", ()), ("fay", ("finance",))):
        task = next(t for t in client.get(f"{API}/tasks", headers=as_(who, *roles)).get_json()["items"]
                    if t["request"]["id"] == rid)
        resp = client.post(f"{API}/tasks/{task['id']}/approve", json={}, headers=as_(who, *roles))
        assert resp.status_code == 200, resp.get_json()
        shown = resp.get_json()["request"]["budget_impact"]
        again = client.get(f"{API}/requests/{rid}", headers=as_("amy")).get_json()["budget_impact"]
        assert shown == again
    [res] = shown["reservations"]
    assert (res["pre_encumbered"], res["actual"]) == ("0.0000", "250.0000")


def test_a_purchase_is_invoiced_in_parts_over_http(client: FlaskClient, app: Flask, org: Org):
    from ..integration.test_engine_documents import approve_all

    db = state(app).db
    resp = client.post(f"{API}/requests", headers=as_("amy"), json={
        "workflow": "procurement", "title": "laptops", "company": "ACME",
        "form": {**expense_form(org.child_line, "500.00"), "partner": "EMP-amy"}})
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]
    approve_all(db, rid)
    for event in ("issue_po", "receive"):
        r = client.post(f"{API}/requests/{rid}/events", headers=as_("buyer", "finance"), json={"event": event})
        assert r.status_code == 200, r.get_json()
    bad = client.post(f"{API}/requests/{rid}/events", headers=as_("fay", "finance"), json={
        "event": "match_invoice", "invoice": "INV-1", "lines": [{"ref": "1", "amount": 200}]})
    assert bad.status_code == 422 and "lines" in str(bad.get_json()["details"])
    r = client.post(f"{API}/requests/{rid}/events", headers=as_("fay", "finance"), json={
        "event": "match_invoice", "invoice": "INV-1", "lines": [{"ref": "1", "amount": "200.00"}]})
    assert r.status_code == 200, r.get_json()
    [held] = r.get_json()["budget_impact"]["reservations"]
    assert (held["encumbered"], held["actual"]) == ("300.0000", "200.0000")
    r = client.post(f"{API}/requests/{rid}/events", headers=as_("fay", "finance"), json={"event": "pay"})
    assert r.status_code == 200, r.get_json()
    [held] = r.get_json()["budget_impact"]["reservations"]
    assert (r.get_json()["state"], held["encumbered"], held["actual"]) == ("closed", "0.0000", "200.0000")
