"""Odoo against a local JSON-RPC stub: account.move with line_ids, action_post, exactly once."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest

from connectors.base import PermanentError, RetryableError
from connectors.http import READ_TRIES
from connectors.odoo import OdooConnector

from .conftest import sample_voucher
from .stubs.odoo import OdooStub


@pytest.fixture
def stub(start_stub):
    return start_stub(OdooStub())


@pytest.fixture
def odoo(stub):
    return OdooConnector(url=stub.url, db="prod", username="api@corp", api_key="key-1",
                         timeout=(1.0, 1.0))


def test_post_creates_and_posts_once(odoo, stub) -> None:
    assert odoo.post_voucher(sample_voucher(), "je:1") == "MISC/2026/00001"
    assert odoo.post_voucher(sample_voucher(), "je:1") == "MISC/2026/00001"
    assert len(stub.tables["account.move"]) == 1
    create = next(r for r in stub.requests if b'"create"' in r.body)
    assert b'"debit": 1234.56' in create.body  # a bare JSON number with the exact digits
    vals = json.loads(create.body)["params"]["args"][5][0]
    assert vals["ref"] == "je:1" and vals["move_type"] == "entry" and vals["journal_id"] == 3
    first, second = (cmd[2] for cmd in vals["line_ids"])
    assert [cmd[:2] for cmd in vals["line_ids"]] == [[0, 0], [0, 0]]
    assert first["analytic_distribution"] == {"5": 100} and second["partner_id"] == 7


def test_lost_answer_then_retry_and_a_draft_left_behind_gets_posted(odoo, stub) -> None:
    stub.lose_answer_after_create = True
    with pytest.raises(RetryableError):
        odoo.post_voucher(sample_voucher(), "je:2")  # posted, answer lost
    assert odoo.post_voucher(sample_voucher(), "je:2") == "MISC/2026/00001"
    stub.tables["account.move"].append({"id": 2, "name": "/", "state": "draft", "ref": "je:3",
                                        "date": "2026-11-25", "narration": ""})
    assert odoo.post_voucher(sample_voucher(), "je:3") == "MISC/2026/00002"
    assert len(stub.tables["account.move"]) == 2


def test_foreign_currency_line_is_signed(odoo, stub) -> None:
    v = sample_voucher()
    usd = replace(v.lines[0], currency="USD", amount=Decimal("171.00"), rate=Decimal("7.2196"))
    odoo.post_voucher(replace(v, lines=(usd, v.lines[1])), "je:fx")
    line = stub.tables["account.move.line"][0]
    assert line["amount_currency"] == Decimal("171.00")


def test_errors_keep_odoos_message(odoo, stub) -> None:
    with pytest.raises(PermanentError, match="account not found in Odoo: 9999"):
        odoo.post_voucher(sample_voucher(debit_account="9999"), "je:4")
    v = sample_voucher()
    unbalanced = replace(v, lines=(v.lines[0], replace(v.lines[1], credit=Decimal("1"))))
    with pytest.raises(PermanentError) as err:
        odoo.post_voucher(unbalanced, "je:5")
    assert err.value.message == "The move (MISC/1) is not balanced."
    stub.fail_next(*[503] * READ_TRIES)  # a look-up that keeps failing ends the attempt
    with pytest.raises(RetryableError):
        odoo.post_voucher(v, "je:6")
    bad = OdooConnector(url=stub.url, db="prod", username="api@corp", api_key="wrong")
    with pytest.raises(PermanentError, match="refused the login"):
        bad.post_voucher(v, "je:6")


def test_session_expired_authenticates_again(odoo, stub) -> None:
    odoo.post_voucher(sample_voucher(), "je:1")
    stub.expired = True
    assert odoo.read_voucher("je:1").number == "MISC/2026/00001"
    auths = [r for r in stub.requests if b'"authenticate"' in r.body]
    assert len(auths) == 2


def test_read_back_and_master_data(odoo, stub) -> None:
    odoo.post_voucher(sample_voucher(), "je:1")
    back = odoo.read_voucher("MISC/2026/00001")
    assert back == odoo.read_voucher("je:1") and back.key == "je:1"
    assert back.totals() == (Decimal("1234.56"), Decimal("1234.56"))
    assert [ln.account for ln in back.lines] == ["6602.01", "2241.01"]
    assert odoo.read_voucher("nope") is None
    rows, mark = odoo.changed_master_data("accounts", None)
    assert [r["code"] for r in rows] == ["6602.01", "2241.01"] and mark == "2026-11-01 09:00:00|11"
    stub.tables["account.account"][0]["write_date"] = "2026-11-03 08:00:00"
    rows, mark2 = odoo.changed_master_data("accounts", mark)
    assert [r["code"] for r in rows] == ["6602.01"] and mark2 == "2026-11-03 08:00:00|10"
    assert odoo.changed_master_data("accounts", mark2) == ([], mark2)
    stub.tables["res.partner"][0].update(active=False, write_date="2026-11-04 00:00:00")
    [gone], _ = odoo.changed_master_data("partners", mark)
    assert gone["code"] == "E001" and gone["active"] is False
    with pytest.raises(PermanentError):
        odoo.changed_master_data("budgets", None)
