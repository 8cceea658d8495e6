"""The finance command line against a real, migrated SQLite file (click's CliRunner)."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from yinfin_flow.budget import rule_changes
from yinfin_flow.budget.service import Budgets, LineRequest
from yinfin_flow.cli.budget import command as budget
from yinfin_flow.cli.demo import command as demo
from yinfin_flow.cli.rates import command as rates
from yinfin_flow.cli.verify import command as verify
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import (
    BudgetBalance,
    BudgetEntry,
    BudgetLine,
    Company,
    ControlRuleRow,
    ExchangeRate,
)
from yinfin_flow.demo import budgets as demo_budgets
from yinfin_flow.demo import org as demo_org
from yinfin_flow.domain.budget import LineOnHold, OverBudget

DATA = Path(__file__).resolve().parent.parent / "data"
YEAR = date.today().year


def _runner(path: Path):
    url = f"sqlite:///{path}"
    runner = CliRunner()
    database = Database(url)

    def invoke(cmd, *args: str):
        return runner.invoke(cmd, list(args), env={"YINFIN_DATABASE_URL": url, "YINFIN_ACTOR": "fiona"})

    return invoke, database


@pytest.fixture
def cli(sqlite_template: Path, tmp_path: Path):
    """Run a command against a fresh migrated SQLite file; yields (invoke, database)."""
    path = tmp_path / "cli.sqlite"
    shutil.copy(sqlite_template, path)
    invoke, database = _runner(path)
    yield invoke, database
    database.dispose()


@pytest.fixture(scope="module")
def demo_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The budgets part of the demo, loaded once; other areas' demo data cannot move these numbers."""
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    with database.unit_of_work() as s:
        demo_budgets.load(s)
        demo_org.load(s)  # the finance people who act on budgets (fiona, frank, zhou.cfo)
    database.dispose()
    return path


@pytest.fixture
def demo_cli(demo_template: Path, tmp_path: Path):
    path = tmp_path / "demo.sqlite"
    shutil.copy(demo_template, path)
    invoke, database = _runner(path)
    yield invoke, database
    database.dispose()


def code(month: int, cc: str, item: str) -> str:
    return demo_budgets.line_code(f"{YEAR}-{month:02d}", cc, item)


def balance(database: Database, line_code: str) -> BudgetBalance:
    with database.unit_of_work(readonly=True) as s:
        line_id = s.scalar(select(BudgetLine.id).where(BudgetLine.code == line_code))
        return s.get(BudgetBalance, line_id)


def test_demo_load_verifies_clean_and_if_empty_is_a_no_op(cli):
    invoke, database = cli
    result = invoke(demo, "load")
    assert result.exit_code == 0, result.output
    assert "budgets" in result.output
    ok = invoke(verify)
    assert ok.exit_code == 0, ok.output
    assert re.match(r"ok: \d+ line\(s\), \d+ budget entries", ok.output)
    with database.unit_of_work(readonly=True) as s:
        entries = s.scalar(select(func.count()).select_from(BudgetEntry))
    again = invoke(demo, "load", "--if-empty")
    assert again.exit_code == 0 and "nothing loaded" in again.output
    refused = invoke(demo, "load")
    assert refused.exit_code == 1
    assert "error conflict" in refused.output and "Traceback" not in refused.output
    with database.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(BudgetEntry)) == entries
        assert s.scalar(select(func.count()).select_from(Company)) == 1


def test_demo_rules_behave_as_described(demo_cli):
    _invoke, database = demo_cli
    on = date(YEAR, 3, 10)

    def reserve(key: str, line_code: str, amount: str):
        with database.unit_of_work() as s:
            req = LineRequest(ref="1", amount=amount, currency="CNY", budget_date=on, line_code=line_code)
            return Budgets(s).reserve(key, ("expense", key), [req], actor="amy")

    # R&D travel: hard with 5 % tolerance on the department, inherited by RD-APP.
    with pytest.raises(OverBudget) as err:
        reserve("a", code(3, "RD-APP", "TRAVEL"), "15750.01")  # RD-APP 15,000 + 5 %
    assert err.value.details["line"] == code(3, "RD-APP", "TRAVEL")
    assert reserve("b", code(3, "RD-APP", "TRAVEL"), "15750.00").reservations
    # Sales travel is soft: over budget is allowed and comes back as a warning.
    soft = reserve("c", code(3, "SALES-EAST", "TRAVEL"), "30000")
    assert soft.warnings and soft.warnings[0]["mode"] == "soft"
    with pytest.raises(LineOnHold):
        reserve("d", code(3, "FIN", "ENTERTAIN"), "1")
    # USD requests convert at the month's demo rate.
    with database.unit_of_work() as s:
        req = LineRequest(ref="1", amount="100", currency="USD", budget_date=on,
                          line_code=code(3, "HQ", "OFFICE"))
        r = Budgets(s).reserve("e", ("expense", "e"), [req], actor="amy")
    assert r.reservations[0].amount == Decimal("716.52")


