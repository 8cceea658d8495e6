"""Authorization of the console's pages, table-driven like the API's
(tests/e2e/test_api_authz.py): every console route, as every role.

:data:`PAGES` is written out here apart from the policy table; a console route it
lacks fails the test. An anonymous visitor is sent to sign in (a page) or refused
(htmx, 401); a signed-in person gets past the gate (the view may still answer 404
for someone else's task, as the API does); nobody posts without the CSRF token.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask

from yinfin_flow.security.policy import POLICY

from .conftest import english

PUBLIC, USER = "public", "user"
ROLES_ = "roles"  # a page for some roles only
PAGES: dict[str, str] = {
    "GET /": USER,
    "GET /sign-in": PUBLIC,
    "POST /sign-in": PUBLIC,
    "POST /sign-in/as": PUBLIC,
    "POST /sign-out": PUBLIC,
    "POST /language": PUBLIC,
    "GET /static/console/<path:filename>": PUBLIC,
    "GET /inbox": USER,
    "POST /inbox/batch": USER,
    "GET /tasks/<int:task_id>": USER,
    "POST /tasks/<int:task_id>/<action>": USER,
    "GET /requests": USER,
    "GET /requests/<int:request_id>": USER,
    "GET /requests/<int:request_id>/print": USER,
    "POST /requests/<int:request_id>/<action>": USER,
    "GET /new/<workflow>": USER,
    "POST /new/<workflow>": USER,
    "GET /budget-lines": USER,
    "POST /budget-lines/preview": USER,
    "POST /requests/<int:request_id>/attachments": USER,
    "GET /attachments/<int:attachment_id>/content": USER,
    # finance pages, books side (by role: tests/web/test_finance_books_views.py)
    "GET /finance/periods": ROLES_,
    "POST /finance/periods/close": ROLES_,
    "POST /finance/periods/<string:code>/reopen": ROLES_,
    "GET /finance/vouchers": ROLES_,
    "GET /finance/vouchers/new": ROLES_,
    "POST /finance/vouchers/new": ROLES_,
    "GET /finance/vouchers/<int:entry_id>": ROLES_,
    "POST /finance/vouchers/<int:entry_id>/reverse": ROLES_,
    "GET /finance/reports": ROLES_,
    "GET /finance/reports/budget-vs-actual": ROLES_,
    "GET /finance/reports/budget-vs-actual/rows": ROLES_,
    "GET /finance/reports/trial-balance": ROLES_,
    "GET /finance/reports/trail": ROLES_,
    "GET /finance/reports/journal.<fmt>": ROLES_,
    "GET /finance/operations": ROLES_,
    "POST /finance/operations/dead-letters/<int:message_id>/replay": ROLES_,
    "POST /finance/operations/dead-letters/replay": ROLES_,
    "POST /finance/operations/verify": ROLES_,
    "POST /finance/operations/reconcile": ROLES_,
    "GET /finance/workflows": ROLES_,
    "POST /finance/workflows/check": ROLES_,
    "GET /finance/workflows/<string:name>": ROLES_,
    # finance pages, budget side (finance; admins read): tests/web/test_finance_budget_views.py
    "GET /finance/budget": ROLES_,
    "GET /finance/budget/lines/<int:line_id>": ROLES_,
    "GET /finance/journals": ROLES_,
    "POST /finance/journals/<kind>": ROLES_,
    "GET /finance/journals/<int:proposal_id>": ROLES_,
    "POST /finance/journals/<int:proposal_id>/<action>": ROLES_,
    "GET /finance/imports": ROLES_,
    "POST /finance/imports": ROLES_,
    "GET /finance/rules": ROLES_,
    "POST /finance/rules": ROLES_,
    "GET /finance/rules/<int:change_id>": ROLES_,
    "POST /finance/rules/<int:change_id>/<action>": ROLES_,
    "GET /finance/simulate": ROLES_,
}
ROLES = {"employee": "amy", "approver": "wang.app", "finance": "fiona", "admin": "admin"}
SAMPLE = {"task_id": "999999", "request_id": "999999", "attachment_id": "999999", "action": "approve", "workflow": "expense",
          "path:filename": "console.css", "filename": "console.css"}


def _console_routes(app: Flask) -> dict[str, str]:
    out = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("console."):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                shown = re.sub(r"<(int|string)\([^)]*\):", r"<\1:", rule.rule)
                out[f"{method} {shown}"] = rule.endpoint
    return out


def test_every_console_route_is_in_the_table_and_the_policy(app: Flask):
    routes = _console_routes(app)
    assert set(routes) == set(PAGES), (sorted(set(routes) - set(PAGES)), sorted(set(PAGES) - set(routes)))
    assert {e for e in routes.values()} - set(POLICY) == set()
    for op, endpoint in routes.items():
        assert POLICY[endpoint].kind == PAGES[op], op


def _path(template: str) -> str:
    return re.sub(r"<(?:int:|path:)?(\w+)>", lambda m: SAMPLE[m.group(1)], template)


@pytest.mark.parametrize("operation", sorted(op for op, need in PAGES.items() if need == USER))
def test_anonymous_is_stopped_and_people_get_past_the_gate(app: Flask, operation: str):
    method, template = operation.split(" ", 1)
    path = _path(template)
    anon = english(app)
    if method == "GET":
        resp = anon.get(path)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/sign-in"), operation
        hx = anon.get(path, headers={"HX-Request": "true"})
        assert hx.status_code == 401 and hx.headers["HX-Redirect"] == "/sign-in"
    else:
        # no session, no token: refused before anything else
        assert anon.post(path).status_code == 400, operation
    for role, user in ROLES.items():
        c = english(app)
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/sign-in").get_data(as_text=True))
        assert token is not None
        c.post("/sign-in/as", data={"user": user, "csrf_token": token.group(1)})
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/requests").get_data(as_text=True))
        assert token is not None
        if method == "GET":
            resp = c.get(path)
        else:
            resp = c.post(path, data={"csrf_token": token.group(1)})
            assert c.post(path).status_code == 400, (role, operation)  # and never without it
        assert resp.status_code not in (401, 403, 500), (role, operation, resp.status_code)
        assert resp.status_code != 302 or "/sign-in" not in resp.headers["Location"], (role, operation)


def test_the_development_header_gives_directory_roles_on_the_api(app: Flask):
    """X-Yinfin-User: fiona is finance because the directory says so (no roles header)."""
    c = app.test_client()
    fiona = c.get("/api/v1/budget/rule-changes", headers={"X-Yinfin-User": "fiona"})
    assert fiona.status_code == 200, fiona.get_json()
    amy = c.get("/api/v1/budget/rule-changes", headers={"X-Yinfin-User": "amy"})
    assert amy.status_code == 403 and amy.get_json()["code"] == "forbidden"
