"""The books side of finance's pages (periods, journal, reports, operations, workflows)
with the Flask test client on a copy of the demo database: each page answers finance
(and admins where they may), refuses an employee, and its actions change the books
through the ledger's own functions."""

from __future__ import annotations

import html
import re
from datetime import date

import pytest
from flask import Flask
from sqlalchemy import select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.ledger import AccountingPeriod, JournalEntry
from yinfin_flow.ledger import periods, sync

from .conftest import Person, text

YEAR = date.today().year
READS = ["/finance/periods", "/finance/vouchers", "/finance/vouchers/new", "/finance/reports",
         f"/finance/reports/budget-vs-actual?year={YEAR}", "/finance/reports/trial-balance",
         "/finance/reports/trail", "/finance/operations", "/finance/workflows",
         "/finance/workflows/expense"]
ADMIN_READS = ["/finance/operations", "/finance/workflows", "/finance/workflows/expense"]


def _first_voucher(db: Database) -> int:
    with db.unit_of_work(readonly=True) as s:
        found = s.scalar(select(JournalEntry.id).where(JournalEntry.reverses_id.is_(None))
                         .order_by(JournalEntry.id))
    assert found is not None
    return found


@pytest.mark.parametrize("path", READS)
def test_finance_sees_each_page_and_an_employee_is_refused(app: Flask, path: str):
    fiona = Person(app, "fiona")
    resp = fiona.get(path)
    assert resp.status_code == 200, (path, text(resp)[:500])
    amy = Person(app, "amy")
    refused = amy.get(path)
    assert refused.status_code == 403 and 'data-code="forbidden"' in refused.get_data(as_text=True)


@pytest.mark.parametrize("path", ADMIN_READS)
def test_admins_see_operations_and_workflows(app: Flask, path: str):
    assert Person(app, "admin").get(path).status_code == 200


def test_admins_do_not_see_the_money_pages(app: Flask):
    admin = Person(app, "admin")
    for path in ("/finance/periods", "/finance/vouchers", "/finance/reports"):
        assert admin.get(path).status_code == 403, path


def test_the_finance_menu_shows_the_books_pages_by_role(app: Flask):
    page = Person(app, "fiona").get("/inbox").get_data(as_text=True)
    assert page.count('href="/finance/periods"') == 1  # once, however many apps were made
    fiona = text(Person(app, "fiona").get("/inbox"))
    assert all(word in fiona for word in ("Periods", "Journal", "Reports", "Operations", "Workflows"))
    admin = text(Person(app, "admin").get("/inbox"))
    assert "Operations" in admin and "Workflows" in admin and "Journal" not in admin
    assert "Periods" not in text(Person(app, "amy").get("/inbox"))


def test_close_through_a_month_and_reopen_the_latest(app: Flask, demo_db: Database):
    fiona = Person(app, "fiona")
    through = f"{YEAR}-02"
    resp = fiona.post("/finance/periods/close", {"through": through})
    assert resp.status_code == 302, text(resp)
    with demo_db.unit_of_work(readonly=True) as s:
        status = {p.code: p.status for p in periods.list_periods(s, "ACME")}
    assert status[f"{YEAR}-01"] == status[through] == "closed" and status[f"{YEAR}-03"] == "open"
    page = text(fiona.get("/finance/periods"))
    assert f"Closed {YEAR}-01, {through}" in page
    assert fiona.post(f"/finance/periods/{YEAR}-01/reopen").status_code == 409  # Feb is still closed
    assert fiona.post(f"/finance/periods/{through}/reopen").status_code == 302
    with demo_db.unit_of_work(readonly=True) as s:
        assert {p.code: p.status for p in periods.list_periods(s, "ACME")}[through] == "open"


