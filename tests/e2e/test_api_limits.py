"""Every input gets an answer in the error shape: limits, the money grammar, and
``Retry-After`` on a key still in progress. Each of these was a 500, an accepted
hostile input or a bare 409 before."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from yinfin_flow.config import ConfigError, Settings, limits_from_env
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.domain.limits import DEFAULT_LIMITS, Limits
from yinfin_flow.extension import state
from yinfin_flow.security import idempotency

from ..factories import Org
from ..integration.test_engine_support import expense_form, world
from .conftest import make_app

API = "/api/v1"
AMY = {"X-Yinfin-User": "amy"}


@pytest.fixture
def org(app: Flask) -> Org:
    return world(state(app).db)


def submit_body(org: Org, **form_extra: object) -> dict:
    return {"workflow": "expense", "title": "Beijing trip", "company": "ACME",
            "form": expense_form(org.child_line, **form_extra)}


def requests_in(app: Flask) -> int:
    with state(app).db.unit_of_work(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(ApprovalRequest))


def assert_error_shape(resp, status: int, code: str | None = None, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    body = resp.get_json()
    assert set(body) == {"code", "message", "details"}, body
    if code is not None:
        assert body["code"] == code, body
    if field is not None:
        assert body["details"]["field"] == field, body
    return body


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- nesting -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "method"), [
    ("/requests", "post"), ("/budget/preview", "post"), ("/budget/adjustments", "post"),
    ("/periods/2026-01/close", "post"), ("/tokens", "post"), ("/workflows/validate", "post"),
])
def test_a_body_nested_a_thousand_deep_is_a_422_not_a_500(client: FlaskClient, org: Org,
                                                           path: str, method: str):
    for body in (nested(1000), '{"form": ' + nested(1000) + "}", '{"a":' * 1000 + "1" + "}" * 1000):
        resp = getattr(client, method)(API + path, data=body, content_type="application/json",
                                       headers={"X-Yinfin-User": "cfo", "X-Yinfin-Roles": "finance,admin"})
        err = assert_error_shape(resp, 422, "validation_error")
        assert "nested deeper than 32 levels" in err["message"]


def test_the_nesting_error_names_the_field(client: FlaskClient, org: Org):
    body = submit_body(org)
    deep: object = "x"
    for _ in range(40):
        deep = {"d": deep}
    body["form"]["lines"][0]["extra"] = deep
    resp = client.post(f"{API}/requests", json=body, headers=AMY)
    err = assert_error_shape(resp, 422, "validation_error")
    assert err["details"]["field"].startswith("form.lines[0].extra.d.d")
    assert requests_in(client.application) == 0


def test_the_signed_oa_webhook_answers_a_deep_body_with_a_422(anonymous: FlaskClient, org: Org,
                                                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("YINFIN_WEAVER_SECRET", "s")
    resp = anonymous.post(f"{API}/oa/weaver/events", data=nested(1000), content_type="application/json")
    assert_error_shape(resp, 422, "validation_error")


# -- sizes ---------------------------------------------------------------------------------


def test_a_body_over_the_size_limit_is_a_413_in_the_error_shape(client: FlaskClient, org: Org):
    body = submit_body(org, note="x" * (DEFAULT_LIMITS.max_body_bytes + 10))
    resp = client.post(f"{API}/requests", json=body, headers=AMY)
    err = assert_error_shape(resp, 413, "payload_too_large", "body")
    assert err["details"]["limit"] == DEFAULT_LIMITS.max_body_bytes
    assert requests_in(client.application) == 0


def test_a_chunked_body_without_length_is_cut_at_the_limit(client: FlaskClient, org: Org):
    import io

    data = json.dumps(submit_body(org, note="x" * (DEFAULT_LIMITS.max_body_bytes + 10))).encode()
    resp = client.post(f"{API}/requests", input_stream=io.BytesIO(data), content_type="application/json",
                       headers={**AMY, "Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})
    assert_error_shape(resp, 413, "payload_too_large", "body")


def test_a_long_string_in_a_form_is_a_422_naming_it(client: FlaskClient, org: Org):
    """A 5 MB form field used to be stored and served back (6 MB answers)."""
    body = submit_body(org, note="x" * (DEFAULT_LIMITS.max_string_length + 1))
    err = assert_error_shape(client.post(f"{API}/requests", json=body, headers=AMY),
                             422, "validation_error", "form.note")
    assert "longer than 10000 characters" in err["message"]
    ok = submit_body(org, note="备注" * 2000)  # 4,000 characters (12,000 bytes): fine
    assert client.post(f"{API}/requests", json=ok, headers=AMY).status_code == 201


def test_a_request_with_more_lines_than_the_limit_is_a_422(client: FlaskClient, org: Org):
    body = submit_body(org)
    line = body["form"]["lines"][0]
    body["form"]["lines"] = [{**line, "ref": str(i), "amount": "0.01"} for i in range(1001)]
    err = assert_error_shape(client.post(f"{API}/requests", json=body, headers=AMY),
                             422, "validation_error", "form.lines")
    assert "at most 1000" in err["message"]
    assert requests_in(client.application) == 0


def test_limits_are_configurable(sqlite_db: Database):
    app = make_app(sqlite_db, limits=Limits(max_body_bytes=20_000, max_request_lines=2,
                                            max_string_length=5_000))
    org = world(state(app).db)
    client = app.test_client()
    body = submit_body(org)
    line = body["form"]["lines"][0]
    body["form"]["lines"] = [{**line, "ref": str(i), "amount": "1.00"} for i in range(3)]
    assert_error_shape(client.post(f"{API}/requests", json=body, headers=AMY), 422, field="form.lines")
    assert_error_shape(client.post(f"{API}/requests", json=submit_body(org, note="x" * 5_001), headers=AMY),
                       422, field="form.note")
    assert_error_shape(client.post(f"{API}/requests", json=submit_body(org, note="x" * 30_000), headers=AMY),
                       413, field="body")


def test_limits_come_from_the_environment_and_refuse_nonsense():
    got = limits_from_env({"YINFIN_MAX_BODY_BYTES": "2097152", "YINFIN_MAX_REQUEST_LINES": "5000"})
    assert (got.max_body_bytes, got.max_request_lines, got.max_json_depth) == (2_097_152, 5000, 32)
    assert Settings.from_env({"YINFIN_MAX_JSON_DEPTH": "64"}).limits.max_json_depth == 64
    for var, raw in [("YINFIN_MAX_BODY_BYTES", "1e6"), ("YINFIN_MAX_JSON_DEPTH", "3"),
                     ("YINFIN_MAX_STRING_LENGTH", "-1"), ("YINFIN_MAX_REQUEST_LINES", "٢")]:
        with pytest.raises(ConfigError, match=var):
            limits_from_env({var: raw})


# -- money ---------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [" 5.00", "5.00 ", "1e2", "1E+2", "١٢٣", "１２３", "1,000.00", "+5",
                                    "5.", ".5", "5.001", "0x10", "-5.00", "NaN"])
def test_a_request_amount_outside_the_grammar_is_refused(client: FlaskClient, org: Org, amount: str):
    """These were accepted (" 5.00", "1e2" stored as "1E+2", "١٢٣" as 123)."""
    resp = client.post(f"{API}/requests", json=submit_body(org, lines=None) | {
        "form": expense_form(org.child_line, amount)}, headers=AMY)
    assert_error_shape(resp, 422, "validation_error", "form.lines[0].amount")
    assert requests_in(client.application) == 0


def test_a_lower_case_currency_is_refused_everywhere(client: FlaskClient, org: Org):
    form = expense_form(org.child_line)
    form["lines"][0]["currency"] = "cny"
    resp = client.post(f"{API}/requests", json={**submit_body(org), "form": form}, headers=AMY)
    err = assert_error_shape(resp, 422, "validation_error", "form.lines[0].currency")
    assert "'CNY'" in err["message"]
    resp = client.post(f"{API}/budget/adjustments", headers={"X-Yinfin-User": "cfo", "X-Yinfin-Roles": "finance"},
                       json={"line_id": org.child_line, "amount": "5.00", "currency": "cny", "reason": "r"})
    assert_error_shape(resp, 422, "validation_error", "currency")


def test_answers_write_every_amount_with_four_decimals(client: FlaskClient, org: Org):
    """The same request answered 250.00 (its form) beside 250.0000 (its budget)."""
    req = client.post(f"{API}/requests", json=submit_body(org), headers=AMY).get_json()
    amounts = [req["amount"], req["form"]["amount"], req["form"]["lines"][0]["amount"],
               req["budget_impact"]["reservations"][0]["pre_encumbered"]]
    assert amounts == ["250.0000"] * 4
    assert Decimal(req["form"]["lines"][0]["amount"]) == Decimal("250.00")
    listed = client.get(f"{API}/requests", headers=AMY).get_json()["items"][0]
    assert listed["amount"] == "250.0000"


# -- idempotency ---------------------------------------------------------------------------


def test_a_key_still_in_progress_answers_409_with_retry_after(client: FlaskClient, app: Flask, org: Org):
    body = submit_body(org)
    raw = json.dumps(body).encode()
    # The first call with this key has claimed it and is still running.
    idempotency.claim(state(app).db, "amy", "k-1", "POST", f"{API}/requests", raw)
    resp = client.post(f"{API}/requests", data=raw, content_type="application/json",
                       headers={**AMY, "Idempotency-Key": "k-1"})
    err = assert_error_shape(resp, 409, "idempotency_in_progress", "Idempotency-Key")
    assert resp.headers["Retry-After"] == "1"
    assert err["details"]["retry_after"] == 1
