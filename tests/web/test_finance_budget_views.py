"""The budget side of the finance console through Flask's test client, on the demo:
every page for finance (and admins reading), refused for employees, in Chinese; and
what each action then holds in the database (proposals, budgets, rules)."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from yinfin_flow.budget import simulation as sim
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetBalance, BudgetLine, ControlRuleRow, Reservation
from yinfin_flow.db.models.journal_proposals import JournalProposal
from yinfin_flow.db.models.ledger import JournalEntry
from yinfin_flow.db.models.rule_changes import RuleChange
from yinfin_flow.demo.budgets import line_code

from .conftest import console_app, text

MONTH = datetime.now(UTC).strftime("%Y-%m")
PAGES = ["/finance/budget", "/finance/budget/lines/{line}", "/finance/journals", "/finance/imports",
         "/finance/rules", "/finance/simulate"]
#: a word of each page's Chinese
CHINESE = {"/finance/budget": "预算", "/finance/budget/lines/{line}": "规则历史", "/finance/journals": "申请调剂",
           "/finance/imports": "预算导入", "/finance/rules": "申请变更规则", "/finance/simulate": "规则模拟"}


def line_id(db: Database, code: str) -> int:
    with db.unit_of_work(readonly=True) as s:
        return s.scalar(select(BudgetLine.id).where(BudgetLine.code == code))


def budget_of(db: Database, code: str) -> Decimal:
    with db.unit_of_work(readonly=True) as s:
        return s.scalar(select(BudgetBalance.budget).join(BudgetLine, BudgetLine.id == BudgetBalance.line_id)
                        .where(BudgetLine.code == code))


@pytest.fixture(autouse=True)
def _no_demo_proposals(demo_db: Database) -> None:
    """These tests count the proposals they make: the demo's own pending transfer and
    rule change are taken away first."""
    from sqlalchemy import delete

    with demo_db.unit_of_work() as s:
        s.execute(delete(JournalProposal))
        s.execute(delete(RuleChange))


def proposals(db: Database) -> list[JournalProposal]:
    with db.unit_of_work(readonly=True) as s:
        rows = list(s.scalars(select(JournalProposal).order_by(JournalProposal.id)))
        s.expunge_all()
        return rows


@pytest.mark.parametrize("page", PAGES)
def test_finance_reads_every_page_in_chinese_and_employees_are_refused(person, demo_db, page: str):
    path = page.format(line=line_id(demo_db, line_code(MONTH, "RD", "TRAVEL")))
    fiona = person("fiona")
    en = fiona.get(path)
    assert en.status_code == 200, text(en)[:500]
    zh = fiona.get(path, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert zh.status_code == 200 and CHINESE[page] in text(zh)
    assert 'lang="zh-CN"' in zh.get_data(as_text=True)
    amy = person("amy")
    refused = amy.get(path)
    assert refused.status_code == 403 and 'data-code="forbidden"' in refused.get_data(as_text=True)
    assert person("admin").get(path).status_code == (403 if page == "/finance/imports" else 200)
    assert "/finance/budget" not in amy.get("/inbox").get_data(as_text=True)  # no finance menu


def test_the_finance_menu_lists_each_page_once_however_many_apps(person, demo_db):
    console_app(demo_db)  # another app in the same process registers the pages again
    body = person("fiona").get("/inbox").get_data(as_text=True)
    for path in ("/finance/budget", "/finance/journals", "/finance/imports", "/finance/rules", "/finance/simulate"):
        assert body.count(f'href="{path}"') == 1, path


def test_admins_read_but_do_not_propose(person, demo_db):
    admin = person("admin")
    resp = admin.post("/finance/journals/adjustment", {"line": line_code(MONTH, "RD", "TRAVEL"), "amount": "10",
                                                       "reason": "x"})
    assert resp.status_code == 403
    assert proposals(demo_db) == []
    assert 'data-testid="adjust-form"' not in admin.get("/finance/journals").get_data(as_text=True)
    assert 'data-testid="adjust-form"' in person("fiona").get("/finance/journals").get_data(as_text=True)


def test_budget_tree_shows_buckets_rule_origin_and_charts_with_amounts_as_strings(person, demo_db):
    fiona = person("fiona")
    resp = fiona.get(f"/finance/budget?period={MONTH}")
    body = resp.get_data(as_text=True)
    parent, child = line_code(MONTH, "RD", "TRAVEL"), line_code(MONTH, "RD-APP", "TRAVEL")
    assert f'data-line="{parent}"' in body and f'data-line="{child}"' in body
    row = re.search(rf'<tr class="tree-row depth-1" data-line="{re.escape(child)}">(.*?)</tr>', body, re.S)
    assert row is not None  # a child one level down
    assert f"inherited from {parent}" in text_of(row.group(1)) and "Hard control" in text_of(row.group(1))
    own = re.search(rf'data-line="{re.escape(parent)}">(.*?)</tr>', body, re.S).group(1)
    assert "own rule" in text_of(own)
    assert "default rule" in text(resp)  # lines without a rule of their own anywhere above
    charts = json.loads(re.search(r'id="chart-data">(.*?)</script>', body, re.S).group(1))
    assert charts["months"]["labels"][0].endswith("-01") and len(charts["months"]["labels"]) == 12
    for series in charts["months"]["series"]:
        assert all(isinstance(v, str) and re.fullmatch(r"-?\d+\.\d\d", v) for v in series["values"])
    with demo_db.unit_of_work(readonly=True) as s:
        top = s.scalar(select(func.sum(BudgetBalance.budget)).join(BudgetLine, BudgetLine.id == BudgetBalance.line_id)
                       .where(BudgetLine.code.like(f"ACME/{MONTH}/%"), BudgetLine.parent_id.is_(None)))
    month = charts["months"]["labels"].index(MONTH)
    assert Decimal(charts["months"]["series"][0]["values"][month]) == top
    assert "RD" in charts["usage"]["labels"]
    assert all(isinstance(v, str) for v in charts["usage"]["values"])
    budget = budget_of(demo_db, parent)
    assert f"{budget:,.2f}" in text_of(own)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_budget_tree_filters_and_refuses_an_unknown_period(person):
    fiona = person("fiona")
    only = fiona.get(f"/finance/budget?period={MONTH}&cost_centre=RD-APP").get_data(as_text=True)
    lines = re.findall(r'data-line="([^"]+)"', only)
    assert lines and all("/RD-APP/" in code for code in lines)
    item = fiona.get(f"/finance/budget?period={MONTH}&item=MARKETING").get_data(as_text=True)
    assert {c.rsplit("/", 1)[1] for c in re.findall(r'data-line="([^"]+)"', item)} == {"MARKETING"}
    bad = fiona.get("/finance/budget?period=1999-13")
    assert bad.status_code == 422 and "period" in text(bad)


def test_line_page_links_requests_and_lists_journals_and_reservations(person, demo_db):
    code = line_code(MONTH, "RD-APP", "TRAVEL")
    fiona = person("fiona")
    resp = fiona.get(f"/finance/budget/lines/{line_id(demo_db, code)}")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert re.search(r'href="/requests/\d+" data-testid="request-link"', body)
    assert "original budget" in text(resp)  # its budget journal
    assert f"inherited from {line_code(MONTH, 'RD', 'TRAVEL')}" in text(resp)
    assert fiona.get("/finance/budget/lines/99999999").status_code == 404


def test_line_page_links_the_vouchers_of_its_documents(person, demo_db):
    with demo_db.unit_of_work(readonly=True) as s:
        voucher_id, lid = s.execute(
            select(JournalEntry.id, Reservation.line_id)
            .join(Reservation, (Reservation.document_type == JournalEntry.document_type)
                  & (Reservation.document_id == JournalEntry.document_id))
            .order_by(JournalEntry.id)).first()
    body = person("fiona").get(f"/finance/budget/lines/{lid}").get_data(as_text=True)
    assert f'href="/finance/vouchers/{voucher_id}" data-testid="voucher-link"' in body


def test_an_adjustment_needs_a_second_finance_user_and_the_refusal_is_shown(person, demo_db):
    code = line_code(MONTH, "RD", "SOFTWARE")
    before = budget_of(demo_db, code)
    fiona, frank = person("fiona"), person("frank")
    resp = fiona.post("/finance/journals/adjustment", {"line": code, "amount": "1500.00", "reason": "new licences"})
    assert resp.status_code == 302
    (p,) = proposals(demo_db)
    assert (p.status, p.proposed_by, p.kind) == ("pending", "fiona", "adjustment")
    assert budget_of(demo_db, code) == before  # nothing booked yet
    page = fiona.get(f"/finance/journals/{p.id}")
    assert 'data-testid="own-proposal"' in page.get_data(as_text=True)
    own = fiona.post(f"/finance/journals/{p.id}/approve")
    assert own.status_code == 403 and 'data-code="segregation_of_duties"' in own.get_data(as_text=True)
    assert "fiona proposed budget journal" in text(own)
    assert "new licences" in text(frank.get("/finance/journals"))  # in the reviewers' queue
    ok = frank.post(f"/finance/journals/{p.id}/approve", {"comment": "fine"})
    assert ok.status_code == 302
    assert budget_of(demo_db, code) == before + Decimal("1500")
    assert proposals(demo_db)[0].decided_by == "frank"


def test_a_stale_proposal_is_refused_as_the_api_words_it(person, demo_db):
    code = line_code(MONTH, "FIN", "OFFICE")
    fiona, frank = person("fiona"), person("frank")
    fiona.post("/finance/journals/adjustment", {"line": code, "amount": "100", "reason": "first"})
    fiona.post("/finance/journals/adjustment", {"line": code, "amount": "200", "reason": "second"})
    first, second = proposals(demo_db)
    assert frank.post(f"/finance/journals/{first.id}/approve").status_code == 302
    stale = frank.post(f"/finance/journals/{second.id}/approve")
    assert stale.status_code == 409 and 'data-code="budget_journal_stale"' in stale.get_data(as_text=True)
    assert "propose it again" in text(stale)


def test_bad_journal_input_names_the_field_and_writes_nothing(person, demo_db):
    fiona = person("fiona")
    code = line_code(MONTH, "RD", "TRAVEL")
    no_amount = fiona.post("/finance/journals/adjustment", {"line": code, "amount": "", "reason": "x"})
    assert no_amount.status_code == 422 and "amount" in text(no_amount)
    unknown = fiona.post("/finance/journals/transfer", {"from_line": code, "to_line": "ACME/nope", "amount": "5",
                                                        "reason": "x"})
    assert unknown.status_code == 404 and "to_line" in text(unknown)
    assert fiona.post("/finance/journals/bogus", {"line": code}).status_code == 404
    assert proposals(demo_db) == []


def test_a_transfer_is_proposed_and_approved(person, demo_db):
    src, dst = line_code(MONTH, "SALES", "MARKETING"), line_code(MONTH, "SALES", "TRAVEL")
    a, b = budget_of(demo_db, src), budget_of(demo_db, dst)
    fiona, frank = person("fiona"), person("frank")
    assert fiona.post("/finance/journals/transfer", {"from_line": src, "to_line": dst, "amount": "2000",
                                                     "reason": "trade fair travel"}).status_code == 302
    (p,) = proposals(demo_db)
    page = frank.get(f"/finance/journals/{p.id}")
    assert "trade fair travel" in text(page) and src in text(page) and dst in text(page)
    assert frank.post(f"/finance/journals/{p.id}/approve").status_code == 302
    assert (budget_of(demo_db, src), budget_of(demo_db, dst)) == (a - 2000, b + 2000)


def csv_file(rows: list[str]) -> tuple[io.BytesIO, str]:
    return io.BytesIO(("company,period,cost_centre,item,amount\n" + "\n".join(rows) + "\n").encode()), "budget.csv"


def test_import_dry_run_per_line_then_one_proposal_approved_by_another(person, demo_db):
    same = budget_of(demo_db, line_code(MONTH, "HQ", "OFFICE"))
    raised = budget_of(demo_db, line_code(MONTH, "FIN", "OFFICE")) + 500
    rows = [f"ACME,{MONTH},HQ,OFFICE,{same}", f"ACME,{MONTH},FIN,OFFICE,{raised}", f"ACME,{MONTH},FIN,TRAVEL,700"]
    fiona, frank = person("fiona"), person("frank")
    resp = fiona.client.post("/finance/imports", data={"csrf_token": fiona.csrf, "action": "preview",
                                                      "file": csv_file(rows)}, content_type="multipart/form-data")
    assert resp.status_code == 200
    body = text(resp)
    table = resp.get_data(as_text=True)
    assert re.search(r'class="plan-unchanged"><td>2</td>', table)
    assert re.search(r'class="plan-adjusted"><td>3</td>', table) and "500.00" in body
    assert re.search(r'class="plan-new"><td>4</td>', table) and line_code(MONTH, "FIN", "TRAVEL") in body
    assert proposals(demo_db) == []  # a dry run writes nothing
    digest = re.search(r'name="sha256" value="([0-9a-f]{64})"', table).group(1)
    other = fiona.client.post("/finance/imports", data={
        "csrf_token": fiona.csrf, "action": "submit", "sha256": digest,
        "file": csv_file(rows[:2])}, content_type="multipart/form-data")  # not the file of the dry run
    assert other.status_code == 422 and "dry run" in text(other)
    assert proposals(demo_db) == []
    sent = fiona.client.post("/finance/imports", data={"csrf_token": fiona.csrf, "action": "submit", "sha256": digest,
                                                      "file": csv_file(rows)}, content_type="multipart/form-data")
    assert sent.status_code == 302
    (p,) = proposals(demo_db)
    assert p.kind == "import" and p.status == "pending"
    assert line_id(demo_db, line_code(MONTH, "FIN", "TRAVEL")) is None
    assert frank.post(f"/finance/journals/{p.id}/approve").status_code == 302
    assert budget_of(demo_db, line_code(MONTH, "FIN", "OFFICE")) == raised
    assert budget_of(demo_db, line_code(MONTH, "FIN", "TRAVEL")) == Decimal("700")


def test_import_errors_name_row_and_column(person, demo_db):
    fiona = person("fiona")
    rows = [f"ACME,{MONTH},NOPE,OFFICE,10", f"ACME,{MONTH},HQ,OFFICE,-5"]
    resp = fiona.client.post("/finance/imports", data={"csrf_token": fiona.csrf, "action": "preview",
                                                      "file": csv_file(rows)}, content_type="multipart/form-data")
    assert resp.status_code == 200
    errors = re.findall(r'<tr class="refused"><td>(\d+)</td><td>(\w+)</td>', resp.get_data(as_text=True))
    assert ("2", "cost_centre") in errors and ("3", "amount") in errors
    assert 'data-testid="import-submit"' not in resp.get_data(as_text=True)
    bad = fiona.client.post("/finance/imports", data={"csrf_token": fiona.csrf, "action": "preview",
                                                     "file": (io.BytesIO(b"x"), "budget.txt")},
                            content_type="multipart/form-data")
    assert bad.status_code == 422 and "filename" in text(bad)
    assert proposals(demo_db) == []


def test_a_rule_change_shows_both_rules_and_its_simulation_then_applies(person, demo_db):
    code = line_code(MONTH, "RD", "TRAVEL")
    lid = line_id(demo_db, code)
    fiona, frank = person("fiona"), person("frank")
    resp = fiona.post("/finance/rules", {"line": code, "mode": "hard", "basis": "period", "subtree": "1",
                                         "thresholds": "10:warn, 20:block!", "reason": "tighter travel"})
    assert resp.status_code == 302
    with demo_db.unit_of_work(readonly=True) as s:
        change = s.scalar(select(RuleChange).where(RuleChange.line_id == lid))
        expected = sim.simulate(s, lid, {"mode": "hard", "basis": "period", "subtree": True,
                                         "thresholds": change.thresholds})
    assert change.status == "pending"
    page = frank.get(f"/finance/rules/{change.id}")
    body = page.get_data(as_text=True)
    assert 'data-testid="side-by-side"' in body and "Rule in force" in text(page)
    assert re.search(r'data-testid="sim-refused">\s*' + str(expected["proposed"]["refused"]), body)
    assert expected["requests"] > 0 and expected["proposed"]["refused"] > 0  # the demo's month bites
    shown = re.search(r'data-testid="sim-passed_only_under_current">(\d+)<', body).group(1)
    assert int(shown) == expected["passed_only_under_current"]["count"]
    own = fiona.post(f"/finance/rules/{change.id}/approve")
    assert own.status_code == 403 and 'data-code="segregation_of_duties"' in own.get_data(as_text=True)
    assert frank.post(f"/finance/rules/{change.id}/reject").status_code == 422  # a reason is required
    assert frank.post(f"/finance/rules/{change.id}/approve", {"comment": "ok"}).status_code == 302
    with demo_db.unit_of_work(readonly=True) as s:
        rule = s.scalar(select(ControlRuleRow).where(ControlRuleRow.line_id == lid))
        assert rule.approved_by == "frank" and rule.updated_by == "fiona"
        assert [Decimal(str(t["percent"])) for t in rule.thresholds] == [10, 20]
    history = text(frank.get(f"/finance/budget/lines/{lid}"))
    assert f"version {rule.version}, set by fiona" in history and "approved by frank" in history


def test_bad_rule_input_is_refused_with_the_field(person, demo_db):
    fiona = person("fiona")
    code = line_code(MONTH, "RD", "TRAVEL")
    resp = fiona.post("/finance/rules", {"line": code, "mode": "hard", "thresholds": "ninety", "reason": "x"})
    assert resp.status_code == 422 and "thresholds" in text(resp)
    resp = fiona.post("/finance/rules", {"line": code, "mode": "loose", "reason": "x"})
    assert resp.status_code == 422 and "mode" in text(resp)
    with demo_db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(RuleChange.id)) is None


def test_simulation_page_shows_what_a_hypothetical_rule_would_have_done(person, demo_db):
    code = line_code(MONTH, "RD", "TRAVEL")
    fiona = person("fiona")
    resp = fiona.get(f"/finance/simulate?line={code}&mode=hard&basis=period&subtree=1&thresholds=5:block")
    assert resp.status_code == 200
    with demo_db.unit_of_work(readonly=True) as s:
        expected = sim.simulate(s, line_id(demo_db, code), {"mode": "hard", "basis": "period", "subtree": True,
                                                            "thresholds": [{"percent": "5", "action": "block"}]})
    body = resp.get_data(as_text=True)
    assert expected["proposed"]["refused"] > 0
    assert re.search(r'data-testid="sim-refused">\s*' + str(expected["proposed"]["refused"]) + r" ", body)
    assert "Peak utilisation" in text(resp)
    bad = fiona.get(f"/finance/simulate?line={code}&mode=hard&from=2026-13-01")
    assert bad.status_code == 422 and "from" in text(bad)
    for query, field in (("mode=loose", "mode"), ("mode=hard&subtree=maybe", "subtree"),
                         ("mode=hard&thresholds=5:block,ten", "thresholds"), ("mode=hard&from=2026-02-01&to=2026-01-01",
                                                                               "from")):
        refused = fiona.get(f"/finance/simulate?line={code}&{query}")
        assert refused.status_code == 422 and f"field: {field}" in text(refused), query
