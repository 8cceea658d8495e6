"""Authorization, table-driven: every endpoint of the OpenAPI document, as every role.

:data:`EXPECTED` is written out here independently of the policy table in
:mod:`yinfin_flow.security.policy`; an endpoint the document has and this table
lacks fails the test, so a new endpoint cannot ship without someone deciding who may
call it. Ids in paths do not exist: an allowed caller gets past the gate (404, 422…)
and a refused one is stopped at it (401 anonymous, 403 without the role).
"""

from __future__ import annotations

import re

import pytest
from flask import Flask

from yinfin_flow.app import create_app
from yinfin_flow.config import Settings
from yinfin_flow.security.policy import POLICY

ROLES = ("anonymous", "employee", "approver", "finance", "admin")
ANY = frozenset(ROLES)
USERS = ANY - {"anonymous"}
FINANCE = frozenset({"finance"})
BOOKS = frozenset({"finance", "admin"})
ADMIN = frozenset({"admin"})

P = "/api/v1"
EXPECTED: dict[str, frozenset[str]] = {
    f"GET {P}/health": ANY,
    f"GET {P}/budget/lines": USERS,
    f"GET {P}/budget/lines/{{line_id}}": USERS,
    f"PATCH {P}/budget/lines/{{line_id}}": FINANCE,
    f"PUT {P}/budget/lines/{{line_id}}/rule": FINANCE,
    f"GET {P}/budget/lines/{{line_id}}/entries": USERS,
    f"GET {P}/budget/tree": USERS,
    f"GET {P}/budget/alerts": USERS,
    f"POST {P}/budget/preview": USERS,
    f"POST {P}/budget/adjustments": FINANCE,
    f"POST {P}/budget/transfers": FINANCE,
    f"POST {P}/budget/imports": FINANCE,
    f"POST {P}/periods/close": FINANCE,
    f"POST {P}/budget/lines/{{line_id}}/simulate": FINANCE,
    f"GET {P}/budget/journal-proposals": FINANCE,
    f"GET {P}/budget/journal-proposals/{{proposal_id}}": FINANCE,
    f"POST {P}/budget/journal-proposals/{{proposal_id}}/approve": FINANCE,
    f"POST {P}/budget/journal-proposals/{{proposal_id}}/reject": FINANCE,
    f"POST {P}/budget/journal-proposals/{{proposal_id}}/withdraw": FINANCE,
    f"GET {P}/budget/rule-changes": FINANCE,
    f"POST {P}/budget/rule-changes": FINANCE,
    f"GET {P}/budget/rule-changes/{{change_id}}": FINANCE,
    f"POST {P}/budget/rule-changes/{{change_id}}/approve": FINANCE,
    f"POST {P}/budget/rule-changes/{{change_id}}/reject": FINANCE,
    f"POST {P}/budget/rule-changes/{{change_id}}/withdraw": FINANCE,
    f"GET {P}/requests": USERS,
    f"POST {P}/requests": USERS,
    f"GET {P}/requests/{{request_id}}": USERS,
    f"POST {P}/requests/{{request_id}}/withdraw": USERS,
    f"POST {P}/requests/{{request_id}}/resubmit": USERS,
    f"POST {P}/requests/{{request_id}}/cancel": USERS,
    f"POST {P}/requests/{{request_id}}/events": USERS,
    f"POST {P}/requests/{{request_id}}/comments": USERS,
    f"POST {P}/requests/{{request_id}}/urge": USERS,
    f"GET {P}/requests/{{request_id}}/trail": USERS,
    f"POST {P}/requests/{{request_id}}/attachments": USERS,
    f"GET {P}/requests/{{request_id}}/attachments": USERS,
    f"GET {P}/attachments/{{attachment_id}}": USERS,
    f"GET {P}/attachments/{{attachment_id}}/content": USERS,
    f"GET {P}/tasks": USERS,
    f"GET {P}/tasks/{{task_id}}": USERS,
    f"POST {P}/tasks/{{task_id}}/approve": USERS,
    f"POST {P}/tasks/{{task_id}}/reject": USERS,
    f"POST {P}/tasks/{{task_id}}/send-back": USERS,
    f"POST {P}/tasks/{{task_id}}/transfer": USERS,
    f"POST {P}/tasks/{{task_id}}/add-approver": USERS,
    f"POST {P}/tasks/{{task_id}}/comment": USERS,
    f"POST {P}/tasks/{{task_id}}/urge": USERS,
    f"GET {P}/journal/entries": BOOKS,
    f"GET {P}/journal/entries/{{entry_id}}": BOOKS,
    f"POST {P}/journal/entries/{{entry_id}}/reverse": FINANCE,
    f"GET {P}/periods": BOOKS,
    f"POST {P}/periods/{{code}}/open": FINANCE,
    f"POST {P}/periods/{{code}}/close": FINANCE,
    f"GET {P}/reports/trial-balance": BOOKS,
    f"GET {P}/reports/budget-vs-actual": BOOKS,
    f"GET {P}/workflows": USERS,
    f"GET {P}/workflows/{{name}}": USERS,
    f"POST {P}/workflows/validate": ADMIN,
    f"GET {P}/connectors": ADMIN,
    f"GET {P}/connectors/dead-letters": ADMIN,
    f"POST {P}/connectors/dead-letters/{{letter_id}}/replay": ADMIN,
    f"POST {P}/oa/{{connector}}/events": ANY,  # the OA's signature, not a user, decides
    f"GET {P}/oa/{{connector}}/events": ANY,  # the OA's URL check: signed, no user
    f"GET {P}/connectors/status": ADMIN,
    f"GET {P}/dead-letters": BOOKS,
    f"POST {P}/dead-letters/{{message_id}}/replay": BOOKS,
    f"POST {P}/dead-letters/replay": BOOKS,
    f"GET {P}/reconciliation": BOOKS,
    f"GET {P}/tokens": USERS,
    f"POST {P}/tokens": USERS,
    f"DELETE {P}/tokens/{{token_id}}": USERS,
}

