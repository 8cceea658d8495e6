"""OA callbacks through ``/api/v1/oa/<connector>/events`` as the vendors' own libraries
make and read them: WeCom's URL check (GET) with wechatpy's ``WeChatCrypto``, Feishu's
url_verification and its 1.0/2.0 approval events checked by lark-oapi's
``EventDispatcherHandler`` (which parses them into its ``P2Approval…V4`` models), and
DingTalk's ``check_url`` with dingtalk-sdk's ``DingTalkCrypto``. Event types a
connector does not read are answered as the vendor expects and counted in health."""

from __future__ import annotations

import json
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connectors import registry
from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.db.models.org import User
from yinfin_flow.extension import state

from ..connectors.stubs.feishu import FeishuStub, delivery
from ..factories import Org
from ..integration.test_engine_support import world

wechatpy_crypto = pytest.importorskip("wechatpy.enterprise.crypto")
lark = pytest.importorskip("lark_oapi")
dingtalk_crypto = pytest.importorskip("dingtalk.crypto")

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as both consoles give
FEISHU_KEY = "feishu-encrypt-key"
FEISHU_TOKEN = "feishu-vtok"


@pytest.fixture(autouse=True)
def _fresh_connectors() -> Iterator[None]:
    registry._cache.clear()  # noqa: SLF001 - each test configures its own vendor settings
    yield
    registry._cache.clear()  # noqa: SLF001


def ignored(client: FlaskClient) -> dict[tuple[str, str], int]:
    details = client.get("/api/v1/health").get_json()["checks"]["oa_inbound"]["details"]
    return {(i["connector"], i["event_type"]): i["count"] for i in details["ignored"]}


# -- WeCom ------------------------------------------------------------------------------


