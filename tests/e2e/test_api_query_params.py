"""Query strings: ``GET /budget/lines?code=`` finds one line by its exact code, and every
endpoint that reads its query through a schema refuses a parameter it does not know
(422 naming it) rather than ignoring a filter it does not have."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select

from yinfin_flow.db.models import BudgetLine
from yinfin_flow.extension import state

from ..factories import Org

API = "/api/v1"
EVERYONE = {"X-Yinfin-User": "cfo", "X-Yinfin-Roles": "finance,admin,auditor,pmo"}


def _code_of(client: FlaskClient, line_id: int) -> str:
    with state(client.application).db.unit_of_work(readonly=True) as s:
        return str(s.scalar(select(BudgetLine.code).where(BudgetLine.id == line_id)))


def test_lines_filter_by_exact_code(client: FlaskClient, org: Org):
    code = _code_of(client, org.child_line)
    body = client.get(f"{API}/budget/lines", query_string={"code": code}, headers=EVERYONE).get_json()
    assert [i["id"] for i in body["items"]] == [org.child_line]
    assert body["items"][0]["code"] == code
    # exact, not a prefix: the parent's code is a prefix of nothing here, but a cut code finds nothing
    cut = client.get(f"{API}/budget/lines", query_string={"code": code[:-1]}, headers=EVERYONE).get_json()
    assert cut["items"] == []
    everything = client.get(f"{API}/budget/lines", headers=EVERYONE).get_json()
    assert len(everything["items"]) == 4


def test_unknown_filter_on_lines_is_refused_naming_it(client: FlaskClient, org: Org):
    r = client.get(f"{API}/budget/lines", query_string={"cost_center": "RD"}, headers=EVERYONE)
    assert r.status_code == 422
    body = r.get_json()
    assert body["code"] == "validation_error"
    assert body["details"]["field"] == "cost_center"
    assert body["details"]["errors"][0]["location"] == "query"


def _query_operations(client: FlaskClient) -> list[tuple[str, list[str]]]:
    spec = client.get(f"{API}/openapi.json").get_json()
    found = []
    for path, ops in spec["paths"].items():
        get = ops.get("get")
        if not get:
            continue
        params = [*ops.get("parameters", []), *get.get("parameters", [])]
        if any(p["in"] == "query" for p in params):
            found.append((path, [p["name"] for p in params if p["in"] == "path"]))
    return found


def test_every_list_endpoint_refuses_unknown_query_parameters(client: FlaskClient, org: Org):
    ops = _query_operations(client)
    assert len(ops) >= 10  # lines, tree, alerts, journals, rule changes, requests, tasks, ledger, ...
    for path, path_params in ops:
        url = path
        for name in path_params:
            url = url.replace(f"{{{name}}}", "1")
        r = client.get(url, query_string={"no_such_filter": "x"}, headers=EVERYONE)
        assert r.status_code == 422, (path, r.status_code, r.get_data(as_text=True)[:200])
        fields = [e["field"] for e in r.get_json()["details"]["errors"]]
        assert "no_such_filter" in fields, (path, fields)


def test_openapi_documents_the_code_filter(client: FlaskClient):
    spec = client.get(f"{API}/openapi.json").get_json()
    names = [p["name"] for p in spec["paths"][f"{API}/budget/lines"]["get"]["parameters"] if p["in"] == "query"]
    assert "code" in names