def test_what_blocks_a_close_is_named_and_nothing_closes(app: Flask, demo_db: Database):
    entry = _first_voucher(demo_db)
    with demo_db.unit_of_work() as s:
        sync.mark(s, entry, "failed", message="ERP said no")
        e = s.get(JournalEntry, entry)
        month = s.get(AccountingPeriod, e.period_id).code
    fiona = Person(app, "fiona")
    page = text(fiona.get("/finance/periods"))
    assert "not yet synced to the ERP" in page and "(failed)" in page
    resp = fiona.post("/finance/periods/close", {"through": month})
    assert resp.status_code == 409 and 'data-code="period_close_blocked"' in resp.get_data(as_text=True)
    assert month in text(resp)
    with demo_db.unit_of_work(readonly=True) as s:
        assert all(p.status == "open" for p in periods.list_periods(s, "ACME"))
    bad = fiona.post("/finance/periods/close", {"through": "2026-13"})
    assert bad.status_code == 422 and "through" in text(bad)


def test_voucher_page_in_the_jzpz_layout_and_reversal_with_a_reason(app: Flask, demo_db: Database):
    entry = _first_voucher(demo_db)
    fiona = Person(app, "fiona")
    page = fiona.get(f"/finance/vouchers/{entry}")
    body = text(page)
    assert page.status_code == 200 and "Accounting voucher" in body and "记账凭证" in body
    assert "1002" in body and "Bank deposits" in body  # the account's code AND its name
    assert "Made by" in body and "@media print" in fiona.get(
        "/static/console/finance-books.css").get_data(as_text=True)
    assert fiona.post(f"/finance/vouchers/{entry}/reverse", {"reason": "  "}).status_code == 422
    resp = fiona.post(f"/finance/vouchers/{entry}/reverse", {"reason": "posted twice"})
    assert resp.status_code == 302
    new_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    with demo_db.unit_of_work(readonly=True) as s:
        rev = s.get(JournalEntry, new_id)
        assert rev.reverses_id == entry and "posted twice" in rev.summary and rev.posted_by == "fiona"
    assert "Reversed by" in text(fiona.get(f"/finance/vouchers/{entry}"))
    again = fiona.post(f"/finance/vouchers/{entry}/reverse", {"reason": "again"})
    assert again.status_code == 302 and again.headers["Location"].endswith(f"/{new_id}")  # once only
    listed = text(fiona.get("/finance/vouchers?reversals=only"))
    assert "posted twice" in listed
    assert fiona.get("/finance/vouchers?reversals=maybe").status_code == 422


def test_a_manual_voucher_by_form(app: Flask, demo_db: Database):
    fiona = Person(app, "fiona")
    form = fiona.get("/finance/vouchers/new").get_data(as_text=True)
    key = re.search(r'name="form_key" value="([^"]+)"', form).group(1)
    data = {"form_key": key, "posting_date": date.today().isoformat(), "summary": "计提房租 rent accrual",
            "account": ["6602.01", "2241", "", ""], "debit": ["1200.00", "", "", ""],
            "credit": ["", "1200.00", "", ""], "cost_centre": ["", "", "", ""],
            "project": ["", "", "", ""], "partner": ["", "", "", ""], "memo": ["", "", "", ""]}
    resp = fiona.post("/finance/vouchers/new", data)
    assert resp.status_code == 302, text(resp)
    again = fiona.post("/finance/vouchers/new", data)  # the same form sent twice: one voucher
    assert again.headers["Location"] == resp.headers["Location"]
    page = text(fiona.get(resp.headers["Location"]))
    assert "计提房租" in page and "6602.01" in page and "2241" in page
    unbalanced = fiona.post("/finance/vouchers/new", {**data, "form_key": key + "x", "credit": ["", "1100.00"]})
    assert unbalanced.status_code == 422
    with demo_db.unit_of_work(readonly=True) as s:
        n = s.scalar(select(JournalEntry.id).where(JournalEntry.summary == "计提房租 rent accrual"))
    assert n is not None


