"""Exports a real tool accepts, and the reports, on a ledger with several workflows."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from yinfin_flow.budget.service import Budgets
from yinfin_flow.ledger import exports, reports
from yinfin_flow.ledger.posting import post
from yinfin_flow.ledger.reversal import reverse
from yinfin_flow.ledger.sync import mark

from ..factories import line_req
from .test_ledger_posting import books, expense

BEAN_CHECK = Path(sys.executable).parent / "bean-check"


def bean_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BEAN_CHECK), str(path)], capture_output=True, text=True, timeout=120)


def busy_month(db):
    """Expense (CNY + USD with a rounding line) approved then paid, a purchase with VAT
    invoiced then paid, and one expense reversed."""
    org = books(db)
    with db.unit_of_work() as s:
        rid = Budgets(s).reserve("exp-1", ("expense", "1"), [line_req(org.child_line, "300.00")],
                                 actor="amy").reservations[0].id
    usd = [{"ref": str(i), "account": "6601", "cost_centre": "RD", "amount": a, "currency": "USD",
            "memo": f"taxi \"{i}\""} for i, a in enumerate(("33.33", "33.33", "33.34"), start=2)]
    cny = {"ref": "1", "item": "TRAVEL", "cost_centre": "RD-APP", "amount": "300.00",
           "currency": "CNY", "reservation_id": rid, "memo": "hotel"}
    purchase_doc = {"type": "procurement", "id": "7", "title": "laptops", "partner": "V001"}
    purchase_lines = [{"ref": "1", "account": "6602", "cost_centre": "RD", "amount": "1000.00",
                       "tax_amount": "130.00", "currency": "CNY"}]
    with db.unit_of_work() as s:
        approved = post(s, **expense(lines=[cny, *usd]))
        post(s, **expense(key="expense:1:paid", template="expense.paid", lines=[cny, *usd],
                          posting_date=date(2026, 1, 20)))
        post(s, **expense(key="po:7:invoice", template="purchase.invoice_matched", document=purchase_doc,
                          lines=purchase_lines))
        post(s, **expense(key="po:7:paid", template="purchase.paid", document=purchase_doc,
                          lines=purchase_lines, posting_date=date(2026, 1, 25)))
        other = post(s, **expense(key="expense:2:approved", doc_id="2"))
        reverse(s, other.entry_id, key="expense:2:reversed", actor="cfo", reason="duplicate",
                posting_date=date(2026, 1, 28))
    return org, approved, rid


def test_beancount_export_passes_the_real_bean_check(db, tmp_path):
    busy_month(db)
    path = tmp_path / "acme.beancount"
    with db.unit_of_work(readonly=True) as s:
        assert exports.export(s, "ACME", "beancount", path, "2026-01") == 6
    text = path.read_text(encoding="utf-8")
    assert "@@" in text and "#reversal" in text and "USD" in text
    result = bean_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""
    # The check can fail: knock one posting off by a cent and bean-check must object.
    broken = tmp_path / "broken.beancount"
    broken.write_text(text.replace("Expenses:6602  1000.00 CNY", "Expenses:6602  1000.01 CNY", 1),
                      encoding="utf-8")
    assert broken.read_text(encoding="utf-8") != text
    assert bean_check(broken).returncode != 0


def test_erp_voucher_layout_in_csv_and_xlsx(db, tmp_path):
    busy_month(db)
    with db.unit_of_work(readonly=True) as s:
        exports.export(s, "ACME", "csv", tmp_path / "v.csv", "2026-01")
        exports.export(s, "ACME", "xlsx", tmp_path / "v.xlsx", "2026-01")
    with open(tmp_path / "v.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == exports.VOUCHER_COLUMNS
    first = [r for r in rows if r["凭证号"] == "1"]
    assert [(r["科目编码"], r["币别"], r["借方"], r["贷方"]) for r in first] == [
        ("6601", "CNY", "300.00", "0.00"),
        ("6601", "USD", "237.42", "0.00"),
        ("6601", "USD", "237.42", "0.00"),
        ("6601", "USD", "237.49", "0.00"),
        ("2241", "CNY", "0.00", "300.00"),
        ("2241", "USD", "0.00", "712.34"),
        ("660302", "CNY", "0.01", "0.00"),  # the ERP (external) code
    ]
    assert first[1]["汇率"] == "7.1234" and first[1]["原币金额"] == "33.33"
    assert first[0]["核算项目-部门"] == "RD-APP" and first[4]["核算项目-往来单位"] == "E-amy"
    red = [r for r in rows if r["凭证号"] == "6"]
    assert red[0]["借方"] == "-100.00"  # red-ink reversal: same side, negative
    for voucher in {r["凭证号"] for r in rows}:
        lines = [r for r in rows if r["凭证号"] == voucher]
        assert sum(Decimal(r["借方"]) for r in lines) == sum(Decimal(r["贷方"]) for r in lines)
    ws = load_workbook(tmp_path / "v.xlsx").active
    sheet = list(ws.iter_rows(values_only=True))
    assert list(sheet[0]) == exports.VOUCHER_COLUMNS
    assert len(sheet) == len(rows) + 1
    assert Decimal(str(sheet[1][12])) == Decimal("300")


def test_trial_balance_budget_vs_actual_and_trail(db):
    org, approved, rid = busy_month(db)
    with db.unit_of_work() as s:
        mark(s, approved.entry_id, "synced", erp_voucher_id="K3-2026-01-0001")
    with db.unit_of_work(readonly=True) as s:
        tb = reports.trial_balance(s, "ACME", "2026-01")
        bva = reports.budget_vs_actual(s, "ACME", period="2026-01")
        tr = reports.trail(s, "expense", "1")
    assert tb["balanced"]
    by_acc = {r["account"]: r for r in tb["rows"]}
    # Paid in full: employee payable 2241 is back to zero; bank paid 300 + 712.34 + 1130.
    assert by_acc["2241"]["closing_debit"] == by_acc["2241"]["closing_credit"] == 0
    assert by_acc["1002"]["closing_credit"] == Decimal("2142.34")
    assert by_acc["2221"]["closing_debit"] == Decimal("130")  # rolled up from 22210101
    rows = {(r["cost_centre"], r["account"]): r for r in bva["rows"]}
    app = rows[("RD-APP", "6601")]
    assert (app["budget"], app["actual"], app["ledger"], app["unbudgeted"]) == (
        Decimal("600"), Decimal("300"), Decimal("300"), 0)
    # The USD taxi lines were posted without a request: the ledger shows them as unbudgeted
    # (237.42 + 237.42 + 237.49; the 0.01 conversion difference went to the rounding account).
    assert rows[("RD", "6601")]["unbudgeted"] == Decimal("712.33")
    assert [v["erp"]["voucher_id"] for v in tr["vouchers"]][0] == "K3-2026-01-0001"
    assert [m["kind"] for m in tr["budget_movements"]] == ["reserve", "to_actual"]
    assert tr["reservations"][0]["actual"] == Decimal("300")


@pytest.mark.parametrize("fmt", ["pdf"])
def test_unknown_export_format_is_refused(db, tmp_path, fmt):
    books(db)
    with pytest.raises(Exception, match="format"), db.unit_of_work(readonly=True) as s:
        exports.export(s, "ACME", fmt, tmp_path / "x", None)
