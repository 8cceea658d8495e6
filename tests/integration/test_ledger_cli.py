"""The accounting CLI end to end on a migrated SQLite file with the demo loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from yinfin_flow.cli import main
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.demo.budgets import fiscal_year


def _invoke(*args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) is ok, result.output
    return result.output


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    """Migrate and load the demo once (it is the slow part); each test gets a copy."""
    path = tmp_path_factory.mktemp("ledger_cli") / "demo.sqlite"
    upgrade(f"sqlite:///{path}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YINFIN_DATABASE_URL", f"sqlite:///{path}")
        _invoke("demo", "load", "--no-connectors")  # these tests run the books without an ERP
    return path


@pytest.fixture
def cli(demo_template, tmp_path, monkeypatch):
    shutil.copy(demo_template, tmp_path / "cli.sqlite")
    monkeypatch.setenv("YINFIN_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite'}")
    monkeypatch.chdir(tmp_path)
    return _invoke


def test_post_reverse_export_report_close(cli, tmp_path):
    year = fiscal_year()
    payload = {
        "key": "expense:cli-42:approved", "template": "expense.approved", "company": "ACME",
        "posting_date": f"{year}-03-10", "actor": "alice",
        "document": {"type": "expense", "id": "cli-42", "title": "上海出差", "requester": "amy", "partner": "EMP-amy"},
        "lines": [{"ref": "1", "item": "TRAVEL", "cost_centre": "RD-APP", "amount": "1200.00", "currency": "CNY"},
                  {"ref": "2", "item": "SOFTWARE", "cost_centre": "RD", "amount": "99.99", "currency": "USD"}],
    }
    (tmp_path / "p.json").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    out = cli("journal", "post", "p.json")
    assert f"posted 记-{year}-03-0001" in out
    entry_id = out.rsplit("(entry ", 1)[1].rstrip(")\n")
    assert f"replayed 记-{year}-03-0001 (entry {entry_id})" in cli("journal", "post", "p.json")
    out = cli("journal", "reverse", entry_id, "--reason", "wrong trip", "--actor", "zhou.cfo")
    assert f"记-{year}-03-0002" in out
    cli("journal", "export", "--format", "beancount", "-o", "all.beancount")
    check = subprocess.run([str(Path(sys.executable).parent / "bean-check"), "all.beancount"],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    cli("journal", "export", "--format", "xlsx", "--period", f"{year}-03", "-o", "v.xlsx")
    tb = json.loads(cli("report", "trial-balance", "--period", f"{year}-03", "--json"))
    assert tb["balanced"]
    assert {r["account"]: r["opening_debit"] for r in tb["rows"]}["1002"] == "5000000.00"
    bva = cli("report", "budget-vs-actual", "--year", str(year), "--format", "csv").splitlines()
    assert bva[0].startswith("cost_centre,account,budget,")
    assert any(row.startswith("RD-APP,6602.03,") for row in bva[1:])
    trail = json.loads(cli("report", "trail", "expense", "cli-42", "--format", "json"))
    assert [v["voucher"] for v in trail["vouchers"]] == [f"记-{year}-03-0001", f"记-{year}-03-0002"]
    assert "journal_balances" in cli("verify")
    # Months close in order: March waits for January and February.
    out = cli("period", "close", f"{year}-03", "--actor", "zhou.cfo", ok=False)
    assert "period_out_of_order" in out and f"close {year}-01 first" in out and "field: period" in out
    cli("period", "close", f"{year}-01", "--actor", "zhou.cfo")
    assert f"close {year}-02 first" in cli("period", "close", f"{year}-03", "--actor", "zhou.cfo", ok=False)
    out = cli("period", "close", "--through", f"{year}-03", "--actor", "zhou.cfo")  # the rest in one action
    assert out.strip() == f"ACME closed {year}-02, {year}-03"
    assert "already closed" in cli("period", "close", "--through", f"{year}-02", "--actor", "zhou.cfo")
    out = cli("period", "close", f"{year}-04", "--through", f"{year}-05", "--actor", "zhou.cfo", ok=False)
    assert "give one month CODE or --through YYYY-MM" in out


def test_bad_masterdata_file_lists_every_row_and_exits_1(cli, tmp_path):
    (tmp_path / "bad.csv").write_text("code,name,kind\nV9,,vendor\nV10,X,robot\n", encoding="utf-8")
    out = cli("masterdata", "import", "partners", "bad.csv", "--company", "ACME", ok=False)
    assert "row 2, name" in out and "row 3, kind" in out
    assert "nothing was imported" in out


def test_closed_period_refuses_with_a_clear_error(cli, tmp_path):
    year = fiscal_year()
    cli("period", "close", f"{year}-01", "--actor", "zhou.cfo")
    cli("period", "close", f"{year}-02", "--actor", "zhou.cfo")
    manual = {"key": "m1", "company": "ACME", "posting_date": str(date(year, 2, 3)), "actor": "fiona",
              "summary": "accrual", "lines": [{"account": "6602.01", "debit": "10.00", "cost_centre": "HQ"},
                                              {"account": "2241", "credit": "10.00"}]}
    (tmp_path / "m.json").write_text(json.dumps(manual), encoding="utf-8")
    out = cli("journal", "manual", "m.json", ok=False)
    assert "period_closed" in out and "posting_date" in out
    out = cli("period", "open", f"{year}-01", "--actor", "zhou.cfo", ok=False)       # reopen from the latest backwards
    assert "period_out_of_order" in out and f"reopen {year}-02 first" in out
    cli("period", "open", f"{year}-02", "--actor", "zhou.cfo")
    assert f"posted 记-{year}-02-0001" in cli("journal", "manual", "m.json")


# -- the same limits and money grammar at the command line ---------------------------------


def test_json_files_get_the_same_limits_and_money_grammar_as_the_api(cli, tmp_path, monkeypatch):
    """A voucher file nested a thousand deep ended in a RecursionError traceback, and a
    JSON number 1e2 was taken as an amount; both are now refused by name (exit 1)."""
    year = fiscal_year()
    (tmp_path / "deep.json").write_text("[" * 1000 + "]" * 1000, encoding="utf-8")
    out = cli("journal", "manual", "deep.json", ok=False)
    assert "validation_error" in out and "nested deeper than 32 levels" in out
    manual = {"key": "m2", "company": "ACME", "posting_date": str(date(year, 2, 3)), "actor": "fiona",
              "summary": "accrual", "lines": [{"account": "6602.01", "debit": "10.00", "cost_centre": "HQ"},
                                              {"account": "2241", "credit": "10.00"}]}
    for odd in ('1e1', '" 10.00"', '"١٠"', '"10.001"'):
        text = json.dumps(manual).replace('"debit": "10.00"', f'"debit": {odd}', 1)
        (tmp_path / "odd.json").write_text(text, encoding="utf-8")
        out = cli("journal", "manual", "odd.json", ok=False)
        assert "validation_error" in out and "lines[0].debit" in out, (odd, out)
    manual["summary"] = "x" * 10_001
    (tmp_path / "long.json").write_text(json.dumps(manual), encoding="utf-8")
    assert "longer than 10000 characters" in cli("journal", "manual", "long.json", ok=False)
    monkeypatch.setenv("YINFIN_MAX_FILE_BYTES", "16384")
    manual["summary"] = "y" * 9_000
    manual["memo"] = "z" * 9_000
    (tmp_path / "big.json").write_text(json.dumps(manual), encoding="utf-8")
    assert "payload_too_large" in cli("journal", "manual", "big.json", ok=False)


def test_imports_get_the_same_limits_and_money_grammar(cli, tmp_path, monkeypatch):
    year = fiscal_year()
    head = "company,period,cost_centre,item,amount,reason\n"
    for odd in (" 100.00", "1e2", "١٠٠", "100.001", "-5.00"):
        (tmp_path / "b.csv").write_text(head + f'ACME,{year}-02,RD,TRAVEL,"{odd}",r\n', encoding="utf-8")
        out = cli("budget", "import", "b.csv", "--actor", "fiona", ok=False)
        assert "row 2" in out and "amount" in out, (odd, out)
    (tmp_path / "b.csv").write_text(head + f"ACME,{year}-02,RD,TRAVEL,100.00,{'r' * 10_001}\n", encoding="utf-8")
    out = cli("budget", "import", "b.csv", "--actor", "fiona", ok=False)
    assert "row 2, reason" in out and "longer than 10000 characters" in out
    (tmp_path / "r.csv").write_text(f"from_currency,to_currency,date,rate\nusd,CNY,{year}-02-01,7.1\n",
                                    encoding="utf-8")
    assert "'USD'" in cli("rates", "import", "r.csv", ok=False)
    (tmp_path / "r.csv").write_text(f"from_currency,to_currency,date,rate\nUSD,CNY,{year}-02-01,7.1e0\n",
                                    encoding="utf-8")
    assert "is not a rate" in cli("rates", "import", "r.csv", ok=False)
    monkeypatch.setenv("YINFIN_MAX_FILE_BYTES", "16384")
    rows = "".join(f"ACME,{year}-02,RD,TRAVEL,100.00,r{i}\n" for i in range(1000))
    (tmp_path / "b.csv").write_text(head + rows, encoding="utf-8")
    assert "payload_too_large" in cli("budget", "import", "b.csv", "--actor", "zhou.cfo", ok=False)
