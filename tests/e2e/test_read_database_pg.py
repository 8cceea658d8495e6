"""Reads that can leave the primary: with ``YINFIN_DATABASE_READ_URL`` pointing at a
PostgreSQL role that can only read (``default_transaction_read_only``), every read
endpoint (reports, the budget tree, line reads, simulation) is served there and works,
and no statement of a change reaches it. The CLI's reads and exports go there too."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from yinfin_flow.config import database_schema
from yinfin_flow.db.engine import Database
from yinfin_flow.extension import state

from ..conftest import PG_ADMIN_URL
from ..integration.test_engine_support import world
from .conftest import FINANCE, make_app
from .test_api_ledger import FIN, approved_expense

API = "/api/v1"


@pytest.fixture
def reader_url(pg_db: Database, pg_url: str) -> Iterator[str]:
    """A login role that can only read the run's database."""
    role = f"yinfin_reader_{uuid.uuid4().hex[:8]}"
    name = make_url(pg_url).database
    admin = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'ALTER ROLE "{role}" SET default_transaction_read_only = on'))
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{name}" TO "{role}"'))
        schema = database_schema()  # yinfin-flow's tables live in a schema of their own
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'))
    try:
        yield make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


class Counter:
    def __init__(self, db: Database) -> None:
        self.statements: list[str] = []
        event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, *_args) -> None:
        self.statements.append(statement)

    def take(self) -> list[str]:
        out, self.statements = self.statements, []
        return out


@pytest.fixture
def app(pg_db: Database, reader_url: str) -> Flask:
    return make_app(pg_db, database_read_url=reader_url, budget_journal_approval="off")


def test_the_read_role_really_cannot_write(app: Flask):
    reads = state(app).reads
    assert reads is not state(app).db
    with pytest.raises(DBAPIError, match="read-only transaction"), reads.unit_of_work() as s:
        s.execute(text("CREATE TABLE nope (i int)"))


def test_every_read_endpoint_works_on_the_read_database_and_no_change_reaches_it(app: Flask):
    db = state(app).db
    org = world(db)
    client = app.test_client()
    rid = approved_expense(client, org)  # a request, its budget entries and its voucher
    primary, replica = Counter(db), Counter(state(app).reads)
    reads = [
        ("get", f"{API}/budget/lines", None),
        ("get", f"{API}/budget/lines/{org.child_line}", None),
        ("get", f"{API}/budget/tree?company=ACME", None),
        ("get", f"{API}/budget/lines/{org.child_line}/entries", None),
        ("post", f"{API}/budget/lines/{org.child_line}/simulate", {"mode": "hard"}),
        ("get", f"{API}/reports/trial-balance?company=ACME&period=2026-01", None),
        ("get", f"{API}/reports/budget-vs-actual?company=ACME&year=2026", None),
        ("get", f"{API}/requests/{rid}/trail", None),
    ]
    for method, path, body in reads:
        resp = getattr(client, method)(path, headers=FIN, **({"json": body} if body else {}))
        assert resp.status_code == 200, (path, resp.get_json())
        assert replica.take(), f"{path} did not read the read database"
        # Who is calling (the directory's roles behind X-Yinfin-User, a token) is read
        # from the primary on purpose: a lagging replica must never decide authorization.
        work = [q for q in primary.take() if "FROM user_roles" not in q and "FROM api_tokens" not in q]
        assert work == [], f"{path} read the primary"
    assert client.get(f"{API}/budget/tree?company=ACME", headers=FIN).get_json()["roots"]
    replica.take()

    # changes go to the primary only (the read role would refuse them anyway)
    changes = [
        ("post", f"{API}/budget/adjustments", {"line_id": org.office_line, "amount": "5", "currency": "CNY",
                                               "reason": "pens"}, {"X-Yinfin-User": "fay",
                                                                   "X-Yinfin-Roles": "finance"}),
        ("patch", f"{API}/budget/lines/{org.office_line}", {"status": "hold"}, FINANCE),
        ("post", f"{API}/periods/close", {"company": "ACME", "through": "2026-01"}, FIN),
    ]
    for method, path, body, headers in changes:
        resp = getattr(client, method)(path, json=body, headers=headers)
        assert resp.status_code in (200, 201), (path, resp.get_json())
        assert replica.take() == [], f"{path} reached the read database"
        assert primary.take()


def test_the_cli_reads_and_exports_go_to_the_read_database(pg_db: Database, reader_url: str, tmp_path: Path):
    from yinfin_flow.cli.budget import command as budget
    from yinfin_flow.cli.report import command as report_cmd

    org = world(pg_db)
    # the primary is unreachable: only the read database can answer
    env = {"YINFIN_DATABASE_URL": make_url(reader_url).set(database="no_such_database").render_as_string(
        hide_password=False), "YINFIN_DATABASE_READ_URL": reader_url, "YINFIN_ACTOR": "fay"}
    runner = CliRunner()
    r = runner.invoke(budget, ["show", "--company", "ACME"], env=env)
    assert r.exit_code == 0 and "RD-APP" in r.output, r.output
    r = runner.invoke(budget, ["export", "-o", str(tmp_path / "b.csv"), "--company", "ACME"], env=env)
    assert r.exit_code == 0 and "4 line(s) written" in r.output, r.output
    r = runner.invoke(budget, ["simulate", str(org.child_line), "--mode", "soft"], env=env)
    assert r.exit_code == 0 and "0 request(s)" in r.output, r.output
    r = runner.invoke(report_cmd, ["budget-vs-actual", "--year", "2026", "--company", "ACME"], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(budget, ["adjust", str(org.child_line), "5", "--reason", "x"], env=env)
    assert r.exit_code != 0  # a change needs the primary