@pytest.fixture
def wecom(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {"CORP_ID": "ww-corp", "SECRET": "s", "AGENT_ID": "1000002",
                        "TOKEN": "wecom-token", "AES_KEY": AES_KEY,
                        "API_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(f"YINFIN_WECOM_{name}", value)
    return wechatpy_crypto.WeChatCrypto("wecom-token", AES_KEY, "ww-corp")


def envelope(xml: str) -> tuple[str, str]:
    """(Encrypt, MsgSignature) of the envelope wechatpy's ``encrypt_message`` makes."""
    root = ET.fromstring(xml)
    return root.findtext("Encrypt") or "", root.findtext("MsgSignature") or ""


def test_wecom_saves_the_callback_url_with_a_get(anonymous: FlaskClient, wecom: Any) -> None:
    # what WeCom sends when the admin saves 接收消息 → 设置API接收: a random string,
    # encrypted and signed the way it encrypts messages (wechatpy's envelope holds both)
    echo = "6093719284627186373"
    ts, nonce = str(int(time.time())), "1372623149"
    echostr, signature = envelope(wecom.encrypt_message(echo, nonce, ts))
    query = {"msg_signature": signature, "timestamp": ts, "nonce": nonce, "echostr": echostr}
    assert wecom.check_signature(signature, ts, nonce, echostr) == echo
    resp = anonymous.get("/api/v1/oa/wecom/events", query_string=query)
    assert (resp.status_code, resp.get_data(as_text=True)) == (200, echo)
    assert resp.content_type.startswith("text/plain")
    forged = anonymous.get("/api/v1/oa/wecom/events", query_string={**query, "nonce": "other"})
    assert (forged.status_code, forged.get_json()["code"]) == (401, "bad_signature")
    assert anonymous.get("/api/v1/oa/wecom/events").status_code == 401  # nothing to verify
    assert anonymous.get("/api/v1/oa/nobody/events").status_code == 404


def test_wecom_messages_nobody_reads_are_answered_and_counted(anonymous: FlaskClient, app: Flask,
                                                              wecom: Any) -> None:
    plain = ("<xml><ToUserName><![CDATA[ww-corp]]></ToUserName><FromUserName><![CDATA[amy]]>"
             f"</FromUserName><CreateTime>{int(time.time())}</CreateTime>"
             "<MsgType><![CDATA[event]]></MsgType>"
             "<Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[update_user]]>"
             "</ChangeType><UserID><![CDATA[amy]]></UserID></xml>")
    ts, nonce = str(int(time.time())), secrets.token_hex(4)
    sent = wecom.encrypt_message(plain, nonce, ts)
    _, signature = envelope(sent)
    resp = anonymous.post("/api/v1/oa/wecom/events", data=sent.encode(),
                          content_type="text/xml", query_string={
                              "msg_signature": signature, "timestamp": ts, "nonce": nonce})
    assert (resp.status_code, resp.get_data()) == (200, b"")  # what WeCom expects
    assert ignored(anonymous) == {("wecom", "change_contact"): 1}


# -- Feishu -----------------------------------------------------------------------------

MAPPING = """
users: feishu
forms:
  APP-EXP:
    workflow: expense
    company: ACME
    title: reason
    lines:
      - {ref: "=1", line_id: budget_line, amount: amount, currency: "=CNY",
         budget_date: date, memo: reason}
"""


@pytest.fixture
def feishu_stub() -> Iterator[FeishuStub]:
    stub = FeishuStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def feishu(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           feishu_stub: FeishuStub) -> tuple[FeishuStub, Org]:
    stub = feishu_stub
    for name, value in {"APP_ID": "cli_a1", "APP_SECRET": "sec",
                        "VERIFICATION_TOKEN": FEISHU_TOKEN, "ENCRYPT_KEY": FEISHU_KEY,
                        "API_URL": stub.url}.items():
        monkeypatch.setenv(f"YINFIN_FEISHU_{name}", value)
    (tmp_path / "feishu.yaml").write_text(MAPPING, encoding="utf-8")
    app.config["YINFIN_OA_MAPPING_DIR"] = str(tmp_path)
    org = world(state(app).db)
    with state(app).db.unit_of_work() as s:
        for uid in ("amy", "wang"):
            s.get(User, uid).feishu_open_id = f"ou_{uid}"
    return stub, org


class LarkReference:
    """lark-oapi's own webhook handler over the same bytes we get: it decrypts, checks
    the token and the signature, and parses each approval event into its model."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.handler = (lark.EventDispatcherHandler.builder(FEISHU_KEY, FEISHU_TOKEN)
                        .register_p2_approval_instance_status_changed_v4(self.seen.append)
                        .register_p2_approval_task_status_changed_v4(self.seen.append)
                        .build())

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        req = lark.RawRequest()
        req.uri, req.headers, req.body = "/webhook/event", dict(headers), body
        resp = self.handler.do(req)
        return resp.status_code, json.loads(resp.content)


def feishu_post(client: FlaskClient, payload: dict[str, Any], lark_ref: LarkReference
                ) -> Any:
    headers, body = delivery(payload, FEISHU_KEY, str(int(time.time())),
                             nonce=secrets.token_hex(4))
    status, _ = lark_ref.answer(headers, body)
    assert status == 200, "lark-oapi refused the delivery: the fixture is not Feishu's"
    return client.post("/api/v1/oa/feishu/events", data=body, headers=headers,
                       content_type="application/json")


def v2(event_type: str, event: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "2.0", "header": {
        "event_id": secrets.token_hex(16), "token": FEISHU_TOKEN,
        "create_time": str(int(time.time() * 1000)), "event_type": event_type,
        "tenant_key": "t1", "app_id": "cli_a1"}, "event": event}


def test_feishu_url_verification_plain_and_encrypted(anonymous: FlaskClient, app: Flask,
                                                     tmp_path: Path, feishu: Any) -> None:
    # the URL is saved in Feishu's console before any form is mapped
    app.config["YINFIN_OA_MAPPING_DIR"] = str(tmp_path / "not-yet")
    challenge = {"challenge": "ch-42", "token": FEISHU_TOKEN, "type": "url_verification"}
    lark_ref = LarkReference()
    headers, body = delivery(challenge, FEISHU_KEY, str(int(time.time())))
    expected = lark_ref.answer(headers, body)
    resp = anonymous.post("/api/v1/oa/feishu/events", data=body, headers=headers,
                          content_type="application/json")
    assert (resp.status_code, resp.get_json()) == expected == (200, {"challenge": "ch-42"})
    # without an Encrypt Key Feishu sends it in the clear
    plain = anonymous.post("/api/v1/oa/feishu/events", json=challenge)
    assert (plain.status_code, plain.get_json()) == (200, {"challenge": "ch-42"})
    wrong = anonymous.post("/api/v1/oa/feishu/events", json={**challenge, "token": "guess"})
    assert (wrong.status_code, wrong.get_json()["code"]) == (401, "bad_signature")


def test_feishu_2_0_approval_events_make_and_act_on_the_request(anonymous: FlaskClient,
                                                               app: Flask, feishu: Any) -> None:
    stub, org = feishu
    form = [{"id": "w1", "name": "reason", "type": "input", "value": "Shanghai visit"},
            {"id": "w2", "name": "amount", "type": "amount", "value": Decimal("120.00")},
            {"id": "w3", "name": "budget_line", "type": "input", "value": str(org.child_line)},
            {"id": "w4", "name": "date", "type": "date", "value": "2026-01-15"}]
    stub.instances["INST-9"] = {"approval_code": "APP-EXP", "instance_code": "INST-9",
                                "open_id": "ou_amy", "status": "PENDING",
                                "form": json.dumps(form, default=str)}
    lark_ref = LarkReference()
    now_ms = str(int(time.time() * 1000))
    started = v2("approval.instance.status_changed_v4", {
        "approval_code": "APP-EXP", "instance_code": "INST-9", "status": "PENDING",
        "operate_time": now_ms, "start_user": {"open_id": "ou_amy", "user_id": "amy"}})
    resp = feishu_post(anonymous, started, lark_ref)
    assert (resp.status_code, resp.get_json()) == (200, {"code": 0})
    db = state(app).db
    with db.unit_of_work(readonly=True) as s:
        req = s.scalar(select(ApprovalRequest))
        assert (req.requester, req.title, req.state) == ("amy", "Shanghai visit", "approval")
        assert req.route[req.step_index] != "finance"
    approved = v2("approval.task.status_changed_v4", {
        "approval_code": "APP-EXP", "instance_code": "INST-9", "task_id": "T-1",
        "status": "APPROVED", "operate_time": now_ms, "assigned_user": {"open_id": "ou_wang"}})
    resp = feishu_post(anonymous, approved, lark_ref)
    assert (resp.status_code, resp.get_json()) == (200, {"code": 0})
    with db.unit_of_work(readonly=True) as s:
        req = s.scalar(select(ApprovalRequest))
        assert req.route[req.step_index] == "finance"  # wang's manager step is done
    # lark-oapi read both as its 2.0 models, with the fields we used
    instance_ev, task_ev = lark_ref.seen
    assert type(instance_ev).__name__ == "P2ApprovalInstanceStatusChangedV4"
    assert (instance_ev.event.instance_code, instance_ev.event.start_user.open_id) == (
        "INST-9", "ou_amy")
    assert (task_ev.event.status, task_ev.event.assigned_user.open_id) == ("APPROVED", "ou_wang")
    assert ignored(anonymous) == {}


def test_feishu_event_types_nobody_reads_are_answered_and_counted(anonymous: FlaskClient,
                                                                 feishu: Any) -> None:
    lark_ref = LarkReference()
    other = v2("contact.user.updated_v3", {"object": {"open_id": "ou_amy"}})
    headers, body = delivery(other, FEISHU_KEY, str(int(time.time())), nonce="n7")
    resp = anonymous.post("/api/v1/oa/feishu/events", data=body, headers=headers,
                          content_type="application/json")
    assert (resp.status_code, resp.get_json()) == (200, {"code": 0})
    again = v2("contact.user.updated_v3", {"object": {"open_id": "ou_wang"}})
    headers, body = delivery(again, FEISHU_KEY, str(int(time.time())), nonce="n8")
    assert anonymous.post("/api/v1/oa/feishu/events", data=body, headers=headers,
                          content_type="application/json").status_code == 200
    assert ignored(anonymous) == {("feishu", "contact.user.updated_v3"): 2}
    health = anonymous.get("/api/v1/health").get_json()["checks"]["oa_inbound"]
    assert health["ok"] and health["details"]["ignored_events"] == 2
    assert lark_ref.seen == []


# -- DingTalk ---------------------------------------------------------------------------


@pytest.fixture
def dingtalk(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {"APP_KEY": "dingkey", "APP_SECRET": "s", "TOKEN": "ding-token",
                        "AES_KEY": AES_KEY, "API_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(f"YINFIN_DINGTALK_{name}", value)
    return dingtalk_crypto.DingTalkCrypto("ding-token", AES_KEY, "dingkey")


def ding_post(client: FlaskClient, crypto: Any, payload: dict[str, Any]) -> Any:
    sent = crypto.encrypt_message(json.dumps(payload))
    return client.post("/api/v1/oa/dingtalk/events", json={"encrypt": sent["encrypt"]},
                       query_string={"msg_signature": sent["msg_signature"],
                                     "timestamp": sent["timeStamp"], "nonce": sent["nonce"]})


def ding_answer(crypto: Any, resp: Any) -> str:
    """What DingTalk reads from our answer (dingtalk-sdk checks its signature first)."""
    body = resp.get_json()
    return crypto.decrypt_message(body, body["msg_signature"], body["timeStamp"], body["nonce"])


def test_dingtalk_check_url_and_unread_events(anonymous: FlaskClient, app: Flask,
                                              dingtalk: Any) -> None:
    resp = ding_post(anonymous, dingtalk, {"EventType": "check_url"})
    assert resp.status_code == 200 and ding_answer(dingtalk, resp) == "success"
    unread = {"EventType": "user_add_org", "eventId": "ev-77", "UserId": ["amy"],
              "CorpId": "ding-corp", "TimeStamp": str(int(time.time() * 1000))}
    resp = ding_post(anonymous, dingtalk, unread)
    assert resp.status_code == 200 and ding_answer(dingtalk, resp) == "success"
    assert ignored(anonymous) == {("dingtalk", "user_add_org"): 1}
    assert ding_post(anonymous, dingtalk, {"EventType": "check_url"}).status_code == 200
    assert ignored(anonymous) == {("dingtalk", "user_add_org"): 1}  # the check is no event
