"""The file connector (ledger export layout, atomic overwrite) and the journal entry adapter."""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from connectors.base import PermanentError, RetryableError
from connectors.file import FileConnector, file_name
from connectors.ledger import voucher_from_entry
from yinfin_flow.domain.errors import NotFound
from yinfin_flow.ledger.exports import VOUCHER_COLUMNS
from yinfin_flow.ledger.posting import post

from ..integration.test_ledger_posting import books, expense
from .conftest import sample_voucher


def test_writes_each_format_once_per_key(tmp_path) -> None:
    fc = FileConnector(directory=tmp_path / "drop")
    number = fc.post_voucher(sample_voucher(), "je:1")
    assert fc.post_voucher(sample_voucher(), "je:1") == number  # re-delivery: same files
    fc.post_voucher(sample_voucher(), "je_1")  # a different key that looks alike
    files = sorted(p.name for p in (tmp_path / "drop").iterdir())
    assert len(files) == 6 and not [f for f in files if f.startswith(".tmp")]
    with (tmp_path / "drop" / f"{number}.csv").open(encoding="utf-8-sig") as fh:
        header, first, second = list(csv.reader(fh))
    assert header == VOUCHER_COLUMNS
    assert first[VOUCHER_COLUMNS.index("借方")] == "1234.56"
    assert second[VOUCHER_COLUMNS.index("核算项目-往来单位")] == "E001"
    ws = load_workbook(tmp_path / "drop" / f"{number}.xlsx").active
    assert ws.cell(2, VOUCHER_COLUMNS.index("科目编码") + 1).value == "6602.01"
    bean = (tmp_path / "drop" / f"{number}.beancount").read_text(encoding="utf-8")
    assert "Expenses:6602-01  1234.56 CNY" in bean


def test_read_back_by_number_or_key_and_master_data(tmp_path) -> None:
    fc = FileConnector(directory=tmp_path, formats="csv")
    number = fc.post_voucher(sample_voucher(), "je:1")
    back = fc.read_voucher("je:1")
    assert back == fc.read_voucher(number) and back.key == "je:1"
    assert back.lines[0].debit == Decimal("1234.56") and back.lines[0].cost_centre == "CC-01"
    assert back.totals() == sample_voucher().totals()
    assert fc.read_voucher("je:2") is None
    (tmp_path / "masterdata").mkdir()
    (tmp_path / "masterdata" / "accounts.csv").write_text(
        "code,name,active,modified\n6602,管理费用,true,2026-11-02T00:00:00\n"
        "1001,现金,false,2026-11-01T00:00:00\n", encoding="utf-8")
    rows, mark = fc.changed_master_data("accounts", None)
    assert [(r["code"], r["active"]) for r in rows] == [("1001", False), ("6602", True)]
    assert fc.changed_master_data("accounts", mark) == ([], mark)
    assert fc.changed_master_data("projects", None) == ([], None)
    with pytest.raises(PermanentError):
        fc.changed_master_data("cars", None)


def test_unwritable_directory_is_retryable(tmp_path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    with pytest.raises(RetryableError):
        FileConnector(directory=blocker / "sub").post_voucher(sample_voucher(), "k")
    assert file_name("a/b:c") != file_name("a_b_c")
    assert len(file_name("x" * 300)) == 64  # fits JournalSync.erp_voucher_id


def test_voucher_from_a_posted_entry(db, tmp_path) -> None:
    books(db)
    with db.unit_of_work() as s:
        posted = post(s, **expense())
    with db.unit_of_work(readonly=True) as s:
        v = voucher_from_entry(s, posted.entry_id)
        with pytest.raises(NotFound):
            voucher_from_entry(s, 10**9)
    assert v.company == "ACME" and v.key == "expense:1:approved" and v.currency == "CNY"
    debit, credit = v.totals()
    assert debit == credit == Decimal("100.00")
    assert {ln.cost_centre for ln in v.lines if ln.debit} == {"RD-APP"}
    # and it goes through a connector unchanged
    fc = FileConnector(directory=tmp_path, formats="csv")
    back = fc.read_voucher(fc.post_voucher(v, v.key))
    assert [(ln.account, ln.debit, ln.credit) for ln in back.lines] == [
        (ln.account, ln.debit, ln.credit) for ln in v.lines]
