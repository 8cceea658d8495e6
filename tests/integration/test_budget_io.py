"""Budget import/export and rates import on both real databases."""

from __future__ import annotations

import csv
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from yinfin_flow.budget import setup
from yinfin_flow.budget.io import ImportFailed, export_budgets, import_budgets
from yinfin_flow.budget.io_rates import import_rates
from yinfin_flow.budget.io_tables import read_table
from yinfin_flow.budget.lookup import rate_for
from yinfin_flow.budget.service import Budgets
from yinfin_flow.budget.verify import verify
from yinfin_flow.db.models import (
    BudgetBalance,
    BudgetEntry,
    BudgetLine,
    BudgetMovement,
    ExchangeRate,
)

from ..factories import line_req, org_in

DATA = Path(__file__).resolve().parent.parent / "data"


def count(db, model):
    with db.unit_of_work(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(model))


def budget_of(db, code):
    with db.unit_of_work(readonly=True) as s:
        line = s.scalar(select(BudgetLine).where(BudgetLine.code == code))
        return s.get(BudgetBalance, line.id).budget


def do_import(db, path, **kw):
    with db.unit_of_work() as s:
        return import_budgets(s, path, actor="cfo", **kw)


def test_import_creates_tree_in_any_row_order_and_reimport_is_a_no_op(db):
    org_in(db)
    result = do_import(db, DATA / "budgets_2026-02.csv")
    assert sorted(result.created) == [
        "ACME/2026-02/RD-APP/TRAVEL", "ACME/2026-02/RD-WEB/TRAVEL", "ACME/2026-02/RD/OFFICE",
        "ACME/2026-02/RD/TRAVEL", "ACME/2026-Q2/RD/OFFICE",
    ]
    assert result.periods_created == ["2026 (quarter)"]
    with db.unit_of_work(readonly=True) as s:
        lines = {ln.code: ln for ln in s.scalars(select(BudgetLine))}
    parent = lines["ACME/2026-02/RD/TRAVEL"]
    assert lines["ACME/2026-02/RD-APP/TRAVEL"].parent_id == parent.id  # shortcut "RD/TRAVEL"
    assert lines["ACME/2026-02/RD-WEB/TRAVEL"].parent_id == parent.id  # full code
    assert lines["ACME/2026-02/RD-APP/TRAVEL"].owner == "wang"
    assert budget_of(db, "ACME/2026-02/RD/TRAVEL") == Decimal("1200.50")
    assert budget_of(db, "ACME/2026-02/RD/OFFICE") == 0
    with db.unit_of_work(readonly=True) as s:
        reasons = list(s.scalars(select(BudgetMovement.reason).where(BudgetMovement.kind == "original")))
    # Three "2026 plan" rows; the zero-amount row books no journal at all.
    assert reasons.count("2026 plan") == 3 and "quarterly office budget" in reasons
    entries = count(db, BudgetEntry)
    again = do_import(db, DATA / "budgets_2026-02.csv")
    assert (again.created, again.adjusted, again.unchanged) == ([], [], 5)
    assert count(db, BudgetEntry) == entries
    with db.unit_of_work(readonly=True) as s:
        assert verify(s) == []


def test_bad_rows_are_all_reported_and_nothing_is_imported(db):
    org_in(db)
    lines, entries = count(db, BudgetLine), count(db, BudgetEntry)
    with pytest.raises(ImportFailed) as err:
        do_import(db, DATA / "budgets_bad.csv")
    got = {(e.row, e.column) for e in err.value.errors}
    assert got == {
        (3, "company"), (4, "period"), (5, "item"), (6, "amount"), (7, "amount"),
        (8, "parent"), (9, "period"), (10, "currency"), (11, "amount"),
    }
    problems = {e.row: e.problem for e in err.value.errors}
    assert "NOPE" in problems[3]
    assert "row 2" in problems[9]
    assert "decimal places" in problems[6]
    assert err.value.code == "import_invalid"
    assert (count(db, BudgetLine), count(db, BudgetEntry)) == (lines, entries)


