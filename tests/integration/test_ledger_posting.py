"""Posting on both real databases: templates → balanced vouchers, budget actuals, reversals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from yinfin_flow.budget import setup
from yinfin_flow.budget.verify import verify
from yinfin_flow.db.models.ledger import JournalLine
from yinfin_flow.demo.ledger import setup_books
from yinfin_flow.ledger import handlers, masterdata
from yinfin_flow.ledger.posting import post

from ..factories import JAN, org_in

# The factories' items post to 6601 (TRAVEL) and 6602 (OFFICE): leaves in this chart.
CHART = [
    ("1002", "Bank", "asset", None),
    ("2202", "Accounts payable", "liability", None),
    ("2221", "Taxes payable", "liability", None),
    ("22210101", "Input VAT", "liability", "2221"),
    ("2241", "Other payables", "liability", None),
    ("6601", "Travel", "expense", None),
    ("6602", "Office", "expense", None),
    ("6603.02", "Rounding", "expense", None),
    ("1403", "Materials (USD only)", "asset", None),
]


@pytest.fixture(autouse=True)
def _wired():
    handlers.register()


def books(db, *, rates=True):
    org = org_in(db)
    with db.unit_of_work() as s:
        setup_books(s, "ACME", [2026], chart=CHART, employees=["amy", "bob"],
                    vendors=[("V001", "Cloudcalc")])
        masterdata.import_rows(s, "ACME", "accounts", [{"code": "1403", "currency": "USD"}])
        if rates:
            setup.add_rate(s, "USD", "CNY", date(2026, 1, 1), Decimal("7.1234"))
    return org


def expense(key="expense:1:approved", doc_id="1", lines=None, **kw):
    payload = dict(
        key=key, template="expense.approved", company="ACME", posting_date=JAN, actor="alice",
        document={"type": "expense", "id": doc_id, "title": "Beijing trip", "requester": "amy",
                  "partner": "EMP-amy"},
        lines=lines or [{"ref": "1", "item": "TRAVEL", "cost_centre": "RD-APP",
                         "amount": "100.00", "currency": "CNY", "memo": "train"}],
    )
    payload.update(kw)
    return payload


def entry_lines(db, entry_id):
    with db.unit_of_work(readonly=True) as s:
        return [
            (ln.line_no, ln.debit, ln.credit, ln.currency, ln.amount)
            for ln in s.scalars(select(JournalLine).where(JournalLine.entry_id == entry_id)
                                .order_by(JournalLine.line_no))
        ]


def count(db, model):
    with db.unit_of_work(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_expense_approved_posts_a_balanced_numbered_voucher(db):
    books(db)
    with db.unit_of_work() as s:
        r = post(s, **expense())
    assert r.voucher == "记-2026-01-0001"
    assert entry_lines(db, r.entry_id) == [
        (1, Decimal("100"), 0, "CNY", Decimal("100")),
        (2, 0, Decimal("100"), "CNY", Decimal("-100")),
    ]
    with db.unit_of_work(readonly=True) as s:
        assert verify(s) == []
