"""Every sample file under examples/ imported with the real command line into a fresh
SQLite database, in the order examples/README.md gives, and what each one created."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from yinfin_flow.api.oa_mapping import load as load_mapping
from yinfin_flow.api.oa_mapping import to_request
from yinfin_flow.budget import setup
from yinfin_flow.cli import main
from yinfin_flow.config import PROJECT_ROOT
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetLine
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.db.models.ledger import Account, JournalEntry, Partner
from yinfin_flow.db.models.masterdata import CostCentre, ExchangeRate, Project
from yinfin_flow.db.models.org import User
from yinfin_flow.engine import definitions, service

EXAMPLES = PROJECT_ROOT / "examples"


@pytest.fixture
def cli(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch):
    """A fresh database with only what no import makes: company ACME and its budget items."""
    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    with sqlite_db.unit_of_work() as s:
        setup.create_company(s, "ACME", "示例科技有限公司 Acme Tech", "CNY")
        setup.create_item(s, "ACME", "ADMIN", "管理费用", account_code="6602")
        for code, name, account in (("TRAVEL", "差旅费", "6602.03"), ("OFFICE", "办公费", "6602.01"),
                                    ("SOFTWARE", "软件及信息服务费", "6602.08")):
            setup.create_item(s, "ACME", code, name, account_code=account, parent="ADMIN")

    def run(*args: str | Path, code: int = 0) -> str:
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == code, result.output + (result.stderr or "")
        return result.output

    return run


def test_every_example_file_imports_and_creates_what_it_says(cli, sqlite_db: Database) -> None:
    assert cli("masterdata", "import", "accounts", EXAMPLES / "accounts.csv") == "accounts: 8 created, 0 updated\n"
    assert "5 created" in cli("masterdata", "import", "cost_centres", EXAMPLES / "cost_centres.csv")
    assert "1 created" in cli("masterdata", "import", "projects", EXAMPLES / "projects.csv")
    assert "4 created" in cli("masterdata", "import", "partners", EXAMPLES / "partners.csv")
    assert "4 created" in cli("org", "import", EXAMPLES / "users.csv", "--actor", "rick")
    assert "4" in cli("rates", "import", EXAMPLES / "rates.csv")
    with sqlite_db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(Account.name).where(Account.code == "6602.10")) == "会议费 Meetings"
        assert s.scalar(select(CostCentre.parent_id).where(CostCentre.code == "OPS")) == s.scalar(
            select(CostCentre.id).where(CostCentre.code == "HQ"))
        assert s.scalar(select(Project.name).where(Project.code == "DC-MOVE")) == "机房搬迁 Data-centre move"
        assert s.scalar(select(Partner.kind).where(Partner.code == "V102")) == "vendor"
        gina = s.get(User, "gina")
        ops = s.scalar(select(CostCentre.id).where(CostCentre.code == "OPS"))
        assert (gina.cost_centre_id, gina.manager_id) == (ops, "rick")
        rates = {(r.from_currency, str(r.effective_date)): r.rate for r in s.scalars(select(ExchangeRate))}
        assert rates[("USD", "2027-02-01")] == Decimal("7.0980")

    # budgets: the CSV is a proposal that a second person approves; the XLSX then adjusts
    out = cli("budget", "import", EXAMPLES / "budgets.csv", "--actor", "fay")
    proposal = re.search(r"proposal (\d+)", out).group(1)
    cli("budget", "proposals", "approve", proposal, "--actor", "kai")
    out = cli("budget", "import", EXAMPLES / "budgets.xlsx", "--actor", "fay")
    cli("budget", "proposals", "approve", re.search(r"proposal (\d+)", out).group(1), "--actor", "kai")
    shown = json.loads(cli("budget", "show", "--company", "ACME", "--year", "2027", "--json"))
    budgets = {r["code"]: Decimal(r["budget"]) for r in shown}
    assert len(budgets) == 7 + 6
    assert budgets["ACME/2027-01/OPS/SOFTWARE/DC-MOVE"] == Decimal("40000")
    assert budgets["ACME/2027-01/OPS/TRAVEL"] == Decimal("6500")  # raised by the XLSX
    assert budgets["ACME/2027-06/OPS/OFFICE"] == Decimal("2500")

    # the manual voucher, in the opened year
    cli("period", "open", "2027", "--company", "ACME", "--actor", "fay")
    assert "posted 记-2027-01-0001" in cli("journal", "manual", EXAMPLES / "manual_voucher.json")
    with sqlite_db.unit_of_work(readonly=True) as s:
        entry = s.scalar(select(JournalEntry))
        assert entry.idempotency_key == json.loads((EXAMPLES / "manual_voucher.json").read_text("utf-8"))["key"]

    # the OA form mapping turns the OA's form into a request on a line the budgets made
    mapping = load_mapping(EXAMPLES / "oa", "weaver")
    form_mapping = mapping.forms["WF-EXPENSE-OPS"]
    title, form = to_request(form_mapping, {"subject": "机房巡检差旅 Site visit", "total": "860.00",
                                            "budget_line": "ACME/2027-01/OPS/TRAVEL", "spent_on": "2027-01-20"})
    assert (mapping.users, form_mapping.workflow, title) == ("same", "expense", "机房巡检差旅 Site visit")
    assert form["lines"][0]["line_code"] in budgets and form["lines"][0]["amount"] == "860.00"

    # the workflow variant passes the check and runs: a small claim needs the manager only
    assert "ok   expense_ops.yaml" in cli("workflows", "check", "--dir", EXAMPLES / "workflows")
    line_id = next(i for i, c in _ids(sqlite_db) if c == "ACME/2027-01/OPS/TRAVEL")
    with sqlite_db.unit_of_work() as s:
        req = service.submit(s, "expense_ops", requester="gina", company="ACME", title="Site visit",
                             form={"lines": [{"ref": "1", "line_id": line_id, "amount": "860.00",
                                              "currency": "CNY", "budget_date": "2027-01-20"}]},
                             directory=EXAMPLES / "workflows")
        assert req.state == "approval"
        assigned = list(s.scalars(select(ApprovalTask.assignee).where(ApprovalTask.request_id == req.id,
                                                                      ApprovalTask.status == "pending")))
    assert assigned == ["rick"]  # gina's manager; 860.00 needs no finance review
    assert definitions.load_dir(EXAMPLES / "workflows")["expense_ops"].name == "expense_ops"
    with sqlite_db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(ApprovalRequest.workflow)) == "expense_ops"


def _ids(db: Database) -> list[tuple[int, str]]:
    with db.unit_of_work(readonly=True) as s:
        return [(int(i), c) for i, c in s.execute(select(BudgetLine.id, BudgetLine.code))]


def test_the_examples_readme_names_every_sample_file() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    files = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*")
                   if p.is_file() and p.relative_to(EXAMPLES).parts[0] not in ("host_app", "README.md"))
    assert files and [f for f in files if f not in readme] == []


def test_a_broken_sample_is_refused_naming_row_and_column(cli, tmp_path: Path) -> None:
    """The tests above would pass on files the importer ignored; this one proves the
    importer reads these columns: the same file with one bad cell is refused."""
    bad = tmp_path / "partners.csv"
    text = (EXAMPLES / "partners.csv").read_text(encoding="utf-8")
    bad.write_text(text.replace("V102,杭州云展会务有限公司 Yunzhan Events,vendor", "V102,,robot"), encoding="utf-8")
    out = cli("masterdata", "import", "partners", bad, code=1)
    assert "row 3" in out and "nothing was imported" in out


def test_the_examples_load_on_the_demo_and_keep_its_managers(sqlite_db: Database, monkeypatch) -> None:
    from yinfin_flow.demo import loaders

    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    with sqlite_db.unit_of_work() as s:
        for _name, load in loaders():
            load(s)

    def run(*args: str | Path) -> str:
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output + (result.stderr or "")
        return result.output

    for kind in ("accounts", "cost_centres", "projects", "partners"):
        run("masterdata", "import", kind, EXAMPLES / f"{kind}.csv")
    run("org", "import", EXAMPLES / "users.csv", "--actor", "rick")
    run("rates", "import", EXAMPLES / "rates.csv")
    proposal = re.search(r"proposal (\d+)", run("budget", "import", EXAMPLES / "budgets.csv", "--actor", "fay"))
    assert "budgets.csv: 7 created" in run("budget", "proposals", "approve", proposal.group(1), "--actor", "kai")
    run("period", "open", "2027", "--company", "ACME", "--actor", "fay")
    assert "posted" in run("journal", "manual", EXAMPLES / "manual_voucher.json")
    with sqlite_db.unit_of_work(readonly=True) as s:
        managers = {c: m for c, m in s.execute(select(CostCentre.code, CostCentre.manager)).all()}
    assert (managers["HQ"], managers["RD-APP"], managers["FIN"]) == ("chen.ceo", "wang.app", "zhou.cfo")