def test_verify_names_a_tampered_line_and_exits_3(demo_cli):
    invoke, database = demo_cli
    tampered = code(1, "RD", "TRAVEL")
    with database.unit_of_work() as s:
        line_id = s.scalar(select(BudgetLine.id).where(BudgetLine.code == tampered))
        s.execute(text("UPDATE budget_balances SET budget = budget + 1 WHERE line_id = :id"), {"id": line_id})
    result = invoke(verify)
    assert result.exit_code == 3  # differences found
    assert f"[balances] {tampered}: budget is" in result.stdout
    assert "1 problem(s) found" in result.stderr and "problem(s)" not in result.stdout
    as_json = invoke(verify, "--format", "json")
    assert as_json.exit_code == 3
    assert [(p["check"], p["subject"]) for p in json.loads(as_json.stdout)] == [("balances", tampered)]


def test_show_prints_the_tree_with_control_and_status(demo_cli):
    invoke, _db = demo_cli
    result = invoke(budget, "show", "--period", f"{YEAR}-01")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"ACME {YEAR}-01"
    row = next(ln for ln in lines if ln.startswith("RD/TRAVEL "))
    assert "30,000.00" in row and " hard " in row
    child = next(ln for ln in lines if "└ RD-APP/TRAVEL" in ln)
    assert "(hard)" in child  # inherited from RD/TRAVEL
    assert lines.index(row) < lines.index(child)
    hold = next(ln for ln in lines if ln.startswith("FIN/ENTERTAIN "))
    assert " hold " in hold
    detail = invoke(budget, "show", "--line", code(1, "RD", "SOFTWARE"))
    assert "hard cumulative 70:info,85:warn!,100:block!  (its own rule)" in detail.output
    as_json = json.loads(invoke(budget, "show", "--line", code(1, "RD", "TRAVEL"), "--json").output)
    assert [d["code"] for d in as_json] == [code(1, "RD", "TRAVEL"), code(1, "RD-APP", "TRAVEL"),
                                            code(1, "RD-WEB", "TRAVEL")]
    assert as_json[1]["control"]["defined_on"] == code(1, "RD", "TRAVEL")
    assert Decimal(as_json[0]["available"]) == Decimal("30000")
    missing = invoke(budget, "show", "--company", "NOPE")
    assert missing.exit_code == 1 and "error not_found: no company 'NOPE'" in missing.output


def test_show_gives_a_cumulative_lines_figure_and_the_effective_status(demo_cli):
    invoke, _db = demo_cli
    feb = invoke(budget, "show", "--period", f"{YEAR}-02").output.splitlines()
    software = next(ln for ln in feb if ln.startswith("RD/SOFTWARE "))
    assert " cum " in software  # what control checks: available cumulative to date
    as_json = json.loads(invoke(budget, "show", "--line", code(2, "RD", "SOFTWARE"), "--json").output)
    assert Decimal(as_json[0]["basis_buckets"]["budget"]) > Decimal(as_json[0]["budget"])
    assert invoke(budget, "status", code(1, "RD", "TRAVEL"), "hold").exit_code == 0
    jan = invoke(budget, "show", "--period", f"{YEAR}-01").output.splitlines()
    child = next(ln for ln in jan if "└ RD-APP/TRAVEL" in ln)
    assert " hold* " in child  # open itself, held by its parent: consumption is refused
    detail = invoke(budget, "show", "--line", code(1, "RD-APP", "TRAVEL")).output
    assert f"status      open; effective hold (set on {code(1, 'RD', 'TRAVEL')})" in detail


