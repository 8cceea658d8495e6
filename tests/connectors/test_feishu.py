"""Feishu/Lark against a local stub of its open platform; events encrypted and signed."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from connectors.base import (
    MemorySeen,
    PermanentError,
    RetryableError,
    SignatureError,
    StatusMessage,
)
from connectors.feishu import FeishuConnector

from .conftest import NOW
from .stubs.feishu import FeishuStub, delivery

KEY = "enc-key-123"
TS = str(int(NOW.timestamp()))
MS = str(int(NOW.timestamp() * 1000))


@pytest.fixture
def stub(start_stub):
    s = start_stub(FeishuStub())
    form = [{"id": "w1", "name": "金额", "type": "amount", "value": Decimal("1234.10")},
            {"id": "w2", "name": "事由", "type": "input", "value": "会议"}]
    s.instances["INST-1"] = {"approval_code": "APP-1", "instance_code": "INST-1",
                             "user_id": "u-7", "open_id": "ou_7", "status": "PENDING",
                             "form": json.dumps(
                                 form, default=float, ensure_ascii=False)}
    return s


@pytest.fixture
def feishu(stub):
    return FeishuConnector(app_id="cli_a1", app_secret="sec", verification_token="vtok",
                           encrypt_key=KEY, approval_code="EXT-CODE", api_url=stub.url,
                           timeout=(1.0, 1.0))


def v1(event: dict, uuid: str = "ev-1") -> dict:
    return {"uuid": uuid, "token": "vtok", "ts": TS, "type": "event_callback", "event": event}


def test_url_verification_echoes_the_challenge(feishu) -> None:
    headers, body = delivery({"challenge": "ch-9", "token": "vtok", "type": "url_verification"},
                             KEY, TS)
    result = feishu.verify_and_parse({}, {}, body, now=NOW, seen=MemorySeen())
    assert json.loads(result.body) == {"challenge": "ch-9"} and result.events == []
    _, bad = delivery({"challenge": "c", "token": "nope", "type": "url_verification"}, KEY, TS)
    with pytest.raises(SignatureError, match="verification token"):
        feishu.verify_and_parse({}, {}, bad, now=NOW, seen=MemorySeen())


def test_instance_pending_reads_the_form_with_exact_amounts(feishu) -> None:
    headers, body = delivery(v1({"type": "approval_instance", "approval_code": "APP-1",
                                 "instance_code": "INST-1", "status": "PENDING",
                                 "instance_operate_time": MS}), KEY, TS)
    [ev] = feishu.verify_and_parse(headers, {}, body, now=NOW, seen=MemorySeen()).events
    # the directory keeps Feishu's open_id (users.feishu_open_id): that is the id to use,
    # even when the app may also read the tenant's user_id
    assert ev.kind == "form_submitted" and ev.external_user_id == "ou_7"
    assert ev.form == {"金额": "1234.1", "事由": "会议"}  # the JSON number's own digits
    assert ev.occurred_at == NOW and ev.event_id == "ev-1"


def test_task_and_instance_outcomes(feishu) -> None:
    seen = MemorySeen()
    cases = [({"type": "approval_task", "instance_code": "I", "task_id": "T1", "user_id": "boss",
               "open_id": "ou_boss", "status": "REJECTED", "operate_time": MS},
              ("task_acted", "reject", None, "ou_boss")),
             ({"type": "approval_instance", "instance_code": "I", "status": "CANCELED"},
              ("instance_withdrawn", None, "withdrawn", None)),
             ({"type": "approval_instance", "instance_code": "I", "status": "APPROVED"},
              ("instance_status", None, "approved", None)),
             # 审批实例状态变更: REVERTED = the applicant revoked an approved instance
             # (operate_time an int64 then)
             ({"type": "approval_instance", "instance_code": "I", "status": "REVERTED",
               "operate_time": int(MS)},
              ("instance_withdrawn", None, "withdrawn", None))]
    for n, (event, expected) in enumerate(cases):
        headers, body = delivery(v1(event, f"ev-{n}"), KEY, TS, nonce=f"n{n}")
        [ev] = feishu.verify_and_parse(headers, {}, body, now=NOW, seen=seen).events
        assert (ev.kind, ev.action, ev.status, ev.external_user_id) == expected


def test_bad_signature_stale_and_replay(feishu) -> None:
    payload = v1({"type": "approval_instance", "instance_code": "I", "status": "APPROVED"})
    headers, body = delivery(payload, KEY, TS)
    with pytest.raises(SignatureError, match="X-Lark-Signature"):
        feishu.verify_and_parse({**headers, "X-Lark-Request-Nonce": "x"}, {}, body, now=NOW,
                                seen=MemorySeen())
    with pytest.raises(SignatureError, match="X-Lark-Signature"):
        feishu.verify_and_parse(headers, {}, body.replace(b'"}', b' "}'), now=NOW,
                                seen=MemorySeen())
    with pytest.raises(SignatureError, match="stale"):
        feishu.verify_and_parse(headers, {}, body, now=NOW - timedelta(minutes=10),
                                seen=MemorySeen())
    seen = MemorySeen()
    feishu.verify_and_parse(headers, {}, body, now=NOW, seen=seen)
    h2, b2 = delivery(payload, KEY, TS, nonce="retry")  # Feishu's re-push, same uuid
    with pytest.raises(SignatureError, match="replayed"):
        feishu.verify_and_parse(h2, {}, b2, now=NOW, seen=seen)


def test_external_instance_sync_keeps_the_newest_and_relogs_in(feishu, stub) -> None:
    first = StatusMessage(kind="task", request_id="REQ-1", title="采购申请", status="pending",
                          occurred_at=NOW, user_ids=["u-1"], form={"金额": "99.00"},
                          applicant_ids=["ou-amy"])
    later = StatusMessage(kind="status", request_id="REQ-1", title="采购申请", status="approved",
                          occurred_at=NOW + timedelta(minutes=1))
    feishu.push_status(later, "k2")
    stub.expire_tokens()
    out = feishu.push_status(first, "k1")  # a late retry of an older message
    assert out["code"] == 0
    assert stub.external["REQ-1"]["status"] == "APPROVED"
    assert len(stub.calls("/open-apis/auth/v3/tenant_access_token/internal")) == 2
    task_body = stub.calls("/open-apis/approval/v4/external_instances")[-1].json()
    # the instance stays the applicant's; the task is the approver's
    assert task_body["open_id"] == "ou-amy" and task_body["task_list"][0]["open_id"] == "u-1"


def test_validation_error_keeps_feishus_message(stub) -> None:
    other = FeishuConnector(app_id="cli_a1", app_secret="sec", verification_token="v",
                            approval_code="NOPE", api_url=stub.url)
    msg = StatusMessage(kind="status", request_id="R", title="t", status="approved",
                        occurred_at=NOW)
    with pytest.raises(PermanentError, match="approval code not found"):
        other.push_status(msg, "k")
    wrong = FeishuConnector(app_id="cli_a1", app_secret="bad", verification_token="v",
                            approval_code="EXT-CODE", api_url=stub.url)
    with pytest.raises(PermanentError, match="app secret invalid"):
        wrong.push_status(msg, "k")


def test_rate_limit_carries_the_reset_time(feishu, stub) -> None:
    msg = StatusMessage(kind="status", request_id="R", title="t", status="approved",
                        occurred_at=NOW)
    feishu.tenant_token()
    stub.routes[("POST", "/open-apis/approval/v4/external_instances")] = lambda req: (
        400, {"code": 99991400, "msg": "request trigger frequency limit"},
        {"x-ogw-ratelimit-reset": "3"})
    with pytest.raises(RetryableError) as err:
        feishu.push_status(msg, "k")
    assert err.value.retry_after == 3.0 and "frequency limit" in err.value.message
    # the documented answer of current APIs is HTTP 429 with the same body and headers
    stub.routes[("POST", "/open-apis/approval/v4/external_instances")] = lambda req: (
        429, {"code": 99991400, "msg": "request trigger frequency limit"},
        {"x-ogw-ratelimit-limit": "100", "x-ogw-ratelimit-reset": "52"})
    with pytest.raises(RetryableError) as err:
        feishu.push_status(msg, "k")
    assert err.value.retry_after == 52 and err.value.status == 429