def test_budget_vs_actual_drills_down_to_lines_and_requests(app: Flask):
    fiona = Person(app, "fiona")
    page = fiona.get(f"/finance/reports/budget-vs-actual?year={YEAR}").get_data(as_text=True)
    assert "data-chart-data" in page and "echarts-6.1.0.min.js" in page
    chart = re.search(r'data-chart-data="bva">(.*?)</script>', page, re.S).group(1)
    assert re.search(r'"budget": \["[0-9.]+"', chart)  # amounts reach the chart as strings
    drill = re.search(r'href="(/finance/reports/budget-vs-actual/rows\?[^"]+)"', page).group(1)
    rows = fiona.get(drill.replace("&amp;", "&"))
    assert rows.status_code == 200
    assert re.search(r'href="/finance/budget/lines/\d+"', rows.get_data(as_text=True))
    assert fiona.get("/finance/reports/budget-vs-actual/rows?account=6602").status_code == 422


def test_trial_balance_shows_account_names_and_balances(app: Flask):
    fiona = Person(app, "fiona")
    body = text(fiona.get(f"/finance/reports/trial-balance?period={YEAR}-01"))
    assert "1002" in body and "Bank deposits" in body and "Paid-in capital" in body
    assert "balanced" in body and "NOT balanced" not in body


def test_request_trail_and_downloads(app: Flask, demo_db: Database):
    with demo_db.unit_of_work(readonly=True) as s:
        doc = s.scalar(select(JournalEntry.document_id).where(JournalEntry.document_type == "expense"))
    fiona = Person(app, "fiona")
    trail = text(fiona.get(f"/finance/reports/trail?request={doc}"))
    assert "Approvals" in trail and "Vouchers" in trail
    assert fiona.get("/finance/reports/trail?request=x").status_code == 422
    csv = fiona.get(f"/finance/reports/journal.csv?period={YEAR}-01")
    assert csv.status_code == 200 and "科目编码" in csv.get_data(as_text=True)
    assert "attachment" in csv.headers["Content-Disposition"]
    xlsx = fiona.get("/finance/reports/journal.xlsx")
    assert xlsx.data[:2] == b"PK"
    bean = fiona.get("/finance/reports/journal.beancount").get_data(as_text=True)
    assert "Assets" in bean
    assert fiona.get("/finance/reports/journal.pdf").status_code == 422


def test_operations_verify_on_demand(app: Flask):
    fiona = Person(app, "fiona")
    resp = fiona.post("/finance/operations/verify")
    assert resp.status_code == 200 and "No problem found" in text(resp)
    assert Person(app, "amy").post("/finance/operations/verify").status_code == 403


def test_workflow_versions_and_the_requests_running_on_them(app: Flask):
    admin = Person(app, "admin")
    listing = html.unescape(text(admin.get("/finance/workflows")))
    assert "v1" in listing and "the file's" in listing
    page = admin.get("/finance/workflows/expense?version=1").get_data(as_text=True)
    assert "stateDiagram-v2" in page and 'pre class="mermaid"' in page
    assert re.search(r'href="/requests/\d+"', page)  # the requests on v1, linked
    assert admin.get("/finance/workflows/expense?version=99").status_code == 404
    assert admin.get("/finance/workflows/expense?version=x").status_code == 422


def test_a_draft_is_checked_with_its_findings_inline(app: Flask):
    admin = Person(app, "admin")
    good = (app.extensions["yinfin_flow"].settings.workflows_dir / "expense.yaml").read_text(encoding="utf-8")
    ok = admin.post("/finance/workflows/check", {"yaml": good}, headers={"HX-Request": "true"})
    assert ok.status_code == 200 and "The draft is valid" in text(ok) and "stateDiagram-v2" in text(ok)
    broken = good.replace("initial:", "initial_state:", 1)
    bad = admin.post("/finance/workflows/check", {"yaml": broken}, headers={"HX-Request": "true"})
    assert bad.status_code == 200 and "The draft has problems" in text(bad)
    assert admin.post("/finance/workflows/check", {"yaml": " "}).status_code == 422
    assert Person(app, "fiona").post("/finance/workflows/check", {"yaml": good}).status_code == 403