def test_adjust_and_transfer_are_proposals_another_finance_person_approves(demo_cli):
    invoke, database = demo_cli
    rd, app, web = code(1, "RD", "TRAVEL"), code(1, "RD-APP", "TRAVEL"), code(1, "RD-WEB", "TRAVEL")
    r = invoke(budget, "adjust", rd, "-1000", "--reason", "mid-year cut")
    assert r.exit_code == 0, r.output
    assert "30,000.00 -> 29,000.00 CNY when approved" in r.output
    cut = int(re.search(r"proposal (\d+) \(adjustment\) proposed by cli:fiona", r.output).group(1))
    assert balance(database, rd).budget == Decimal("30000")  # nothing booked yet
    r = invoke(budget, "transfer", app, web, "500", "--reason", "rebalance", "--actor", "zhou.cfo")
    assert r.exit_code == 0, r.output
    move = int(re.search(r"proposal (\d+) \(transfer\) proposed by cli:zhou.cfo", r.output).group(1))
    r = invoke(budget, "proposals", "list", "--status", "pending")
    assert r.exit_code == 0 and f"{rd} 30,000.00 -> 29,000.00" in r.output, r.output

    r = invoke(budget, "proposals", "approve", str(cut))  # fiona proposed it
    assert r.exit_code == 1 and "error segregation_of_duties:" in r.output
    r = invoke(budget, "proposals", "approve", str(cut), "--actor", "cfo")  # free text, nobody
    assert r.exit_code == 1 and "error unknown_person:" in r.output
    r = invoke(budget, "proposals", "approve", str(cut), "--actor", "amy")  # a person, not finance
    assert r.exit_code == 1 and "error forbidden: amy does not hold the finance role" in r.output
    r = invoke(budget, "proposals", "approve", str(cut), "--actor", "frank")
    assert r.exit_code == 0 and f"proposal {cut} (adjustment): approved by cli:frank" in r.output, r.output
    assert balance(database, rd).budget == Decimal("29000")
    r = invoke(budget, "proposals", "approve", str(move))
    assert r.exit_code == 0, r.output
    assert balance(database, app).budget == Decimal("14500")
    assert balance(database, web).budget == Decimal("12500")
    r = invoke(budget, "history", web)
    newest = r.output.splitlines()[3]
    assert "cli:zhou.cfo" in newest and "transfer" in newest and "500.00" in newest and "approved by fiona" in newest
    ok = invoke(verify)
    assert ok.exit_code == 0, ok.output


def test_rule_and_status_from_the_command_line(demo_cli):
    invoke, database = demo_cli
    web = code(1, "RD-WEB", "TRAVEL")
    r = invoke(budget, "rule", web, "--mode", "soft", "--tolerance-amount", "100",
               "--threshold", "70:info", "--threshold", "85:warn:notify", "--no-subtree",
               "--reason", "sales season")
    assert r.exit_code == 0, r.output
    change_id = int(re.search(r"rule change (\d+) proposed by cli:fiona", r.output).group(1))
    with database.unit_of_work() as s:  # the CLI only proposes: another finance user approves
        line_id = s.scalar(select(BudgetLine.id).where(BudgetLine.code == web))
        assert s.scalar(select(ControlRuleRow).where(ControlRuleRow.line_id == line_id)) is None
        with pytest.raises(rule_changes.SegregationOfDuties):
            rule_changes.approve(s, change_id, actor="fiona")  # cli:fiona is fiona
        rule_changes.approve(s, change_id, actor="zhou.cfo")
    with database.unit_of_work(readonly=True) as s:
        row = s.scalar(select(ControlRuleRow).where(ControlRuleRow.line_id == line_id))
        assert (row.mode, row.subtree, row.tolerance_amount, row.updated_by, row.approved_by) == (
            "soft", False, Decimal("100"), "cli:fiona", "zhou.cfo")
        assert [t["action"] for t in row.thresholds] == ["info", "warn"]
    r = invoke(budget, "rule", web, "--mode", "hard", "--actor", "cfo")
    assert r.exit_code == 1 and "error unknown_person:" in r.output
    r = invoke(budget, "status", web, "closed")
    assert r.exit_code == 0 and "open -> closed" in r.output
    ok = invoke(verify)
    assert ok.exit_code == 0, ok.output


def test_adjust_and_transfer_book_at_once_when_approval_is_off(demo_cli, monkeypatch):
    invoke, database = demo_cli
    monkeypatch.setenv("YINFIN_BUDGET_JOURNAL_APPROVAL", "off")
    rd, app, web = code(1, "RD", "TRAVEL"), code(1, "RD-APP", "TRAVEL"), code(1, "RD-WEB", "TRAVEL")
    r = invoke(budget, "adjust", rd, "-1000", "--reason", "mid-year cut")
    assert r.exit_code == 0 and r.output.strip() == f"{rd}: budget 30,000.00 -> 29,000.00 CNY", r.output
    r = invoke(budget, "transfer", app, web, "500", "--reason", "rebalance", "--actor", "zhou.cfo")
    assert r.exit_code == 0, r.output
    assert (balance(database, app).budget, balance(database, web).budget) == (Decimal("14500"), Decimal("12500"))
    newest = invoke(budget, "history", web).output.splitlines()[3]
    assert "cli:zhou.cfo" in newest and "rebalance" in newest
    r = invoke(budget, "adjust", rd, "5", "--reason", "x", "--actor", "cfo")
    assert r.exit_code == 1 and "error unknown_person: 'cfo' is not an active person" in r.output


