"""The command line behaves as a Unix tool: --format table|json|csv with header rows,
``-o -`` to standard output, errors on standard error with exit codes 0/1/2/3, progress
only on a terminal, directory actors, and ``period close --through`` on a first close.

Runs ``yinfin-flow`` through click's CliRunner on a migrated SQLite file with the demo
loaded; stdout and stderr are checked apart."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from yinfin_flow.cli import main, output
from yinfin_flow.db.migrate import upgrade
from yinfin_flow.demo.budgets import fiscal_year, line_code

YEAR = fiscal_year()


BIN = str(Path(sys.executable).parent / "yinfin-flow")


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("YINFIN_ACTOR", "USER")}
    return {**env, "YINFIN_DATABASE_URL": url}


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo, loaded by the real command with its output piped: no progress on stderr."""
    path = tmp_path_factory.mktemp("conventions") / "demo.sqlite"
    upgrade(f"sqlite:///{path}")
    done = subprocess.run([BIN, "demo", "load"], env=_env(f"sqlite:///{path}"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("demo loaded: ")
    assert done.stderr == ""  # piped: quiet
    return path


@pytest.fixture
def run(demo_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shutil.copy(demo_template, tmp_path / "cli.sqlite")
    monkeypatch.chdir(tmp_path)
    env = {"YINFIN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}", "YINFIN_ACTOR": None, "USER": None,
           "YINFIN_COMPANY": None}

    def invoke(*args: str, **extra: str) -> Result:
        return CliRunner().invoke(main, list(args), env={**env, **extra})

    return invoke


def _post_voucher(run, tmp_path: Path, key: str = "m1") -> None:
    manual = {"key": key, "company": "ACME", "posting_date": str(date(YEAR, 2, 3)), "summary": "accrual",
              "lines": [{"account": "6602.01", "debit": "10.50", "cost_centre": "HQ"},
                        {"account": "2241", "credit": "10.50"}]}
    (tmp_path / f"{key}.json").write_text(json.dumps(manual), encoding="utf-8")
    r = run("journal", "manual", f"{key}.json", "--actor", "fiona")
    assert r.exit_code == 0, r.output


# -- formats ------------------------------------------------------------------------------


def test_journal_list_has_a_header_row_in_every_format(run, tmp_path):
    _post_voucher(run, tmp_path)
    period = f"{YEAR}-02"
    table = run("journal", "list", "--period", period)
    assert table.exit_code == 0, table.output
    head = table.stdout.splitlines()[0].split()
    assert head[:4] == ["voucher", "date", "line", "account"]
    assert set(table.stdout.splitlines()[1]) <= {"-", " "}  # the rule under the header
    assert "6602.01" in table.stdout and "10.50" in table.stdout
    rows = list(csv.DictReader(io.StringIO(run("journal", "list", "--period", period, "--format", "csv").stdout)))
    assert [(r["account"], r["debit"], r["credit"]) for r in rows] == [("6602.01", "10.50", "0.00"), ("2241", "0.00", "10.50")]
    items = json.loads(run("journal", "list", "--period", period, "--format", "json").stdout)
    assert isinstance(items, list) and items[0]["debit"] == "10.50" and items[0]["account_name"]
    assert all(isinstance(i[k], str) for i in items for k in ("debit", "credit", "amount"))  # never floats


def test_trial_balance_shows_account_names_beside_codes(run, tmp_path):
    _post_voucher(run, tmp_path)
    r = run("report", "trial-balance", "--period", f"{YEAR}-02", "--company", "ACME")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0].split()[:2] == ["account", "name"]
    row = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("6602.01"))
    assert "办公费" in row or "Office" in row, row
    rows = list(csv.DictReader(io.StringIO(
        run("report", "trial-balance", "--period", f"{YEAR}-02", "--format", "csv").stdout)))
    names = {x["account"]: x["name"] for x in rows}
    assert names["6602.01"] and names["TOTAL"] == ""
    assert {x["account"]: x["debit"] for x in rows}["6602.01"] == "10.50"


def test_budget_show_prints_ids_and_formats(run):
    code = line_code(f"{YEAR}-01", "RD", "TRAVEL")
    items = json.loads(run("budget", "show", "--period", f"{YEAR}-01", "--format", "json").stdout)
    ids = {i["code"]: i["id"] for i in items}
    assert isinstance(ids[code], int) and isinstance(items[0]["budget"], str)
    plain = run("budget", "show", "--period", f"{YEAR}-01").stdout
    assert "id " not in plain.splitlines()[1]
    with_ids = run("budget", "show", "--period", f"{YEAR}-01", "--ids").stdout.splitlines()
    assert with_ids[1].split()[:2] == ["id", "line"]
    row = next(ln for ln in with_ids if " RD/TRAVEL " in f" {ln} ")
    assert row.split()[0] == str(ids[code])
    rows = list(csv.DictReader(io.StringIO(run("budget", "show", "--period", f"{YEAR}-01", "--format", "csv").stdout)))
    assert {r["code"]: r["id"] for r in rows}[code] == str(ids[code])
    assert json.loads(run("budget", "show", "--period", f"{YEAR}-01", "--json").stdout) == items  # the old flag


def test_period_list_and_org_show_take_formats(run):
    periods = list(csv.DictReader(io.StringIO(run("period", "list", "--company", "ACME", "--format", "csv").stdout)))
    assert periods and set(periods[0]) == {"period", "status", "vouchers", "closed_by", "closed_at"}
    people = json.loads(run("org", "show", "--format", "json").stdout)
    assert {"fiona", "zhou.cfo"} <= {p["id"] for p in people}
    one = json.loads(run("org", "show", "fiona", "--format", "json").stdout)
    assert one["id"] == "fiona" and isinstance(one["roles"], list)


# -- -o - ---------------------------------------------------------------------------------


def test_exports_write_to_standard_output_with_dash(run, tmp_path):
    _post_voucher(run, tmp_path)
    r = run("journal", "export", "--format", "beancount", "--company", "ACME", "-o", "-")
    assert r.exit_code == 0, r.output
    assert "open Assets" in r.stdout or "txn" in r.stdout or '*' in r.stdout
    assert "10.50" in r.stdout and "written to standard output" in r.stderr
    assert "written" not in r.stdout
    assert not Path("-").exists()
    b = run("budget", "export", "-o", "-", "--period", f"{YEAR}-01")
    assert b.exit_code == 0, b.output
    assert b.stdout.lstrip("\ufeff").startswith("company,") or "company" in b.stdout.splitlines()[0]
    assert "line(s) written to standard output" in b.stderr


# -- errors and exit codes ---------------------------------------------------------------


def test_a_missing_document_is_an_error_on_stderr(run):
    r = run("report", "trail", "expense", "999999")
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "error not_found: no expense 999999" in r.stderr
    r = run("budget", "show", "--line", "ACME/NO/SUCH/LINE")
    assert r.exit_code == 1 and r.stdout == "" and "ACME/NO/SUCH/LINE" in r.stderr
    r = run("budget", "history", "ACME/NO/SUCH/LINE")
    assert r.exit_code == 1 and r.stdout == ""


def test_usage_errors_exit_2_and_help_documents_the_codes(run):
    r = run("journal", "list", "--format", "yaml")
    assert r.exit_code == 2 and "yaml" in r.stderr and r.stdout == ""
    helped = run("--help")
    assert helped.exit_code == 0
    text = " ".join(helped.stdout.split())
    for line in ("0 ok", "1 error", "2 usage", "3 differences found"):
        assert line in text


# -- actors -------------------------------------------------------------------------------


def test_actor_is_required_and_must_be_a_person(run):
    r = run("period", "close", f"{YEAR}-01")
    assert r.exit_code == 2 and "--actor" in r.stderr and "YINFIN_ACTOR" in r.stderr
    r = run("period", "close", f"{YEAR}-01", "--actor", "nobody")
    assert r.exit_code == 1 and "'nobody' is not an active person" in r.stderr
    r = run("period", "close", f"{YEAR}-01", YINFIN_ACTOR="zhou.cfo")  # from the environment
    assert r.exit_code == 0, r.output
    assert "closed" in r.stdout
    r = run("journal", "reverse", "1", "--reason", "x", "--actor", "ghost")
    assert r.exit_code == 1 and "'ghost'" in r.stderr
    r = run("period", "yearend", str(YEAR), "--without-budget", "--actor", "ghost")
    assert r.exit_code == 1 and "'ghost'" in r.stderr
    r = run("period", "open", f"{YEAR}-01", "--actor", "ghost")
    assert r.exit_code == 1 and "'ghost'" in r.stderr


def test_budget_commands_need_no_user_variable(run):
    """``budget rule … --reason`` once failed where $USER was unset; --actor or YINFIN_ACTOR does."""
    code = line_code(f"{YEAR}-01", "RD", "TRAVEL")
    r = run("budget", "rule", code, "--mode", "soft", "--reason", "pilot")
    assert r.exit_code == 2 and "--actor" in r.stderr
    r = run("budget", "rule", code, "--mode", "soft", "--reason", "pilot", YINFIN_ACTOR="fiona")
    assert r.exit_code == 0, r.output
    assert "proposed by cli:fiona" in r.stdout
    r = run("budget", "adjust", code, "100", "--reason", "x", "--actor", "nobody")
    assert r.exit_code == 1 and "'nobody'" in r.stderr


def test_manual_voucher_actor_must_be_a_person(run, tmp_path):
    manual = {"key": "m9", "company": "ACME", "posting_date": str(date(YEAR, 2, 3)), "summary": "x",
              "actor": "kim", "lines": [{"account": "6602.01", "debit": "1.00", "cost_centre": "HQ"},
                                        {"account": "2241", "credit": "1.00"}]}
    (tmp_path / "m9.json").write_text(json.dumps(manual), encoding="utf-8")
    r = run("journal", "manual", "m9.json")
    assert r.exit_code == 1 and "'kim' is not an active person" in r.stderr
    del manual["actor"]
    (tmp_path / "m9.json").write_text(json.dumps(manual), encoding="utf-8")
    assert run("journal", "manual", "m9.json").exit_code == 2
    r = run("journal", "manual", "m9.json", YINFIN_ACTOR="frank")
    assert r.exit_code == 0 and "posted" in r.stdout, r.output


# -- period close --through -----------------------------------------------------------------


def test_first_close_through_closes_every_earlier_month_in_order(run):
    before = json.loads(run("period", "list", "--company", "ACME", "--format", "json").stdout)
    assert not [p for p in before if p["status"] == "closed"]  # a first close
    r = run("period", "close", "--through", f"{YEAR}-03", "--company", "ACME", "--actor", "zhou.cfo")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == f"ACME closed {YEAR}-01, {YEAR}-02, {YEAR}-03"
    after = {p["period"]: p for p in json.loads(run("period", "list", "--company", "ACME", "--format", "json").stdout)}
    assert [after[f"{YEAR}-0{m}"]["status"] for m in (1, 2, 3, 4)] == ["closed", "closed", "closed", "open"]
    assert after[f"{YEAR}-01"]["closed_by"] == "zhou.cfo"


# -- progress -------------------------------------------------------------------------------


def test_progress_shows_on_a_terminal_and_is_quiet_when_piped(run, monkeypatch):
    piped = run("verify")
    assert piped.exit_code == 0, piped.output
    assert "verifying" not in piped.stderr and "ok:" in piped.stdout
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: True)
    shown = run("verify")
    assert shown.exit_code == 0
    assert "verifying" in shown.stderr and "verifying" not in shown.stdout
    exported = run("journal", "export", "--format", "csv", "--company", "ACME", "-o", "x.csv")
    assert "exporting the journal" in exported.stderr and "done" in exported.stderr


def test_a_real_terminal_gets_the_bar_and_a_pipe_does_not(demo_template, tmp_path):
    """The command in its own process, standard error on a pseudo-terminal, then on a pipe."""
    db = tmp_path / "tty.sqlite"
    shutil.copy(demo_template, db)
    env = _env(f"sqlite:///{db}")
    master, slave = pty.openpty()
    try:
        done = subprocess.run([BIN, "verify"], env=env, stdout=subprocess.PIPE, stderr=slave, timeout=300)
    finally:
        os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert done.returncode == 0
    assert b"verifying" in seen and b"#" in seen  # the bar, drawn on the terminal
    assert b"verifying" not in done.stdout and done.stdout.startswith(b"ok: ")
    piped = subprocess.run([BIN, "verify"], env=env, capture_output=True, timeout=300)
    assert piped.returncode == 0 and piped.stderr == b""