BAD_GETS = [
    ("/finance/vouchers?period=2026-13", 422), ("/finance/vouchers?page=0", 422),
    ("/finance/vouchers?company=NOPE", 422), ("/finance/vouchers/999999", 404),
    ("/finance/periods?company=%00", 422), ("/finance/reports/budget-vs-actual?year=abc", 422),
    ("/finance/reports/budget-vs-actual?period=1999-01", 422),
    ("/finance/reports/trial-balance?period=1901-01", 422),
    ("/finance/reports/budget-vs-actual/rows?cost_centre=NOPE&account=6602", 200),
    ("/finance/reports/trail?request=999999", 404), ("/finance/reports/trail?request=99999999999", 422),
    ("/finance/reports/journal.csv?period=2026-1", 422), ("/finance/workflows/nope", 404),
    ("/finance/operations?target=" + "x" * 80, 422),
]


@pytest.mark.parametrize(("path", "status"), BAD_GETS)
def test_odd_addresses_are_named_refusals_never_a_500(app: Flask, path: str, status: int):
    resp = Person(app, "fiona").get(path)
    assert resp.status_code == status, (path, text(resp)[:300])


def test_odd_forms_are_named_refusals_never_a_500(app: Flask, demo_db: Database):
    fiona = Person(app, "fiona")
    entry = _first_voucher(demo_db)
    form = fiona.get("/finance/vouchers/new").get_data(as_text=True)
    key = re.search(r'name="form_key" value="([^"]+)"', form).group(1)
    manual = {"form_key": key, "posting_date": date.today().isoformat(), "summary": "x",
              "account": ["6602.01", "2241"], "debit": ["10.00", ""], "credit": ["", "10.00"]}
    cases = [
        ("/finance/vouchers/999999/reverse", {"reason": "x"}, 404),
        (f"/finance/vouchers/{entry}/reverse", {"reason": "x" * 301}, 422),
        (f"/finance/vouchers/{entry}/reverse", {"reason": "x", "posting_date": "soon"}, 422),
        (f"/finance/vouchers/{entry}/reverse", {"reason": "x", "posting_date": "1999-01-01"}, 409),
        ("/finance/vouchers/new", {**manual, "form_key": "short"}, 422),
        ("/finance/vouchers/new", {**manual, "posting_date": "2026-02-30"}, 422),
        ("/finance/vouchers/new", {**manual, "account": ["9999", "2241"]}, 422),
        ("/finance/vouchers/new", {**manual, "debit": ["ten", ""]}, 422),
        ("/finance/vouchers/new", {**manual, "debit": ["10.00", "5.00"]}, 422),
        ("/finance/vouchers/new", {**manual, "account": ["6602.01"], "debit": ["1"], "credit": [""]}, 422),
        ("/finance/periods/close", {}, 422),
        ("/finance/periods/close", {"through": "1999-01"}, 422),
        ("/finance/periods/2026-99/reopen", {}, 422),
        ("/finance/operations/dead-letters/999999/replay", {}, 404),
        ("/finance/operations/reconcile", {"period": "2026-01"}, 422),  # no ERP configured
        ("/finance/operations/reconcile", {"period": "2026-01", "target": "nowhere"}, 422),
    ]
    for path, data, status in cases:
        resp = fiona.post(path, data)
        assert resp.status_code == status, (path, data, text(resp)[:300])


def test_no_books_action_without_the_csrf_token(app: Flask, demo_db: Database):
    fiona = Person(app, "fiona")
    entry = _first_voucher(demo_db)
    for path in ("/finance/periods/close", f"/finance/vouchers/{entry}/reverse", "/finance/vouchers/new",
                 "/finance/operations/verify", "/finance/operations/dead-letters/replay"):
        resp = fiona.client.post(path, data={"through": f"{YEAR}-01", "reason": "x"})
        assert resp.status_code == 400 and 'data-code="csrf_failed"' in resp.get_data(as_text=True), path
    with demo_db.unit_of_work(readonly=True) as s:
        assert all(p.status == "open" for p in periods.list_periods(s, "ACME"))
        assert s.scalar(select(JournalEntry.id).where(JournalEntry.reverses_id == entry)) is None
