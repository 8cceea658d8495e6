"""ERPNext against a local Frappe REST stub: Journal Entry exactly once, error bodies."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest

from connectors.base import PermanentError, RetryableError
from connectors.erpnext import ERPNextConnector
from connectors.http import READ_TRIES

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
    # a look-up is tried again within the attempt; one that keeps failing ends it
    stub.fail_next(*[("status", 429, "slow down")] * READ_TRIES)
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


def _journal_lookups(stub) -> list[dict]:
    return [r.query for r in stub.requests
            if r.method == "GET" and r.path == "/api/resource/Journal%20Entry"]


def test_a_batch_is_looked_up_once_and_each_voucher_still_exactly_once(erp, stub) -> None:
    erp.post_voucher(sample_voucher(), "je_1")  # already in the ERP
    stub.docs["Journal Entry"].append({"name": "ACC-JV-2026-00002", "docstatus": 0,
                                       "user_remark": "x [yinfin:je:3]", "accounts": []})
    stub.docs["Journal Entry"].append({"name": "ACC-JV-2026-00003", "docstatus": 2,
                                       "user_remark": "x [yinfin:je:4]", "accounts": []})
    stub.requests.clear()
    keys = ["je_1", "jex1", "je:3", "je:4", "je:5"]
    batch = [(sample_voucher(), k) for k in keys]
    prepared = erp.prepare_vouchers(batch)
    assert len(stub.requests) == 3  # the keys, the accounts, the cost centres
    [query] = _journal_lookups(stub)
    assert len(json.loads(query["or_filters"])) == 5
    assert prepared.settled == set(keys)
    names = [erp.post_voucher(v, k, prepared=prepared) for v, k in batch]
    # found: posted before; a draft (submitted now); cancelled ones do not count; "jex1"
    # is not "je_1" although LIKE's "_" would match it
    assert names == ["ACC-JV-2026-00001", "ACC-JV-2026-00004", "ACC-JV-2026-00002",
                     "ACC-JV-2026-00005", "ACC-JV-2026-00006"]
    assert stub.docs["Journal Entry"][1]["docstatus"] == 1
    assert [r.method for r in stub.requests[3:]] == ["POST", "PUT", "POST", "POST"]
    # a retry of the same batch finds every voucher: nothing is created twice
    again = erp.prepare_vouchers(batch)
    assert [erp.post_voucher(v, k, prepared=again) for v, k in batch] == [
        "ACC-JV-2026-00001", "ACC-JV-2026-00004", "ACC-JV-2026-00002",
        "ACC-JV-2026-00005", "ACC-JV-2026-00006"]
    assert len(stub.docs["Journal Entry"]) == 6


def test_a_batch_key_the_look_up_could_not_settle_is_looked_up_alone(erp, stub, monkeypatch) -> None:
    import connectors.erpnext as mod

    erp.post_voucher(sample_voucher(), "je:1")
    erp.post_voucher(sample_voucher(), "je:2")
    monkeypatch.setattr(mod, "LIST_LIMIT", 2)  # the answer fills the page: maybe more exist
    prepared = erp.prepare_vouchers([(sample_voucher(), k) for k in ("je:1", "je:2", "je:3")])
    assert prepared.settled == set() and set(prepared.found) == {"je:1", "je:2"}
    stub.requests.clear()
    assert erp.post_voucher(sample_voucher(), "je:3", prepared=prepared) == "ACC-JV-2026-00003"
    assert [r.method for r in stub.requests] == ["GET", "POST"]  # its own look-up first
    assert "je:3" in json.loads(stub.requests[0].query["filters"])[0][2]


def test_a_batch_with_an_unknown_account_refuses_only_that_voucher(erp, stub) -> None:
    batch = [(sample_voucher(debit_account="9999"), "je:8"), (sample_voucher(), "je:9")]
    prepared = erp.prepare_vouchers(batch)
    with pytest.raises(PermanentError, match="account not found in ERPNext company Yinfin Ltd: 9999"):
        erp.post_voucher(*batch[0], prepared=prepared)
    assert erp.post_voucher(*batch[1], prepared=prepared) == "ACC-JV-2026-00001"
    assert len(stub.docs["Journal Entry"]) == 1


def test_a_batch_on_a_custom_key_field(stub, monkeypatch) -> None:
    erp = ERPNextConnector(url=stub.url, api_key="k1", api_secret="s1", company="Yinfin Ltd",
                           key_field="yinfin_key")
    erp.post_voucher(sample_voucher(), "je:7")
    stub.requests.clear()
    batch = [(sample_voucher(), k) for k in ("je:7", "je:8")]
    prepared = erp.prepare_vouchers(batch)
    [query] = _journal_lookups(stub)
    assert json.loads(query["filters"])[0] == ["yinfin_key", "in", ["je:7", "je:8"]]
    assert [erp.post_voucher(v, k, prepared=prepared) for v, k in batch] == [
        "ACC-JV-2026-00001", "ACC-JV-2026-00002"]
    assert [d["yinfin_key"] for d in stub.docs["Journal Entry"]] == ["je:7", "je:8"]
    # a case-blind collation (MariaDB's default) answers "in" with "JE:10" for "je:10":
    # which key that row is, is the server's call, so the chunk's keys are left to the
    # one-key look-up (its "=" decides, as it did before batches)
    from .stubs import erpnext as stub_mod

    exact = stub_mod._ok

    def case_blind(doc, flt):
        if flt[1] == "in":
            return str(doc.get(flt[0])).lower() in [str(v).lower() for v in flt[2]]
        return exact(doc, flt)

    monkeypatch.setattr(stub_mod, "_ok", case_blind)
    stub.docs["Journal Entry"].append({"name": "ACC-JV-2026-00009", "docstatus": 1,
                                       "yinfin_key": "JE:10", "accounts": []})
    odd = erp.prepare_vouchers([(sample_voucher(), k) for k in ("je:10", "je:11")])
    assert odd.settled == set() and odd.found == {}


def test_long_batches_are_looked_up_in_chunks_that_fit_a_url(erp, stub) -> None:
    keys = [f"voucher:{i:04d}:{'x' * 60}" for i in range(60)]
    prepared = erp.prepare_vouchers([(sample_voucher(), k) for k in keys])
    lookups = _journal_lookups(stub)
    assert len(lookups) > 1 and all(len(q["or_filters"]) <= 2100 for q in lookups)
    assert sum(len(json.loads(q["or_filters"])) for q in lookups) == 60
    assert prepared.settled == set(keys)
