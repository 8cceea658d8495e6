"""Master data imports (CSV, XLSX): every bad row reported at once, nothing half-imported."""

from __future__ import annotations

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from yinfin_flow.db.models.ledger import Account, Partner
from yinfin_flow.ledger import masterdata
from yinfin_flow.ledger.masterdata import ImportRejected
from yinfin_flow.ledger.posting import post

from ..factories import org_in
from .test_ledger_posting import books, expense


def write_csv(path, text):
    path.write_text(text, encoding="utf-8-sig")
    return path


def accounts(db):
    with db.unit_of_work(readonly=True) as s:
        return {a.code: a for a in s.scalars(select(Account))}


def test_csv_import_with_chinese_headers_and_parents_in_any_order(db, tmp_path):
    org_in(db)
    f = write_csv(tmp_path / "coa.csv",
                  "科目编码,科目名称,类别,上级科目,币别,外部编码\n"
                  "22210101,进项税额,负债,222101,,2221.01.01\n"
                  "2221,应交税费,负债,,,\n"
                  "222101,应交增值税,liability,2221,,\n"
                  "1002.01,USD bank,资产,,USD,\n")
    with db.unit_of_work() as s:
        assert masterdata.import_file(s, "ACME", "accounts", f) == {"created": 4, "updated": 0}
    got = accounts(db)
    assert got["22210101"].parent_id == got["222101"].id
    assert got["22210101"].external_code == "2221.01.01"
    assert got["1002.01"].currency == "USD" and got["2221"].currency is None


def test_every_bad_row_is_reported_and_nothing_is_imported(db, tmp_path):
    org_in(db)
    f = write_csv(tmp_path / "bad.csv",
                  "code,name,type,currency,parent\n"
                  "1001,Cash,asset,,\n"
                  ",No code,asset,,\n"
                  "1002,Bank,assets,,\n"
                  "1003,Fx,asset,XYZ,\n"
                  "1001,Cash again,asset,,\n"
                  "1004,Orphan,asset,,9999\n")
    with pytest.raises(ImportRejected) as err, db.unit_of_work() as s:
        masterdata.import_file(s, "ACME", "accounts", f)
    problems = {(e["row"], e["column"]) for e in err.value.details["errors"]}
    assert problems == {(3, "code"), (4, "type"), (5, "currency"), (6, "code"), (7, "parent")}
    assert accounts(db) == {}


def test_xlsx_partners_and_deactivation_keeps_history(db, tmp_path):
    books(db)
    wb = Workbook()
    ws = wb.active
    ws.append(["编码", "名称", "类型", "外部编码"])
    ws.append(["V002", "Meiyin Advertising", "供应商", "S002"])
    ws.append(["EMP-amy", "Amy Wang", "职员", "E-0001"])  # an update of an existing partner
    wb.save(tmp_path / "partners.xlsx")
    with db.unit_of_work() as s:
        assert masterdata.import_file(s, "ACME", "partners", tmp_path / "partners.xlsx") == {
            "created": 1, "updated": 1}
    with db.unit_of_work() as s:
        post(s, **expense())
    with db.unit_of_work() as s:
        masterdata.deactivate(s, "ACME", "partners", "EMP-amy")
        masterdata.deactivate(s, "ACME", "accounts", "6601")
    with db.unit_of_work(readonly=True) as s:
        amy = s.scalar(select(Partner).where(Partner.code == "EMP-amy"))
        assert (amy.name, amy.external_code, amy.active) == ("Amy Wang", "E-0001", False)
        assert s.scalar(select(func.count()).select_from(Partner)) == 4  # nothing deleted
    with pytest.raises(Exception, match="inactive"), db.unit_of_work() as s:
        post(s, **expense(key="again"))
    with pytest.raises(Exception, match="unknown"), db.unit_of_work() as s:
        masterdata.deactivate(s, "ACME", "partners", "NOPE")


def test_rounding_account_must_exist(db):
    books(db)
    with pytest.raises(Exception, match="unknown account") as err, db.unit_of_work() as s:
        masterdata.configure(s, "ACME", rounding_account="0000")
    assert err.value.details["field"] == "rounding_account"


def test_a_parent_that_would_loop_the_tree_is_refused(db):
    org_in(db)
    with db.unit_of_work() as s:
        masterdata.import_rows(s, "ACME", "accounts", [
            {"code": "6602", "name": "Admin", "type": "expense"},
            {"code": "6602.01", "name": "Office", "type": "expense", "parent": "6602"},
        ])
    with pytest.raises(ImportRejected) as err, db.unit_of_work() as s:
        masterdata.import_rows(s, "ACME", "accounts", [{"code": "6602", "parent": "6602.01"}])
    assert err.value.details["errors"][0]["column"] == "parent"
    assert accounts(db)["6602"].parent_id is None
