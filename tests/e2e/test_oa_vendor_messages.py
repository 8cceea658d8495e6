"""What the OA is told about a request made and approved through the HTTP API, as the
vendors' models read it: every message links to the console (``YINFIN_PUBLIC_URL``:
the request page, or the task page for a task), and Feishu's external instance is
rebuilt field by field with lark-oapi's ``ExternalInstance`` builders (a field the
model lacks, or a value of another type, fails)."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connectors import registry
from yinfin_flow.db.models.org import User
from yinfin_flow.extension import state
from yinfin_flow.worker import dispatcher

from ..connectors.stubs.dingtalk import DingTalkStub
from ..connectors.stubs.feishu import FeishuStub
from ..connectors.stubs.server import Req, StubServer
from ..connectors.stubs.wecom import WeComStub
from ..integration.test_engine_support import expense_form, world

lark = pytest.importorskip("lark_oapi")
from lark_oapi.api.approval.v4 import ExternalInstance  # noqa: E402

CONSOLE = "https://flow.example.com"
PEOPLE = {"amy": ("ou_amy", "amy-wx", "amy-dt"), "wang": ("ou_wang", "wang-wx", "wang-dt")}


@pytest.fixture(autouse=True)
def _fresh_connectors() -> Iterator[None]:
    registry._cache.clear()  # noqa: SLF001 - each test configures its own vendor settings
    yield
    registry._cache.clear()  # noqa: SLF001


@pytest.fixture
def vendors(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    feishu, wecom, ding = FeishuStub(), WeComStub(), DingTalkStub()
    weaver = StubServer()
    received: list[dict[str, Any]] = []

    def status(req: Req) -> tuple:
        received.append(json.loads(req.body))
        return 200, {"ok": True}

    weaver.routes[("POST", "/status")] = status
    ding.people.update({"amy-dt": {"name": "Amy", "unionid": "UN-amy"},
                        "wang-dt": {"name": "Wang", "unionid": "UN-wang"},
                        "op": {"name": "robot", "unionid": "UN-op"}})
    for stub in (feishu, wecom, ding, weaver):
        stub.start()
    env = {"YINFIN_OA_CONNECTOR": "feishu,wecom,dingtalk,weaver",
           "YINFIN_FEISHU_APP_ID": "cli_a1", "YINFIN_FEISHU_APP_SECRET": "sec",
           "YINFIN_FEISHU_VERIFICATION_TOKEN": "v", "YINFIN_FEISHU_APPROVAL_CODE": "EXT-CODE",
           "YINFIN_FEISHU_API_URL": feishu.url,
           "YINFIN_WECOM_CORP_ID": "ww1", "YINFIN_WECOM_SECRET": "sec",
           "YINFIN_WECOM_AGENT_ID": "1000002", "YINFIN_WECOM_TOKEN": "t",
           "YINFIN_WECOM_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
           "YINFIN_WECOM_API_URL": wecom.url,
           "YINFIN_DINGTALK_APP_KEY": "dingappkey", "YINFIN_DINGTALK_APP_SECRET": "s3cret",
           "YINFIN_DINGTALK_TOKEN": "t", "YINFIN_DINGTALK_OPERATOR_ID": "UN-op",
           "YINFIN_DINGTALK_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
           "YINFIN_DINGTALK_API_URL": ding.url, "YINFIN_DINGTALK_OAPI_URL": ding.url,
           "YINFIN_WEAVER_SECRET": "w", "YINFIN_WEAVER_STATUS_URL": weaver.url + "/status"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    org = world(state(app).db)
    with state(app).db.unit_of_work() as s:
        for uid, (open_id, wx, dt) in PEOPLE.items():
            user = s.get(User, uid)
            user.feishu_open_id, user.wecom_userid, user.dingtalk_userid = open_id, wx, dt
    yield {"org": org, "feishu": feishu, "wecom": wecom, "dingtalk": ding, "weaver": received}
    for stub in (feishu, wecom, ding, weaver):
        stub.stop()


def as_(user: str) -> dict[str, str]:
    return {"X-Yinfin-User": user}


def submit_and_approve(client: FlaskClient, app: Flask, org: Any) -> tuple[int, int]:
    """amy's request submitted and wang's task approved over HTTP, the outbox delivered:
    (request id, wang's task id)."""
    made = client.post("/api/v1/requests", headers=as_("amy"), json={
        "workflow": "expense", "title": "Beijing trip", "company": "ACME",
        "form": expense_form(org.child_line, "250.00")})
    assert made.status_code == 201, made.get_json()
    [task] = client.get("/api/v1/tasks", headers=as_("wang")).get_json()["items"]
    assert client.post(f"/api/v1/tasks/{task['id']}/approve", json={},
                       headers=as_("wang")).status_code == 200
    dispatcher.drain(state(app).db)
    return made.get_json()["id"], task["id"]


def as_model(data: dict[str, Any], model: type) -> Any:
    """``data`` rebuilt with lark-oapi's builder of ``model``, each value checked against
    the type the builder's setter declares."""
    builder = model.builder()
    for key, value in data.items():
        setter = getattr(builder, key, None)
        assert setter is not None, f"{model.__name__} has no field {key!r}"
        setter(_typed(value, typing.get_type_hints(setter)[key], f"{model.__name__}.{key}"))
    return builder.build()


def _typed(value: Any, hint: Any, where: str) -> Any:
    if typing.get_origin(hint) is list:
        assert isinstance(value, list), f"{where}: {value!r} is not a list"
        [item] = typing.get_args(hint)
        return [_typed(v, item, where) for v in value]
    if hasattr(hint, "builder"):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        return as_model(value, hint)
    assert type(value) is hint, f"{where}: {value!r} is {type(value).__name__}, not {hint.__name__}"
    return value


def test_every_message_links_to_the_console(client: FlaskClient, app: Flask, vendors: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YINFIN_PUBLIC_URL", CONSOLE + "/")
    rid, tid = submit_and_approve(client, app, vendors["org"])
    request_page, task_page = f"{CONSOLE}/requests/{rid}", f"{CONSOLE}/tasks/{tid}"
    # Feishu: the instance links to the request, wang's task to its page, both devices
    bodies = [r.json() for r in vendors["feishu"].calls("/open-apis/approval/v4/external_instances")]
    assert bodies and all(b["links"] == {"pc_link": request_page, "mobile_link": request_page}
                          for b in bodies)
    wangs = [t for b in bodies for t in b.get("task_list", []) if t["open_id"] == "ou_wang"]
    assert wangs and all(t["links"] == {"pc_link": task_page, "mobile_link": task_page}
                         for t in wangs)
    # WeCom: wang's card opens his task, amy's status cards her request
    cards = {(m["touser"], m["textcard"]["url"]) for m in vendors["wecom"].sent}
    assert ("wang-wx", task_page) in cards and ("amy-wx", request_page) in cards
    assert all(url in (request_page, task_page) for _, url in cards)
    # DingTalk: the to-do opens the task in the app and on the desktop
    [todo] = [t for t in vendors["dingtalk"].todos.values() if t["executorIds"] == ["UN-wang"]]
    assert todo["detailUrl"] == {"appUrl": task_page, "pcUrl": task_page}
    # the generic webhook: the message's own link and the request's
    sent = vendors["weaver"]
    assert sent and all(m["request_url"] == request_page for m in sent)
    assert {m["url"] for m in sent if m["task_id"] == str(tid)} == {task_page}
    assert {m["url"] for m in sent if m["kind"] == "status"} == {request_page}


def test_without_a_console_address_links_go_to_the_api(client: FlaskClient, app: Flask,
                                                       vendors: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YINFIN_PUBLIC_URL", raising=False)
    rid, _ = submit_and_approve(client, app, vendors["org"])
    resource = f"http://localhost/api/v1/requests/{rid}"  # the address the call came in on
    assert {m["url"] for m in vendors["weaver"]} == {resource}
    bodies = [r.json() for r in vendors["feishu"].calls("/open-apis/approval/v4/external_instances")]
    assert {b["links"]["pc_link"] for b in bodies} == {resource}
    assert client.get(f"/api/v1/requests/{rid}", headers=as_("amy")).status_code == 200


def test_feishu_external_instance_is_feishus_model(client: FlaskClient, app: Flask, vendors: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YINFIN_PUBLIC_URL", CONSOLE)
    rid, tid = submit_and_approve(client, app, vendors["org"])
    bodies = [r.json() for r in vendors["feishu"].calls("/open-apis/approval/v4/external_instances")]
    assert len(bodies) >= 3  # the request's status, wang's task made, wang's task done
    for body in bodies:
        model = as_model(body, ExternalInstance)  # fields and types as lark-oapi has them
        assert json.loads(lark.JSON.marshal(model)) == body  # nothing the model drops
        # the applicant stays the applicant on every message, tasks are the approvers'
        assert body["instance_id"] == str(rid) and body["open_id"] == "ou_amy"
        # every @i18n@ key has its text in Chinese (the default) and English
        keys = {body["title"], *(f[k] for f in body["form"] for k in ("name", "value")),
                *(t["title"] for t in body.get("task_list", []))}
        assert all(k.startswith("@i18n@") for k in keys)
        texts = {r["locale"]: {t["key"]: t["value"] for t in r["texts"]}
                 for r in body["i18n_resources"]}
        assert set(texts) == {"zh-CN", "en-US"} and keys <= set(texts["zh-CN"]) <= set(texts["en-US"])
        assert [r["locale"] for r in body["i18n_resources"] if r["is_default"]] == ["zh-CN"]
        assert texts["zh-CN"][body["title"]] == texts["en-US"][body["title"]] == "Beijing trip"
    assert len({b["start_time"] for b in bodies}) == 1  # one instance, one start
    wangs = [(b, t) for b in bodies for t in b.get("task_list", []) if t["open_id"] == "ou_wang"]
    made = [t for _, t in wangs if t["status"] == "PENDING"]
    done = [(b, t) for b, t in wangs if t["status"] != "PENDING"]
    assert made and all(t["end_time"] == 0 for t in made)
    [(body, finished)] = done
    assert finished["status"] == "APPROVED" and finished["task_id"] == str(tid)
    assert finished["end_time"] == finished["update_time"] > finished["create_time"] > 0
    assert finished["create_time"] == made[0]["create_time"]  # the task was made once
    # the request goes on to finance: the instance is still in approval
    assert body["status"] == "PENDING" and body["end_time"] == 0
    status_words = {loc: texts for loc, texts in (
        (r["locale"], {t["key"]: t["value"] for t in r["texts"]}) for r in body["i18n_resources"])}
    [status_row] = [f for f in body["form"] if status_words["en-US"][f["name"]] == "Status"]
    assert status_words["zh-CN"][status_row["value"]] == "审批中"
    assert status_words["en-US"][status_row["value"]] == "In approval"
