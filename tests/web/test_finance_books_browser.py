"""The books side of finance's month end in a real browser (Debian's Chromium through
Playwright, as tests/web/test_console_browser.py): a period closed through a month, a
voucher reversed with a reason, a dead letter from a failing connector replayed, the
workflow diagram drawn by Mermaid and the budget-vs-actual chart by ECharts. Every
page is checked for JavaScript errors; screenshots go to the test's tmp dir."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from connectors.base import PermanentError
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.ledger import JournalEntry
from yinfin_flow.db.models.outbox import OutboxMessage
from yinfin_flow.ledger import periods
from yinfin_flow.ledger.manual import post_manual
from yinfin_flow.worker import dispatcher, outbox
from yinfin_flow.worker.config import DeliverySettings

from .test_console_browser import browser, server, visit  # noqa: F401 - fixtures

YEAR = date.today().year


def test_fiona_closes_the_books_through_march(visit, demo_db: Database):  # noqa: F811
    fiona = visit("fiona")
    page = fiona.go("/finance/periods")
    assert page.locator("tr[data-period]").count() == 12
    page.select_option('[data-testid="through"]', f"{YEAR}-03")
    page.click('[data-testid="close-through"]')
    page.wait_for_selector("#flash .flash")
    assert f"{YEAR}-01, {YEAR}-02, {YEAR}-03" in page.inner_text("#flash")
    for month, shown in ((f"{YEAR}-01", "closed"), (f"{YEAR}-03", "closed"), (f"{YEAR}-04", "open")):
        assert page.inner_text(f'tr[data-period="{month}"] [data-testid="status"]') == shown
    assert page.locator('[data-testid="reopen"]').count() == 1  # the latest closed month only
    fiona.shot("periods-closed")
    with demo_db.unit_of_work(readonly=True) as s:
        status = {p.code: p.status for p in periods.list_periods(s, "ACME")}
    assert [status[f"{YEAR}-{m:02d}"] for m in range(1, 5)] == ["closed", "closed", "closed", "open"]


def test_fiona_reverses_a_voucher_with_a_reason(visit, demo_db: Database):  # noqa: F811
    with demo_db.unit_of_work(readonly=True) as s:
        entry = s.scalar(select(JournalEntry.id).where(JournalEntry.document_type == "expense")
                         .order_by(JournalEntry.id))
    assert entry is not None
    fiona = visit("fiona", locale="zh-CN")
    page = fiona.go(f"/finance/vouchers/{entry}")
    assert "记账凭证" in page.inner_text("h1")
    voucher = page.inner_text('[data-testid="voucher"]')
    assert "制单" in voucher and "审核" in voucher and "核算项目" in voucher
    assert page.inner_text('[data-testid="approved-by"]') != "—"  # the request's approvers
    fiona.shot("voucher")
    page.emulate_media(media="print")
    assert not page.locator('[data-testid="reverse-form"]').is_visible()  # the print layout
    assert not page.locator("header.top").is_visible()
    page.emulate_media(media="screen")
    page.fill('[data-testid="reason"]', "金额录错 wrong amount")
    page.click('[data-testid="reverse"]')
    page.wait_for_url(re.compile(r".*/finance/vouchers/\d+$"))
    new_id = int(page.url.rsplit("/", 1)[1])
    assert new_id != entry and "金额录错" in page.inner_text('[data-testid="voucher"]')
    assert "-" in page.inner_text('[data-testid="debit-total"]')  # red ink: negative amounts
    fiona.shot("reversal")
    page = fiona.go(f"/finance/vouchers/{entry}")
    assert page.locator('[data-testid="reversed-by"]').count() == 1
    assert page.locator('[data-testid="reverse-form"]').count() == 0
    with demo_db.unit_of_work(readonly=True) as s:
        rev = s.get(JournalEntry, new_id)
        assert rev.reverses_id == entry and rev.posted_by == "fiona"


class RefusingERP:
    """An ERP that refuses every voucher: what makes a dead letter."""

    name = "flaky"

    def post_voucher(self, voucher, idempotency_key):  # noqa: ANN001, ANN201
        raise PermanentError("科目 6602.03 已停用 (account disabled)", connector="flaky")


class WorkingERP:
    name = "flaky"

    def __init__(self) -> None:
        self.keys: list[str] = []

    def post_voucher(self, voucher, idempotency_key):  # noqa: ANN001, ANN201
        self.keys.append(idempotency_key)
        return f"ERP-{len(self.keys):05d}"


def test_fiona_replays_a_dead_letter(visit, demo_db: Database, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    monkeypatch.setenv("YINFIN_ERP_CONNECTOR", "flaky")  # handlers queue vouchers for it
    monkeypatch.delenv("YINFIN_OA_CONNECTOR", raising=False)
    with demo_db.unit_of_work() as s:
        post_manual(s, key="test:accrual", company="ACME", posting_date=date.today(), actor="fiona",
                    summary="计提 accrual", lines=[{"account": "6602.01", "debit": "80.00"},
                                                   {"account": "2241", "credit": "80.00"}])
    settings = DeliverySettings(erp=("flaky",), oa=(), max_attempts=1, backoff=timedelta(seconds=1),
                                backoff_max=timedelta(minutes=1), lease=timedelta(seconds=30), batch=50)
    r = dispatcher.run_once(demo_db, settings, lookup=lambda name: RefusingERP())
    assert len(r.dead) == 1
    fiona = visit("fiona")
    page = fiona.go("/finance/operations")
    row = page.locator("tr[data-letter]")
    assert row.count() == 1 and "已停用" in row.locator(".last-error").inner_text()
    assert page.inner_text('tr[data-connector="flaky"] [data-testid="dead-count"]') == "1"
    fiona.shot("dead-letter")
    row.locator('[data-testid="replay"]').click()
    page.wait_for_selector("#flash .flash")
    assert "delivered again" in page.inner_text("#flash")
    with demo_db.unit_of_work(readonly=True) as s:
        [msg] = s.scalars(select(OutboxMessage).where(OutboxMessage.target == "flaky")).all()
        assert (msg.status, msg.attempts) == ("pending", 0)
    erp = WorkingERP()
    dispatcher.drain(demo_db, settings, lookup=lambda name: erp)
    assert len(erp.keys) == 1
    page = fiona.go("/finance/operations")
    assert page.locator('[data-testid="no-dead-letters"]').count() == 1
    fiona.shot("dead-letter-replayed")
    with demo_db.unit_of_work(readonly=True) as s:
        assert outbox.dead_letters(s) == []


def test_the_workflow_diagram_and_the_report_chart_are_drawn(visit):  # noqa: F811
    admin = visit("admin")
    page = admin.go("/finance/workflows/expense")
    page.wait_for_selector('[data-testid="diagram"] svg', timeout=20_000)
    assert page.locator('[data-testid="diagram"] svg g').count() > 3
    admin.shot("workflow-diagram")
    page = admin.go("/finance/workflows")
    page.wait_for_selector('[data-testid="diagram-expense"] svg', timeout=20_000)
    page.fill('[data-testid="draft-yaml"]', "name: broken\nversion: 1\n")
    page.click('[data-testid="check"]')
    page.wait_for_selector('[data-testid="draft-result"]')
    assert "problems" in page.inner_text('[data-testid="draft-result"]')
    admin.shot("workflow-draft")

    fiona = visit("fiona")
    page = fiona.go(f"/finance/reports/budget-vs-actual?year={YEAR}")
    page.wait_for_selector('[data-testid="bva-chart"] canvas', timeout=20_000)
    fiona.shot("budget-vs-actual")
