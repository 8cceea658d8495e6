"""Finance's budget side in a real browser (Debian's Chromium through Playwright, as
test_console_browser): a budget import approved by a second finance user, a rule change
reviewed with its simulation, a transfer proposed and approved; the budget page with
its charts. Every page is checked for JavaScript errors; screenshots go to tmp."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetBalance, BudgetLine, ControlRuleRow
from yinfin_flow.demo.budgets import line_code

from . import test_console_browser as stories

# the browser, the served console and the signed-in visitors of the console's stories
browser, server, visit = stories.browser, stories.server, stories.visit

MONTH = datetime.now(UTC).strftime("%Y-%m")


def budget_of(db: Database, code: str) -> Decimal:
    with db.unit_of_work(readonly=True) as s:
        return s.scalar(select(BudgetBalance.budget).join(BudgetLine, BudgetLine.id == BudgetBalance.line_id)
                        .where(BudgetLine.code == code))


def test_budget_page_draws_its_charts_and_tree(visit):
    fiona = visit("fiona")
    page = fiona.go("/finance/budget")
    page.wait_for_selector('[data-testid="chart-usage"] svg')
    page.wait_for_selector('[data-testid="chart-months"] svg')
    assert page.locator("tr.tree-row").count() > 5
    assert line_code(MONTH, "RD-APP", "TRAVEL") in page.inner_text('[data-testid="budget-tree"]')
    fiona.shot("budget")
    page.select_option('select[name="cost_centre"]', "RD")
    page.click('[data-testid="budget-filters"] button[type="submit"]')
    page.wait_for_url(re.compile(r".*cost_centre=RD&.*"))
    codes = page.locator("tr.tree-row").evaluate_all("rows => rows.map(r => r.dataset.line)")
    assert codes and all("/RD/" in c for c in codes)
    zh = visit("frank", locale="zh-CN")
    zpage = zh.go("/finance/budget")
    zpage.wait_for_selector('[data-testid="chart-usage"] svg')
    assert "各成本中心使用率" in zpage.inner_text("main")
    zh.shot("budget-zh")


def test_an_import_is_dry_run_proposed_and_approved_by_a_second_finance_user(visit, demo_db: Database,
                                                                             tmp_path: Path):
    target = line_code(MONTH, "FIN", "OFFICE")
    raised = budget_of(demo_db, target) + 800
    csv = tmp_path / "budget-fin.csv"
    csv.write_text(f"company,period,cost_centre,item,amount\nACME,{MONTH},FIN,OFFICE,{raised}\n"
                   f"ACME,{MONTH},FIN,TRAVEL,900\n", encoding="utf-8")
    fiona = visit("fiona")
    page = fiona.go("/finance/imports")
    page.set_input_files('[data-testid="import-file"]', str(csv))
    page.fill('[data-testid="import-reason"]', "office move")
    page.click('[data-testid="import-preview"]')
    page.wait_for_selector('[data-testid="dry-run-rows"]')
    rows = page.inner_text('[data-testid="dry-run-rows"]')
    assert "adjusted" in rows and "800.00" in rows and "new line" in rows
    fiona.shot("import-dry-run")
    page.click('[data-testid="import-submit"]')
    page.wait_for_url(re.compile(r".*/finance/journals/\d+$"))
    proposal = page.url.rsplit("/", 1)[1]
    assert "Pending" in page.inner_text("h1") or "pending" in page.inner_text("h1")
    page.click('[data-testid="approve"]')  # the proposer tries: refused in the page
    page.wait_for_selector('#flash [data-code="segregation_of_duties"]')
    assert budget_of(demo_db, target) == raised - 800

    frank = visit("frank")
    queue = frank.go("/finance/journals")
    queue.click(f'[data-proposal="{proposal}"] a')
    queue.wait_for_url(re.compile(rf".*/finance/journals/{proposal}$"))
    assert "new line" in queue.inner_text('[data-testid="plan"]')
    frank.shot("import-review")
    queue.click('[data-testid="approve"]')
    queue.wait_for_function("document.querySelector('h1').innerText.includes('approved')")
    assert budget_of(demo_db, target) == raised
    assert budget_of(demo_db, line_code(MONTH, "FIN", "TRAVEL")) == Decimal("900")


def test_a_rule_change_is_reviewed_with_its_simulation(visit, demo_db: Database):
    code = line_code(MONTH, "RD", "TRAVEL")
    fiona = visit("fiona")
    page = fiona.go(f"/finance/rules?line={code}")
    page.fill('[data-testid="rule-line"]', code)
    page.select_option('[data-testid="rule-mode"]', "hard")
    page.fill('[data-testid="rule-thresholds"]', "10:warn, 15:block!")
    page.fill('[data-testid="rule-reason"]', "travel freeze")
    page.click('[data-testid="rule-submit"]')
    page.wait_for_url(re.compile(r".*/finance/rules/\d+$"))
    change = page.url.rsplit("/", 1)[1]

    frank = visit("frank")
    queue = frank.go("/finance/rules")
    queue.click(f'[data-change="{change}"] a >> nth=0')
    queue.wait_for_url(re.compile(rf".*/finance/rules/{change}$"))
    sim = queue.inner_text('[data-testid="simulation"]')
    assert "Peak utilisation" in sim and "Refused under the proposed rule" in sim
    assert int(queue.inner_text('[data-testid="sim-refused"]').split()[0]) > 0  # it would have refused some
    assert "15% Blocked!" in queue.inner_text('[data-testid="side-by-side"]')
    frank.shot("rule-review")
    queue.fill('form[action$="/approve"] input[name=comment]', "seen the simulation")
    queue.click('[data-testid="approve"]')
    queue.wait_for_function("document.querySelector('h1').innerText.includes('approved')")
    with demo_db.unit_of_work(readonly=True) as s:
        rule = s.scalar(select(ControlRuleRow).join(BudgetLine, BudgetLine.id == ControlRuleRow.line_id)
                        .where(BudgetLine.code == code))
        assert rule.approved_by == "frank"


def test_a_transfer_is_proposed_from_a_line_and_approved(visit, demo_db: Database):
    src, dst = line_code(MONTH, "SALES", "MARKETING"), line_code(MONTH, "SALES-EAST", "MARKETING")
    a, b = budget_of(demo_db, src), budget_of(demo_db, dst)
    fiona = visit("fiona")
    page = fiona.go(f"/finance/budget?period={MONTH}")
    page.click(f'tr[data-line="{src}"] a')
    page.wait_for_url(re.compile(r".*/finance/budget/lines/\d+$"))
    fiona.shot("line")
    page.click("text=Propose an adjustment or transfer")
    assert page.input_value('[data-testid="transfer-from"]') == src
    page.fill('[data-testid="transfer-to"]', dst)
    page.fill('[data-testid="transfer-amount"]', "3000")
    page.fill('[data-testid="transfer-reason"]', "east campaign")
    page.click('[data-testid="transfer-submit"]')
    page.wait_for_url(re.compile(r".*/finance/journals/\d+$"))
    assert "east campaign" in page.inner_text('[data-testid="proposal"]')

    frank = visit("frank")
    review = frank.go(page.url.replace(fiona.base, ""))
    review.click('[data-testid="approve"]')
    review.wait_for_function("document.querySelector('h1').innerText.includes('approved')")
    frank.shot("transfer-approved")
    assert (budget_of(demo_db, src), budget_of(demo_db, dst)) == (a - 3000, b + 3000)