def test_missing_columns_are_reported_as_row_1(db, tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("company,period,item\nACME,2026-01,TRAVEL\n", encoding="utf-8")
    with pytest.raises(ImportFailed) as err:
        do_import(db, path)
    assert {(e.row, e.column) for e in err.value.errors} == {(1, "cost_centre"), (1, "amount")}


def test_a_cut_refused_by_control_rolls_back_the_whole_file(db, tmp_path):
    org = org_in(db)
    with db.unit_of_work() as s:
        Budgets(s).reserve("r1", ("expense", "1"), [line_req(org.child_line, "500")], actor="amy")
    path = tmp_path / "cut.csv"
    path.write_text(
        "company,period,cost_centre,item,amount\n"
        "ACME,2026-01,RD,OFFICE,150\n"  # a raise that would be fine on its own
        "ACME,2026-01,RD-APP,TRAVEL,400\n",  # below the 500 already reserved: refused
        encoding="utf-8",
    )
    with pytest.raises(ImportFailed) as err:
        do_import(db, path)
    assert [(e.row, e.column) for e in err.value.errors] == [(3, "amount")]
    assert "E1_over_budget" in err.value.errors[0].problem
    assert budget_of(db, "ACME/2026-01/RD/OFFICE") == Decimal("100")


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_round_trip(db, tmp_path, fmt):
    org = org_in(db)
    with db.unit_of_work() as s:
        Budgets(s).reserve("r1", ("expense", "1"), [line_req(org.child_line, "250")], actor="amy")
    path = tmp_path / f"budgets.{fmt}"
    with db.unit_of_work(readonly=True) as s:
        assert export_budgets(s, path) == 4
    header, rows = read_table(path)
    assert header[:9] == ["code", "company", "period", "cost_centre", "item", "project", "parent",
                          "currency", "amount"]
    by_code = {cells["code"]: cells for _n, cells in rows}
    child = by_code["ACME/2026-01/RD-APP/TRAVEL"]
    assert Decimal(child["amount"]) == Decimal("600")
    assert Decimal(child["pre_encumbered"]) == Decimal("250")
    assert Decimal(child["available"]) == Decimal("350")
    assert child["parent"] == "ACME/2026-01/RD/TRAVEL"
    assert Decimal(by_code["ACME/2026-01/RD/TRAVEL"]["available"]) == Decimal("750")  # rolls up
    # Parents come before their children in the file.
    order = [cells["code"] for _n, cells in rows]
    assert order.index("ACME/2026-01/RD/TRAVEL") < order.index("ACME/2026-01/RD-APP/TRAVEL")

    entries = count(db, BudgetEntry)
    result = do_import(db, path)
    assert (result.created, result.adjusted, result.unchanged) == ([], [], 4)
    assert count(db, BudgetEntry) == entries

    # Finance edits one amount and re-imports: exactly one adjustment of the difference.
    edited = tmp_path / f"edited.{fmt}"
    _rewrite(path, edited, "ACME/2026-01/RD-WEB/TRAVEL", "amount", "750.25")
    result = do_import(db, edited)
    assert result.adjusted == [("ACME/2026-01/RD-WEB/TRAVEL", Decimal("150.25"), "CNY")]
    assert budget_of(db, "ACME/2026-01/RD-WEB/TRAVEL") == Decimal("750.25")
    with db.unit_of_work(readonly=True) as s:
        adj = s.scalars(select(BudgetMovement).where(BudgetMovement.kind == "adjustment")).one()
        assert adj.reason == f"budget import edited.{fmt}" and adj.actor == "cfo"
        assert verify(s) == []


def _rewrite(src: Path, dst: Path, code: str, column: str, value: str) -> None:
    header, rows = read_table(src)
    out = []
    for _n, cells in rows:
        if cells["code"] == code:
            cells[column] = value
        out.append([cells.get(h, "") for h in header])
    if dst.suffix == ".csv":
        with dst.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([header, *out])
    else:
        wb = Workbook()
        ws = wb.active
        ws.append(header)
        for r in out:
            ws.append(r)
        wb.save(dst)


def test_xlsx_as_excel_users_type_it(db, tmp_path):
    """Chinese headers, float amounts, numeric codes, a period Excel turned into a date."""
    org_in(db)
    with db.unit_of_work() as s:
        setup.create_cost_centre(s, "ACME", "1001", "Numeric-coded dept", parent="RD")
    wb = Workbook()
    ws = wb.active
    ws.append(["公司", "期间", "成本中心", "预算科目", "金额", "负责人"])
    ws.append(["ACME", datetime(2026, 3, 1), 1001, "TRAVEL", 1234.56, "qian"])
    ws.append(["ACME", 2026, "RD", "TRAVEL", 12000, None])
    path = tmp_path / "excel.xlsx"
    wb.save(path)
    result = do_import(db, path)
    assert sorted(result.created) == ["ACME/2026-03/1001/TRAVEL", "ACME/2026/RD/TRAVEL"]
    assert budget_of(db, "ACME/2026-03/1001/TRAVEL") == Decimal("1234.56")
    assert budget_of(db, "ACME/2026/RD/TRAVEL") == Decimal("12000")


def test_gbk_csv_from_chinese_excel(db, tmp_path):
    org_in(db)
    path = tmp_path / "gbk.csv"
    # Thousands separators are refused like at every other door (one money grammar)…
    path.write_bytes(
        '公司,期间,成本中心,预算科目,金额,原因\nACME,2026-04,RD,TRAVEL,"1,088.00",年度预算\n'.encode("gbk"))
    with pytest.raises(ImportFailed) as err:
        do_import(db, path)
    assert [(e.row, e.column) for e in err.value.errors] == [(2, "amount")]
    assert "thousands separators" in err.value.errors[0].problem
    # …and the same file written plainly imports.
    path.write_bytes('公司,期间,成本中心,预算科目,金额,原因\nACME,2026-04,RD,TRAVEL,1088.00,年度预算\n'.encode("gbk"))
    do_import(db, path)
    assert budget_of(db, "ACME/2026-04/RD/TRAVEL") == Decimal("1088")
    with db.unit_of_work(readonly=True) as s:
        reasons = list(s.scalars(select(BudgetMovement.reason)))
    assert "年度预算" in reasons


def test_rates_import_then_correct_then_refuse_bad_file(db, tmp_path):
    with db.unit_of_work() as s:
        result = import_rates(s, DATA / "rates.csv")
    assert (result.added, result.updated, result.unchanged) == (3, 0, 0)
    with db.unit_of_work(readonly=True) as s:
        assert rate_for(s, "USD", "CNY", date(2026, 2, 15)) == Decimal("7.1796")
        assert rate_for(s, "USD", "CNY", date(2026, 1, 31)) == Decimal("7.1884")
    fixed = tmp_path / "fixed.csv"
    shutil.copy(DATA / "rates.csv", fixed)
    fixed.write_text(fixed.read_text().replace("7.1796", "7.1800"))
    with db.unit_of_work() as s:
        result = import_rates(s, fixed)
    assert (result.added, result.updated, result.unchanged) == (0, 1, 2)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "from_currency,to_currency,date,rate\n"
        "USD,CNY,2026-03-01,7.1\n"
        "USD,USD,2026-03-01,1\n"
        "USD,CNY,2026-02-30,7.1\n"
        "ZZZ,CNY,2026-03-01,-1\n"
    )
    with pytest.raises(ImportFailed) as err, db.unit_of_work() as s:
        import_rates(s, bad)
    assert {(e.row, e.column) for e in err.value.errors} == {
        (3, "to_currency"), (4, "date"), (5, "from_currency"), (5, "rate"),
    }
    assert count(db, ExchangeRate) == 3


