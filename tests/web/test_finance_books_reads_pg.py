"""The console's reports read from the read database (``YINFIN_DATABASE_READ_URL``), as
the API's do: pointed at a PostgreSQL role that can only read, every report page and
download works there, and none of them reads the primary (who is signed in aside)."""

from __future__ import annotations

import re

from flask import Flask

from yinfin_flow.db.engine import Database
from yinfin_flow.extension import state
from yinfin_flow.ledger import periods

from ..e2e.conftest import make_app
from ..e2e.test_api_ledger import approved_expense
from ..e2e.test_read_database_pg import Counter, reader_url  # noqa: F401 - a fixture
from ..integration.test_engine_support import world
from .conftest import Person


def test_report_pages_read_the_read_database_only(pg_db: Database, reader_url: str):  # noqa: F811
    app: Flask = make_app(pg_db, database_read_url=reader_url)
    org = world(pg_db)
    rid = approved_expense(app.test_client(), org)
    with pg_db.unit_of_work(readonly=True) as s:
        month = next(p.code for p in periods.list_periods(s, "ACME"))
    fay = Person(app, "fay")
    primary, replica = Counter(pg_db), Counter(state(app).reads)
    bva = fay.get("/finance/reports/budget-vs-actual?year=2026")
    assert bva.status_code == 200
    drill = re.search(r'href="(/finance/reports/budget-vs-actual/rows\?[^"]+)"', bva.get_data(as_text=True))
    assert drill is not None
    pages = ["/finance/reports", f"/finance/reports/trial-balance?period={month}",
             drill.group(1).replace("&amp;", "&"), f"/finance/reports/trail?request={rid}",
             "/finance/reports/journal.csv", "/finance/reports/journal.xlsx"]
    primary.take()
    replica.take()
    for path in pages:
        resp = fay.get(path)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True)[:400])
        assert replica.take(), f"{path} did not read the read database"
        work = [q for q in primary.take() if "FROM user_roles" not in q and "FROM api_tokens" not in q]
        assert work == [], f"{path} read the primary: {work[:2]}"
