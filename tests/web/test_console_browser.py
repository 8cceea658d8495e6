"""Whole stories in a real browser: Debian's Chromium, headless, driven by Playwright
(pointed at the system browser: nothing is downloaded), against the console served
on 127.0.0.1 by a thread of this process, on a copy of the demo database.

Every page a story opens is checked for JavaScript errors, and each story saves
screenshots under its pytest tmp dir.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from yinfin_flow.attachments import samples
from yinfin_flow.budget.results import LineRequest
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.db.models.ledger import JournalEntry
from yinfin_flow.demo.requests import _line as demo_line
from yinfin_flow.engine import directory, queries, service
from yinfin_flow.ledger import sync

from ..conftest import _missing
from .conftest import console_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REFUSED = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d ")
INSTALL = "install Debian's browser: apt-get install chromium chromium-driver fonts-noto-cjk"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing("Chromium", INSTALL, FileNotFoundError(str(CHROMIUM)))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def server(demo_db: Database) -> Iterator[str]:
    app = console_app(demo_db)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(5)


class Visitor:
    """One person in their own browser context, signed in through the sign-in page."""

    def __init__(self, browser: Any, base: str, user: str, shots: Path, locale: str = "en-US") -> None:
        self.context = browser.new_context(locale=locale, viewport={"width": 1360, "height": 900})
        self.page = self.context.new_page()
        self.base, self.user, self.shots = base, user, shots
        self.errors: list[str] = []
        self.refusals: list[str] = []  # the browser's own note of a 4xx answer (a refusal shown in the page)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{base}/sign-in")
        self.page.click(f'[data-testid="as-{user}"]')
        self.page.wait_for_url(re.compile(r".*/inbox$"))

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        if REFUSED.match(message.text):
            self.refusals.append(message.text)
        else:
            self.errors.append(message.text)

    def go(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.page

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{self.user}-{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], f"JavaScript errors for {self.user}: {self.errors}"


@pytest.fixture
def visit(browser: Any, server: str, tmp_path: Path) -> Iterator[Any]:
    opened: list[Visitor] = []

    def open_as(user: str, locale: str = "en-US") -> Visitor:
        v = Visitor(browser, server, user, tmp_path, locale)
        opened.append(v)
        return v

    yield open_as
    for v in opened:
        v.close()  # fails the test on any JavaScript error


def test_amy_files_an_expense_and_wang_approves_it_from_the_inbox(visit, demo_db: Database, tmp_path: Path):
    receipt = tmp_path / "taxi-receipt.png"
    receipt.write_bytes(samples.receipt_png(seed=3))
    amy = visit("amy")
    page = amy.go("/new/expense")
    page.fill('[data-testid="title"]', "Taxi to the client")
    page.click(".line-q")
    page.keyboard.type("travel")
    page.click("[data-pick] >> nth=0")
    assert "RD-APP" in page.inner_text('[data-testid="picked"]')
    page.wait_for_timeout(800)  # a search answer still on its way must not reopen the list
    assert page.locator(".choices [data-pick]").count() == 0
    page.fill('[data-testid="amount"]', "321.00")
    page.wait_for_selector('#preview [data-testid="preview"]')  # in its place, not in #flash
    assert "RD-APP/TRAVEL" in page.inner_text('[data-testid="preview"]')
    page.set_input_files('[data-testid="file"]', str(receipt))
    page.fill('[data-testid="invoice-code"]', "044031900111")
    page.fill('[data-testid="invoice-number"]', "55550001")
    amy.shot("new-expense")
    page.click('[data-testid="submit"]')
    page.wait_for_url(re.compile(r".*/requests/\d+$"))
    request_id = int(page.url.rsplit("/", 1)[1])
    assert "In approval" in page.inner_text("h1")
    assert "taxi-receipt.png" in page.inner_text('[data-testid="attachments"]')
    amy.shot("submitted")

    wang = visit("wang.app")
    inbox = wang.go("/inbox")
    row = inbox.locator("tr.task-row", has_text="Taxi to the client")
    assert "available after approval" in row.inner_text()
    wang.shot("inbox")
    row.locator("a.title").click()
    inbox.wait_for_url(re.compile(r".*/tasks/\d+$"))
    assert "55550001" in inbox.inner_text('[data-testid="attachments"]')  # the receipt, to check
    wang.shot("task")
    inbox.fill('form[action$="/approve"] input[name=comment]', "OK, have a good trip")
    inbox.click('[data-testid="approve"]')
    inbox.wait_for_url(re.compile(r".*/inbox$"))
    assert "Done" in inbox.inner_text("#flash")
    with demo_db.unit_of_work(readonly=True) as s:
        req = queries.get_request(s, request_id)
    manager = [t for t in req["tasks"] if t["step"] == "manager"]
    assert manager and manager[0]["status"] == "approved" and manager[0]["assignee"] == "wang.app"
    assert req["current_step"] == "finance"

    # The same invoice on another of amy's requests is refused, naming the one holding it.
    page = amy.go("/requests?state=approval")
    page.locator("table.requests a", has_text="Trip to Shenzhen (approval)").first.click()
    page.wait_for_url(re.compile(r".*/requests/\d+$"))
    page.set_input_files('#attachments [data-testid="file"]', str(receipt))
    page.fill('#attachments [data-testid="invoice-code"]', "044031900111")
    page.fill('#attachments [data-testid="invoice-number"]', "55550001")
    page.click('[data-testid="upload"]')
    page.wait_for_selector('#flash [data-code="duplicate_invoice"]')
    assert str(request_id) in page.inner_text("#flash")
    assert len(amy.refusals) == 1 and "409" in amy.refusals[0]  # that refusal, and no other
    amy.shot("duplicate-invoice")


def _override_refused_later(db: Database) -> int:
    """amy asks for more than her travel line has, with an override for fiona to decide;
    then another of her requests takes from the same line, so approving the override
    (which tops the line up by the shortfall seen at submit, then reserves) is refused
    for budget."""
    today = date.today()
    with db.unit_of_work() as s:
        directory.grant_role(s, "fiona", "override_authority", actor="test")
        directory.revoke_role(s, "zhou.cfo", "override_authority")
        line = demo_line(s, "RD-APP", "TRAVEL")
        probe = Budgets(s).preview([LineRequest("1", "1.00", "CNY", today, line_id=line)])
        room = min(c.basis_buckets.available + c.tolerance for c in probe)

    def form(amount: Decimal | str) -> dict[str, Any]:
        return {"lines": [{"ref": "1", "line_id": line, "amount": str(amount), "currency": "CNY",
                           "budget_date": today.isoformat(), "memo": "offsite"}]}

    with db.unit_of_work() as s:
        offsite = service.submit(s, "expense", requester="amy", company="ACME", title="Team offsite",
                                 form=form((room + 100).quantize(Decimal("0.01"))),
                                 override_reason="agreed with the GM")
        offsite_id = offsite.id
    with db.unit_of_work() as s:
        service.submit(s, "expense", requester="amy", company="ACME", title="Hotel", form=form("300.00"))
    return offsite_id


def test_fiona_batch_approves_three_and_one_is_refused_for_budget(visit, demo_db: Database):
    offsite_id = _override_refused_later(demo_db)
    with demo_db.unit_of_work(readonly=True) as s:
        mine = queries.inbox(s, "fiona")
    assert len(mine) == 3
    fiona = visit("fiona")
    page = fiona.go("/inbox")
    assert page.locator("tr.task-row").count() == 3
    page.check("[data-select-all]")
    fiona.shot("inbox-selected")
    page.click('[data-testid="batch-approve"]')
    page.wait_for_selector('[data-testid="batch-results"]')
    fiona.shot("batch-results")
    assert page.locator(".batch-results tr.ok").count() == 2
    refused = page.locator(".batch-results tr.refused")
    assert refused.count() == 1 and "E1_over_budget" in refused.inner_text()
    assert "Over budget" in refused.inner_text()
    with demo_db.unit_of_work(readonly=True) as s:
        statuses = {t["request_id"]: t["status"] for t in mine
                    for t in [queries.task_dict(s.get(ApprovalTask, t["id"]))]}
    assert statuses.pop(offsite_id) == "pending"  # refused: nothing of it changed
    assert set(statuses.values()) == {"approved"}  # the other two went through

    # The expense fiona approved is now approved and booked: its page shows the voucher,
    # and the ERP's voucher id once the ERP has it.
    with demo_db.unit_of_work() as s:
        booked = s.scalar(select(ApprovalRequest).where(
            ApprovalRequest.title == "差旅报销 Trip to Shenzhen (approval, step 2)"))
        assert booked is not None and booked.state == "approved"
        entry = s.scalar(select(JournalEntry).where(JournalEntry.document_id == str(booked.id)))
        assert entry is not None
        sync.mark(s, entry.id, "synced", erp_voucher_id="K3-2026-000123")
        booked_id = booked.id
    amy = visit("amy", locale="zh-CN")
    page = amy.go(f"/requests/{booked_id}")
    loop = page.inner_text('[data-testid="closed-loop"]')
    assert page.locator('[data-testid="voucher"]').count() == 1
    assert page.inner_text('[data-testid="erp-id"]') == "K3-2026-000123"
    assert "业财闭环" in page.inner_text("body") and "凭证" in loop
    amy.shot("request-voucher")
    page = amy.go(f"/requests/{booked_id}/print")
    assert "报销单" in page.inner_text("h1") and "fiona" in page.inner_text("table.signatures")
    amy.shot("print")


def test_send_back_and_resubmit_with_a_change(visit, demo_db: Database):
    with demo_db.unit_of_work(readonly=True) as s:
        task = queries.inbox(s, "wang.app")[0]
    wang = visit("wang.app")
    page = wang.go(f"/tasks/{task['id']}")
    page.fill('form[action$="/send-back"] input[name=comment]', "Split the hotel from the train")
    page.click('[data-testid="send-back"]')
    page.wait_for_url(re.compile(r".*/inbox$"))

    amy = visit("amy")
    page = amy.go(f"/requests/{task['request_id']}")
    assert "Sent back" in page.inner_text("h1")
    page.fill('#resubmit input[name=amount]', "640.00")
    page.fill('#resubmit input[name=comment]', "hotel split out")
    amy.shot("resubmit")
    page.click('[data-testid="resubmit"]')
    page.wait_for_function("document.querySelector('h1').innerText.includes('In approval')")
    with demo_db.unit_of_work(readonly=True) as s:
        req = queries.get_request(s, task["request_id"])
        again = [t for t in queries.inbox(s, "wang.app") if t["request_id"] == task["request_id"]]
    assert req["state"] == "approval" and req["form"]["lines"][0]["amount"] == "640.0000"
    assert again
    page = wang.go(f"/tasks/{again[0]['id']}")
    assert "640.00" in page.inner_text('[data-testid="changes"]')  # the approver sees the change
    wang.shot("changed")
