"""Kingdee K3Cloud against a local WebAPI stub: exactly-once posting, errors, master data."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.base import ERPConnector, PermanentError, RetryableError
from connectors.http import READ_TRIES
from connectors.kingdee import KingdeeConnector, marker

from .conftest import sample_voucher
from .stubs.kingdee import KingdeeStub


@pytest.fixture
def stub(start_stub):
    return start_stub(KingdeeStub())


@pytest.fixture
def kd(stub):
    return KingdeeConnector(url=stub.url, acct_id="dc1", username="api", book="001",
                            app_id="yinfin", app_secret="app-secret", timeout=(1.0, 1.0))


def test_post_save_submit_audit_and_again_is_one_voucher(kd, stub) -> None:
    assert isinstance(kd, ERPConnector)
    number = kd.post_voucher(sample_voucher(), "je:1")
    assert number == "记-0001" and stub.vouchers[100001]["state"] == "C"
    assert kd.post_voucher(sample_voucher(), "je:1") == "记-0001"
    assert len(stub.vouchers) == 1
    stub.fail_next(503)  # one lost look-up costs a second look-up, not the attempt
    assert kd.post_voucher(sample_voucher(), "je:2") == "记-0002"
    model = stub.vouchers[100001]["model"]
    assert model["FAccountBookID"] == {"FNumber": "001"}
    assert model["FVOUCHERGROUPID"] == {"FNumber": "PRE001"}
    assert model["FEntity"][0]["FDetailID"] == {"FDETAILID__FFLEX5": {"FNumber": "CC-01"}}
    assert model["FEntity"][0]["FDEBIT"] == Decimal("1234.56")  # a JSON number, exact
    assert marker("je:1") in model["FEntity"][1]["FEXPLANATION"]
    assert kd.post_voucher(sample_voucher(), "je:2") == "记-0002"


@pytest.mark.parametrize("lost", ["Save", "Submit", "Audit"])
def test_answer_lost_after_each_step_retry_finishes_the_same_voucher(kd, stub, lost) -> None:
    stub.lose_answer_after.add(lost)
    with pytest.raises(RetryableError):
        kd.post_voucher(sample_voucher(), "je:9")
    assert kd.post_voucher(sample_voucher(), "je:9") == "记-0001"
    assert len(stub.vouchers) == 1 and stub.vouchers[100001]["state"] == "C"


def test_validation_errors_keep_kingdees_messages(kd, stub) -> None:
    with pytest.raises(PermanentError) as err:
        kd.post_voucher(sample_voucher(debit_account="9999"), "je:3")
    assert err.value.message == "第1行分录，科目编码 9999 不存在或未审核"  # verbatim
    assert not stub.vouchers


def test_session_lost_relogs_in_once_and_bad_login_is_permanent(kd, stub) -> None:
    kd.post_voucher(sample_voucher(), "je:1")
    stub.expire_sessions()
    assert kd.read_voucher("je:1").number == "记-0001"
    assert len(stub.calls(
        "/Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret.common.kdsvc")) == 2
    by_password = KingdeeConnector(url=stub.url, acct_id="dc1", username="api", book="001",
                                   password="pw")
    assert by_password.read_voucher("记-0001").number == "记-0001"
    assert stub.calls(
        "/Kingdee.BOS.WebApi.ServicesStub.AuthService.ValidateUser.common.kdsvc")[0].json() == {
        "acctID": "dc1", "username": "api", "password": "pw", "lcid": 2052}
    wrong = KingdeeConnector(url=stub.url, acct_id="dc1", username="api", book="001",
                             password="nope")
    with pytest.raises(PermanentError, match="用户名或密码错误"):
        wrong.post_voucher(sample_voucher(), "je:1")


def test_transport_failures_are_retryable(kd, stub) -> None:
    kd.login()
    stub.fail_next(*[500] * READ_TRIES)  # the key look-up is tried again within the attempt
    with pytest.raises(RetryableError) as err:
        kd.post_voucher(sample_voucher(), "je:1")
    assert err.value.status == 500
    stub.fail_next(*[("sleep", 1.5)] * READ_TRIES)
    with pytest.raises(RetryableError, match="timeout"):
        kd.post_voucher(sample_voucher(), "je:1")
    assert kd.post_voucher(sample_voucher(), "je:1") == "记-0001"
    assert len(stub.vouchers) == 1
    stub.fail_next(503)  # one lost look-up costs a second look-up, not the attempt
    assert kd.post_voucher(sample_voucher(), "je:2") == "记-0002"


def test_read_back_by_number_or_key(kd) -> None:
    kd.post_voucher(sample_voucher(), "je:1")
    by_number, by_key = kd.read_voucher("记-0001"), kd.read_voucher("je:1")
    assert by_number == by_key
    assert by_key.totals() == (Decimal("1234.56"), Decimal("1234.56"))
    assert [ln.account for ln in by_key.lines] == ["6602.01", "2241.01"]
    assert by_key.lines[0].memo == "差旅费" and by_key.lines[0].currency == "CNY"
    assert kd.read_voucher("je:404") is None


def test_master_data_by_watermark_with_ties(kd, stub) -> None:
    stub.master["BD_Account"] = [
        {"id": 1, "FNumber": "1001", "FName": "库存现金", "FForbidStatus": "A",
         "FModifyDate": "2026-11-01T10:00:00"},
        {"id": 2, "FNumber": "1002", "FName": "银行存款", "FForbidStatus": "B",
         "FModifyDate": "2026-11-02T10:00:00"},
        {"id": 3, "FNumber": "6602", "FName": "管理费用", "FForbidStatus": "A",
         "FModifyDate": "2026-11-02T10:00:00"}]
    first, mark = kd.changed_master_data("accounts", None)
    assert [r["code"] for r in first] == ["1001", "1002", "6602"]
    assert first[1]["active"] is False and mark == "2026-11-02T10:00:00|3"
    again, same = kd.changed_master_data("accounts", mark)
    assert again == [] and same == mark
    stub.master["BD_Account"].append({"id": 4, "FNumber": "6603", "FName": "财务费用",
                                      "FForbidStatus": "A", "FModifyDate": "2026-11-02T10:00:00"})
    new, _ = kd.changed_master_data("accounts", "2026-11-02T10:00:00|2")
    assert [r["code"] for r in new] == ["6602", "6603"]
    with pytest.raises(PermanentError, match="budgets"):
        kd.changed_master_data("budgets", None)


def test_marker_has_no_like_wildcards() -> None:
    # K3Cloud runs on SQL Server, whose LIKE treats [ ] _ % as patterns
    for key in ("je:1", "a_b%c[d]", "expense:1:approved"):
        m = marker(key)
        assert not set(m) & set("[]_%'") and len(m) == 21
    assert marker("je:1") != marker("je:2")


def test_a_long_memo_never_pushes_the_marker_out(kd, stub) -> None:
    from dataclasses import replace

    v = sample_voucher()
    long = replace(v, lines=tuple(replace(ln, memo="长" * 400) for ln in v.lines))
    kd.post_voucher(long, "je:long")
    text = stub.vouchers[100001]["model"]["FEntity"][0]["FEXPLANATION"]
    assert len(text) <= 255 and text.endswith(marker("je:long"))
    assert kd.post_voucher(long, "je:long") == "记-0001" and len(stub.vouchers) == 1
