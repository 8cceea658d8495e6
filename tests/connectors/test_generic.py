"""The generic signed webhook: inbound verification and a signed status push to a stub OA."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from connectors.base import (
    MemorySeen,
    PermanentError,
    RetryableError,
    SignatureError,
    StatusMessage,
)
from connectors.generic import GenericWebhookConnector, sign

from .conftest import NOW
from .stubs.server import StubServer

TS = str(int(NOW.timestamp()))


def signed(body: dict, event_id: str = "e-1", ts: str = TS, secret: str = "shh"):
    raw = json.dumps(body).encode()
    return {"X-Yinfin-Timestamp": ts, "X-Yinfin-Event-Id": event_id,
            "X-Yinfin-Signature": sign(secret, ts, raw)}, raw


@pytest.fixture
def oa():
    return GenericWebhookConnector(secret="shh", name="weaver")


def test_valid_event_keeps_money_as_text(oa) -> None:
    headers, raw = signed({"kind": "form_submitted", "instance_id": "WF-1", "user_id": "zs",
                           "form": {"amount": "1200.10", "qty": 3}, "template": "expense"})
    raw = raw.replace(b'"1200.10"', b"1200.10")  # a JSON number
    headers["X-Yinfin-Signature"] = sign("shh", TS, raw)
    [ev] = oa.verify_and_parse(headers, {}, raw, now=NOW, seen=MemorySeen()).events
    assert ev.form == {"amount": "1200.10", "qty": "3"}
    assert (ev.connector, ev.kind, ev.external_instance_id, ev.occurred_at) == (
        "weaver", "form_submitted", "WF-1", NOW)


def test_signature_stale_replay(oa) -> None:
    body = {"kind": "task_acted", "instance_id": "WF-1", "action": "approve"}
    headers, raw = signed(body)
    with pytest.raises(SignatureError):
        oa.verify_and_parse(headers, {}, raw + b" ", now=NOW, seen=MemorySeen())
    h2, r2 = signed(body, secret="other")
    with pytest.raises(SignatureError):
        oa.verify_and_parse(h2, {}, r2, now=NOW, seen=MemorySeen())
    old, r3 = signed(body, ts=str(int(TS) - 301))
    with pytest.raises(SignatureError, match="stale"):
        oa.verify_and_parse(old, {}, r3, now=NOW, seen=MemorySeen())
    seen = MemorySeen()
    oa.verify_and_parse(headers, {}, raw, now=NOW, seen=seen)
    with pytest.raises(SignatureError, match="replayed"):
        oa.verify_and_parse(headers, {}, raw, now=NOW + timedelta(seconds=5), seen=seen)


@pytest.mark.parametrize("body, field", [
    ({"kind": "nope", "instance_id": "1"}, "kind"),
    ({"kind": "task_acted"}, "instance_id"),
    ({"kind": "form_submitted", "instance_id": "1", "form": {"a": 1.5e300, "b": [1]}}, "form.b"),
    ({"kind": "task_acted", "instance_id": "1", "occurred_at": "2026-11-25T08:00:00"},
     "occurred_at"),
])
def test_malformed_body_names_the_field(oa, body, field) -> None:
    headers, raw = signed(body)
    with pytest.raises(PermanentError, match=f"^{field}:"):
        oa.verify_and_parse(headers, {}, raw, now=NOW, seen=MemorySeen())


def test_push_status_is_signed_and_classified(start_stub) -> None:
    stub = start_stub(StubServer())
    stub.routes[("POST", "/status")] = lambda req: (
        (200, {"accepted": True}) if req.headers["x-yinfin-signature"] == sign(
            "shh", req.headers["x-yinfin-timestamp"], req.body) else (401, "bad signature"))
    oa = GenericWebhookConnector(secret="shh", status_url=f"{stub.url}/status", timeout=(1, 1))
    msg = StatusMessage(kind="status", request_id="R1", title="t", status="approved",
                        occurred_at=NOW, user_ids=("u1",), form={"amount": "1.00"})
    assert oa.push_status(msg, "idem-1") == {"accepted": True}
    sent = stub.calls("/status")[0]
    assert sent.headers["idempotency-key"] == "idem-1"
    assert sent.json()["form"] == {"amount": "1.00"}
    stub.fail_next(503)
    with pytest.raises(RetryableError):
        oa.push_status(msg, "idem-1")
    stub.fail_next(("status", 422, "amount: unknown cost centre"))
    with pytest.raises(PermanentError, match="unknown cost centre"):
        oa.push_status(msg, "idem-1")


def test_transport_classification_refused_bad_url_and_html(start_stub) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    msg = StatusMessage(kind="status", request_id="R1", title="t", status="approved",
                        occurred_at=NOW)
    refused = GenericWebhookConnector(secret="x", status_url=f"http://127.0.0.1:{closed}/s")
    with pytest.raises(RetryableError, match="cannot reach"):
        refused.push_status(msg, "k")
    with pytest.raises(PermanentError, match="bad URL"):
        GenericWebhookConnector(secret="x", status_url="htp:/nowhere").push_status(msg, "k")


def test_non_json_answers(start_stub) -> None:
    from connectors.http import Http, body_json

    stub = start_stub(StubServer())
    stub.routes[("GET", "/maint")] = lambda req: (200, "<html>维护中</html>")
    stub.routes[("GET", "/wrong")] = lambda req: (404, "<html>Not Found</html>")
    http = Http("t", stub.url)
    with pytest.raises(RetryableError):
        body_json(http.request("GET", "/maint"), "t")
    with pytest.raises(PermanentError, match="404"):
        body_json(http.request("GET", "/wrong"), "t")
    stub.routes[("GET", "/busy")] = lambda req: (429, "slow down", {"Retry-After": "7"})
    with pytest.raises(RetryableError) as err:
        http.request("GET", "/busy")
    assert (err.value.status, err.value.retry_after) == (429, 7.0)


@pytest.mark.redis
def test_redis_seen_accepts_an_event_once(redis_url, oa) -> None:
    import uuid

    import redis

    from connectors.base import RedisSeen

    client = redis.Redis.from_url(redis_url)
    seen = RedisSeen(client, prefix=f"test:{uuid.uuid4().hex}:")
    other_process = RedisSeen(redis.Redis.from_url(redis_url), prefix=seen.prefix)
    headers, raw = signed({"kind": "instance_status", "instance_id": "WF-9", "status": "approved"},
                          event_id="e-redis")
    oa.verify_and_parse(headers, {}, raw, now=NOW, seen=seen)
    with pytest.raises(SignatureError, match="replayed"):
        oa.verify_and_parse(headers, {}, raw, now=NOW, seen=other_process)
    assert 0 < client.ttl(seen.prefix + "weaver:e-redis") <= 7 * 86400
    client.delete(seen.prefix + "weaver:e-redis")