def test_rule_applies_at_once_when_approval_is_off(demo_cli, monkeypatch):
    invoke, database = demo_cli
    monkeypatch.setenv("YINFIN_RULE_CHANGE_APPROVAL", "off")
    web = code(1, "RD-WEB", "TRAVEL")
    r = invoke(budget, "rule", web, "--mode", "track", "--no-subtree")
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"{web}: track")
    with database.unit_of_work(readonly=True) as s:
        line_id = s.scalar(select(BudgetLine.id).where(BudgetLine.code == web))
        row = s.scalar(select(ControlRuleRow).where(ControlRuleRow.line_id == line_id))
        assert (row.mode, row.updated_by, row.approved_by) == ("track", "cli:fiona", None)


def test_refusals_print_code_and_details_without_traceback(demo_cli):
    invoke, database = demo_cli
    app = code(1, "RD-APP", "TRAVEL")
    with database.unit_of_work() as s:
        req = LineRequest(ref="1", amount="14000", currency="CNY", budget_date=date(YEAR, 1, 5), line_code=app)
        Budgets(s).reserve("x", ("expense", "x"), [req], actor="amy")
    r = invoke(budget, "transfer", app, code(1, "RD-WEB", "TRAVEL"), "2000", "--reason", "too much")
    assert r.exit_code == 1
    assert "error E1_over_budget:" in r.output and "available: 1000.0000" in r.output
    assert "Traceback" not in r.output
    assert balance(database, app).budget == Decimal("15000")
    r = invoke(budget, "rule", app, "--mode", "hard", "--threshold", "85:shout")
    assert r.exit_code == 1 and "error validation_error: threshold:" in r.output
    r = invoke(budget, "adjust", "NO/SUCH/LINE", "5", "--reason", "x")
    assert r.exit_code == 1 and "no budget line 'NO/SUCH/LINE'" in r.output
    r = invoke(budget, "status", app, "hold", "--actor", "")
    assert r.exit_code == 2 and "--actor" in r.stderr and r.stdout == ""  # usage: who acts is missing


def test_import_errors_listed_and_nothing_imported(demo_cli):
    invoke, database = demo_cli
    bad = DATA / "budgets_bad.csv"
    text_ = bad.read_text().replace("2026-", f"{YEAR}-")
    path = Path(database.url.removeprefix("sqlite:///")).parent / "bad.csv"
    path.write_text(text_)
    with database.unit_of_work(readonly=True) as s:
        before = s.scalar(select(func.count()).select_from(BudgetEntry))
    r = invoke(budget, "import", str(path))
    assert r.exit_code == 1
    assert "error import_invalid: bad.csv: 9 problem(s), nothing imported" in r.output
    for row in (3, 4, 5, 6, 7, 8, 9, 10, 11):
        assert f"  row {row}, " in r.output
    with database.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(BudgetEntry)) == before