def test_tree_problems_are_refused(db, tmp_path):
    org_in(db)
    path = tmp_path / "tree.csv"
    path.write_text(
        "company,period,cost_centre,item,parent,amount,code\n"
        "ACME,2026-05,RD,TRAVEL,ACME/2026-05/RD-APP/TRAVEL,10,\n"  # A under B ...
        "ACME,2026-05,RD-APP,TRAVEL,ACME/2026-05/RD/TRAVEL,10,\n"  # ... and B under A
        "ACME,2026-05,RD-WEB,TRAVEL,RD-WEB/TRAVEL,10,\n"  # its own parent
        "ACME,2026-01,RD-APP,TRAVEL,RD/OFFICE,600,\n"  # moving an existing line
        "ACME,2026-05,RD,OFFICE,,10,ACME/2026-01/RD/OFFICE\n"  # a code another line has
        "ACME,2026-01,RD,OFFICE,,100,RENAMED\n",  # renaming an existing line
        encoding="utf-8",
    )
    lines = count(db, BudgetLine)
    with pytest.raises(ImportFailed) as err:
        do_import(db, path)
    assert {(e.row, e.column) for e in err.value.errors} == {
        (2, "parent"), (3, "parent"), (4, "parent"), (5, "parent"), (6, "code"), (7, "code"),
    }
    problems = {e.row: e.problem for e in err.value.errors if e.column == "parent"}
    assert "loops" in problems[2] and "own parent" in problems[4] and "does not move" in problems[5]
    assert count(db, BudgetLine) == lines


def test_existing_line_in_another_currency_is_checked_in_its_currency(db, tmp_path):
    org_in(db)
    with db.unit_of_work() as s:
        setup.create_line(s, company_code="ACME", period_code="2026-06", cost_centre="RD", item="TRAVEL",
                          currency="JPY")
    path = tmp_path / "jpy.csv"
    path.write_text("company,period,cost_centre,item,amount\nACME,2026-06,RD,TRAVEL,100.50\n", encoding="utf-8")
    with pytest.raises(ImportFailed) as err:
        do_import(db, path)
    assert [(e.row, e.column) for e in err.value.errors] == [(2, "amount")]
    assert "JPY" in err.value.errors[0].problem
    path.write_text("company,period,cost_centre,item,amount\nACME,2026-06,RD,TRAVEL,10000\n", encoding="utf-8")
    do_import(db, path)
    assert budget_of(db, "ACME/2026-06/RD/TRAVEL") == Decimal("10000")
