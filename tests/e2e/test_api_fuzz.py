"""Fuzz every operation of the OpenAPI document with schemathesis (WSGI, no server).

No input may cause a 5xx, and every response (errors included) must match the
schema the document declares. The example count is kept modest so this stays quick.
"""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from yinfin_flow.app import create_app
from yinfin_flow.config import Settings
from yinfin_flow.db.engine import Database
from yinfin_flow.extension import state

from ..factories import org_in
from .conftest import FINANCE, make_app

#: Examples per operation and mode: the document has ~50 operations, so this stays
#: modest to keep the whole fuzz within a minute or two on a quiet machine.
EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
SPEC = "/api/v1/openapi.json"


def _cases() -> list[pytest.param]:
    """(operation, mode) pairs: valid and invalid inputs; invalid only where there are inputs."""
    # The document depends on code only: read it from an app with an empty database.
    app = create_app(Settings(database_url="sqlite://"))
    schema = schemathesis.openapi.from_wsgi(SPEC, app)
    out = []
    for result in schema.get_all_operations():
        op = result.ok()
        out.append(pytest.param(op.label, GenerationMode.POSITIVE, id=f"{op.label} valid"))
        if list(op.iter_parameters()) or list(op.body):
            out.append(pytest.param(op.label, GenerationMode.NEGATIVE, id=f"{op.label} invalid"))
    return sorted(out, key=lambda p: p.id)


def _fuzz(app: Flask, label: str, mode: GenerationMode, examples: int,
          load_org: bool = True) -> None:
    if load_org:
        org_in(state(app).db)  # real lines (ids 1-4), so small generated ids reach happy paths too
    schema = schemathesis.openapi.from_wsgi(SPEC, app)
    (operation,) = [op.ok() for op in schema.get_all_operations() if op.ok().label == label]
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=dict(FINANCE), checks=CHECKS)
        calls.append(response.status_code)

    fuzz()
    assert calls, f"{label}: no request was made"


@pytest.mark.parametrize(("label", "mode"), _cases())
def test_no_input_causes_a_server_error_and_responses_match_the_schema(
    app: Flask, label: str, mode: GenerationMode
):
    _fuzz(app, label, mode, examples=EXAMPLES)


#: Operations whose inputs reach PostgreSQL as text, numbers or ids in the body.
PG_LABELS = [
    "GET /api/v1/budget/lines",
    "POST /api/v1/budget/preview",
    "POST /api/v1/budget/adjustments",
    "POST /api/v1/budget/transfers",
    "POST /api/v1/budget/imports",
    "POST /api/v1/budget/lines/{line_id}/simulate",
    "PUT /api/v1/budget/lines/{line_id}/rule",
    "POST /api/v1/budget/rule-changes",
    "POST /api/v1/budget/rule-changes/{change_id}/reject",
    "GET /api/v1/requests",
    "POST /api/v1/requests",
    "GET /api/v1/journal/entries",
]


@pytest.mark.parametrize("label", PG_LABELS)
def test_postgres_refuses_nothing_with_a_500_either(pg_db: Database, label: str):
    """PostgreSQL is stricter than SQLite (NUL in text, column lengths, numeric overflow)."""
    app = make_app(pg_db)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        _fuzz(app, label, mode, examples=10, load_org=mode is GenerationMode.POSITIVE)
