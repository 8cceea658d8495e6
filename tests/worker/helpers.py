"""Posting vouchers for worker tests (reuses the ledger tests' books)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.outbox import OutboxMessage
from yinfin_flow.ledger.manual import post_manual

from ..factories import JAN
from ..integration.test_ledger_posting import books

__all__ = ["books", "post", "rows"]


def post(db: Database, n: int = 1, amount: str = "500.00", start: int = 1) -> list[int]:
    """Post ``n`` manual vouchers (6602 debit / 2202 credit); returns their entry ids."""
    ids = []
    for i in range(start, start + n):
        with db.unit_of_work() as s:
            r = post_manual(s, key=f"manual:{i}", company="ACME", posting_date=JAN, actor="kim",
                            summary=f"rent accrual {i}",
                            lines=[{"account": "6602", "debit": str(Decimal(amount))},
                                   {"account": "2202", "credit": str(Decimal(amount)),
                                    "partner": "V001"}])
            ids.append(r.entry_id)
    return ids


def rows(db: Database) -> list[OutboxMessage]:
    with db.unit_of_work(readonly=True) as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
