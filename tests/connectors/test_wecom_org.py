"""WeCom's address book read into departments and users, against the stub."""

from __future__ import annotations

from connectors.org import OrgOptions
from connectors.wecom import WeComConnector

from . import org_cases
from .stubs.wecom import WeComStub
from .test_wecom import KEY as AES

PEOPLE = {"boss": "boss", "amy": "amy", "li": "li", "fiona": "fiona"}
MEMBERS = "/cgi-bin/user/list"
CASE = org_cases.Case(
    ids=PEOPLE, depts={"RD": "10", "APP": "11", "FIN": "20"}, keys=PEOPLE, members=MEMBERS,
    limit=("status", 200, '{"errcode": 45009, "errmsg": "api freq out of limit"}'),
    refusal=("status", 200, '{"errcode": 60011, "errmsg": "no privilege to access/modify '
                            'contact/party/agent"}'), refused="no privilege")


def build(start_stub):
    """The sample organisation (see org_cases) in WeCom's stub, and a connector to it."""
    s = start_stub(WeComStub())
    s.depts.update({10: {"name": "研发部", "parentid": 1, "department_leader": ["boss"]},
                    11: {"name": "应用组", "parentid": 10}, 20: {"name": "财务部", "parentid": 1}})
    s.people.update({
        "boss": {"name": "王总", "department": [10], "main_department": 10,
                 "direct_leader": ["ceo9"], "biz_mail": "boss@acme.cn", "status": 1},
        "amy": {"name": "艾米", "department": [11], "main_department": 11,
                "direct_leader": ["boss"], "email": "amy@acme.cn", "status": 1},
        "li": {"name": "李四", "department": [20, 11], "main_department": 11,
               "direct_leader": ["amy"], "status": 4},  # not activated yet: employed
        "fiona": {"name": "菲奥娜", "department": [20], "main_department": 20,
                  "direct_leader": ["boss"], "status": 1},
    })
    return s, WeComConnector(corp_id="ww1", secret="sec", agent_id="1000002", token="tok",
                             aes_key=AES, api_url=s.url, contact_secret="csec",
                             timeout=(1.0, 2.0))


def test_records_and_an_unchanged_snapshot(org) -> None:
    stub, wecom = org
    stub.people["wu"] = {"name": "吴", "department": [20], "main_department": 20, "status": 5}
    depts, mark = wecom.changed_master_data("cost_centres", None)
    assert [(d["code"], d["name"], d["parent"], d["manager"]) for d in depts] == [
        ("1", "示例科技", "", ""), ("10", "研发部", "1", "boss"), ("11", "应用组", "10", ""),
        ("20", "财务部", "1", "")]
    people, umark = wecom.changed_master_data("users", None)
    by = {p["code"]: p for p in people}
    assert by["li"] == {"code": "li", "name": "李四", "email": "", "department": "11",
                        "manager": "amy", "active": True, "external_id": "li"}
    assert by["wu"]["active"] is False and by["boss"]["manager"] is None
    assert by["boss"]["email"] == "boss@acme.cn"
    # the directory is read with the 通讯录同步 secret's token, not the approval app's
    assert {stub.token_secret[r.query["access_token"]] for r in stub.calls(MEMBERS)} == {"csec"}
    assert wecom.changed_master_data("users", umark) == ([], umark)
    assert wecom.changed_master_data("cost_centres", mark) == ([], mark)


def test_a_department_prefix_keeps_clear_of_erp_codes(org) -> None:
    stub = org[0]
    wecom = WeComConnector(corp_id="ww1", secret="sec", agent_id="1000002", token="tok",
                           aes_key=AES, api_url=stub.url,
                           org_options=OrgOptions(department_prefix="WX-"))
    depts, _ = wecom.changed_master_data("cost_centres", None)
    assert [(d["code"], d["parent"], d["external_code"]) for d in depts][:2] == [
        ("WX-1", "", "wecom:1"), ("WX-10", "WX-1", "wecom:10")]
    people, _ = wecom.changed_master_data("users", None)
    assert {p["department"] for p in people} == {"WX-10", "WX-11", "WX-20"}