PARAMS = {"code": "2026-01", "name": "expense", "connector": "nope"}


def _app() -> Flask:
    return create_app(Settings(database_url="sqlite://"))


def _operations() -> list[str]:
    spec = _app().test_client().get(f"{P}/openapi.json").get_json()
    return sorted(f"{m.upper()} {path}" for path, ops in spec["paths"].items()
                  for m in ops if m in ("get", "post", "put", "patch", "delete"))


def headers_for(role: str) -> dict[str, str]:
    if role == "anonymous":
        return {}
    roles = "" if role == "employee" else role
    return {"X-Yinfin-User": f"who-{role}", "X-Yinfin-Roles": roles}


def test_every_documented_operation_has_an_expectation():
    ops = _operations()
    assert set(ops) == set(EXPECTED), (
        f"missing from EXPECTED: {sorted(set(ops) - set(EXPECTED))}; "
        f"gone from the API: {sorted(set(EXPECTED) - set(ops))}")


def test_every_route_has_a_policy_entry():
    app = _app()
    routes = {r.endpoint for r in app.url_map.iter_rules() if r.rule.startswith(P)}
    assert routes - set(POLICY) == set()


@pytest.mark.parametrize("operation", sorted(EXPECTED))
def test_each_role_is_let_through_or_stopped_at_the_gate(app: Flask, operation: str):
    method, template = operation.split(" ", 1)
    path = re.sub(r"{(\w+)}", lambda m: PARAMS.get(m.group(1), "999999"), template)
    client = app.test_client()
    for role in ROLES:
        kwargs = {"json": {}} if method != "GET" else {}
        resp = client.open(path, method=method, headers=headers_for(role), **kwargs)
        code = resp.get_json(silent=True) or {}
        if role in EXPECTED[operation]:
            assert resp.status_code not in (401, 403), (role, operation, code)
        elif role == "anonymous":
            assert resp.status_code == 401, (role, operation, code)
        else:
            assert (resp.status_code, code.get("code")) == (403, "forbidden"), (role, operation, code)
