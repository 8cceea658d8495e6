"""Manual vouchers (手工凭证): the same guarantees as template postings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from yinfin_flow.db.models.ledger import JournalLine, Partner
from yinfin_flow.domain.errors import DomainError
from yinfin_flow.domain.journal import Unbalanced
from yinfin_flow.ledger.manual import post_manual

from ..factories import JAN
from .test_ledger_posting import books, count

ACCRUAL = [
    {"account": "6602", "debit": "500.00", "cost_centre": "RD", "memo": "December rent accrual"},
    {"account": "2202", "credit": "500.00", "partner": "V001"},
]


def manual(lines=None, key="manual:1", **kw):
    return {"key": key, "company": "ACME", "posting_date": JAN, "actor": "kim",
            "summary": "计提房租 rent accrual", "lines": lines or ACCRUAL, **kw}


def test_manual_voucher_posts_once_with_its_dimensions(db):
    books(db)
    for _ in range(2):
        with db.unit_of_work() as s:
            r = post_manual(s, **manual())
    assert r.replayed and r.voucher == "记-2026-01-0001"
    with db.unit_of_work(readonly=True) as s:
        lines = list(s.scalars(select(JournalLine).order_by(JournalLine.line_no)))
        v001 = s.scalar(select(Partner.id).where(Partner.code == "V001"))
    assert [(ln.debit, ln.credit, ln.partner_id) for ln in lines] == [
        (Decimal("500"), 0, None), (0, Decimal("500"), v001)]
    assert lines[0].cost_centre_id is not None


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([{"account": "6602", "debit": "1", "credit": "1"}, ACCRUAL[1]], "lines[0].debit"),
        ([{"account": "6602", "debit": "0"}, ACCRUAL[1]], "lines[0].debit"),
        ([ACCRUAL[0], {"account": "2202", "credit": "500.00", "partner": "V999"}], "lines[1].partner"),
        ([ACCRUAL[0], {"account": "2202", "credit": "499.99"}], "lines"),
        ([ACCRUAL[0], {"credit": "500"}], "lines[1].account"),
    ],
)
def test_bad_manual_voucher_names_the_field(db, lines, field):
    books(db)
    with pytest.raises(DomainError) as err, db.unit_of_work() as s:
        post_manual(s, **manual(lines=lines))
    assert err.value.details["field"] == field
    assert count(db, JournalLine) == 0


def test_unbalanced_manual_voucher_is_unbalanced(db):
    books(db)
    with pytest.raises(Unbalanced, match="CNY debits and credits differ by 0.01"), db.unit_of_work() as s:
        post_manual(s, **manual(lines=[ACCRUAL[0], {"account": "2202", "credit": "499.99"}]))