def test_export_import_round_trip_and_dry_run(demo_cli, tmp_path, monkeypatch):
    invoke, database = demo_cli
    out = tmp_path / "budgets.xlsx"
    r = invoke(budget, "export", "-o", str(out), "--period", f"{YEAR}-01")
    assert r.exit_code == 0 and "11 line(s) written" in r.output
    r = invoke(budget, "import", str(out))
    assert r.exit_code == 0, r.output
    assert "when approved: 0 line(s) created, 0 adjusted, 11 unchanged" in r.output
    csv_out = tmp_path / "budgets.csv"
    assert invoke(budget, "export", "-o", str(csv_out), "--year", str(YEAR)).exit_code == 0
    edited = csv_out.read_text(encoding="utf-8-sig").replace(
        f"{code(1, 'FIN', 'OFFICE')},ACME,{YEAR}-01,FIN,OFFICE,,,CNY,5000.00",
        f"{code(1, 'FIN', 'OFFICE')},ACME,{YEAR}-01,FIN,OFFICE,,,CNY,5200.00",
    )
    csv_out.write_text(edited, encoding="utf-8")
    r = invoke(budget, "import", "--dry-run", str(csv_out))
    assert r.exit_code == 0, r.output
    assert "dry run, nothing written" in r.output and "by +200.00 CNY" in r.output
    assert balance(database, code(1, "FIN", "OFFICE")).budget == Decimal("5000")
    r = invoke(budget, "import", str(csv_out))
    assert "when approved: 0 line(s) created, 1 adjusted, 133 unchanged" in r.output
    proposal = int(re.search(r"proposal (\d+) \(import\) proposed by cli:fiona", r.output).group(1))
    assert balance(database, code(1, "FIN", "OFFICE")).budget == Decimal("5000")
    r = invoke(budget, "proposals", "approve", str(proposal), "--actor", "frank")
    assert r.exit_code == 0 and "0 created, 1 adjusted, 133 unchanged" in r.output, r.output
    assert balance(database, code(1, "FIN", "OFFICE")).budget == Decimal("5200")
    monkeypatch.setenv("YINFIN_BUDGET_JOURNAL_APPROVAL", "off")
    r = invoke(budget, "import", str(out))  # the January export again: FIN/OFFICE back to 5000
    assert r.exit_code == 0 and r.output.endswith("0 line(s) created, 1 adjusted, 10 unchanged from budgets.xlsx\n")
    assert balance(database, code(1, "FIN", "OFFICE")).budget == Decimal("5000")


def test_rates_import(cli):
    invoke, database = cli
    r = invoke(rates, "import", str(DATA / "rates.csv"))
    assert r.exit_code == 0, r.output
    assert "3 rate(s) added" in r.output
    with database.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(ExchangeRate)) == 3


def test_entry_point_lists_the_commands():
    from yinfin_flow.cli import main

    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in ("budget", "demo", "rates", "verify"):
        assert f"  {name} " in result.output


def test_demo_budgets_load_clean_on_both_databases(db):
    with db.unit_of_work() as s:
        demo_budgets.load(s)
    with db.unit_of_work(readonly=True) as s:
        from yinfin_flow.budget.verify import verify as run_checks

        assert run_checks(s) == []
        assert s.scalar(select(func.count()).select_from(BudgetLine)) == 12 * len(demo_budgets.MONTHLY) + len(
            demo_budgets.YEARLY)
        held = s.scalars(select(BudgetLine.code).where(BudgetLine.status == "hold")).all()
        assert len(held) == 12 and all("/FIN/ENTERTAIN" in c for c in held)


def test_simulate_shows_both_rules_side_by_side(demo_cli):
    invoke, database = demo_cli
    app = code(1, "RD-APP", "TRAVEL")  # 15,000 under the demo's rules
    for key, amount in (("s1", "9000"), ("s2", "4000"), ("s3", "1500")):
        with database.unit_of_work() as s:
            req = LineRequest(ref="1", amount=amount, currency="CNY", budget_date=date(YEAR, 1, 5), line_code=app)
            Budgets(s).reserve(key, ("expense", key), [req], actor="amy")
    r = invoke(budget, "simulate", app, "--mode", "hard", "--threshold", "60:warn", "--threshold", "90:block")
    assert r.exit_code == 0, r.output
    assert f"{app}: 3 request(s) from " in r.output
    assert "passed only under the rule in force: 1" in r.output and "expense:s3" in r.output
    # 9,000 of 15,000 is exactly 60 %: a threshold is reached only beyond it, so only
    # s2 (86.7 %) is warned, as live control would warn it
    assert "warned under the proposed rule: 1" in r.output and "warn at 60" in r.output
    assert "expense:s2" in r.output
    as_json = json.loads(invoke(budget, "simulate", app, "--mode", "hard", "--threshold", "90:block",
                                "--json").output)
    assert (as_json["requests"], as_json["proposed"]["refused"], as_json["proposed"]["refused_amount"]) == (
        3, 1, "1500.0000")
    r = invoke(budget, "rule", app, "--mode", "hard", "--threshold", "90:block", "--reason", "tighten")
    change_id = re.search(r"rule change (\d+) proposed", r.output).group(1)
    assert f"budget simulate {app} --change {change_id}" in r.output
    by_change = json.loads(invoke(budget, "simulate", app, "--change", change_id, "--json").output)
    assert by_change["proposed"] == as_json["proposed"]
    r = invoke(budget, "simulate", app)
    assert r.exit_code == 1 and "error validation_error: mode:" in r.output
