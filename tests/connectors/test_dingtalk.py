"""DingTalk against a local stub of its open API, callbacks made with its crypto."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from connectors.base import (
    MemorySeen,
    OAConnector,
    PermanentError,
    RetryableError,
    SignatureError,
    StatusMessage,
)
from connectors.crypto import BizMsgCrypt
from connectors.dingtalk import DingTalkConnector

from .conftest import NOW
from .stubs.dingtalk import DingTalkStub, callback

AES = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
MS = int(NOW.timestamp() * 1000)


@pytest.fixture
def stub(start_stub):
    s = start_stub(DingTalkStub())
    s.instances["PI-1"] = {"status": "RUNNING", "originatorUserId": "u1", "formComponentValues": [
        {"name": "金额", "value": "1234.50", "componentType": "MoneyField"},
        {"name": "事由", "value": "差旅", "componentType": "TextField"}]}
    # userid -> unionId as DingTalk keeps them; "op" is the operator creating the to-dos
    s.people.update({"u1": {"name": "张三", "dept_id_list": [1], "unionid": "UN-zs1"},
                     "u9": {"name": "李四", "dept_id_list": [1], "unionid": "UN-ls9"},
                     "op": {"name": "财务机器人", "dept_id_list": [1], "unionid": "union-1"}})
    return s


@pytest.fixture
def ding(stub):
    return DingTalkConnector(app_key="dingappkey", app_secret="s3cret", token="tok", aes_key=AES,
                             operator_id="union-1", api_url=stub.url, oapi_url=stub.url,
                             timeout=(1.0, 0.5))


def sender() -> BizMsgCrypt:
    return BizMsgCrypt("dingtalk", "tok", AES, "dingappkey")


def test_is_an_oa_connector(ding) -> None:
    assert isinstance(ding, OAConnector)


def test_instance_start_fetches_the_form_and_replies_encrypted_success(ding) -> None:
    event = {"EventType": "bpms_instance_change", "processInstanceId": "PI-1", "type": "start",
             "staffId": "u1", "createTime": MS - 1000, "processCode": "PROC-EXP"}
    query, body = callback(sender(), event, MS)
    result = ding.verify_and_parse({}, query, body, now=NOW, seen=MemorySeen())
    [ev] = result.events
    assert (ev.kind, ev.external_instance_id, ev.external_user_id, ev.template) == (
        "form_submitted", "PI-1", "u1", "PROC-EXP")
    assert ev.form == {"金额": "1234.50", "事由": "差旅"}
    assert ev.occurred_at == NOW - timedelta(seconds=1)
    reply = json.loads(result.body)
    c = sender()
    c.verify(reply["msg_signature"], reply["timeStamp"], reply["nonce"], reply["encrypt"])
    assert c.decrypt(reply["encrypt"]) == "success"


def test_task_finish_and_instance_finish_terminate(ding) -> None:
    seen = MemorySeen()
    cases = [
        ({"EventType": "bpms_task_change", "type": "finish", "result": "refuse", "remark": "超预算",
          "processInstanceId": "PI-1", "staffId": "boss", "taskId": 77, "finishTime": MS},
         ("task_acted", "reject", "超预算", None)),
        ({"EventType": "bpms_instance_change", "type": "finish", "result": "agree",
          "processInstanceId": "PI-1", "finishTime": MS}, ("instance_status", None, None, "approved")),
        ({"EventType": "bpms_instance_change", "type": "terminate", "processInstanceId": "PI-1",
          "finishTime": MS}, ("instance_withdrawn", None, None, "withdrawn")),
    ]
    for event, (kind, action, comment, status) in cases:
        query, body = callback(sender(), event, MS)
        [ev] = ding.verify_and_parse({}, query, body, now=NOW, seen=seen).events
        assert (ev.kind, ev.action, ev.comment, ev.status) == (kind, action, comment, status)
    assert ev.raw["processInstanceId"] == "PI-1"


def test_check_url_has_no_events_but_still_answers(ding) -> None:
    query, body = callback(sender(), {"EventType": "check_url"}, MS)
    result = ding.verify_and_parse({}, query, body, now=NOW, seen=MemorySeen())
    assert result.events == [] and b"encrypt" in result.body


def test_bad_signature_stale_and_replay_are_refused(ding) -> None:
    event = {"EventType": "bpms_task_change", "type": "finish", "result": "agree",
             "processInstanceId": "PI-1", "finishTime": MS}
    query, body = callback(sender(), event, MS)
    with pytest.raises(SignatureError, match="signature"):
        ding.verify_and_parse({}, {**query, "nonce": "other"}, body, now=NOW, seen=MemorySeen())
    wrong_token = BizMsgCrypt("dingtalk", "not-tok", AES, "dingappkey")
    q2, b2 = callback(wrong_token, event, MS)
    with pytest.raises(SignatureError):
        ding.verify_and_parse({}, q2, b2, now=NOW, seen=MemorySeen())
    with pytest.raises(SignatureError, match="stale"):
        ding.verify_and_parse({}, query, body, now=NOW + timedelta(minutes=6), seen=MemorySeen())
    seen = MemorySeen()
    ding.verify_and_parse({}, query, body, now=NOW, seen=seen)
    q3, b3 = callback(sender(), event, MS + 1000, nonce="again")  # DingTalk's re-delivery
    with pytest.raises(SignatureError, match="replayed"):
        ding.verify_and_parse({}, q3, b3, now=NOW, seen=seen)


def test_push_status_comment_and_todo_relogin_once(ding, stub) -> None:
    msg = StatusMessage(kind="status", request_id="R1", title="差旅报销", status="approved",
                        occurred_at=NOW, external_instance_id="PI-1", user_ids=["u1"])
    assert ding.push_status(msg, "k1")["result"] is True
    stub.expire_tokens()  # token revoked: one fresh login, then the call goes through
    task = StatusMessage(kind="task", request_id="R2", title="请审批", status="pending",
                         occurred_at=NOW, user_ids=["u9"], url="https://yinfin/r/R2")
    out = ding.push_status(task, "outbox-42")
    assert out["sourceId"] == "outbox-42" and stub.todos["outbox-42"]["executorIds"] == ["UN-ls9"]
    assert len(stub.calls("/v1.0/oauth2/accessToken")) == 2
    done = StatusMessage(kind="task", request_id="R2", title="请审批", status="approved",
                         occurred_at=NOW, user_ids=["u9"])
    # no to-do id known: nothing sent, and above all no new open to-do
    assert "skipped" in ding.push_status(done, "outbox-43") and "outbox-43" not in stub.todos
    assert stub.comments[0]["text"].startswith("[approved]")
    ours = StatusMessage(kind="status", request_id="R3", title="t", status="approved",
                         occurred_at=NOW)
    assert "skipped" in ding.push_status(ours, "k3") and len(stub.comments) == 1


def test_a_finished_task_closes_its_todo_by_dingtalks_id(ding, stub) -> None:
    task = StatusMessage(kind="task", request_id="R2", title="请审批", status="pending",
                         occurred_at=NOW, user_ids=["u9"], task_id="7")
    todo_id = ding.push_status(task, "yf-task7-created")["id"]
    assert stub.todos["yf-task7-created"]["done"] is False
    done = replace(task, status="approved", external_task_id=todo_id)
    assert ding.push_status(done, "yf-task7-done-approve") == {"result": True}
    assert stub.todos["yf-task7-created"]["done"] is True
    assert "yf-task7-done-approve" not in stub.todos  # closed, not made anew
    [put] = [r for r in stub.requests if r.method == "PUT"]
    assert put.path == f"/v1.0/todo/users/union-1/tasks/{todo_id}"
    assert put.query["operatorId"] == "union-1" and put.json() == {"done": True}
    # a to-do someone deleted in DingTalk meanwhile: done as far as we are concerned
    gone = replace(done, external_task_id="todo-deleted")
    assert "skipped" in ding.push_status(gone, "yf-task7-done-again")
    # any other refusal is still an error (here: a creator DingTalk does not know)
    ding.operator_id = "union-unknown"
    with pytest.raises(PermanentError, match="unionId not found"):
        ding.push_status(done, "yf-task7-done-approve")


def test_push_errors_are_classified(ding, stub) -> None:
    msg = StatusMessage(kind="status", request_id="R1", title="t", status="approved",
                        occurred_at=NOW, external_instance_id="PI-404", user_ids=["u1"])
    with pytest.raises(PermanentError, match="审批实例不存在"):
        ding.push_status(msg, "k")
    ok = StatusMessage(kind="status", request_id="R1", title="t", status="approved",
                       occurred_at=NOW, external_instance_id="PI-1", user_ids=["u1"])
    ding.access_token()
    stub.fail_next(502)
    with pytest.raises(RetryableError) as err:
        ding.push_status(ok, "k")
    assert err.value.status == 502
    stub.fail_next(("status", 429, '{"code":"Throttling","message":"slow down"}'))
    with pytest.raises(RetryableError):
        ding.push_status(ok, "k")
    stub.fail_next(("sleep", 0.8))
    with pytest.raises(RetryableError, match="timeout"):
        ding.push_status(ok, "k")
    assert ding.push_status(ok, "k")["success"] is True


def test_a_failed_form_fetch_leaves_the_retry_acceptable(ding, stub) -> None:
    event = {"EventType": "bpms_instance_change", "processInstanceId": "PI-1", "type": "start",
             "staffId": "u1", "createTime": MS}
    query, body = callback(sender(), event, MS)
    seen = MemorySeen()
    stub.fail_next(503, 503)  # the token call and the instance call may both meet it
    with pytest.raises(RetryableError):
        ding.verify_and_parse({}, query, body, now=NOW, seen=seen)
    stub.failures.clear()
    [ev] = ding.verify_and_parse({}, query, body, now=NOW, seen=seen).events
    assert ev.form["金额"] == "1234.50" and seen.ids == {f"dingtalk:{ev.event_id}"}


# -- userid vs unionId ------------------------------------------------------------------


def task(key_user: str | list[str]) -> StatusMessage:
    users = [key_user] if isinstance(key_user, str) else key_user
    return StatusMessage(kind="task", request_id="R5", title="请审批", status="pending",
                         occurred_at=NOW, user_ids=users, url="https://yinfin/r/R5")


def test_todo_executors_are_unionids_looked_up_once_per_user(ding, stub) -> None:
    ding.push_status(task(["u9", "u1"]), "outbox-1")
    assert stub.todos["outbox-1"]["executorIds"] == ["UN-ls9", "UN-zs1"]
    [first, second] = stub.calls("/topapi/v2/user/get")
    assert first.json() == {"userid": "u9", "language": "zh_CN"} and second.json()["userid"] == "u1"
    assert first.query["access_token"]  # the app token, as every topapi call
    ding.push_status(task("u9"), "outbox-2")
    ding.push_status(task(["u1", "u9"]), "outbox-3")
    assert len(stub.calls("/topapi/v2/user/get")) == 2  # cached: a unionId never changes
    assert stub.todos["outbox-3"]["executorIds"] == ["UN-zs1", "UN-ls9"]


def test_the_stub_refuses_a_userid_as_executor(stub) -> None:
    # what the connector did before it looked unionIds up: DingTalk finds no such unionId
    from connectors.dingtalk import DingTalkConnector as Raw

    raw = Raw(app_key="dingappkey", app_secret="s3cret", token="tok", aes_key=AES,
              operator_id="union-1", api_url=stub.url, oapi_url=stub.url, timeout=(1.0, 0.5))
    with pytest.raises(PermanentError, match="unionId not found"):
        raw._api("POST", "/v1.0/todo/users/union-1/tasks", json={
            "sourceId": "x", "subject": "s", "executorIds": ["u9"]})


def test_unknown_user_is_permanent_with_dingtalks_message(ding, stub) -> None:
    with pytest.raises(PermanentError, match="找不到该用户") as err:
        ding.push_status(task("gone"), "outbox-9")
    assert err.value.connector == "dingtalk" and "outbox-9" not in stub.todos
    # nothing cached from a failure: the user added later is found
    stub.people["gone"] = {"name": "新人", "dept_id_list": [1], "unionid": "UN-new"}
    ding.push_status(task("gone"), "outbox-9")
    assert stub.todos["outbox-9"]["executorIds"] == ["UN-new"]


def test_lookup_renews_an_expired_token_and_retries_busy_answers(ding, stub) -> None:
    ding.access_token()
    stub.expire_tokens()  # the lookup is the first call to meet the revoked token
    ding.push_status(task("u9"), "outbox-5")
    assert stub.todos["outbox-5"]["executorIds"] == ["UN-ls9"]
    assert len(stub.calls("/v1.0/oauth2/accessToken")) == 2
    assert len(stub.calls("/topapi/v2/user/get")) == 2  # refused once, then answered
    stub.fail_at("/topapi/v2/user/get", 1, ("status", 200, '{"errcode": -1, "errmsg": "系统繁忙"}'))
    with pytest.raises(RetryableError, match="系统繁忙"):
        ding.push_status(task("u1"), "outbox-6")
    stub.fail_at("/topapi/v2/user/get", 1, 503)
    with pytest.raises(RetryableError) as err:
        ding.push_status(task("u1"), "outbox-6")
    assert err.value.status == 503 and "outbox-6" not in stub.todos
    ding.push_status(task("u1"), "outbox-6")
    assert stub.todos["outbox-6"]["executorIds"] == ["UN-zs1"]


def test_comment_author_is_the_operators_or_the_requesters_userid_or_skipped(ding, stub, caplog) -> None:
    nobody = StatusMessage(kind="status", request_id="R1", title="差旅报销", status="approved",
                           occurred_at=NOW, external_instance_id="PI-1")
    with caplog.at_level("WARNING", logger="connectors.dingtalk"):
        out = ding.push_status(nobody, "k1")
    assert "skipped" in out and stub.comments == []  # never the operator's unionId
    assert "YINFIN_DINGTALK_OPERATOR_USERID" in caplog.text
    ding.operator_userid = "op"
    assert ding.push_status(nobody, "k2")["result"] is True
    named = StatusMessage(kind="status", request_id="R1", title="差旅报销", status="rejected",
                          occurred_at=NOW, external_instance_id="PI-1", user_ids=["u1"])
    ding.push_status(named, "k3")
    # the operator writes the status comments when one is set, not the requester
    assert [c["commentUserId"] for c in stub.comments] == ["op", "op"]
    ding.operator_userid = None
    ding.push_status(named, "k3b")
    assert stub.comments[-1]["commentUserId"] == "u1"
    assert not stub.calls("/topapi/v2/user/get")  # comments take the userid as it is
    stub.comments.clear()
    with pytest.raises(PermanentError, match="userId"):  # the stub knows a unionId is not one
        ding.push_status(StatusMessage(kind="status", request_id="R1", title="t",
                                       status="approved", occurred_at=NOW,
                                       external_instance_id="PI-1", user_ids=["union-1"]), "k4")


def test_operator_userid_comes_from_the_environment() -> None:
    from connectors.dingtalk import DingTalkConnector as D

    base = {"YINFIN_DINGTALK_APP_KEY": "k", "YINFIN_DINGTALK_APP_SECRET": "s",
            "YINFIN_DINGTALK_TOKEN": "t", "YINFIN_DINGTALK_AES_KEY": AES}
    assert D.from_settings(base).operator_userid is None
    assert D.from_settings({**base, "YINFIN_DINGTALK_OPERATOR_USERID": "op"}).operator_userid == "op"


# -- DingTalk's eventId -----------------------------------------------------------------


def test_dingtalk_event_id_is_the_replay_key(ding) -> None:
    # HTTP push payload as documented (审批实例开始、结束、终止、删除): eventId is top level
    event = {"EventType": "bpms_instance_change", "EventTime": MS, "CorpId": "dingcorp",
             "BizId": "1663", "eventId": "c7c7120f2c07419ebdba0318c8", "type": "finish",
             "result": "agree", "processInstanceId": "PI-1", "finishTime": MS, "staffId": "u1"}
    seen = MemorySeen()
    query, body = callback(sender(), event, MS)
    [ev] = ding.verify_and_parse({}, query, body, now=NOW, seen=seen).events
    assert ev.event_id == "c7c7120f2c07419ebdba0318c8"
    assert seen.ids == {"dingtalk:c7c7120f2c07419ebdba0318c8"}
    # DingTalk's re-delivery of the same event, stamped anew: same eventId, other bytes
    again = {**event, "EventTime": MS + 5000}
    q2, b2 = callback(sender(), again, MS + 5000, nonce="retry1")
    with pytest.raises(SignatureError, match="replayed"):
        ding.verify_and_parse({}, q2, b2, now=NOW, seen=seen)
    # another event is another id, even with the same content otherwise
    other = {**event, "eventId": "d8d8231f3d18520fcecb1429d9"}
    q3, b3 = callback(sender(), other, MS)
    [ev3] = ding.verify_and_parse({}, q3, b3, now=NOW, seen=seen).events
    assert ev3.event_id == "d8d8231f3d18520fcecb1429d9"


def test_without_event_id_the_digest_stays_the_replay_key(ding) -> None:
    event = {"EventType": "bpms_task_change", "type": "finish", "result": "agree",
             "processInstanceId": "PI-1", "finishTime": MS, "taskId": 5}
    seen = MemorySeen()
    query, body = callback(sender(), event, MS)
    [ev] = ding.verify_and_parse({}, query, body, now=NOW, seen=seen).events
    assert len(ev.event_id) == 32 and seen.ids == {f"dingtalk:{ev.event_id}"}
    changed = {**event, "finishTime": MS + 1}  # no eventId: other content is another event
    q2, b2 = callback(sender(), changed, MS)
    assert ding.verify_and_parse({}, q2, b2, now=NOW, seen=seen).events[0].event_id != ev.event_id
