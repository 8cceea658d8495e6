"""``yinfin-flow demo load`` as ``make run`` runs it: a demo built around today, with its
file-drop connectors configured in the instance folder, and what docs/demo.md promises."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from yinfin_flow.budget.simulation import simulate
from yinfin_flow.cli import main
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetLine
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.db.models.journal_proposals import JournalProposal
from yinfin_flow.db.models.ledger import Partner
from yinfin_flow.db.models.rule_changes import RuleChange
from yinfin_flow.demo import dates, finance
from yinfin_flow.demo.budgets import line_code
from yinfin_flow.verify import verify


@pytest.fixture
def instance(sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "instance"
    monkeypatch.setenv("YINFIN_INSTANCE_DIR", str(folder))
    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    for name in ("YINFIN_ERP_CONNECTOR", "YINFIN_OA_CONNECTOR"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(main, list(args))
        assert result.exit_code == code, result.output + (result.stderr or "")
        return result.output

    return folder, run


def _months(s) -> set[str]:
    """The periods of the budget lines the demo's requests charge."""
    ids = {ln["line_id"] for form in s.scalars(select(ApprovalRequest.form)) for ln in form.get("lines", [])
           if "line_id" in ln}
    return {code.split("/")[1] for code in s.scalars(select(BudgetLine.code).where(BudgetLine.id.in_(ids)))}


def test_the_demo_runs_the_whole_loop_with_its_file_drop_connectors(instance, sqlite_db):
    folder, run = instance
    out = run("demo", "load", "--if-empty")
    assert f"demo connectors written to {folder / 'yinfin.env'}" in out
    settings = (folder / "yinfin.env").read_text(encoding="utf-8")
    assert "YINFIN_ERP_CONNECTOR=file\n" in settings and f"YINFIN_FILE_DIR={folder.resolve() / 'erp-drop'}" in settings
    now, before = dates.period(dates.current_month()), dates.period(dates.previous_month())

    with sqlite_db.unit_of_work(readonly=True) as s:
        assert verify(s) == []
        # this month and last month; the months before hold only the paid history
        assert _months(s) == {dates.period(m) for m in range(1, dates.current_month() + 1)}
        waiting = set(s.scalars(select(ApprovalTask.assignee).where(ApprovalTask.status == "pending")))
        assert {"wang.app", "zhao.web", "sun.east", "chen.ceo", "fiona", "frank"} <= waiting
        states = set(s.scalars(select(ApprovalRequest.state).where(ApprovalRequest.workflow == "expense")))
        assert {"approval", "approved", "paid", "rejected", "withdrawn", "sent_back"} <= states
        paid = s.scalar(select(ApprovalRequest.id).where(ApprovalRequest.state == "paid").order_by(ApprovalRequest.id))
        [change] = s.scalars(select(RuleChange).where(RuleChange.status == "pending"))
        assert change.proposed_by == "fiona"
        assert s.get(BudgetLine, change.line_id).code == line_code(now, *finance.RULE_LINE)
        [transfer] = s.scalars(select(JournalProposal).where(JournalProposal.status == "pending"))
        assert (transfer.kind, transfer.proposed_by) == ("transfer", "frank")
        # the proposed rule's simulation would have refused the trade-fair claim
        sim = simulate(s, change.line_id, finance.PROPOSED_RULE)
    assert json.dumps(sim, default=str).count("block") > 0

    # the voucher's ERP id is in the request's trail, and the file is in the drop
    trail = json.loads(run("report", "trail", "expense", str(paid), "--format", "json"))
    ids = [v["erp"]["voucher_id"] for v in trail["vouchers"]]
    assert ids and all(ids) and {v["erp"]["status"] for v in trail["vouchers"]} == {"synced"}
    assert all((folder / "erp-drop" / f"{i}.csv").is_file() for i in ids)

    status = run("outbox", "status")
    assert "\nfile " in status and "\nfileoa " in status
    dead = run("outbox", "dead-letters", "--target", "fileoa")
    assert "the OA gateway refused the message" in dead
    for _ in range(5):  # a replay unblocks later messages, which may be refused once in turn
        assert "replayed" in run("outbox", "replay", "--all")
        if "dead 0" in run("outbox", "deliver"):
            break
    assert run("outbox", "dead-letters").count("\n") <= 2  # the header alone
    [row] = [r.split() for r in run("outbox", "status").splitlines() if r.startswith("fileoa ")]
    assert row[1:4] == ["0", "0", "0"]  # no backlog, nothing in flight, no dead letter

    synced = run("sync")
    assert "file partners: records 2, created 1, updated 1" in synced
    with sqlite_db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Partner).where(Partner.code == "V005")) == 1
    assert ", 0 difference(s)" in run("reconcile", "--period", now)
    assert "closed" in run("period", "close", "--company", "ACME", "--through", before, "--actor", "zhou.cfo")


