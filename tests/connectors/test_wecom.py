"""WeCom against a local stub of its API, callbacks made with WXBizMsgCrypt."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.base import (
    MemorySeen,
    PermanentError,
    RetryableError,
    SignatureError,
    StatusMessage,
)
from connectors.crypto import BizMsgCrypt
from connectors.wecom import WeComConnector

from .conftest import NOW
from .stubs.wecom import WeComStub, approval_xml, callback

KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
TS = str(int(NOW.timestamp()))


@pytest.fixture
def stub(start_stub):
    s = start_stub(WeComStub())
    s.approvals["202611250001"] = {"sp_no": "202611250001", "apply_data": {"contents": [
        {"control": "Money", "id": "m", "title": [{"text": "报销金额", "lang": "zh_CN"}],
         "value": {"new_money": "2000.05"}},
        {"control": "Text", "id": "t", "title": [{"text": "事由", "lang": "zh_CN"}],
         "value": {"text": "客户拜访"}},
        {"control": "Selector", "id": "s", "title": [{"text": "类型", "lang": "zh_CN"}],
         "value": {"selector": {"type": "single", "options": [{"key": "o1", "value": [
             {"text": "差旅", "lang": "zh_CN"}]}]}}}]}}
    return s


@pytest.fixture
def wecom(stub):
    return WeComConnector(corp_id="ww1", secret="sec", agent_id="1000002", token="QDG6eK",
                          aes_key=KEY, api_url=stub.url, timeout=(1.0, 1.0))


def crypto() -> BizMsgCrypt:
    return BizMsgCrypt("wecom", "QDG6eK", KEY, "ww1")


def test_url_verification_answers_the_plain_echostr(wecom) -> None:
    echostr = crypto().encrypt("1616140317555161061")
    query = {"msg_signature": crypto().signature(TS, "n", echostr), "timestamp": TS, "nonce": "n",
             "echostr": echostr.replace("+", " ")}  # what an unescaped '+' turns into
    result = wecom.verify_and_parse({}, query, b"", now=NOW, seen=MemorySeen())
    assert result.body == b"1616140317555161061" and result.events == []


def test_submitted_reads_the_form(wecom) -> None:
    query, body = callback(crypto(), approval_xml("202611250001", 1, 1, TS), TS)
    [ev] = wecom.verify_and_parse({}, query, body, now=NOW, seen=MemorySeen()).events
    assert (ev.kind, ev.external_instance_id, ev.external_user_id) == (
        "form_submitted", "202611250001", "zhangsan")
    assert ev.form == {"报销金额": "2000.05", "事由": "客户拜访", "类型": "差旅"}
    assert result_empty(wecom)


def result_empty(wecom) -> bool:
    query, body = callback(crypto(), approval_xml("X", 5, 1, TS), TS)  # 催办: nothing to do
    return wecom.verify_and_parse({}, query, body, now=NOW, seen=MemorySeen()).body == b""


def test_final_rejection_is_a_task_action_and_a_status(wecom) -> None:
    query, body = callback(crypto(), approval_xml("SP2", 3, 3, TS, speech="预算不足"), TS)
    task, status = wecom.verify_and_parse({}, query, body, now=NOW, seen=MemorySeen()).events
    assert (task.kind, task.action, task.comment, task.external_user_id) == (
        "task_acted", "reject", "预算不足", "boss")
    assert (status.kind, status.status) == ("instance_status", "rejected")
    assert task.event_id != status.event_id
    q2, b2 = callback(crypto(), approval_xml("SP2", 6, 4, TS), TS)
    [withdrawn] = wecom.verify_and_parse({}, q2, b2, now=NOW, seen=MemorySeen()).events
    assert withdrawn.kind == "instance_withdrawn"


def test_signature_stale_replay_and_foreign_corp(wecom) -> None:
    query, body = callback(crypto(), approval_xml("SP3", 2, 2, TS), TS)
    with pytest.raises(SignatureError, match="signature"):
        wecom.verify_and_parse({}, {**query, "timestamp": str(int(TS) + 1)}, body, now=NOW,
                               seen=MemorySeen())
    with pytest.raises(SignatureError, match="stale"):
        wecom.verify_and_parse({}, query, body, now=NOW + timedelta(minutes=5, seconds=1),
                               seen=MemorySeen())
    seen = MemorySeen()
    wecom.verify_and_parse({}, query, body, now=NOW, seen=seen)
    with pytest.raises(SignatureError, match="replayed"):
        wecom.verify_and_parse({}, query, body, now=NOW, seen=seen)
    other = BizMsgCrypt("wecom", "QDG6eK", KEY, "ww-other")
    q4, b4 = callback(other, approval_xml("SP3", 2, 2, TS), TS)
    with pytest.raises(SignatureError, match="receive id"):
        wecom.verify_and_parse({}, q4, b4, now=NOW, seen=MemorySeen())
    with pytest.raises(SignatureError, match="bad XML"):
        wecom.verify_and_parse({}, query, b"<xml><Encrypt>", now=NOW, seen=MemorySeen())


def test_push_textcard_relogin_and_errors(wecom, stub) -> None:
    msg = StatusMessage(kind="task", request_id="R1", title="请审批：采购", status="pending",
                        occurred_at=NOW, user_ids=["lisi", "wangwu"], url="https://yf/r/R1")
    assert wecom.push_status(msg, "k1")["errcode"] == 0
    stub.expire_tokens()
    wecom.push_status(msg, "k1")
    assert [m["touser"] for m in stub.sent] == ["lisi|wangwu"] * 2
    assert stub.sent[0]["enable_duplicate_check"] == 1
    assert len(stub.calls("/cgi-bin/gettoken")) == 2
    stub.fail_next(("status", 200, '{"errcode": 45009, "errmsg": "api freq out of limit"}'))
    with pytest.raises(RetryableError, match="freq"):
        wecom.push_status(msg, "k1")
    bad = WeComConnector(corp_id="ww1", secret="sec", agent_id="7", token="t", aes_key=KEY,
                         api_url=stub.url)
    with pytest.raises(PermanentError, match="invalid agentid"):
        bad.push_status(msg, "k1")
