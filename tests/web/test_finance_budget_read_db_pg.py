"""The budget side's read pages (the budget tree, a line, the simulation, a rule change's
simulation) are served by the read database: with ``YINFIN_DATABASE_READ_URL``
pointing at a PostgreSQL role that can only read, they answer, they read there, and the
primary sees only who is signed in (authorization never trusts a lagging replica)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from yinfin_flow.budget import rule_changes as rc
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetLine
from yinfin_flow.demo import loaders
from yinfin_flow.demo.budgets import line_code
from yinfin_flow.extension import state

from ..e2e import test_read_database_pg as read_db
from .conftest import Person, console_app

reader_url = read_db.reader_url  # a login role that can only read the run's database
MONTH = datetime.now(UTC).strftime("%Y-%m")


@pytest.fixture
def demo_pg(pg_db: Database) -> Database:
    with pg_db.unit_of_work() as s:
        for _name, load in loaders():
            load(s)
    return pg_db


def test_read_pages_are_served_by_the_read_database(demo_pg: Database, reader_url: str):
    app = console_app(demo_pg, database_read_url=reader_url)
    with demo_pg.unit_of_work() as s:
        line = s.scalar(select(BudgetLine).where(BudgetLine.code == line_code(MONTH, "RD", "TRAVEL")))
        change = rc.propose(s, line.id, actor="fiona", reason="tighter", mode="hard",
                            thresholds=[{"percent": "50", "action": "block"}])
        line_id, change_id = line.id, change.id
    fiona = Person(app, "fiona")
    primary, replica = read_db.Counter(demo_pg), read_db.Counter(state(app).reads)
    pages = [f"/finance/budget?period={MONTH}", f"/finance/budget/lines/{line_id}",
             f"/finance/simulate?line={line_code(MONTH, 'RD', 'TRAVEL')}&mode=soft"]
    for path in pages:
        resp = fiona.get(path)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True)[:800])
        assert replica.take(), f"{path} did not read the read database"
        work = [q for q in primary.take() if "FROM user_roles" not in q and "FROM api_tokens" not in q]
        assert work == [], f"{path} read the primary: {work[:2]}"
    # a rule change's page reads the change on the primary (it opens right after the
    # proposal) and replays its simulation on the read database
    resp = fiona.get(f"/finance/rules/{change_id}")
    assert resp.status_code == 200 and 'data-testid="simulation"' in resp.get_data(as_text=True)
    assert any("budget_entries" in q for q in replica.take())