def test_a_second_load_keeps_the_instance_settings_and_no_connectors_writes_none(instance, sqlite_db):
    folder, run = instance
    out = run("demo", "load", "--no-connectors")
    assert not (folder / "yinfin.env").exists() and "delivered" not in out
    assert "nothing loaded" in run("demo", "load", "--if-empty")
    assert "is empty" in run("outbox", "status") or "fileoa" not in run("outbox", "status")


@pytest.mark.parametrize("today", [date(date.today().year, 1, 1), date(date.today().year, 3, 31)])
def test_the_demo_loads_on_any_day_of_its_year(instance, sqlite_db, monkeypatch, today):
    """Moved to January 1st the previous month is January too (clamped); any day works."""
    _folder, run = instance
    monkeypatch.setattr(dates, "today", lambda: today)
    run("demo", "load", "--no-connectors")
    expected = {f"{today.year}-{m:02d}" for m in range(1, today.month + 1)}
    with sqlite_db.unit_of_work(readonly=True) as s:
        assert verify(s) == []
        assert _months(s) == expected
        dated = {ln["budget_date"] for form in s.scalars(select(ApprovalRequest.form))
                 for ln in form.get("lines", []) if "budget_date" in ln}
    assert max(dated) == today.isoformat() and min(dated) >= date(today.year, 1, 1).isoformat()
    with sqlite_db.unit_of_work(readonly=True) as s:
        waiting = {form["lines"][0]["budget_date"][:7] for form in s.scalars(
            select(ApprovalRequest.form).where(ApprovalRequest.state == "approval",
                                               ApprovalRequest.workflow == "expense"))}
    assert waiting <= {f"{today.year}-{m:02d}" for m in {max(1, today.month - 1), today.month}}


#: docs/demo.md "Who has something to approve": person → creation keys of the requests
INBOXES = {
    "wang.app": {"demo:expense:approval"},
    "zhao.web": {"demo:procurement:approval", "demo:expense:bob-approval"},
    "sun.east": {"demo:expense:prev-carol-approval"},
    "li.rd": {"demo:project:approval"},
    "liu.sales": {"demo:project:mid"},
    "pam": {"demo:project:mid"},
    "fiona": {"demo:expense:mid", "demo:procurement:mid"},
    "frank": {"demo:expense:mid", "demo:procurement:mid"},
    "zhou.cfo": {"demo:expense:mid", "demo:procurement:mid", "demo:budget_transfer:approval"},
    "chen.ceo": {"demo:expense:carol-gm"},
}


def test_the_inboxes_and_line_figures_are_those_docs_demo_md_gives(sqlite_db, monkeypatch):
    from yinfin_flow.demo import loaders

    with sqlite_db.unit_of_work() as s:
        for _name, load in loaders():
            load(s)
    with sqlite_db.unit_of_work(readonly=True) as s:
        found: dict[str, set[str]] = {}
        for who, key in s.execute(select(ApprovalTask.assignee, ApprovalRequest.idempotency_key)
                                  .join(ApprovalRequest, ApprovalRequest.id == ApprovalTask.request_id)
                                  .where(ApprovalTask.status == "pending")):
            found.setdefault(who, set()).add(key)
    assert found == INBOXES
    monkeypatch.setenv("YINFIN_DATABASE_URL", sqlite_db.url)
    now = dates.period(dates.current_month())
    shown = json.loads(CliRunner().invoke(main, ["budget", "show", "--company", "ACME", "--period", now,
                                                 "--json"]).output)
    used = {r["code"]: (Decimal(r["pre_encumbered"]) + Decimal(r["encumbered"]) + Decimal(r["actual"]))
            * 100 / Decimal(r["budget"]) for r in shown}
    if dates.current_month() > 1:  # in January last month's claims add to these
        assert used[line_code(now, "RD-WEB", "TRAVEL")] == 92
        assert used[line_code(now, "SALES-EAST", "TRAVEL")] == 104
        assert used[line_code(now, "SALES-EAST", "MARKETING")] == 130
