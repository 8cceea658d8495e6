"""Attachments over HTTP: multipart upload, list, metadata, download as a file, the
error shape for bad files, over-size bodies and duplicate invoices, the request and
task details listing them, and the OpenAPI document."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from yinfin_flow.attachments import samples
from yinfin_flow.db.engine import Database
from yinfin_flow.extension import state

from ..factories import Org
from ..integration.test_engine_support import expense_form, world
from .conftest import make_app

API = "/api/v1"
PNG = samples.receipt_png()
LIMIT = 4096


def as_(user: str, *roles: str) -> dict[str, str]:
    return {"X-Yinfin-User": user, "X-Yinfin-Roles": ",".join(roles)}


@pytest.fixture
def app(sqlite_db: Database, tmp_path: Path) -> Flask:
    return make_app(sqlite_db, attachments_dir=tmp_path / "files", attachment_max_bytes=LIMIT)


@pytest.fixture
def org(app: Flask) -> Org:
    return world(state(app).db)


def submit(client: FlaskClient, org: Org, who: str = "amy") -> int:
    resp = client.post(f"{API}/requests", headers=as_(who), json={
        "workflow": "expense", "title": "Taxi", "company": "ACME", "form": expense_form(org.child_line, "30.00")})
    assert resp.status_code == 201, resp.get_json()
    return int(resp.get_json()["id"])


def upload(client: FlaskClient, rid: int, who: str = "amy", data: bytes = PNG, name: str = "发票.png",
           kind: str = "image/png", headers: dict[str, str] | None = None, **fields: str):
    return client.post(f"{API}/requests/{rid}/attachments", headers={**as_(who), **(headers or {})},
                       content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), name, kind), **fields})


def test_upload_list_read_and_download(client: FlaskClient, org: Org) -> None:
    rid = submit(client, org)
    resp = upload(client, rid, line_ref="1", invoice_code="044031900111", invoice_number="00012345")
    assert resp.status_code == 201, resp.get_json()
    got = resp.get_json()
    assert {k: got[k] for k in ("request_id", "filename", "content_type", "size", "invoice_status")} == {
        "request_id": rid, "filename": "发票.png", "content_type": "image/png", "size": len(PNG),
        "invoice_status": "claimed"}
    assert client.get(f"{API}/requests/{rid}/attachments", headers=as_("amy")).get_json() == {"items": [got]}
    assert client.get(f"{API}/attachments/{got['id']}", headers=as_("wang")).get_json() == got
    # the request and the approver's task show it
    assert client.get(f"{API}/requests/{rid}", headers=as_("amy")).get_json()["attachments"] == [got]
    [task] = client.get(f"{API}/tasks", headers=as_("wang")).get_json()["items"]
    assert client.get(f"{API}/tasks/{task['id']}", headers=as_("wang")).get_json()["request"]["attachments"] == [got]

    dl = client.get(f"{API}/attachments/{got['id']}/content", headers=as_("wang"))
    assert dl.status_code == 200 and dl.data == PNG
    assert dl.mimetype == "image/png"
    assert dl.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%E5%8F%91%E7%A5%A8.png" in dl.headers["Content-Disposition"]
    assert dl.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in dl.headers["Content-Security-Policy"]
    assert dl.headers["ETag"].strip('"') == got["sha256"]
    for who in ("bob", "pat"):
        assert client.get(f"{API}/attachments/{got['id']}/content", headers=as_(who)).status_code == 404
        assert client.get(f"{API}/requests/{rid}/attachments", headers=as_(who)).status_code == 404


def test_an_approver_may_not_upload_and_a_stranger_learns_nothing(client: FlaskClient, org: Org) -> None:
    rid = submit(client, org)
    assert (r := upload(client, rid, "wang")).status_code == 403, r.get_json()
    assert r.get_json()["code"] == "forbidden"
    assert upload(client, rid, "pat").status_code == 404
    assert upload(client, rid, "fiona", headers={"X-Yinfin-Roles": "finance"}).status_code == 201


def test_html_disguised_as_an_image_is_refused_naming_the_file(client: FlaskClient, org: Org) -> None:
    rid = submit(client, org)
    resp = upload(client, rid, data=b"<html><script>alert(1)</script></html>", name="x.png")
    assert resp.status_code == 422
    body = resp.get_json()
    assert (body["code"], body["details"]["field"]) == ("unsupported_file_type", "file")
    assert body["details"]["errors"][0]["field"] == "file"


def test_a_text_part_is_not_a_file_and_invoice_fields_are_checked(client: FlaskClient, org: Org) -> None:
    rid = submit(client, org)
    resp = client.post(f"{API}/requests/{rid}/attachments", headers=as_("amy"),
                       content_type="multipart/form-data", data={"file": "not a file"})
    assert resp.status_code == 422 and resp.get_json()["details"]["field"] == "file"
    resp = client.post(f"{API}/requests/{rid}/attachments", headers=as_("amy"), json={})
    assert resp.status_code == 422 and resp.get_json()["details"]["field"] == "file"
    resp = upload(client, rid, invoice_code="04403190011", invoice_number="00012345")
    assert resp.status_code == 422
    assert resp.get_json()["details"]["field"] == "invoice_code"
    assert "10 or 12 digits" in resp.get_json()["message"]


def test_over_the_limit_is_413_in_the_error_shape(client: FlaskClient, org: Org) -> None:
    rid = submit(client, org)
    big = PNG + bytes(LIMIT)  # a PNG with trailing bytes: over the limit by content length
    assert len(big) > LIMIT
    resp = upload(client, rid, data=big)  # the body fits the envelope, the file does not
    assert resp.status_code == 413
    body = resp.get_json()
    assert body["code"] == "attachment_too_large"
    assert body["details"]["field"] == "file" and body["details"]["limit"] == LIMIT
    huge = b"\x89PNG\r\n\x1a\n" + bytes(200 * 1024)  # the body itself is over the cap: never read
    resp = upload(client, rid, data=huge, headers={"Idempotency-Key": "big-1"})
    assert resp.status_code == 413
    assert resp.get_json()["code"] == "attachment_too_large"
    assert resp.get_json()["details"]["field"] == "file"
    assert client.get(f"{API}/requests/{rid}/attachments", headers=as_("amy")).get_json() == {"items": []}


def test_a_duplicate_invoice_names_the_other_request(client: FlaskClient, org: Org) -> None:
    first, second = submit(client, org), submit(client, org, "bob")
    assert upload(client, first, invoice_number="24442000000000054321").status_code == 201
    resp = upload(client, second, "bob", data=samples.receipt_pdf(["x"]), name="b.pdf",
                  kind="application/pdf", invoice_number="24442000000000054321")
    assert resp.status_code == 409
    body = resp.get_json()
    assert body["code"] == "duplicate_invoice" and body["details"]["request_id"] == first
    assert f"request {first}" in body["message"]
    # once the first is withdrawn, the invoice is free
    assert client.post(f"{API}/requests/{first}/withdraw", headers=as_("amy"), json={}).status_code == 200
    again = upload(client, second, "bob", data=samples.receipt_pdf(["x"]), name="b.pdf",
                   kind="application/pdf", invoice_number="24442000000000054321")
    assert again.status_code == 201, again.get_json()
    assert upload(client, first).get_json()["code"] == "request_ended"


def test_a_retried_upload_with_the_same_key_attaches_once(client: FlaskClient, org: Org) -> None:
    rid = submit(client, org)
    one = upload(client, rid, headers={"Idempotency-Key": "receipt-1"})
    two = upload(client, rid, headers={"Idempotency-Key": "receipt-1"})
    assert one.status_code == two.status_code == 201
    assert two.headers.get("Idempotent-Replayed") == "true"
    assert one.get_json() == two.get_json()
    assert len(client.get(f"{API}/requests/{rid}/attachments", headers=as_("amy")).get_json()["items"]) == 1
    other = upload(client, rid, data=samples.receipt_png(seed=9), headers={"Idempotency-Key": "receipt-1"})
    assert other.status_code == 422  # the same key with another file


def test_the_openapi_document_lists_the_endpoints(client: FlaskClient) -> None:
    spec = client.get(f"{API}/openapi.json").get_json()
    paths = spec["paths"]
    post = paths[f"{API}/requests/{{request_id}}/attachments"]["post"]
    body = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    schema = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert schema["properties"]["file"] == {**schema["properties"]["file"], "type": "string", "format": "binary"}
    assert {"line_ref", "invoice_code", "invoice_number"} <= set(schema["properties"])
    assert "get" in paths[f"{API}/requests/{{request_id}}/attachments"]
    assert "get" in paths[f"{API}/attachments/{{attachment_id}}"]
    content = paths[f"{API}/attachments/{{attachment_id}}/content"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/pdf", "image/jpeg", "image/png", "application/ofd"}
    detail = spec["components"]["schemas"]["RequestDetail"]["properties"]
    assert "attachments" in detail


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_fuzzed_uploads_to_a_real_request_never_fail_with_a_500(request: pytest.FixtureRequest, tmp_path: Path,
                                                              backend: str) -> None:
    """The document-wide fuzz only reaches requests that do not exist; here every
    generated upload goes to one that does, as finance (who may attach to it)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    from .test_api_fuzz import CHECKS, SPEC

    db = request.getfixturevalue("sqlite_db" if backend == "sqlite" else "pg_db")
    app = make_app(db, attachments_dir=tmp_path / "files", attachment_max_bytes=LIMIT)
    client = app.test_client()
    rid = submit(client, world(db))
    schema = schemathesis.openapi.from_wsgi(SPEC, app)
    label = "POST /api/v1/requests/{request_id}/attachments"
    (operation,) = [op.ok() for op in schema.get_all_operations() if op.ok().label == label]
    statuses: list[int] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def fuzz(case: schemathesis.Case) -> None:
            case.path_parameters = {**(case.path_parameters or {}), "request_id": rid}
            statuses.append(case.call_and_validate(headers={"X-Yinfin-User": "cfo",
                                                            "X-Yinfin-Roles": "finance"},
                                                   checks=CHECKS).status_code)

        fuzz()
    assert statuses and max(statuses) < 500
