"""Every read that can leave the primary, found in the app's url_map, answers from a read
database whose role can only read (``default_transaction_read_only``), and nothing it
runs there writes.

The reads are the API's reports, budget tree and line reads and the simulation, and
every GET under ``/finance/`` (the console's finance pages: one added later is covered
here without a change, provided its URL's arguments are among :data:`ARGUMENTS`; a new
argument fails the test by name). Ids come from the demo organisation.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetLine
from yinfin_flow.db.models.engine import ApprovalRequest
from yinfin_flow.db.models.ledger import JournalEntry
from yinfin_flow.demo import loaders
from yinfin_flow.demo.budgets import COMPANY, fiscal_year, line_code
from yinfin_flow.extension import state

from ..web.conftest import Person, console_app
from .test_read_database_pg import reader_url  # noqa: F401 - the read-only role, a fixture

#: API reads served by the read database (beside every GET under /finance/).
API_READS = ("/api/v1/reports/", "/api/v1/budget/tree", "/api/v1/budget/lines")
#: Reads done as POST because they take a body (read-only all the same).
POSTED = {"budget.simulate_rule": {"mode": "hard", "thresholds": [{"percent": "50", "action": "warn"}]}}
#: Statements the primary may see for any request: who is calling (a lagging replica
#: must never decide authorization) and the console's session bookkeeping.
IDENTITY = ("FROM user_roles", "FROM api_tokens", "FROM users", "FROM directory_")
WRITES = ("INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "TRUNCATE")


class Seen:
    """The statements one database's engine ran."""

    def __init__(self, db: Database) -> None:
        self.statements: list[str] = []
        event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement)

    def take(self) -> list[str]:
        out, self.statements = self.statements, []
        return out


def demo_ids(db: Database) -> dict[str, Any]:
    year = fiscal_year()
    with db.unit_of_work(readonly=True) as s:
        line = s.scalar(select(BudgetLine.id).where(
            BudgetLine.code == line_code(f"{year}-{date.today().month:02d}", "RD-APP", "TRAVEL")))
        request = s.scalar(select(ApprovalRequest.id).where(ApprovalRequest.finished_at.is_not(None))
                           .order_by(ApprovalRequest.id))
        voucher = s.scalar(select(JournalEntry.id).order_by(JournalEntry.id))
    assert line and request and voucher, "the demo lacks a line, a finished request or a voucher"
    return {"line_id": line, "request_id": request, "entry_id": voucher, "voucher_id": voucher,
            "year": year, "period": f"{year}-{date.today().month:02d}", "fmt": "csv"}


#: Query strings the API reads need (the pages take their defaults).
QUERIES = {
    "budget.get_tree": "company={company}",
    "reports.trial_balance": "company={company}&period={period}",
    "reports.budget_vs_actual": "company={company}&year={year}",
    "console.finance_report_bva_drill": "year={year}&cost_centre=RD-APP&account=6602.03",
    "console.finance_report_trail": "request={request_id}",
}
#: The console's read-only pages (the queues of journals and rule changes, periods and
#: operations read the primary on purpose: they must show what was just done).
READ_PAGES = ("/finance/budget", "/finance/reports")
#: URL arguments a read may take, filled from the demo (see :func:`demo_ids`).
ARGUMENTS = ("line_id", "request_id", "entry_id", "voucher_id", "year", "period", "fmt")


def reads_of(app: Flask, ids: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(endpoint, method, URL) of every read the read database serves."""
    out = []
    with app.test_request_context():
        adapter = app.url_map.bind("localhost")
        for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
            method = "POST" if rule.endpoint in POSTED else "GET"
            if method not in rule.methods or not (rule.rule.startswith((*READ_PAGES, *API_READS))):
                continue
            missing = set(rule.arguments) - set(ARGUMENTS)
            if missing:
                pytest.fail(f"{rule.rule}: no demo value for {', '.join(sorted(missing))} (add it to ARGUMENTS)")
            url = adapter.build(rule.endpoint, {a: ids[a] for a in rule.arguments})
            query = QUERIES.get(rule.endpoint)
            out.append((rule.endpoint, method, url + ("?" + query.format(company=COMPANY, **ids) if query else "")))
    return out


@pytest.fixture
def app(pg_db: Database, reader_url: str) -> Flask:  # noqa: F811 - the fixture imported above
    with pg_db.unit_of_work() as s:
        for _name, load in loaders():
            load(s)
    return console_app(pg_db, database_read_url=reader_url, env="development", secret_key="test")


def test_every_read_answers_from_the_read_only_database_and_writes_nothing_there(app: Flask):
    primary, replica = Seen(state(app).db), Seen(state(app).reads)
    ids = demo_ids(state(app).db)
    reads = reads_of(app, ids)
    endpoints = {endpoint for endpoint, _, _ in reads}
    # the API's reads are there (and any finance page that the app serves)
    assert {"budget.get_tree", "budget.get_line", "budget.list_entries", "budget.simulate_rule",
            "reports.trial_balance", "reports.budget_vs_actual"} <= endpoints
    assert all(e.startswith(("budget.", "reports.", "console.")) for e in endpoints), endpoints
    fiona = Person(app, "fiona")  # finance, signed in through the console's session
    fiona.client.environ_base["HTTP_X_YINFIN_USER"] = "fiona"  # the API's development identity
    primary.take(), replica.take()
    for endpoint, method, url in reads:
        resp = fiona.client.post(url, json=POSTED[endpoint]) if method == "POST" else fiona.get(url)
        assert resp.status_code == 200, (url, resp.get_data(as_text=True)[:500])
        on_replica = replica.take()
        assert on_replica, f"{url} did not read the read database"
        wrote = [q for q in on_replica if q.lstrip().upper().startswith(WRITES)]
        assert wrote == [], f"{url} wrote to the read database: {wrote}"
        work = [q for q in primary.take() if not any(i in q for i in IDENTITY)]
        assert work == [], f"{url} read the primary: {work[:3]}"
