"""ERPNext against a local Frappe REST stub: Journal Entry exactly once, error bodies."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest

from connectors.base import PermanentError, RetryableError
from connectors.erpnext import ERPNextConnector

from .conftest import sample_voucher
from .stubs.erpnext import ERPNextStub


@pytest.fixture
def stub(start_stub):
    return start_stub(ERPNextStub())


@pytest.fixture
def erp(stub):
    return ERPNextConnector(url=stub.url, api_key="k1", api_secret="s1", company="Yinfin Ltd",
                            timeout=(1.0, 1.0))


def test_post_submits_once_with_token_auth(erp, stub) -> None:
    assert erp.post_voucher(sample_voucher(), "je_1") == "ACC-JV-2026-00001"
    assert erp.post_voucher(sample_voucher(), "je_1") == "ACC-JV-2026-00001"
    assert len(stub.docs["Journal Entry"]) == 1
    doc = stub.docs["Journal Entry"][0]
    assert doc["docstatus"] == 1 and "[yinfin:je_1]" in doc["user_remark"]
    first, second = doc["accounts"]
    assert first["account"] == "6602.01 - Travel - YF" and first["cost_center"] == "Sales - YF"
    assert second["party_type"] == "Supplier" and second["party"] == "E001"
    # "je_1"'s underscore is a LIKE wildcard: "jex1" must not be mistaken for it
    assert erp.post_voucher(sample_voucher(), "jex1") == "ACC-JV-2026-00002"


def test_lost_answer_and_draft_left_behind(erp, stub) -> None:
    stub.drop_answer_once = True
    with pytest.raises(RetryableError):
        erp.post_voucher(sample_voucher(), "je:2")
    assert erp.post_voucher(sample_voucher(), "je:2") == "ACC-JV-2026-00001"
    stub.docs["Journal Entry"].append({"name": "ACC-JV-2026-00002", "docstatus": 0,
                                       "user_remark": "x [yinfin:je:3]", "accounts": []})
    assert erp.post_voucher(sample_voucher(), "je:3") == "ACC-JV-2026-00002"
    assert stub.docs["Journal Entry"][1]["docstatus"] == 1
    assert len(stub.docs["Journal Entry"]) == 2


def test_custom_key_field(stub) -> None:
    erp = ERPNextConnector(url=stub.url, api_key="k1", api_secret="s1", company="Yinfin Ltd",
                           key_field="yinfin_key")
    erp.post_voucher(sample_voucher(), "je:7")
    erp.post_voucher(sample_voucher(), "je:7")
    assert [d["yinfin_key"] for d in stub.docs["Journal Entry"]] == ["je:7"]
    assert erp.read_voucher("je:7").key == "je:7"


def test_frappe_errors_are_kept_verbatim(erp, stub) -> None:
    v = sample_voucher()
    unbalanced = replace(v, lines=(v.lines[0], replace(v.lines[1], credit=Decimal("1000.00"))))
    with pytest.raises(PermanentError) as err:
        erp.post_voucher(unbalanced, "je:4")
    assert err.value.message == ("Total Debit must be equal to Total Credit. "
                                 "The difference is 234.56")
    assert err.value.status == 417
    with pytest.raises(PermanentError, match="account not found in ERPNext"):
        erp.post_voucher(sample_voucher(debit_account="9999"), "je:5")
    stub.fail_next(("status", 417, json.dumps({"exc_type": "QueryDeadlockError",
                                               "exception": "Deadlock found"})))
    with pytest.raises(RetryableError):
        erp.post_voucher(v, "je:6")
    stub.fail_next(("status", 429, "slow down"))
    with pytest.raises(RetryableError):
        erp.post_voucher(v, "je:6")
    bad = ERPNextConnector(url=stub.url, api_key="k1", api_secret="no", company="Yinfin Ltd")
    with pytest.raises(PermanentError, match="Invalid API key or secret"):
        bad.post_voucher(v, "je:6")


def test_read_back_and_master_data(erp, stub) -> None:
    erp.post_voucher(sample_voucher(), "je:1")
    back = erp.read_voucher("je:1")
    assert back == erp.read_voucher("ACC-JV-2026-00001")
    assert [ln.account for ln in back.lines] == ["6602.01", "2241.01"]
    assert back.totals() == (Decimal("1234.56"), Decimal("1234.56"))
    assert erp.read_voucher("je:404") is None
    rows, mark = erp.changed_master_data("accounts", None)
    assert [r["code"] for r in rows] == ["2241.01", "6602.01"]
    assert erp.changed_master_data("accounts", mark) == ([], mark)
    stub.docs["Account"].append({**stub.docs["Account"][1], "name": "6603 - Fin - YF",
                                 "account_number": "6603"})  # same second, later name
    stub.docs["Account"][0].update(disabled=1, modified="2026-11-02 09:00:00.000000")
    rows, _ = erp.changed_master_data("accounts", mark)
    assert [(r["code"], r["active"]) for r in rows] == [("6603", True), ("6602.01", False)]
