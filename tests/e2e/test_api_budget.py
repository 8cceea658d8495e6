"""The budget resources over HTTP: every endpoint's success and its main errors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient

from yinfin_flow.budget.service import Budgets
from yinfin_flow.budget.verify import verify
from yinfin_flow.db.engine import Database
from yinfin_flow.extension import state

from ..factories import Org, add_people, line_req, org_in
from .conftest import FINANCE, make_app

API = "/api/v1/budget"
REVIEWER = {"X-Yinfin-User": "frank", "X-Yinfin-Roles": "finance"}  # finance, not the proposer


@pytest.fixture
def app(sqlite_db: Database) -> Flask:
    """Budget journals book at once here (``YINFIN_BUDGET_JOURNAL_APPROVAL=off``): these tests
    are about the journals themselves; their four eyes are in ``test_api_journal_proposals``."""
    return make_app(sqlite_db, budget_journal_approval="off")


def preview_body(line_id: int, amount: str, **extra: object) -> dict:
    return {"lines": [{"ref": "1", "amount": amount, "currency": "CNY",
                       "budget_date": "2026-01-15", "line_id": line_id, **extra}]}


def set_rule(client: FlaskClient, line_id: int, rule: dict) -> None:
    """A rule change as finance makes it: one finance user proposes, another approves."""
    resp = client.put(f"{API}/lines/{line_id}/rule", json=rule, headers=FINANCE)
    assert resp.status_code == 202, resp.get_json()
    resp = client.post(f"{API}/rule-changes/{resp.get_json()['id']}/approve", json={},
                       headers=REVIEWER)
    assert resp.status_code == 200, resp.get_json()


def assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    return body


# -- reads ---------------------------------------------------------------------------


def test_list_lines_filters_and_paginates(client: FlaskClient, org: Org):
    body = client.get(f"{API}/lines").get_json()
    assert body["pagination"] == {"page": 1, "page_size": 50, "total": 4, "pages": 1}
    child = next(i for i in body["items"] if i["id"] == org.child_line)
    assert child["dimensions"]["cost_centre"] == "RD-APP"
    assert child["buckets"]["budget"] == "600.0000"
    assert child["buckets"]["available"] == "600.0000"
    assert child["currency"] == "CNY"

    travel = client.get(f"{API}/lines?item=TRAVEL&cost_centre=RD-WEB").get_json()
    assert [i["id"] for i in travel["items"]] == [org.sibling_line]

    page2 = client.get(f"{API}/lines?page=2&page_size=3").get_json()
    assert page2["pagination"] == {"page": 2, "page_size": 3, "total": 4, "pages": 2}
    assert len(page2["items"]) == 1

    assert client.get(f"{API}/lines?status=hold").get_json()["items"] == []
    assert client.get(f"{API}/lines?company=NOPE").get_json()["pagination"]["total"] == 0


def test_list_lines_rejects_bad_query(client: FlaskClient, org: Org):
    body = assert_error(client.get(f"{API}/lines?page_size=1000&status=sleeping"), 422,
                        "validation_error")
    fields = {e["field"] for e in body["details"]["errors"]}
    assert fields == {"page_size", "status"}
    assert {e["location"] for e in body["details"]["errors"]} == {"query"}


def test_get_line_shows_dimensions_buckets_rule_and_controlling_lines(client: FlaskClient, org: Org):
    set_rule(client, org.parent_line, {"mode": "soft", "subtree": False})
    body = client.get(f"{API}/lines/{org.child_line}").get_json()
    assert body["dimensions"]["period"] == "2026-01"
    assert body["path"] == [org.parent_line, org.child_line]
    assert body["rule"]["mode"] == "hard" and body["rule"]["defined_on_line_id"] is None
    assert body["rule"]["inherited"] is True  # the shipped default
    assert [(c["line_id"], c["mode"], c["own_line"]) for c in body["controlled_by"]] == [
        (org.child_line, "hard", True), (org.parent_line, "soft", False),
    ]
    assert body["controlled_by"][1]["buckets"]["available"] == "1000.0000"


def test_get_missing_line_is_404(client: FlaskClient, org: Org):
    body = assert_error(client.get(f"{API}/lines/999"), 404, "not_found")
    assert body["details"]["field"] == "line_id"
    assert_error(client.get(f"{API}/lines/999/entries"), 404, "not_found")


def test_tree_nests_children_under_parents(client: FlaskClient, org: Org):
    roots = client.get(f"{API}/tree").get_json()["roots"]
    parent = next(r for r in roots if r["id"] == org.parent_line)
    assert sorted(c["id"] for c in parent["children"]) == [org.child_line, org.sibling_line]
    assert {r["id"] for r in roots} == {org.parent_line, org.office_line}
    assert client.get(f"{API}/tree?period=2025-12").get_json() == {"roots": []}


def test_entries_are_listed_newest_first_with_their_movement(client: FlaskClient, org: Org):
    resp = client.post(f"{API}/adjustments", headers=FINANCE, json={
        "line_id": org.child_line, "amount": "50.00", "currency": "CNY", "reason": "offsite"})
    assert resp.status_code == 201
    body = client.get(f"{API}/lines/{org.child_line}/entries?page_size=1").get_json()
    assert body["pagination"]["total"] == 2
    (entry,) = body["items"]
    assert (entry["kind"], entry["bucket"], entry["amount"], entry["actor"], entry["reason"]) == (
        "adjustment", "budget", "50.0000", "cfo", "offsite")
    assert entry["created_at"].endswith("+00:00")


def test_alerts_list_what_control_recorded(app: Flask, client: FlaskClient, org: Org):
    with state(app).db.unit_of_work() as s:  # 95 % of the office budget: past the 90 % warning
        Budgets(s).reserve("exp-1", ("expense", "1"), [line_req(org.office_line, "95")], actor="amy")
    body = client.get(f"{API}/alerts?line_id={org.office_line}").get_json()
    (alert,) = body["items"]
    assert (alert["level"], alert["usage_percent"], alert["asked"], alert["available_after"]) == (
        "warn", "95.00", "95.0000", "5.0000")
    assert alert["notify"] is True and alert["currency"] == "CNY"
    assert client.get(f"{API}/alerts?level=block").get_json()["items"] == []


# -- preview ---------------------------------------------------------------------------


def test_preview_reports_every_controlling_line_and_writes_nothing(client: FlaskClient, org: Org):
    set_rule(client, org.parent_line, {"mode": "hard", "subtree": False})
    resp = client.post(f"{API}/preview", json=preview_body(org.child_line, "500.00"))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["blocked"] is False
    own, parent = body["checks"]
    assert (own["line_id"], own["own_line"], own["asked"], own["available"],
            own["available_after"], own["usage_percent"], own["level"]) == (
        org.child_line, True, "500.0000", "600.0000", "100.0000", "83.33", None)
    assert (parent["line_id"], parent["own_line"], parent["available_after"]) == (
        org.parent_line, False, "500.0000")
    entries = client.get(f"{API}/lines/{org.child_line}/entries").get_json()
    assert entries["pagination"]["total"] == 1  # only the original budget


def test_preview_over_budget_is_blocked_not_an_error(client: FlaskClient, org: Org):
    body = client.post(f"{API}/preview", json=preview_body(org.child_line, "600.01")).get_json()
    assert body["blocked"] is True
    assert body["checks"][0]["level"] == "block"
    assert body["checks"][0]["breakdown"]["budget"] == "600.0000"


def test_preview_names_a_line_by_dimensions(client: FlaskClient, org: Org):
    body = client.post(f"{API}/preview", json={"lines": [{
        "ref": "a", "amount": "10", "currency": "CNY", "budget_date": "2026-01-20",
        "dimensions": {"company": "ACME", "cost_centre": "RD", "item": "OFFICE"}}]}).get_json()
    assert body["checks"][0]["line_id"] == org.office_line


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ({"amount": 10}, "lines[0].amount", "not JSON numbers"),
        ({"amount": "1e3"}, "lines[0].amount", "written as a string"),
        ({"amount": "NaN"}, "lines[0].amount", "written as a string"),
        ({"currency": "yuan"}, "lines[0].currency", "ISO 4217 code in capitals"),
        ({"currency": "cny"}, "lines[0].currency", "ISO 4217 code in capitals"),
        ({"budget_date": "2026-13-01"}, "lines[0].budget_date", "date"),
        ({"line_code": "X"}, "lines[0].line_id", "exactly one"),
        ({"surprise": 1}, "lines[0].surprise", "Unknown field"),
    ],
)
def test_preview_refuses_bad_lines_naming_the_field(client: FlaskClient, org: Org, line, field, problem):
    body = preview_body(org.child_line, "10")
    body["lines"][0].update(line)
    err = assert_error(client.post(f"{API}/preview", json=body), 422, "validation_error")
    assert err["details"]["field"] == field
    assert problem.lower() in err["details"]["errors"][0]["problem"].lower()


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"amount": "10.001"}, 422, "validation_error", "lines[0].amount"),  # CNY has 2 decimals
        ({"amount": "0"}, 422, "validation_error", "lines[0].amount"),
        ({"currency": "XYZ"}, 422, "validation_error", "lines[0].currency"),
        ({"currency": "USD"}, 422, "no_exchange_rate", "lines[0].currency"),
        ({"budget_date": "2026-02-01"}, 422, "E6_outside_budget_period", "lines[0].budget_date"),
        ({"line_id": 999}, 422, "E2_no_budget_line", "lines[0]"),
    ],
)
def test_preview_domain_refusals(client: FlaskClient, org: Org, change, status, code, field):
    body = preview_body(org.child_line, "10")
    body["lines"][0].update(change)
    err = assert_error(client.post(f"{API}/preview", json=body), status, code)
    assert err["details"]["field"] == field


def test_preview_of_a_closed_line_is_e3(client: FlaskClient, org: Org):
    client.patch(f"{API}/lines/{org.child_line}", json={"status": "closed"}, headers=FINANCE)
    assert_error(client.post(f"{API}/preview", json=preview_body(org.child_line, "1")), 409,
                 "E3_line_closed")


# -- changes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("put", "/lines/1/rule", {"mode": "soft"}),
        ("patch", "/lines/1", {"status": "hold"}),
        ("post", "/adjustments", {"line_id": 1, "amount": "1", "currency": "CNY", "reason": "r"}),
        ("post", "/transfers", {"from_line_id": 1, "to_line_id": 2, "amount": "1",
                                "currency": "CNY", "reason": "r"}),
    ],
)
def test_changes_need_an_actor(anonymous: FlaskClient, org: Org, method, path, body):
    resp = getattr(anonymous, method)(f"{API}{path}", json=body)
    assert_error(resp, 401, "unauthenticated")
    resp = getattr(anonymous, method)(f"{API}{path}", json=body, headers={"X-Yinfin-User": "bad name!"})
    assert_error(resp, 401, "unauthenticated")


@pytest.mark.parametrize(("method", "path"), [("put", "/lines/1/rule"), ("patch", "/lines/1"),
                                              ("post", "/adjustments"), ("post", "/transfers")])
def test_changes_need_the_finance_role(client: FlaskClient, org: Org, method, path):
    resp = getattr(client, method)(f"{API}{path}", json={}, headers={"X-Yinfin-User": "amy"})
    assert_error(resp, 403, "forbidden")


def test_put_rule_sets_and_replaces_the_rule_at_once_when_approval_is_off(sqlite_db: Database):
    client = make_app(sqlite_db, rule_change_approval="off").test_client()
    client.environ_base["HTTP_X_YINFIN_USER"] = "viewer"
    org = org_in(sqlite_db)
    resp = client.put(f"{API}/lines/{org.child_line}/rule", headers=FINANCE, json={
        "mode": "hard", "tolerance_percent": "5", "tolerance_amount": "20.00", "basis": "annual",
        "thresholds": [{"percent": "80", "action": "info"}, {"percent": "100", "action": "block"}]})
    assert resp.status_code == 200
    rule = resp.get_json()
    assert (rule["mode"], rule["basis"], rule["tolerance_amount"], rule["inherited"]) == (
        "hard", "annual", "20.0000", False)
    assert Decimal(rule["tolerance_percent"]) == 5
    assert [t["percent"] for t in rule["thresholds"]] == ["80", "100"]
    detail = client.get(f"{API}/lines/{org.child_line}").get_json()
    assert detail["rule"]["defined_on_line_id"] == org.child_line
    assert client.put(f"{API}/lines/{org.child_line}/rule", headers=FINANCE,
                      json={"mode": "track"}).get_json()["mode"] == "track"


def test_put_rule_errors(client: FlaskClient, org: Org):
    err = assert_error(client.put(f"{API}/lines/{org.child_line}/rule", headers=FINANCE,
                                  json={"mode": "strict", "tolerance_percent": 5}),
                       422, "validation_error")
    assert {e["field"] for e in err["details"]["errors"]} == {"mode", "tolerance_percent"}
    err = assert_error(client.put(f"{API}/lines/{org.child_line}/rule", headers=FINANCE,
                                  json={"mode": "hard", "tolerance_percent": "-1"}),
                       422, "validation_error")
    assert err["details"]["field"] == "tolerance_percent"
    assert_error(client.put(f"{API}/lines/999/rule", headers=FINANCE, json={"mode": "hard"}),
                 404, "not_found")


def test_patch_line_status(client: FlaskClient, org: Org):
    resp = client.patch(f"{API}/lines/{org.child_line}", json={"status": "hold"}, headers=FINANCE)
    assert resp.status_code == 200 and resp.get_json()["status"] == "hold"
    assert_error(client.post(f"{API}/preview", json=preview_body(org.child_line, "1")), 409,
                 "E4_line_on_hold")
    err = assert_error(client.patch(f"{API}/lines/{org.child_line}", json={"status": "gone"},
                                    headers=FINANCE), 422, "validation_error")
    assert err["details"]["field"] == "status"
    assert_error(client.patch(f"{API}/lines/999", json={"status": "open"}, headers=FINANCE), 404,
                 "not_found")


def test_adjustment_adds_cuts_and_is_idempotent(app: Flask, client: FlaskClient, org: Org):
    body = {"line_id": org.office_line, "amount": "25.50", "currency": "CNY", "reason": "more pens"}
    headers = {**FINANCE, "Idempotency-Key": "adj-1"}
    first = client.post(f"{API}/adjustments", json=body, headers=headers)
    assert first.status_code == 201
    assert first.get_json()["lines"][0]["buckets"]["budget"] == "125.5000"
    replay = client.post(f"{API}/adjustments", json=body, headers=headers)
    # The first answer, as it was (status and body), and nothing done again.
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (replay.status_code, replay.get_json()) == (201, first.get_json())
    assert client.get(f"{API}/lines/{org.office_line}").get_json()["buckets"]["budget"] == "125.5000"
    # The budget service's own key still holds when the API's record is gone.
    again = client.post(f"{API}/adjustments", json=body,
                        headers={**headers, "X-Yinfin-User": "frank"}).get_json()
    assert again["replayed"] is True and again["movement_id"] == first.get_json()["movement_id"]

    cut = client.post(f"{API}/adjustments", headers=FINANCE,
                      json={**body, "amount": "-125.50", "reason": "frozen"})
    assert cut.get_json()["lines"][0]["buckets"]["available"] == "0.0000"
    with state(app).db.unit_of_work(readonly=True) as s:
        assert verify(s) == []


def test_adjustment_errors(client: FlaskClient, org: Org):
    ok = {"line_id": org.office_line, "amount": "1", "currency": "CNY", "reason": "r"}
    err = assert_error(client.post(f"{API}/adjustments", headers=FINANCE,
                                   json={**ok, "amount": 1.5, "reason": ""}), 422, "validation_error")
    assert {e["field"] for e in err["details"]["errors"]} == {"amount", "reason"}
    assert_error(client.post(f"{API}/adjustments", headers=FINANCE, json={**ok, "currency": "USD"}),
                 422, "currency_mismatch")
    assert_error(client.post(f"{API}/adjustments", headers=FINANCE, json={**ok, "line_id": 999}),
                 404, "not_found")
    assert_error(client.post(f"{API}/adjustments", headers=FINANCE, json={**ok, "amount": "0"}),
                 422, "validation_error")


def test_transfer_moves_budget_between_lines(client: FlaskClient, org: Org):
    resp = client.post(f"{API}/transfers", headers=FINANCE, json={
        "from_line_id": org.child_line, "to_line_id": org.sibling_line, "amount": "100.00",
        "currency": "CNY", "reason": "rebalance"})
    assert resp.status_code == 201
    lines = {ln["id"]: ln["buckets"]["budget"] for ln in resp.get_json()["lines"]}
    assert lines == {org.child_line: "500.0000", org.sibling_line: "700.0000"}


def test_transfer_never_takes_more_than_is_available(app: Flask, client: FlaskClient, org: Org):
    with state(app).db.unit_of_work() as s:
        Budgets(s).reserve("exp-1", ("expense", "1"), [line_req(org.child_line, "550")], actor="amy")
    err = assert_error(client.post(f"{API}/transfers", headers=FINANCE, json={
        "from_line_id": org.child_line, "to_line_id": org.sibling_line, "amount": "50.01",
        "currency": "CNY", "reason": "rebalance"}), 409, "E1_over_budget")
    assert (err["details"]["asked"], err["details"]["available"]) == ("50.01", "50.0000")
    assert err["details"]["breakdown"]["pre_encumbered"] == "550.0000"
    assert_error(client.post(f"{API}/transfers", headers=FINANCE, json={
        "from_line_id": org.child_line, "to_line_id": org.child_line, "amount": "1",
        "currency": "CNY", "reason": "r"}), 422, "validation_error")


# -- PostgreSQL --------------------------------------------------------------------------


class TestOnPostgres:
    """The same API on the run's PostgreSQL database."""

    @pytest.fixture
    def pg(self, pg_db: Database) -> tuple[FlaskClient, Org]:
        app = make_app(pg_db, budget_journal_approval="off")
        client = app.test_client()
        client.environ_base["HTTP_X_YINFIN_USER"] = "viewer"
        found = org_in(pg_db)
        with pg_db.unit_of_work() as s:
            add_people(s)
        return client, found

    def test_reads_and_changes(self, pg: tuple[FlaskClient, Org]):
        client, org = pg
        assert client.get(f"{API}/lines").get_json()["pagination"]["total"] == 4
        resp = client.post(f"{API}/adjustments", headers=FINANCE, json={
            "line_id": org.child_line, "amount": "0.01", "currency": "CNY", "reason": "r"})
        assert resp.get_json()["lines"][0]["buckets"]["budget"] == "600.0100"
        body = client.post(f"{API}/preview", json=preview_body(org.child_line, "600.02")).get_json()
        assert body["blocked"] is True
        assert client.get("/api/v1/health").get_json()["status"] == "ok"

    def test_inputs_postgres_would_refuse_are_422_not_500(self, pg: tuple[FlaskClient, Org]):
        client, org = pg
        # NUL is legal JSON but PostgreSQL text cannot hold it; over-long codes exceed columns.
        assert_error(client.get(f"{API}/lines?company=A%00B"), 422, "validation_error")
        assert_error(client.get(f"{API}/lines?cost_centre={'x' * 65}"), 422, "validation_error")
        assert_error(client.post(f"{API}/preview", json=preview_body(2**40, "1")), 422,
                     "validation_error")
        assert_error(client.put(f"{API}/lines/{org.child_line}/rule", headers=FINANCE,
                                json={"mode": "hard", "tolerance_percent": "1000"}),
                     422, "validation_error")
