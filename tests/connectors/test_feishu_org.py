"""Feishu's contact v3 directory read into departments and users, against the stub."""

from __future__ import annotations

from connectors.feishu import FeishuConnector

from . import org_cases
from .stubs.feishu import FeishuStub

MEMBERS = "/open-apis/contact/v3/users/find_by_department"
CASE = org_cases.Case(
    ids={"boss": "boss", "amy": "amy", "li": "li", "fiona": "fiona"},
    depts={"RD": "od-rd", "APP": "od-app", "FIN": "od-fin"},
    keys={"boss": "ou_boss", "amy": "ou_amy", "li": "ou_li", "fiona": "ou_fiona"},
    members=MEMBERS, limit=("status", 429, '{"code": 99991400, "msg": "request trigger '
                                           'frequency limit"}'),
    refusal=("status", 400, '{"code": 99991672, "msg": "Access denied. One of the following '
                            'scopes is required: [contact:contact:readonly_as_app]"}'),
    refused="contact:contact:readonly")


def build(start_stub):
    """The sample organisation (see org_cases) in Feishu's stub, and a connector to it."""
    s = start_stub(FeishuStub())
    s.depts.update({"od-rd": {"name": "研发部", "parent": "0", "leader": "ou_boss"},
                    "od-app": {"name": "应用组", "parent": "od-rd"},
                    "od-fin": {"name": "财务部", "parent": "0"}})
    s.people.update({
        "ou_boss": {"user_id": "boss", "name": "王总", "department_ids": ["od-rd"],
                    "leader_user_id": "ou_ceo9", "enterprise_email": "boss@acme.cn",
                    "status": {"is_activated": True}},
        "ou_amy": {"user_id": "amy", "name": "艾米", "department_ids": ["od-app"],
                   "leader_user_id": "ou_boss", "email": "amy@acme.cn",
                   "status": {"is_activated": True}},
        "ou_li": {"user_id": "li", "name": "李四", "department_ids": ["od-fin", "od-app"],
                  "orders": [{"department_id": "od-fin", "is_primary_dept": False},
                             {"department_id": "od-app", "is_primary_dept": True}],
                  "leader_user_id": "ou_amy", "employee_no": "E003",
                  "status": {"is_activated": False}},  # invited, not joined yet: employed
        "ou_fiona": {"user_id": "fiona", "name": "菲奥娜", "department_ids": ["od-fin"],
                     "leader_user_id": "ou_boss", "status": {"is_activated": True}},
    })
    s.page_size = 1
    return s, FeishuConnector(app_id="cli_a1", app_secret="sec", verification_token="vtok",
                              api_url=s.url, timeout=(1.0, 2.0))


def test_records_paging_and_an_unchanged_snapshot(org) -> None:
    stub, feishu = org
    stub.people["ou_wu"] = {"user_id": "wu", "name": "吴", "department_ids": ["0"],
                            "status": {"is_resigned": True}}
    depts, mark = feishu.changed_master_data("cost_centres", None)
    assert [(d["code"], d["name"], d["parent"], d["manager"], d["external_code"])
            for d in depts] == [("od-app", "应用组", "od-rd", "", "feishu:od-app"),
                                ("od-fin", "财务部", "", "", "feishu:od-fin"),
                                ("od-rd", "研发部", "", "boss", "feishu:od-rd")]
    stub.requests.clear()
    people, umark = feishu.changed_master_data("users", None)
    by = {p["code"]: p for p in people}
    assert by["li"] == {"code": "li", "name": "李四", "email": "", "department": "od-app",
                        "manager": "amy", "active": True, "external_id": "ou_li"}
    assert (by["wu"]["active"], by["wu"]["department"]) == (False, None)
    assert by["boss"]["manager"] is None and by["boss"]["email"] == "boss@acme.cn"
    tokens = [r.query.get("page_token") for r in stub.calls(MEMBERS)
              if r.query["department_id"] == "od-fin"]
    assert tokens == [None, "pt1"]  # two members, one per page
    assert feishu.changed_master_data("users", umark) == ([], umark)
    assert feishu.changed_master_data("cost_centres", mark) == ([], mark)
