"""Walk EVERY operation of the OpenAPI document with hostile inputs.

Beside the schemathesis fuzz (``test_api_fuzz.py``, which generates from the schema
and so rarely reaches the shapes attackers send), this sends, to each operation:

- bodies nested a thousand deep (as a whole and inside each field);
- huge strings, huge arrays and a body past the size limit;
- odd number forms (``" 5.00"``, ``"1e2"``, ``"١٢٣"``, ``"1,000"``…), lower-case currency
  codes, and a value of every wrong type in each field of the body;
- the same odd values in every query parameter.

It fails on any 5xx, on any error answer outside the one error shape
(``{"code", "message", "details"}``), and on any odd amount that is accepted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from yinfin_flow.api.fields import AMOUNT_PATTERN
from yinfin_flow.app import create_app
from yinfin_flow.config import Settings
from yinfin_flow.domain.limits import DEFAULT_LIMITS
from yinfin_flow.extension import state

from ..factories import org_in

SPEC = "/api/v1/openapi.json"
HEADERS = {"X-Yinfin-User": "cfo", "X-Yinfin-Roles": "finance,admin"}
METHODS = ("get", "post", "put", "patch", "delete")

ODD_NUMBERS = [" 5.00", "5.00 ", "1e2", "1E+2", "١٢٣", "１２３", "1,000.00", "1 000", "+5", "5.",
               ".5", "0x1F", "NaN", "Infinity", "-0.001", "5.00\n", "99999999999999999999.99"]
LOWER_CODES = ["cny", "usd", "Cny"]


#: Stands for a value nested a thousand deep (which ``json.dumps`` itself cannot write).
DEEP = "\u2063deep\u2063"
DEEP_TEXT = '{"a": [' * 500 + "1" + "]}" * 500


def deep() -> str:
    return DEEP


def encode(body: Any) -> str:
    return json.dumps(body).replace(json.dumps(DEEP), DEEP_TEXT)


def wrong_types() -> list[Any]:
    return [None, True, 0, -1, 2**63, 1.5, 1e308, "", "x", [], {}, [1, "a"], {"a": {"b": []}}]


def huge() -> list[Any]:
    return ["x" * (DEFAULT_LIMITS.max_string_length + 1), ["y"] * 20_000, deep()]


def _operations() -> list[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite://"))
    spec = app.test_client().get(SPEC).get_json()
    return sorted((path, m) for path, ops in spec["paths"].items() for m in ops if m in METHODS)


OPERATIONS = _operations()


def _resolve(spec: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any]:
    while schema and "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema or {}


def _fill_path(path: str, params: list[dict[str, Any]]) -> str:
    for p in params:
        if p.get("in") != "path":
            continue
        kind = (p.get("schema") or {}).get("type")
        value = {"connector": "weaver", "code": "2026-01", "name": "expense"}.get(
            p["name"], "1" if kind == "integer" else "x")
        path = path.replace("{" + p["name"] + "}", value)
    return path


def _plain(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A harmless value of the schema's type (the base each hostile value is put into)."""
    schema = _resolve(spec, schema)
    kind = schema.get("type")
    if "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    return {"integer": 1, "number": 1, "boolean": False, "array": [], "object": {}}.get(kind, "x")


def _base(body_schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    props = body_schema.get("properties") or {}
    return {name: _plain(sub, spec) for name, sub in props.items()}


def _hostile_bodies(body_schema: dict[str, Any], spec: dict[str, Any]) -> Iterator[tuple[str, Any, bool]]:
    """(label, body, must_be_refused) for one operation's body."""
    yield "deep body", deep(), True
    yield "deep array body", [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], True
    yield "huge array body", list(range(20_000)), False
    yield "string body", "x" * 1000, False
    base = _base(body_schema, spec)
    for name, sub in (body_schema.get("properties") or {}).items():
        sub = _resolve(spec, sub)
        amount = sub.get("pattern") == AMOUNT_PATTERN
        for value in [*wrong_types(), *huge()]:
            yield f"{name}={str(value)[:20]!r}", {**base, name: value}, False
        for value in ODD_NUMBERS:
            yield f"{name}={value!r}", {**base, name: value}, amount
        if "currency" in name:
            for value in LOWER_CODES:
                yield f"{name}={value!r}", {**base, name: value}, True
        if sub.get("type") == "object" or name in ("form", "changes"):
            lines = {"lines": [{"ref": "1", "line_id": 1, "amount": odd, "currency": "CNY",
                                "budget_date": "2026-01-15"} for odd in ODD_NUMBERS[:1]]}
            for odd in ODD_NUMBERS:
                lines["lines"][0]["amount"] = odd
                yield f"{name}.lines[0].amount={odd!r}", {**base, name: json.loads(json.dumps(lines))}, True
            for code in LOWER_CODES:
                lines["lines"][0] = {**lines["lines"][0], "amount": "5.00", "currency": code}
                yield f"{name}.lines[0].currency={code!r}", {**base, name: json.loads(json.dumps(lines))}, True


def _check(resp: Any, label: str) -> None:
    status = resp.status_code
    assert status < 500, f"{label}: {status} {resp.get_data(as_text=True)[:300]}"
    if status >= 400:
        body = resp.get_json(silent=True)
        assert isinstance(body, dict) and set(body) == {"code", "message", "details"}, (
            f"{label}: {status} outside the error shape: {resp.get_data(as_text=True)[:300]}")
        assert isinstance(body["code"], str) and isinstance(body["message"], str)
        assert isinstance(body["details"], dict)


@pytest.fixture
def walker(app: Flask, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    monkeypatch.setenv("YINFIN_WEAVER_SECRET", "oa-secret")
    org_in(state(app).db)  # real lines (ids 1-4), so ids in paths and bodies reach the services
    return app.test_client()


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_every_operation_answers_hostile_input_in_the_error_shape(walker: FlaskClient, path: str, method: str):
    spec = walker.get(SPEC).get_json()
    item = spec["paths"][path]
    op = item[method]
    params = [*item.get("parameters", []), *op.get("parameters", [])]
    url = _fill_path(path, params)
    call = getattr(walker, method)
    sent = 0
    for p in params:
        if p.get("in") != "query":
            continue
        for value in [*ODD_NUMBERS, *LOWER_CODES, "", "x" * 5000, "-1", "0", str(2**64), "\x00", "%00"]:
            resp = call(url, query_string={p["name"]: value}, headers=HEADERS)
            _check(resp, f"{method.upper()} {url}?{p['name']}={value[:20]!r}")
            sent += 1
    if method == "get":
        _check(call(url, headers=HEADERS), f"GET {url}")
        return
    schema = _resolve(spec, ((op.get("requestBody") or {}).get("content") or {})
                      .get("application/json", {}).get("schema"))
    for label, body, must_refuse in _hostile_bodies(schema, spec):
        resp = call(url, data=encode(body), content_type="application/json", headers=HEADERS)
        _check(resp, f"{method.upper()} {url} {label}")
        if must_refuse and schema:
            assert resp.status_code >= 400, f"{method.upper()} {url} {label}: accepted ({resp.status_code})"
        sent += 1
    too_big = b'{"x": "' + b"y" * (DEFAULT_LIMITS.max_body_bytes + 1) + b'"}'
    resp = call(url, data=too_big, content_type="application/json", headers=HEADERS)
    _check(resp, f"{method.upper()} {url} body past the limit")
    assert resp.status_code == 413, f"{method.upper()} {url}: {resp.status_code} for a body past the limit"
    assert sent
