"""Structured logs: one JSON object per line, with the ids bound around the work."""

from __future__ import annotations

import json
import logging

from yinfin_flow.worker.logs import JsonFormatter, bind, current_ids, document_context, reset


def test_json_lines_carry_request_and_document_ids():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger("yinfin_flow.test_logs")
    log.addHandler(handler := Keep())
    log.setLevel(logging.INFO)
    fmt = JsonFormatter()
    try:
        token = bind(request_id="req-7")
        with document_context("voucher:17", message_id=3, target="kingdee"):
            log.info("delivered %s", "记-2026-01-0001", extra={"attempt": 2})
            lines = [json.loads(fmt.format(r)) for r in records]
        log.warning("outside")
        outside = json.loads(fmt.format(records[-1]))
        reset(token)
    finally:
        log.removeHandler(handler)
    [line] = lines
    assert line["message"] == "delivered 记-2026-01-0001" and line["level"] == "INFO"
    assert (line["request_id"], line["document"], line["message_id"], line["target"], line["attempt"]) == (
        "req-7", "voucher:17", 3, "kingdee", 2)
    assert line["ts"].endswith("+00:00")
    assert outside["request_id"] == "req-7" and "document" not in outside
    assert current_ids() == {}


def test_api_answers_with_a_request_id(sqlite_db):
    from ..e2e.conftest import make_app

    client = make_app(sqlite_db).test_client()
    r = client.get("/api/v1/health", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    r = client.get("/api/v1/health", headers={"X-Request-Id": "bad id;drop"})
    assert len(r.headers["X-Request-Id"]) == 32 and current_ids() == {}
