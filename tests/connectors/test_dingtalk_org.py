"""DingTalk's address book (topapi) read into departments and users, against the stub."""

from __future__ import annotations

import pytest

from connectors import registry
from connectors.base import PermanentError, RetryableError
from connectors.dingtalk import DingTalkConnector
from connectors.org import OrgOptions

from . import org_cases
from .stubs.dingtalk import DingTalkStub
from .test_dingtalk import AES

PEOPLE = {"boss": "boss", "amy": "amy", "li": "li", "fiona": "fiona"}
LIMIT = '{"errcode": 90018, "errmsg": "当前应用调用接口超过限流", "request_id": "r9"}'
CASE = org_cases.Case(
    ids=PEOPLE, depts={"RD": "10", "APP": "11", "FIN": "20"}, keys=PEOPLE,
    members="/topapi/v2/user/list", limit=("status", 200, LIMIT), refused="60011",
    refusal=("status", 200, '{"errcode": 88, "sub_code": "60011", "sub_msg": "没有调用该接口的'
                            '权限", "errmsg": "ding talk error[subcode=60011,submsg=没有调用该'
                            '接口的权限]"}'))


def build(start_stub):
    """The sample organisation (see org_cases) in DingTalk's stub, and a connector to it."""
    s = start_stub(DingTalkStub())
    s.depts.update({10: {"name": "研发部", "parent_id": 1}, 11: {"name": "应用组", "parent_id": 10},
                    20: {"name": "财务部", "parent_id": 1}})
    s.people.update({
        "boss": {"name": "王总", "dept_id_list": [10], "leads": [10], "manager_userid": "ceo9",
                 "org_email": "boss@acme.cn", "job_number": "E001", "active": True},
        "amy": {"name": "艾米", "dept_id_list": [11], "manager_userid": "boss",
                "email": "amy@acme.cn", "job_number": "E002", "active": True},
        "li": {"name": "李四", "dept_id_list": [11, 20], "manager_userid": "amy",
               "job_number": "E003", "active": False},  # not activated yet: still employed
        "fiona": {"name": "菲奥娜", "dept_id_list": [20], "manager_userid": "boss",
                  "job_number": "E004", "active": True},
    })
    s.page_size = 1  # every department with two people takes two pages
    return s, DingTalkConnector(app_key="dingappkey", app_secret="s3cret", token="tok",
                                aes_key=AES, api_url=s.url, oapi_url=s.url, timeout=(1.0, 2.0))


def test_records_paging_and_an_unchanged_snapshot(org) -> None:
    stub, ding = org
    assert ding.master_data_kinds == ("cost_centres", "users") == ding.snapshot_kinds
    depts, mark = ding.changed_master_data("cost_centres", None)
    assert [(d["code"], d["name"], d["parent"], d["manager"]) for d in depts] == [
        ("1", "示例科技", "", ""), ("10", "研发部", "1", "boss"), ("11", "应用组", "10", ""),
        ("20", "财务部", "1", "")]
    assert depts[1]["external_code"] == "dingtalk:10"
    stub.requests.clear()
    people, umark = ding.changed_master_data("users", None)
    by = {p["code"]: p for p in people}
    assert by["li"] == {"code": "li", "name": "李四", "email": "", "department": "11",
                        "manager": "amy", "active": True, "external_id": "li"}
    assert by["boss"]["manager"] is None and by["boss"]["email"] == "boss@acme.cn"
    pages = stub.calls("/topapi/v2/user/list")
    assert [r.json()["cursor"] for r in pages if r.json()["dept_id"] == 20] == [0, 1]
    assert all(r.query["access_token"].startswith("tok") for r in pages)
    assert ding.changed_master_data("users", umark) == ([], umark)
    assert ding.changed_master_data("cost_centres", mark) == ([], mark)
    with pytest.raises(PermanentError, match="not accounts"):
        ding.changed_master_data("accounts", None)


def test_user_code_and_department_map() -> None:
    opts = OrgOptions.from_settings({"YINFIN_DINGTALK_DEPARTMENT_MAP": "1=HQ, 10=RD",
                                     "YINFIN_DINGTALK_USER_CODE": "employee_no"},
                                    "YINFIN_DINGTALK")
    assert opts == OrgOptions({"1": "HQ", "10": "RD"}, "employee_no")
    opts = OrgOptions.from_settings({"YINFIN_DINGTALK_DEPARTMENT_PREFIX": "DD-",
                                     "YINFIN_DINGTALK_DEPARTMENT_MAP": "1=HQ"}, "YINFIN_DINGTALK")
    assert (opts.department_code("1"), opts.department_code("10")) == ("HQ", "DD-10")
    with pytest.raises(ValueError, match="USER_CODE"):
        OrgOptions.from_settings({"YINFIN_DINGTALK_USER_CODE": "mobile"}, "YINFIN_DINGTALK")


def test_mapped_departments_and_employee_numbers(org) -> None:
    stub = org[0]
    ding = registry.get("dingtalk", {  # built from settings, as the worker builds it
        "YINFIN_DINGTALK_APP_KEY": "dingappkey", "YINFIN_DINGTALK_APP_SECRET": "s3cret",
        "YINFIN_DINGTALK_TOKEN": "tok", "YINFIN_DINGTALK_AES_KEY": AES,
        "YINFIN_DINGTALK_API_URL": stub.url, "YINFIN_DINGTALK_OAPI_URL": stub.url,
        "YINFIN_DINGTALK_DEPARTMENT_MAP": "1=HQ,10=RD", "YINFIN_DINGTALK_USER_CODE": "employee_no",
    }, fresh=True)
    depts, _ = ding.changed_master_data("cost_centres", None)
    assert [(d["code"], d["parent"]) for d in depts] == [("11", "RD"), ("20", "HQ")]
    people, _ = ding.changed_master_data("users", None)
    by = {p["code"]: p for p in people}
    assert (by["E003"]["manager"], by["E003"]["external_id"]) == ("E002", "li")
    assert by["E001"]["department"] == "RD"


def test_a_gateway_error_is_retryable(org) -> None:
    stub, ding = org
    stub.fail_next(503)
    with pytest.raises(RetryableError):
        ding.changed_master_data("users", None)


def test_the_scheduled_sync_reads_departments_before_users(db, org, monkeypatch) -> None:
    from yinfin_flow.worker import jobs

    ding = org[1]

    org_cases.org_in(db)
    monkeypatch.setenv("YINFIN_OA_CONNECTOR", "dingtalk")
    monkeypatch.delenv("YINFIN_ERP_CONNECTOR", raising=False)
    done = jobs.sync(db, lookup=lambda name: ding)["dingtalk"]
    assert list(done) == ["cost_centres", "users"]
    assert done["users"]["created"] == 4 and "error" not in done["users"], done
    assert org_cases.users(db)["li"][2] == "11"
