"""A malformed answer from an ERP or OA is a connector error with a clear message.

HTML where JSON belongs and a body cut off in transit are retried (a gateway in
trouble); JSON of the wrong shape (a list for an object, a field missing, a number
that is not one) is :class:`MalformedReply`, permanent (asking again gets the same
answer). Never an uncaught ``TypeError`` / ``KeyError``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import PermanentError, RetryableError, StatusMessage
from connectors.erpnext import ERPNextConnector
from connectors.http import READ_TRIES, MalformedReply
from connectors.kingdee import KingdeeConnector
from connectors.odoo import OdooConnector
from connectors.wecom import WeComConnector

from .conftest import sample_voucher
from .stubs.erpnext import ERPNextStub
from .stubs.kingdee import KingdeeStub
from .stubs.odoo import OdooStub
from .stubs.wecom import WeComStub
from .test_wecom import KEY

JE = "/api/resource/Journal%20Entry"  # as the stub sees the path
HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"


@pytest.fixture
def stub(start_stub):
    return start_stub(ERPNextStub())


@pytest.fixture
def erp(stub):
    return ERPNextConnector(url=stub.url, api_key="k1", api_secret="s1", company="Yinfin Ltd",
                            timeout=(1.0, 1.0))


@pytest.mark.parametrize(("answer", "error", "says"), [
    (("status", 200, HTML), RetryableError, "not JSON"),
    (("truncated", 200, '{"data": {"name": "ACC-JV-2026-0'), RetryableError, "cut off"),
    (("status", 200, '[{"name": "ACC-JV-2026-00001"}]'), MalformedReply, "expected a JSON object"),
    (("status", 200, '{"data": {"docstatus": 1}}'), MalformedReply, "has no name"),
    (("status", 200, '{"data": ["ACC-JV-2026-00001"]}'), MalformedReply, "expected a JSON object"),
    (("status", 200, '"ok"'), MalformedReply, "got a string"),
])
def test_erpnext_insert_answer_of_each_malformed_kind(erp, stub, answer, error, says) -> None:
    stub.path_failures[JE] = [None, answer]  # the key look-up is fine, the insert's answer is not
    with pytest.raises(error, match=says) as err:
        erp.post_voucher(sample_voucher(), "je:1")
    assert err.value.connector == "erpnext"
    assert erp.post_voucher(sample_voucher(), "je:1") == "ACC-JV-2026-00001"  # found by its key
    assert len(stub.docs["Journal Entry"]) == 1


@pytest.mark.parametrize(("answer", "error"), [
    (("status", 200, '{"data": {"name": "x"}}'), MalformedReply),  # an object for the list
    (("status", 200, '{"data": [["ACC-JV-2026-00001", 1]]}'), MalformedReply),  # rows not objects
    (("truncated", 200, '{"data": ['), RetryableError),
])
def test_erpnext_look_up_answer_malformed(erp, stub, answer, error) -> None:
    stub.path_failures[JE] = [answer] * READ_TRIES
    with pytest.raises(error):
        erp.post_voucher(sample_voucher(), "je:1")
    assert not stub.docs["Journal Entry"]


def test_erpnext_read_back_with_fields_missing_or_wrong(erp, stub) -> None:
    erp.post_voucher(sample_voucher(), "je:1")
    doc = stub.docs["Journal Entry"][0]
    del doc["accounts"][0]["debit"]
    with pytest.raises(MalformedReply, match="Journal Entry ACC-JV-2026-00001: malformed reply"):
        erp.read_voucher("ACC-JV-2026-00001")
    doc["accounts"][0]["debit"] = "lots"
    with pytest.raises(MalformedReply, match="InvalidOperation"):
        erp.read_voucher("ACC-JV-2026-00001")
    doc["accounts"] = None
    with pytest.raises(MalformedReply, match="TypeError"):
        erp.read_voucher("ACC-JV-2026-00001")


def test_odoo_answer_a_list_or_a_result_missing(start_stub) -> None:
    stub = start_stub(OdooStub())
    odoo = OdooConnector(url=stub.url, db="prod", username="api@corp", api_key="key-1",
                         timeout=(1.0, 1.0))
    stub.fail_next(("status", 200, "[1, 2]"))
    with pytest.raises(MalformedReply, match="expected a JSON object, got an array"):
        odoo.post_voucher(sample_voucher(), "je:1")
    stub.fail_next(("status", 200, '{"jsonrpc": "2.0", "error": "boom"}'))
    with pytest.raises(MalformedReply, match="error answer"):
        odoo.post_voucher(sample_voucher(), "je:1")
    stub.fail_next(("status", 200, HTML))
    with pytest.raises(RetryableError, match="not JSON"):
        odoo.post_voucher(sample_voucher(), "je:1")


def test_kingdee_save_answer_missing_its_entity(start_stub) -> None:
    stub = start_stub(KingdeeStub())
    kd = KingdeeConnector(url=stub.url, acct_id="dc1", username="api", book="001",
                          app_id="yinfin", app_secret="app-secret", timeout=(1.0, 1.0))
    kd.login()
    save = "/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Save.common.kdsvc"
    stub.path_failures[save] = [("status", 200, '{"Result": {"ResponseStatus": '
                                                '{"IsSuccess": true, "SuccessEntitys": []}}}')]
    with pytest.raises(MalformedReply, match="the Save answer: malformed reply"):
        kd.post_voucher(sample_voucher(), "je:1")
    query = "/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc"
    stub.path_failures[query] = [("status", 200, '{"Result": []}')] * READ_TRIES
    with pytest.raises(PermanentError, match="malformed|expected"):
        kd.post_voucher(sample_voucher(), "je:2")


def test_oa_answer_a_list_or_html(start_stub) -> None:
    stub = start_stub(WeComStub())
    wecom = WeComConnector(corp_id="ww1", secret="sec", agent_id="1000002", token="QDG6eK",
                           aes_key=KEY, api_url=stub.url, timeout=(1.0, 1.0))
    msg = StatusMessage(kind="task", request_id="R1", title="请审批", status="pending",
                        occurred_at=datetime(2026, 11, 25, tzinfo=UTC), user_ids=["lisi"])
    wecom.access_token()
    stub.fail_next(("status", 200, '[{"errcode": 0}]'))
    with pytest.raises(MalformedReply, match="expected a JSON object, got an array"):
        wecom.push_status(msg, "k1")
    stub.fail_next(("status", 200, HTML))
    with pytest.raises(RetryableError, match="not JSON"):
        wecom.push_status(msg, "k1")
    stub.fail_next(("status", 200, '{"errcode": 0, "access_token": "t", "expires_in": "soon"}'))
    with pytest.raises(MalformedReply, match="access token"):
        wecom.access_token(secret="another")
